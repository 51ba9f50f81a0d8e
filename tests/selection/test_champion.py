"""One champion rule: with tied fitness, every view names the same champion, and it is saved in full.

Two members are the same weights in two folders, so every linear merge of them is that
model again: the random search's children all tie on fitness. The state, the terminal
leaderboard, the Space's views, the log lines and the Hub push must still agree on one
champion (`hubevo.selection.ranking`: earliest evaluated, then smallest id), and it has weights, a
lineage card and held-out scores.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard

from hubevo.config import parse_config
from hubevo.publish.hub import champion_history
from hubevo.publish.tables import leaderboard
from hubevo.run.loop import evolve
from hubevo.selection import ranking
from space.data.loading import load_run_dir
from space.data.ranking import champion_id
from space.pages.leaderboard import champion_key, model_key
from space.pages.progress import generation_stats
from tests.tiny_models import build_zoo, write_choice_task

torch.set_num_threads(1)
TASK = "hubevo_tie_mc"
HELDOUT = "hubevo_tie_mc_heldout"


@pytest.fixture(scope="module")
def tied_run(hub_server, tmp_path_factory, caplog_module):
    root = tmp_path_factory.mktemp("tie")
    write_choice_task(root / "tasks", HELDOUT)
    zoo = build_zoo(root / "zoo", finetunes=1)
    twin = shutil.copytree(zoo["ft1"], root / "zoo" / "ft1-twin")
    nudge_one_weight(twin / "model.safetensors")  # the same model listed twice is refused: a twin that scores alike
    cfg = parse_config({
        "name": "tie",
        "population": {"members": [str(zoo["ft1"]), str(twin)]},
        "fitness": {"tasks": [{"name": TASK, "metric": "acc"}], "heldout": [{"name": HELDOUT, "metric": "acc"}],
                    "include_path": [str(write_choice_task(root / "tasks", TASK))], "limit": 8, "batch_size": 16},
        "search": {"strategy": "random", "options": {"method": "linear", "layer_granularity": 0,
                                                     "evaluate_seeds": False}},
        "budget": {"generations": 1, "population_size": 3},
        "output": {"dir": str(root / "run")},
        "publish": {"namespace": "alice", "private": False, "push": "champion"},
    }, root=root)
    api = HfApi(endpoint=hub_server.url, token="token-alice")
    with caplog_module.at_level(logging.INFO, logger="hubevo"):
        state = evolve(cfg, progress=False, api=api)
    return cfg, state, api, caplog_module.text


def nudge_one_weight(path: Path) -> None:
    """Move one weight by 1e-6: another model to hubevo's duplicate check, the same scores on 8 examples."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(path)
    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] += 1e-6
    save_file(tensors, path, metadata={"format": "pt"})


@pytest.fixture(scope="module")
def caplog_module():
    """A module-wide log capture (pytest's caplog is per test)."""
    handler = _Collect()
    logger = logging.getLogger("hubevo")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def at_level(self, level, *, logger):
        import contextlib

        @contextlib.contextmanager
        def scope():
            log, old = logging.getLogger(logger), logging.getLogger(logger).level
            log.setLevel(level)
            try:
                yield
            finally:
                log.setLevel(old)
        return scope()


def test_fitness_ties_and_every_view_names_the_same_champion(tied_run):
    cfg, state, api, log_text = tied_run
    ok = [e for e in state.evaluations.values() if e.status == "ok"]
    best = max(e.fitness for e in ok)
    tied = [e.id for e in ok if e.fitness == best]
    assert len(tied) >= 2, f"the twins' merges should tie: {[(e.id, e.fitness) for e in ok]}"

    champion = state.champion()
    simple = {*state.initial, *state.baselines}
    decision = ranking.decide(ok, validation=state.validation, incumbents=simple)
    assert champion == decision.champion and champion in state.validation  # a finalist, by the one rule
    if champion not in simple:
        assert decision.crowned and decision.lead > 0
    name = state.individuals[champion].name

    assert leaderboard(state).splitlines()[1].split()[1] == name  # the terminal's first row
    run = load_run_dir(cfg.output.dir)
    assert champion_id(run.results) == champion
    assert champion_key([run]) == model_key(run.name, champion)  # the tree and model tabs open on it
    assert generation_stats(run.results)["champion"].iloc[-1] == name
    assert f"champion: {name} " in log_text and f"champion {name} " in log_text
    assert champion_history(state)[-1][1] == champion
    card = ModelCard.load(cfg.publish.champion_repo(cfg.name), token="token-alice")
    assert name in card.text


