"""Racing (successive halving): fewer examples than full evaluation, the same winner, exact finalist scores."""

import numpy as np
import pytest

from hubevo.config import RacingConfig
from hubevo.demo.runner import demo_config
from hubevo.errors import CandidateError
from hubevo.loop import evolve
from hubevo.racing import order_key, raced_out, ranked_losses, rung_slices, successive_halving
from hubevo.state import Evaluation


def test_rungs_partition_the_sample_in_growing_prefixes():
    order = {"a": list(range(100, 140)), "b": list(range(10))}
    slices = rung_slices(order, [4, 16])
    assert [len(s["a"]) for s in slices] == [4, 12, 24]
    assert [len(s.get("b", [])) for s in slices] == [4, 6, 0]
    for task, idx in order.items():
        seen = [i for s in slices for i in s.get(task, [])]
        assert sorted(seen) == sorted(idx) and len(seen) == len(set(seen))


def test_rungs_must_increase():
    with pytest.raises(ValueError, match="increasing"):
        RacingConfig(rungs=[16, 8])


def outcomes(n_candidates=12, n_examples=64, seed=0):
    """Per-candidate 0/1 outcomes on every example; candidate c is right with probability 0.2 + 0.05 c."""
    rng = np.random.default_rng(seed)
    return {f"c{c}": rng.random(n_examples) < 0.2 + 0.05 * c for c in range(n_candidates)}


def test_successive_halving_spends_less_and_finds_the_full_evaluation_winner():
    truth = outcomes()
    full = {c: float(v.mean()) for c, v in truth.items()}
    order = {"task": list(np.random.default_rng(1).permutation(64))}
    score = lambda cid, part: {"task": float(truth[cid][part["task"]].mean())}  # noqa: E731
    tallies = successive_halving(list(truth), score=score, slices=rung_slices(order, [8, 24]),
                                 fitness=lambda s: s["task"], keep=0.5)
    finalists = [c for c, t in tallies.items() if t.rung == 2]
    assert len(finalists) == 3
    assert max(finalists, key=lambda c: tallies[c].scores["task"]) == max(full, key=full.get)
    for c in finalists:  # a finalist's score is exactly its full-evaluation score
        assert tallies[c].scores["task"] == pytest.approx(full[c]) and tallies[c].examples == 64
    spent = sum(t.examples for t in tallies.values())
    assert spent == 12 * 8 + 6 * 16 + 3 * 40 < 12 * 64


def test_a_broken_candidate_leaves_the_race_and_the_rest_go_on():
    def score(cid, part):
        if cid == "bad":
            raise CandidateError("NaN weights")
        return {"t": 1.0 if cid == "good" else 0.0}

    tallies = successive_halving(["bad", "good", "meh"], score=score, slices=rung_slices({"t": list(range(8))}, [2]),
                                 fitness=lambda s: s["t"], keep=0.5)
    assert tallies["bad"].error == "NaN weights" and tallies["good"].rung == 1 and tallies["meh"].rung == 0


def test_raced_out_candidates_rank_after_finalists_and_by_how_far_they_got():
    final = Evaluation(id="f", generation=0, status="ok", fitness=0.1, examples=64)
    far = Evaluation(id="far", generation=0, status="failed", reason="raced out at rung 2 of 3", scores={"t": 0.9},
                     examples=32)
    near = Evaluation(id="near", generation=0, status="failed", reason="raced out at rung 1 of 3", scores={"t": 1.0},
                      examples=8)
    broken = Evaluation(id="b", generation=0, status="failed", reason="NaN weights")
    assert raced_out(far) and not raced_out(broken)
    assert sorted([broken, near, final, far], key=order_key, reverse=True) == [final, far, near, broken]
    losses = ranked_losses([near, final, broken, far])
    assert losses[1] < losses[3] < losses[0] < losses[2]


def test_racing_on_the_demo_zoo_finds_the_same_winner_with_fewer_examples(demo_zoo, tmp_path):
    """Members plus four random recipes, raced and fully evaluated: same champion, fewer examples."""
    def run(racing, out):
        cfg = demo_config(demo_zoo, out_dir=tmp_path / out, generations=0, population_size=4)
        fitness = cfg.fitness.model_copy(update={"limit": 32, "racing": racing, "heldout_limit": 8})
        cfg = cfg.model_copy(update={
            "fitness": fitness, "budget": cfg.budget.model_copy(update={"wall_time_s": None}),
            "search": cfg.search.model_copy(update={"strategy": "random",
                                                    "options": {"method": "task_arithmetic", "layer_granularity": 0}}),
        })
        return evolve(cfg, progress=False)

    full = run(None, "full")
    raced = run(RacingConfig(rungs=[8, 16], keep=0.5), "raced")
    assert set(raced.evaluations) == set(full.evaluations)
    assert raced.champion() == full.champion()
    spent = lambda state: sum(e.examples for e in state.evaluations.values())  # noqa: E731
    assert spent(raced) < 0.6 * spent(full)  # 6 x 8, 3 x 8, 2 x 16 against 6 x 32 per task
    champion = raced.champion()
    assert raced.evaluations[champion].fitness == pytest.approx(full.evaluations[champion].fitness)
    assert sum(raced_out(e) for e in raced.evaluations.values()) >= len(raced.evaluations) // 2
