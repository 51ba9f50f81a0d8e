"""examples/: every run file loads as it is and says how to run it; each demo-zoo example runs end to end (on a
few evaluations) from a zoo written by `hubevo zoo`, as a fresh clone would after `hubevo zoo examples/zoo`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from hubevo.cli.main import main
from hubevo.config import load_config, parse_config
from hubevo.search import STRATEGIES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ZOO_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.yaml") if p.stem != "hub")


def test_there_is_one_zoo_example_per_search_strategy_and_the_readme_lists_every_file():
    assert ZOO_EXAMPLES == sorted(STRATEGIES)
    readme = (EXAMPLES / "README.md").read_text()
    for path in EXAMPLES.glob("*.yaml"):
        assert f"[`{path.name}`]({path.name})" in readme


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_loads_and_its_first_line_is_the_command_that_runs_it(path):
    cfg = load_config(path)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and f"hubevo evolve examples/{path.name}" in first
    if path.stem != "hub":
        assert first.startswith("# hubevo zoo examples/zoo && ")
        assert cfg.search_strategy == path.stem
        assert all(m.path.is_relative_to(EXAMPLES / "zoo") for m in cfg.population.members)
        assert cfg.fitness.include_path == [EXAMPLES / "zoo" / "tasks"]
    assert cfg.output.dir.is_relative_to(EXAMPLES / "runs")  # ignored by git, as examples/.gitignore says
    assert {"zoo/", "runs/"} <= set((EXAMPLES / ".gitignore").read_text().split())


@pytest.fixture(scope="module")
def zoo_copy(demo_zoo, demo_zoo_cache, tmp_path_factory):
    """The examples beside a zoo written by `hubevo zoo` (from the test session's cached zoo)."""
    folder = tmp_path_factory.mktemp("examples")
    assert main(["zoo", str(folder / "zoo"), "--cache-dir", str(demo_zoo_cache), "--no-progress"]) == 0
    return folder


def shrunk(path: Path) -> dict:
    """An example with a test's budget: 4 evaluations on 8 examples per task, no held-out scoring."""
    data = yaml.safe_load(path.read_text())
    data["budget"] = {**data.get("budget", {}), "max_evaluations": 4}
    data["fitness"] |= {"limit": 8, "validation_limit": 8, "finalists": 1, "heldout": []}
    return data


@pytest.mark.parametrize("strategy", ZOO_EXAMPLES)
def test_each_zoo_example_runs_on_a_zoo_written_by_hubevo_zoo(zoo_copy, strategy):
    from hubevo.run.loop import evolve

    shutil.copy(EXAMPLES / f"{strategy}.yaml", zoo_copy / f"{strategy}.yaml")
    cfg = parse_config(shrunk(zoo_copy / f"{strategy}.yaml"), root=zoo_copy)
    assert cfg.output.dir == zoo_copy / "runs" / strategy
    state = evolve(cfg, progress=False)
    assert state.stop_reason == "max_evaluations (4) reached"
    assert all(e.status == "ok" for e in state.evaluations.values())
    assert state.champion() in state.evaluations and (cfg.output.dir / "results.parquet").is_file()


def test_the_hub_examples_task_is_found_by_lm_eval():
    from lm_eval.tasks import TaskManager

    cfg = load_config(EXAMPLES / "hub.yaml")
    manager = TaskManager(include_path=[str(p) for p in cfg.fitness.include_path], include_defaults=False)
    assert {t.name for t in cfg.fitness.tasks} <= set(manager.all_tasks)


def test_hubevo_zoo_keeps_a_folder_of_the_users_and_writes_its_own_folder_once(demo_zoo, demo_zoo_cache, tmp_path,
                                                                               capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["zoo", str(mine), "--cache-dir", str(demo_zoo_cache), "--no-progress"]) == 2
    assert "is not a demo zoo folder" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "mine"
    zoo = tmp_path / "zoo"
    assert main(["zoo", str(zoo), "--cache-dir", str(demo_zoo_cache), "--no-progress"]) == 0
    written = (zoo / "digits" / "model.safetensors").stat().st_mtime_ns
    assert main(["zoo", str(zoo), "--cache-dir", str(demo_zoo_cache), "--no-progress"]) == 0
    assert (zoo / "digits" / "model.safetensors").stat().st_mtime_ns == written  # the same build: not copied again
    weights = "digits/model.safetensors"
    assert (zoo / weights).read_bytes() == (demo_zoo.root / weights).read_bytes()
    task = yaml.safe_load((zoo / "tasks" / "demo_digits.yaml").read_text())
    assert Path(task["dataset_kwargs"]["data_files"]["test"]).parent == zoo / "tasks"  # read from this folder