def test_the_champion_has_weights_a_card_and_heldout_scores(tied_run):
    cfg, state, api, _ = tied_run
    champion = state.champion()
    folder = Path(state.saved[champion])
    assert (folder / "model.safetensors").is_file()
    card = ModelCard.load(folder / "README.md")
    assert card.data.base_model_relation == "merge"
    assert state.heldout[champion]
    assert all(champion in ids for g, ids in state.survivors.items() if g >= state.evaluations[champion].generation)


def test_a_stored_recipe_names_parents_by_relative_path_and_rebuilds_from_the_run_folder(tied_run, monkeypatch):
    import yaml
    from safetensors.torch import load_file

    from hubevo.breed.materialize import Materializer

    cfg, state, api, _ = tied_run
    champion = state.champion()
    recipe = state.recipes[champion]
    refs = [m["model"] for m in recipe["models"]]
    assert refs and not any(Path(r).is_absolute() for r in refs)
    stages = list(yaml.safe_load_all((Path(state.saved[champion]) / "recipe.yaml").read_text()))
    assert "name" not in stages[-1]  # the card's last stage is the champion: the stored recipe, members by name
    label = {Path(m["path"]).resolve(): m["label"] for m in state.members.values()}

    def by_label(ref: str) -> str:  # the stored recipe's run-relative member path -> the name the card gives it
        return label[Path(cfg.output.dir, ref).resolve()]

    named = {**recipe, "models": [{**m, "model": by_label(m["model"])} for m in recipe["models"]]}
    if "base_model" in recipe:
        named["base_model"] = by_label(recipe["base_model"])
    assert stages[-1] == named
    assert stages[-1]["models"] and ModelCard.load(Path(state.saved[champion]) / "README.md").text.count("```yaml") == 1
    monkeypatch.chdir(cfg.output.dir)  # relative references resolve against the run folder
    rebuilt = Materializer(Path(state.saved[champion])).materialize(recipe)
    saved = load_file(Path(state.saved[champion]) / "model.safetensors")
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in saved.items())


def test_finals_without_per_example_values_fall_back_to_the_validation_rule():
    """Older runs' finals kept no per-example values: a bred finalist then needs a lead of one standard error
    on validation (the previous rule), the errors combined as if independent."""
    from hubevo.evaluation.records import Evaluation

    def scored(cid, fitness, stderr, generation=1):
        return Evaluation(id=cid, generation=generation, status="ok", fitness=fitness, stderr=stderr)

    fitness = {e.id: e for e in (scored("std", 0.80, 0.03, 0), scored("child", 0.83, 0.03), scored("big", 0.9, 0.03))}
    close = {i: fitness[i] for i in ("std", "child")}
    assert ranking.champion(fitness, validation=close) == "child"  # the plain rule: the best finalist
    assert ranking.champion(fitness, validation=close, incumbents={"std"}) == "std"  # +0.03 < 1 x 0.042
    clear = {i: fitness[i] for i in ("std", "big")}
    assert ranking.champion(fitness, validation=clear, incumbents={"std"}) == "big"  # +0.10 > 0.042
    assert ranking.champion(fitness, incumbents={"std"}) == "big"  # no finals: the best by fitness


def test_the_champion_after_each_generation_is_found_in_one_pass_with_the_same_answers():
    """A long run's reign table: `champions_upto` answers what `champion(upto=g)` would, generation by generation."""
    import numpy as np

    from hubevo.evaluation.records import Evaluation

    rng = np.random.default_rng(3)
    for _ in range(30):
        evaluations = [Evaluation(id=f"c{k}", generation=int(rng.integers(0, 8)), stderr=0.05,
                                  **({"status": "ok", "fitness": float(rng.integers(0, 5)) / 4}
                                     if rng.uniform() < 0.7 else {"status": "failed"})) for k in range(40)]
        validation = {e.id: e.model_copy(update={"fitness": float(rng.uniform()),
                                                 "generation": int(rng.integers(0, 9))})
                      for e in rng.choice(evaluations, size=6, replace=False)}
        incumbents = {"c0", "c1", "c2"}
        expected = {g: ranking.champion(evaluations, upto=g, validation=validation, incumbents=incumbents)
                    for g in range(9)}
        assert ranking.champions_upto(evaluations, range(9), validation=validation, incumbents=incumbents) == expected


