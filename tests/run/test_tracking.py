"""Experiment tracking: the run file's `tracking`, the preflight's missing package, a tracker that fails mid-run,
and a tracked evolution whose trackio rows and TensorBoard scalars read back as the run's own numbers."""

import logging
import statistics
import sys

import pandas as pd
import pytest
from huggingface_hub import constants

from hubevo.config import TRACKER_PACKAGES, parse_config
from hubevo.demo.preferences import write_preferences
from hubevo.demo.runner import demo_config
from hubevo.errors import ConfigError
from hubevo.run.loop import evolve
from hubevo.run.tracking import TRACKERS, TensorboardTracker, Tracking, TrackioTracker, open_tracking, trainer_report
from hubevo.state.runstate import RunState, config_hash

SPEC = {"name": "x", "population": {"members": ["a/b", "a/c"]}, "fitness": {"tasks": ["t"]},
        "crossover": {"methods": ["linear"]}}


def test_tracking_is_off_by_default_a_list_or_a_section_and_never_part_of_the_runs_hash(tmp_path):
    off = parse_config(SPEC, root=tmp_path)
    short = parse_config({**SPEC, "tracking": ["trackio", "tensorboard", "trackio"]}, root=tmp_path)
    long = parse_config({**SPEC, "tracking": {"to": "wandb", "project": "evo"}}, root=tmp_path)
    assert off.tracking.to == [] and short.tracking.to == ["trackio", "tensorboard"]
    assert (long.tracking.to, long.tracking.project, long.tracking.space_id) == (["wandb"], "evo", None)
    assert config_hash(off) == config_hash(short) == config_hash(long)  # a resumed run may add or drop a dashboard
    assert set(TRACKERS) == set(TRACKER_PACKAGES)


def test_an_unknown_tracker_is_named_with_its_close_matches(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config({**SPEC, "tracking": ["trackio", "tensorbord"]}, root=tmp_path)
    assert str(err.value).count("\n") == 0
    assert "tracking.to: unknown tracker 'tensorbord'. Did you mean tensorboard?" in str(err.value)
    assert "Known trackers: tensorboard, trackio, wandb" in str(err.value)


def test_a_tracker_not_installed_stops_the_run_before_it_starts_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "trackio", None)  # what an environment without trackio finds
    out = tmp_path / "run"
    cfg = parse_config({**SPEC, "tracking": ["trackio"], "output": {"dir": str(out)}}, root=tmp_path)
    with pytest.raises(ConfigError) as err:
        evolve(cfg, progress=False)
    assert str(err.value) == ("tracking.to names trackio, not installed; pip install trackio (trackio: pip install "
                              "'hubevo[tracking]'), or remove it from tracking.to")
    assert not out.exists()


class Unreachable:
    """A tracker whose service went away mid-run."""

    name = "unreachable"

    def start(self, *, cfg, resume):
        pass

    def log(self, metrics, *, step):
        raise ConnectionError("connection refused")

    def finish(self):
        pass


@pytest.fixture
def trackio_dir(tmp_path, monkeypatch):
    """trackio's storage in tmp_path: $TRACKIO_DIR, which trackio reads once when imported (and where read)."""
    folder = tmp_path / "trackio"
    monkeypatch.setenv("TRACKIO_DIR", str(folder))
    import trackio.utils  # noqa: F401  (imported now, it reads the variable set above)

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "trackio" and hasattr(module, "TRACKIO_DIR"):
            monkeypatch.setattr(module, "TRACKIO_DIR", folder)
    return folder


def test_a_tracker_that_fails_is_dropped_with_one_warning_and_the_others_go_on(tmp_path, trackio_dir, caplog):
    from trackio.sqlite_storage import SQLiteStorage

    cfg = parse_config({**SPEC, "tracking": {"to": ["trackio"], "project": "drop"},
                        "output": {"dir": str(tmp_path / "run")}}, root=tmp_path)
    healthy = TrackioTracker()
    healthy.start(cfg=cfg, resume=False)
    caplog.clear()  # trackio's line saying where it stores
    sink = Tracking([Unreachable(), healthy])
    with caplog.at_level(logging.WARNING, logger="hubevo"):
        for step in range(3):
            sink.log({"generation/fitness_best": 0.5 + step, "champion/name": "c"}, step=step)
    assert [r.getMessage() for r in caplog.records] == [
        "tracking: unreachable could not log (ConnectionError: connection refused); the run goes on without it"]
    assert sink.trackers == [healthy]
    sink.close(RunState(config_hash="x"))
    assert [r["generation/fitness_best"] for r in SQLiteStorage.get_logs("drop", "x")] == [0.5, 1.5, 2.5]


