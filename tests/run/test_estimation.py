"""Cheap fitness in a real run (`fitness.estimator`): bred candidates are scored on a fifth of the sample and carry
an estimate with its error, the references and the finals score real examples, every outcome lands in
outcomes.parquet (which warm-starts a later run), and a killed run resumes into the same run."""

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from hubevo.demo.runner import demo_config
from hubevo.errors import ConfigError
from hubevo.run.loop import evolve
from hubevo.run.preflight import check_data_files
from hubevo.state.runstate import load_state
from tests.helpers import killed_mid_generation

REPO = Path(__file__).resolve().parents[2]


def cheap_config(zoo, out_dir, *, kind="anchors", **estimator):
    """The demo run in the user regime (no validation tasks: the finals carve theirs), with cheap fitness."""
    cfg = demo_config(zoo, out_dir=out_dir, generations=3, population_size=4, limit=None)
    data = cfg.model_dump(mode="json")
    data["fitness"] |= {"validation": [], "estimator": {"kind": kind, **estimator}}
    data["search"] = {"strategy": "ga"}
    return type(cfg).model_validate(data)


@pytest.fixture(scope="module")
def cheap_run(demo_zoo, tmp_path_factory):
    cfg = cheap_config(demo_zoo, tmp_path_factory.mktemp("cheap") / "out")
    return cfg, evolve(cfg, progress=False)


def test_bred_candidates_are_estimated_on_a_fifth_with_an_error_and_the_references_measured(cheap_run):
    cfg, state = cheap_run
    incumbents = {*state.initial, *state.baselines}
    full = {t: len(o.values) for t, o in state.evaluations[state.initial[0]].outcomes.items()}
    for cid, ev in state.evaluations.items():
        if ev.status != "ok":
            continue
        scored = {t: len(o.values) for t, o in ev.outcomes.items()}
        if cid in incumbents or ev.estimate is None:
            assert ev.estimate is None and scored == full
        else:
            assert ev.estimate == "anchors" and ev.stderr > 0 and ev.drift is not None
            assert all(scored[t] == round(0.2 * full[t]) for t in full)
    bred = [e for i, e in state.evaluations.items() if i not in incumbents and e.status == "ok"]
    assert sum(e.estimate is not None for e in bred) >= len(bred) - len(state.rescored)
    assert all(e.estimate is not None for e in state.rescored), "only estimates are completed"


def test_the_finals_score_real_validation_examples_never_estimates(cheap_run):
    _, state = cheap_run
    assert state.validation
    fitness_docs = {t: set(o.docs) for t, o in state.evaluations[state.initial[0]].outcomes.items()}
    for ev in state.validation.values():
        assert ev.estimate is None
        assert all(not set(o.docs) & fitness_docs[t] for t, o in ev.outcomes.items())


def test_every_outcome_is_in_outcomes_parquet_and_warm_starts_a_later_run(cheap_run, demo_zoo, tmp_path):
    cfg, state = cheap_run
    frame = pd.read_parquet(cfg.output.dir / "outcomes.parquet")
    for cid, ev in state.evaluations.items():
        rows = frame[(frame["id"] == cid) & (frame["scoring"] == "fitness")]
        assert len(rows) == sum(len(o.values) for o in ev.outcomes.values())
        assert rows["value"].sum() == pytest.approx(sum(sum(o.values) for o in ev.outcomes.values()))
    assert set(frame[frame["scoring"] == "validation"]["id"]) == set(state.validation)

    later = cheap_config(demo_zoo, tmp_path / "later", references=[str(cfg.output.dir / "outcomes.parquet")])
    check_data_files(later)
    from hubevo.run.estimation import read_references

    warm = read_references(cfg.output.dir / "outcomes.parquet", tasks={t.name for t in later.fitness.tasks})
    assert {e.id for e in warm.values()} == {i for i, e in state.evaluations.items()
                                             if e.status == "ok" and e.estimate is None} | {
        e.id for e in state.rescored if e.estimate is None}
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    bad = cheap_config(demo_zoo, tmp_path / "bad", references=[str(tmp_path / "junk.parquet")])
    with pytest.raises(ConfigError, match=r"fitness\.estimator\.references\.0: cannot read .*junk\.parquet"):
        check_data_files(bad)


@pytest.mark.slow
def test_a_killed_cheap_run_resumes_into_the_same_run(cheap_run, tmp_path):
    """SIGKILLed in generation 1 and resumed: the same examples, estimates, completions and champion."""
    reference_cfg, reference = cheap_run
    cfg = reference_cfg.model_copy(update={"output": reference_cfg.output.model_copy(update={"dir": tmp_path / "k"})})
    command = killed_mid_generation(cfg, config_path=tmp_path / "run.yaml", generation=1)
    resumed = subprocess.run(command + ["--resume"], cwd=REPO, env=os.environ.copy(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = load_state(cfg.output.dir)
    same = lambda s: {i: (e.fitness, e.estimate, {t: o.docs for t, o in e.outcomes.items()})  # noqa: E731
                      for i, e in s.evaluations.items()}
    assert same(after) == same(reference)
    assert after.champion() == reference.champion()


@pytest.mark.slow
def test_racing_runs_its_rungs_over_the_estimators_examples(demo_zoo, tmp_path):
    cfg = cheap_config(demo_zoo, tmp_path / "raced", kind="subset")
    data = cfg.model_dump(mode="json")
    data["fitness"]["racing"] = {"rungs": [10], "keep": 0.5}
    data["budget"] |= {"generations": 2}
    state = evolve(type(cfg).model_validate(data), progress=False)
    incumbents = {*state.initial, *state.baselines}
    bred = [e for i, e in state.evaluations.items() if i not in incumbents]
    items = {t: round(0.2 * len(o.values)) for t, o in state.evaluations[state.initial[0]].outcomes.items()}
    finalists = [e for e in bred if e.status == "ok"]
    assert finalists and any(e.status == "raced_out" for e in bred)
    for ev in finalists:  # a race's finalist: every rung's outcomes kept, its fitness the estimate from them
        assert ev.estimate == "subset" and {t: len(o.values) for t, o in ev.outcomes.items()} == items
    assert all(e.examples < sum(items.values()) for e in bred if e.status == "raced_out")
