"""Racing (successive halving): fewer examples than full evaluation, the same winner, exact finalist scores."""

import numpy as np
import pytest

from hubevo.config import RacingConfig
from hubevo.demo.runner import demo_config
from hubevo.errors import CandidateError
from hubevo.evaluation.records import Evaluation
from hubevo.execute.racing import rung_slices, successive_halving
from hubevo.execute.runner import CandidateJob
from hubevo.run.loop import evolve
from hubevo.selection.order import order_key, raced_out, ranked_losses


def jobs(*ids):
    return [CandidateJob(id=i, name=i, generation=0, merge={}) for i in ids]


def backend(score):
    """A backend's `evaluate` over a function of (id, sample): what a runner yields, failures included."""
    def evaluate(batch):
        for job in batch:
            try:
                yield Evaluation(id=job.id, generation=0, status="ok", scores=score(job.id, job.sample), fitness=0.0)
            except CandidateError as err:
                yield Evaluation(id=job.id, generation=0, status="failed", reason=str(err))
    return evaluate


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
    tallies = successive_halving(jobs(*truth), evaluate=backend(score), slices=rung_slices(order, [8, 24]),
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

    tallies = successive_halving(jobs("bad", "good", "meh"), evaluate=backend(score),
                                 slices=rung_slices({"t": list(range(8))}, [2]),
                                 fitness=lambda s: s["t"], keep=0.5)
    assert tallies["bad"].error == "NaN weights" and tallies["good"].rung == 1 and tallies["meh"].rung == 0


def test_raced_out_candidates_rank_after_finalists_and_by_how_far_they_got():
    final = Evaluation(id="f", generation=0, status="ok", fitness=0.1, examples=64)
    far = Evaluation(id="far", generation=0, status="raced_out", reason="raced out at rung 2 of 3", scores={"t": 0.9},
                     examples=32)
    near = Evaluation(id="near", generation=0, status="raced_out", reason="raced out at rung 1 of 3",
                      scores={"t": 1.0}, examples=8)
    broken = Evaluation(id="b", generation=0, status="failed", reason="NaN weights")
    assert raced_out(far) and not raced_out(broken)
    assert sorted([broken, near, final, far], key=order_key, reverse=True) == [final, far, near, broken]
    losses = ranked_losses([near, final, broken, far])
    assert losses[1] < losses[3] < losses[0] < losses[2]


def test_racing_on_the_demo_zoo_finds_the_same_winner_with_fewer_examples(demo_zoo, tmp_path):
    """Six random recipes, raced and fully evaluated: same champion, fewer examples."""
    def run(racing, out):
        cfg = demo_config(demo_zoo, out_dir=tmp_path / out, generations=0, population_size=6)
        fitness = cfg.fitness.model_copy(update={"limit": 32, "racing": racing, "heldout_limit": 8})
        cfg = cfg.model_copy(update={
            "fitness": fitness, "budget": cfg.budget.model_copy(update={"wall_time_s": None}),
            "search": cfg.search.model_copy(update={"strategy": "random", "baselines": [],
                                                    "options": {"method": "task_arithmetic", "layer_granularity": 0,
                                                                "evaluate_seeds": False}}),
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


def raced_config(zoo, out_dir, *, strategy="ga", options=None, generations=1, population_size=4, **update):
    cfg = demo_config(zoo, out_dir=out_dir, generations=generations, population_size=population_size)
    fitness = cfg.fitness.model_copy(update={"limit": 24, "racing": RacingConfig(rungs=[8], keep=0.5),
                                             "heldout_limit": 8})
    return cfg.model_copy(update={
        "fitness": fitness, "budget": cfg.budget.model_copy(update={"wall_time_s": None}),
        "search": cfg.search.model_copy(update={"strategy": strategy, "options": options or {}}), **update})


def test_members_are_never_raced_out(demo_zoo, tmp_path):
    """Two members raced at generation 0 would leave one parent; both are kept and the GA breeds."""
    state = evolve(raced_config(demo_zoo, tmp_path / "run", generations=1), progress=False)
    seeds = [i for i, ind in state.individuals.items() if ind.kind == "seed" and i in state.evaluations]
    assert seeds and all(state.evaluations[i].status == "ok" for i in seeds)
    assert state.finished and any(ind.generation == 1 for ind in state.individuals.values())


def test_a_two_member_raced_run_keeps_both_members_and_runs_every_generation(demo_zoo, tmp_path):
    """Population two, no standard recipes, keep 0.5: unprotected, the race would leave one parent at generation 0."""
    cfg = raced_config(demo_zoo, tmp_path / "run", generations=2, population_size=3)
    assert len(cfg.population.members) == 2
    cfg = cfg.model_validate({**cfg.model_dump(), "budget": {**cfg.budget.model_dump(), "population_size": 2},
                              "selection": {**cfg.selection.model_dump(), "keep_top_k": 1},
                              "search": {**cfg.search.model_dump(), "baselines": []}})
    state = evolve(cfg, progress=False)
    assert len(state.initial) == 2 and all(state.evaluations[i].status == "ok" for i in state.initial)
    assert state.finished and state.stop_reason == "2 generations done"
    assert {ind.generation for i, ind in state.individuals.items() if i in state.evaluations} >= {0, 1, 2}


def test_racing_with_dpo_children_trains_each_once_and_finishes(demo_zoo, tmp_path):
    """Fine-tuned children race like any candidate: trained in the first rung, reused in the next."""
    from hubevo.demo.preferences import write_preferences

    prefs = write_preferences(tmp_path / "prefs.jsonl", n=200)
    cfg = raced_config(demo_zoo, tmp_path / "run")
    mutation = cfg.mutation.model_validate({
        **cfg.mutation.model_dump(), "probability": 1.0, "operators": ["dpo"],
        "finetune": {"datasets": [{"path": str(prefs)}], "samples": 16, "steps": (2, 3),
                     "learning_rate": (3e-4, 1e-3), "lora_rank": [4], "baseline_steps": []}})
    state = evolve(cfg.model_copy(update={"mutation": mutation}), progress=False)

    children = [i for i, ind in state.individuals.items() if ind.kind == "finetune"]
    assert state.finished and children and all(c in state.evaluations for c in children)
    assert {state.evaluations[c].status for c in children} <= {"ok", "raced_out"}
    assert any(state.evaluations[c].status == "raced_out" for c in children)
    assert all(c in state.training for c in children)  # each child's training is recorded
    for c in children:  # trained once: one folder, one training record, whatever the number of rungs
        assert len(list((cfg.output.dir / "candidates").glob(f"{c}*"))) == 1
    raced = [e for e in state.evaluations.values() if e.status == "raced_out"]
    assert all(e.fitness is None and e.reason.startswith("raced out") and e.examples > 0 for e in raced)


def test_racing_with_cmaes_finishes_and_tells_the_optimizer_every_candidate(demo_zoo, tmp_path):
    cfg = raced_config(demo_zoo, tmp_path / "run", strategy="cmaes", generations=2,
                       options={"method": "linear", "layer_granularity": 0, "popsize": 4})
    state = evolve(cfg, progress=False)
    assert state.finished and state.stop_reason == "2 generations done"
    statuses = [e.status for e in state.evaluations.values()]
    assert "raced_out" in statuses and "ok" in statuses
    assert state.champion() is not None and state.evaluations[state.champion()].status == "ok"
