"""Disk: a full disk while writing a folder is one clear error with nothing half-written, and
temporary folders left by an interrupted write are removed when a run starts."""

from __future__ import annotations

import pytest
import yaml

from hubevo.cli import main
from hubevo.errors import DiskFullError, is_transient
from hubevo.fsio import atomic_dir, clean_temp_dirs
from tests.test_bad_input import good, world  # noqa: F401 (the fixture)


def test_a_full_disk_while_writing_a_folder_is_named_and_leaves_nothing(tmp_path):
    final = tmp_path / "survivors" / "c1"
    final.mkdir(parents=True)
    (final / "README.md").write_text("the old card")
    with pytest.raises(DiskFullError) as err:
        with atomic_dir(final) as tmp:
            (tmp / "config.json").write_text("{}")
            with open("/dev/full", "wb") as full:  # the kernel answers ENOSPC, as a full disk does
                full.write(b"\0" * 4096)
                full.flush()
    message = str(err.value)
    assert str(final) in message and "no space left" in message and "free some space" in message
    assert is_transient(err.value)
    assert (final / "README.md").read_text() == "the old card"
    assert sorted(p.name for p in final.parent.iterdir()) == ["c1"]


def test_stale_temporary_folders_are_found_and_removed(tmp_path):
    (tmp_path / "survivors" / ".c1.tmp").mkdir(parents=True)
    (tmp_path / "survivors" / "c2").mkdir()
    (tmp_path / ".train.tmp" / "inner").mkdir(parents=True)
    (tmp_path / ".notes.tmp").write_text("a file, not a folder: kept")
    removed = clean_temp_dirs(tmp_path)
    assert sorted(p.name for p in removed) == [".c1.tmp", ".train.tmp"]
    assert (tmp_path / "survivors" / "c2").is_dir() and (tmp_path / ".notes.tmp").is_file()
    assert not (tmp_path / "survivors" / ".c1.tmp").exists() and clean_temp_dirs(tmp_path / "missing") == []


def test_a_run_removes_the_temporary_folders_of_an_interrupted_one(world, tmp_path, capsys):  # noqa: F811
    stale = tmp_path / "run" / "survivors" / ".c9.tmp"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(good(world, tmp_path)))
    assert main(["evolve", str(path), "--no-progress"]) == 0, capsys.readouterr().err
    assert not stale.exists()
