"""The run folder: it may hold its own run file (`output.dir: .`), which hubevo never removes or replaces, and a
run refused before it starts leaves no folder, marker or lock file behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from hubevo.cli.main import main
from hubevo.errors import NotARunFolderError
from hubevo.fsio import RUN_MARKER, remove_tree
from hubevo.run.lock import reset_run_folder
from hubevo.run.preflight import check_output_dir
from hubevo.state.runstate import load_state
from tests.helpers.bad_input import build_world, good

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    return build_world(tmp_path_factory.mktemp("run-folder"))


def beside_its_run(world, folder: Path, *, out: str = ".", name: str = "run.yaml", **changes) -> Path:
    """`folder/name`: the good config of tests/helpers/bad_input.py writing into `out` (relative to the file)."""
    data = {**good(world, folder), "output": {"dir": out}, **changes}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


def evolve_cli(path: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["evolve", str(path), "--no-progress", *extra])
    return code, capsys.readouterr().err


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.slow  # a real run of two tiny members (about 3 s), then its resume
def test_a_run_file_inside_its_own_run_folder_runs_and_resumes_untouched(world, tmp_path, capsys):
    run_file = beside_its_run(world, tmp_path / "exp")
    before = run_file.read_bytes(), run_file.stat().st_mtime_ns
    code, err = evolve_cli(run_file, capsys)
    assert code == 0, err
    assert load_state(tmp_path / "exp").finished and (tmp_path / "exp" / RUN_MARKER).is_file()
    assert (run_file.read_bytes(), run_file.stat().st_mtime_ns) == before
    code, err = evolve_cli(run_file, capsys, "--resume")
    assert code == 0, err
    assert (run_file.read_bytes(), run_file.stat().st_mtime_ns) == before
    assert (tmp_path / "exp" / "config.yaml").is_file()  # hubevo's resolved config stands beside it


def test_a_folder_holding_only_its_run_file_is_taken_and_anything_else_is_still_refused(world, tmp_path):
    exp = tmp_path / "exp"
    beside_its_run(world, exp, out=str(exp))  # an absolute output.dir naming the file's folder counts too
    check_output_dir(exp)
    (exp / "notes.txt").write_text("the user's")
    with pytest.raises(NotARunFolderError, match=r"not empty \('notes.txt'\)"):
        check_output_dir(exp)
    other = tmp_path / "other"
    beside_its_run(world, other, out="../elsewhere")  # a run file of another folder is just a file of the user's
    with pytest.raises(NotARunFolderError, match=r"not empty \('run.yaml'\)"):
        check_output_dir(other)
    named = tmp_path / "named"
    beside_its_run(world, named, name="config.yaml")
    with pytest.raises(NotARunFolderError, match="holds the run file 'config.yaml'.*rename the run file"):
        check_output_dir(named)


def test_hubevo_never_removes_a_run_file_from_its_run_folder(world, tmp_path):
    exp = tmp_path / "exp"
    run_file = beside_its_run(world, exp)
    (exp / RUN_MARKER).write_text("")  # a run folder the user put the run file in later
    (exp / "models").mkdir()
    with pytest.raises(NotARunFolderError, match="is a run file of yours"):
        remove_tree(run_file)
    with pytest.raises(NotARunFolderError, match="--out .* holds 'run.yaml'.*choose another --out"):
        reset_run_folder(exp, field="--out")  # what `hubevo demo --out` does to its folder first
    assert listing(exp) == [RUN_MARKER, "models", "run.yaml"] and run_file.is_file()
    assert main(["demo", "--out", str(exp), "--cache-dir", str(tmp_path / "zoo"), "--no-progress"]) == 2
    assert listing(exp) == [RUN_MARKER, "models", "run.yaml"] and not (tmp_path / "zoo").exists()



def missing_member(world, tmp: Path) -> list[str]:
    return [str(tmp / "nope"), str(world["zoo"]["ft2"])]


def test_a_run_refused_before_it_starts_leaves_no_folder(world, tmp_path, capsys):
    deep = tmp_path / "new" / "deeper" / "run"
    run_file = beside_its_run(world, tmp_path, out=str(deep), population={"members": missing_member(world, tmp_path)})
    code, err = evolve_cli(run_file, capsys)
    assert code == 2 and "nope" in err and "does not exist" in err
    assert not (tmp_path / "new").exists()  # nor the folders made to hold it


def test_a_refused_run_gives_an_existing_folder_back_as_it_was(world, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    path = beside_its_run(world, tmp_path, out=str(empty), population={"members": missing_member(world, tmp_path)})
    assert evolve_cli(path, capsys)[0] == 2
    assert empty.is_dir() and listing(empty) == []
    exp = tmp_path / "exp"
    run_file = beside_its_run(world, exp, population={"members": missing_member(world, tmp_path)})
    assert evolve_cli(run_file, capsys)[0] == 2
    assert listing(exp) == ["run.yaml"]  # no marker, no lock file


def test_a_run_that_wrote_its_state_keeps_its_folder(world, tmp_path, capsys):
    """What is given back is only what taking the folder wrote (here its lock file): a run's files stay."""
    run_file = beside_its_run(world, tmp_path / "exp")
    (tmp_path / "exp" / RUN_MARKER).write_text("")
    (tmp_path / "exp" / "state.json").write_text("{not json")  # a corrupted state: refused, and kept
    code, err = evolve_cli(run_file, capsys, "--resume")
    assert code == 2 and "corrupted" in err
    assert listing(tmp_path / "exp") == [RUN_MARKER, "run.yaml", "state.json"]