def test_a_lead_is_judged_example_by_example_when_both_kept_their_validation_outcomes():
    from hubevo.evaluation.records import Evaluation, TaskOutcomes

    def scored(cid, values, *, weight=1.0):
        n = len(values)
        mean = sum(values) / n
        return Evaluation(id=cid, generation=1, status="ok", fitness=mean, stderr=(mean * (1 - mean) / n) ** 0.5,
                          outcomes={"task": TaskOutcomes(weight=weight, values=values)})

    base = [1.0] * 260 + [0.0] * 140                      # 0.65 on 400 examples
    better = [1.0] * 260 + [1.0] * 12 + [0.0] * 128       # the same answers, and 12 more right: +0.03
    noisy = [0.0] * 12 + [1.0] * 248 + [1.0] * 24 + [0.0] * 116  # +0.03 too, right on other examples
    a, b, c = scored("base", base), scored("better", better), scored("noisy", noisy)
    combined = (a.stderr ** 2 + b.stderr ** 2) ** 0.5
    assert b.fitness - a.fitness < combined  # within noise, were the two samples independent
    assert ranking.paired_stderr(b, a) < 0.01 and b.fitness - a.fitness > ranking.lead_stderr(b, a)  # never worse
    assert ranking.paired_stderr(c, a) > ranking.paired_stderr(b, a)
    assert ranking.champion([b, a], validation={"base": a, "better": b}, incumbents={"base"}) == "better"
    unpaired = b.model_copy(update={"outcomes": {}})  # an older run's validation: no per-example values
    assert ranking.paired_stderr(unpaired, a) is None and unpaired.fitness - a.fitness < ranking.lead_stderr(unpaired, a)
    other = scored("other", better[:399])  # not the same examples: no pairing
    assert ranking.paired_stderr(other, a) is None
    indexed = lambda e: e.model_copy(update={"outcomes": {"task": e.outcomes["task"].model_copy(  # noqa: E731
        update={"docs": list(range(len(e.outcomes["task"].values)))})}})
    subset = scored("subset", better[:80]).model_copy(update={"outcomes": {"task": TaskOutcomes(
        weight=1.0, values=better[:80], docs=list(range(80)))}})  # a cheap-fitness subset: paired on its 80
    assert ranking.paired_stderr(subset, indexed(a)) == ranking.paired_stderr(subset, indexed(scored("a80", base[:80])))


def test_the_run_records_its_decision_and_the_cards_say_it_in_the_same_words(tied_run):
    import json

    from hubevo.publish.decision import decision_text

    cfg, state, _, log_text = tied_run
    decision = state.decision()
    record = json.loads((cfg.output.dir / "champion.json").read_text())
    assert record["champion"] == decision.champion == state.champion()
    assert record["rule"] == "evidence" and record["text"] == decision_text(state)
    assert record["crowned"] == decision.crowned and record["lead"] == decision.lead
    card = ModelCard.load(Path(state.saved[decision.champion]) / "README.md")
    assert f"The run's champion: {decision_text(state)}." in card.text
    assert decision_text(state) in log_text  # the generation summaries


def test_finalists_estimated_on_subsets_of_different_generations_each_pair_their_fitness_lead_with_the_holder():
    import numpy as np

    from hubevo.evaluation.records import Evaluation, TaskOutcomes

    rng = np.random.default_rng(0)
    truth = {"holder": 0.6, "b1": 0.7, "b2": 0.72, "b3": 0.65}
    def scored(cid, docs, generation):  # noqa: E306
        values = (rng.random(400) < truth[cid]).astype(float)[docs].tolist()
        return Evaluation(id=cid, generation=generation, status="ok", fitness=float(np.mean(values)),
                          outcomes={"t": TaskOutcomes(weight=1.0, values=values, docs=list(docs))})
    fitness = {"holder": scored("holder", range(400), 0), "b1": scored("b1", range(0, 80), 1),
               "b3": scored("b3", range(0, 80), 1), "b2": scored("b2", range(200, 280), 2)}
    groups = ranking.fitness_groups(fitness, holder="holder", bred=["b1", "b2"], searched=["b1", "b3", "b2"])
    assert [g.ids for g in groups] == [["holder", "b1", "b3"], ["holder", "b2"]]
    assert [g.examples for g in groups] == [80, 80]  # each on the examples it really scored, never estimates