def test_tensorboard_writes_the_generation_scalars(tmp_path):
    """tensorboard is installed on its own, outside the test lock (its grpcio would turn the Ray client's
    missing-package check into a connection attempt): checked where it is installed."""
    EventAccumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator").EventAccumulator
    cfg = parse_config({**SPEC, "output": {"dir": str(tmp_path / "run")}}, root=tmp_path)
    board = TensorboardTracker()
    board.start(cfg=cfg, resume=False)
    sink = Tracking([board])
    for step in range(3):
        sink.log({"generation/fitness_best": 0.5 + step, "champion/name": "c"}, step=step)
    sink.close(RunState(config_hash="x"))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "evolution"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("generation/fitness_best")] == [(0, 0.5), (1, 1.5), (2, 2.5)]


def test_offline_trackio_logs_locally_instead_of_to_its_space(tmp_path, trackio_dir, monkeypatch, caplog):
    from trackio.sqlite_storage import SQLiteStorage

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets when huggingface_hub loads
    cfg = parse_config({**SPEC, "tracking": {"to": ["trackio"], "project": "dash", "space_id": "alice/evo"},
                        "output": {"dir": str(tmp_path / "run")}}, root=tmp_path)
    with caplog.at_level(logging.WARNING, logger="hubevo"):
        sink = open_tracking(cfg, resume=False)
        sink.log({"generation/fitness_best": 0.25}, step=0)
        sink.close(RunState(config_hash="x"))
    assert [r.getMessage() for r in caplog.records] == [
        "tracking: HF_HUB_OFFLINE is set, so trackio logs locally, not to Space alice/evo"]
    assert [r["generation/fitness_best"] for r in SQLiteStorage.get_logs("dash", "x")] == [0.25]
    assert (trackio_dir / "dash.db").is_file()
    assert "trackio_space_id" not in trainer_report(cfg, child="c")


def test_a_tracked_run_logs_each_generation_and_each_fine_tunes_curve(demo_zoo, tmp_path, trackio_dir):
    from trackio.sqlite_storage import SQLiteStorage

    prefs = write_preferences(tmp_path / "prefs.jsonl", n=400)
    cfg = demo_config(demo_zoo, out_dir=tmp_path / "run", generations=1, population_size=4)
    cfg = cfg.model_validate({**cfg.model_dump(), "tracking": {"to": ["trackio"], "project": "evo"},
                              "mutation": {**cfg.mutation.model_dump(), "probability": 1.0, "operators": ["dpo"],
                                           "finetune": {"datasets": [{"path": str(prefs)}], "samples": 32,
                                                        "steps": (3, 4), "lora_rank": [4], "baseline_steps": []}},
                              "search": {**cfg.search.model_dump(), "baselines": []}})
    state = evolve(cfg, progress=False)

    assert (trackio_dir / "evo.db").is_file()
    rows = SQLiteStorage.get_logs("evo", cfg.name)
    per_generation = [r for r in rows if "generation/ok" in r]
    frame = pd.read_parquet(cfg.output.dir / "results.parquet")
    best = frame[frame.status == "ok"].groupby("evaluated_in").fitness.max()
    assert [r["step"] for r in per_generation] == list(range(state.generation + 1)) == list(best.index)
    for row in per_generation:
        assert row["generation/fitness_best"] == pytest.approx(best[row["step"]])
        assert row["run/evaluations"] == (frame.evaluated_in <= row["step"]).sum()
    champion = state.champion()
    last = per_generation[-1]
    assert (last["champion/id"], last["champion/fitness"]) == (champion, state.evaluations[champion].fitness)
    final = next(r for r in rows if "champion/heldout" in r)
    assert final["champion/heldout"] == pytest.approx(statistics.fmean(state.heldout[champion].values()))

    children = [i for i in state.individuals.values() if i.kind == "finetune"]
    assert children and {f"{cfg.name}-{c.name}" for c in children} <= set(SQLiteStorage.get_runs("evo"))
    for child in children:
        logged = SQLiteStorage.get_logs("evo", f"{cfg.name}-{child.name}")
        curve = [r["train/loss"] for r in logged if "train/loss" in r]
        assert len(curve) == state.training[child.id]["steps"]
