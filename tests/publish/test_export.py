"""`hubevo export RUN ID DIR` writes a model folder that a later export may replace, and no other folder that holds
files: a user's folder named by mistake is refused as it is, in one line with exit status 2."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from hubevo.cli.main import main
from hubevo.errors import NotARunFolderError
from hubevo.fsio import EXPORT_MARKER, claim_run_folder, has_weights
from hubevo.publish.export import PUSH, export, full_folder
from tests.tiny_models import build_llama


class Rebuild:
    """The run's rebuilder, reduced to what an export asks of it: copy a prebuilt tiny model."""

    def __init__(self, weights: Path):
        self.weights, self.saved = weights, []

    def save(self, ind, out_dir: Path) -> Path:
        self.saved.append(ind.name)
        shutil.copytree(self.weights, out_dir, dirs_exist_ok=True)
        return out_dir

    def clear(self) -> None:
        pass


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return build_llama(tmp_path_factory.mktemp("export") / "model", seed=0)


@pytest.fixture
def run(tmp_path, weights, monkeypatch):
    """A run of one bred individual, `child-a`, whose rebuild copies `weights`; `hubevo export` opens it."""
    claim_run_folder(tmp_path / "run")
    ind = SimpleNamespace(id="c1", name="child-a", kind="merge")
    state = SimpleNamespace(individuals={"c1": ind}, evaluations={}, saved={})
    run = SimpleNamespace(state=state, resolver=None, run_dir=tmp_path / "run", rebuild=Rebuild(weights))
    monkeypatch.setattr("hubevo.publish.export.open_run", lambda run_dir, *, cache_dir: run)
    return run


def test_an_export_carries_the_marker_and_a_second_export_replaces_it(run, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", str(run.run_dir), "child-a", str(out)]) == 0
    assert (out / EXPORT_MARKER).is_file() and has_weights(out)
    (out / "stale.txt").write_text("left by the first export")
    assert main(["export", str(run.run_dir), "child-a", str(out)]) == 0, capsys.readouterr().err
    assert (out / EXPORT_MARKER).is_file() and has_weights(out) and not (out / "stale.txt").exists()
    assert run.rebuild.saved == ["child-a", "child-a"]


def test_a_folder_of_someone_elses_is_refused_in_one_line_and_left_as_it_was(run, tmp_path, capsys):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    assert main(["export", str(run.run_dir), "child-a", str(mine)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert str(mine) in err and "'chapter1.tex'" in err and EXPORT_MARKER in err
    assert "name a new or empty folder, or move those files away" in err
    assert sorted(p.name for p in mine.iterdir()) == ["chapter1.tex"]
    assert (mine / "chapter1.tex").read_text() == "years of work"
    assert run.rebuild.saved == [] and not (tmp_path / ".thesis.parents").exists()  # refused before any rebuild


def test_a_file_named_as_the_export_folder_is_refused_in_one_line(run, tmp_path, capsys):
    (tmp_path / "model.bin").write_bytes(b"not a folder")
    assert main(["export", str(run.run_dir), "child-a", str(tmp_path / "model.bin")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "is a file" in err and str(tmp_path / "model.bin") in err
    assert (tmp_path / "model.bin").read_bytes() == b"not a folder"


def test_an_empty_folder_is_exported_into(run, tmp_path):
    (tmp_path / "empty").mkdir()
    export(run, "c1", tmp_path / "empty")
    assert has_weights(tmp_path / "empty") and (tmp_path / "empty" / EXPORT_MARKER).is_file()


def test_a_push_lends_an_export_and_removes_it_after(run):
    scratch = run.run_dir / PUSH / "child-a"
    with full_folder(run, "c1") as folder:
        assert folder == scratch and has_weights(folder)
    assert not scratch.exists()


def test_the_push_folder_of_a_folder_hubevo_did_not_make_is_not_removed(run, tmp_path):
    foreign = SimpleNamespace(**{**vars(run), "run_dir": tmp_path / "not-a-run"})
    (foreign.run_dir / PUSH / "child-a").mkdir(parents=True)
    (foreign.run_dir / PUSH / "child-a" / "keep.txt").write_text("not hubevo's")
    with pytest.raises(NotARunFolderError, match="refusing to remove"), full_folder(foreign, "c1"):
        pass
    assert (foreign.run_dir / PUSH / "child-a" / "keep.txt").is_file()
