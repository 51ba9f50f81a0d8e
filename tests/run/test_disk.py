"""Disk: a full disk or a read-only folder while writing is one clear error with nothing half-written; a folder
replaced by `atomic_dir` is complete at every instant, and a run that starts settles what a killed one left."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from hubevo.cli.main import main
from hubevo.errors import DiskFullError, HubevoError, OutputNotWritableError, describe_error, is_transient
from hubevo.fsio import RUN_MARKER, atomic_dir, atomic_write_text, clean_temp_dirs, write_error
from tests.helpers.bad_input import build_world, good

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    return build_world(tmp_path_factory.mktemp("disk"))


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


def _safetensor_error(text: str) -> Exception:
    from safetensors import SafetensorError

    return SafetensorError(text)


@pytest.mark.parametrize("err, kind, fragment", [
    (OSError(errno.ENOSPC, "No space left on device"), DiskFullError, "no space left"),
    (OSError(errno.EROFS, "Read-only file system"), OutputNotWritableError, "Read-only file system"),
    (PermissionError(errno.EACCES, "Permission denied"), OutputNotWritableError, "Permission denied"),
    (_safetensor_error('Error while serializing: I/O error: No space left on device (os error 28) at path "/x"'),
     DiskFullError, "no space left"),
    (_safetensor_error('Error while serializing: I/O error: Read-only file system (os error 30) at path "/x"'),
     OutputNotWritableError, "Read-only file system"),
], ids=["enospc", "erofs", "eacces", "safetensors-enospc", "safetensors-erofs"])
def test_write_errors_become_one_line_naming_the_path(tmp_path, err, kind, fragment):
    mapped = write_error(err, path=tmp_path / "run" / "state.json")
    assert isinstance(mapped, kind) and isinstance(mapped, HubevoError)
    line = describe_error(mapped)
    assert "\n" not in line and str(tmp_path / "run" / "state.json") in line and fragment in line
    assert kind is DiskFullError or (str(tmp_path) in line and "make the folder writable" in line)
    assert not is_transient(mapped) if kind is OutputNotWritableError else is_transient(mapped)


def test_other_errors_are_left_alone(tmp_path):
    assert write_error(ValueError("no"), path=tmp_path) is None
    assert write_error(_safetensor_error("Error while deserializing header: HeaderTooLarge"), path=tmp_path) is None
    elsewhere = PermissionError(errno.EACCES, "Permission denied", "/srv/members/a/model.safetensors")
    assert write_error(elsewhere, path=tmp_path / "run" / "c1") is None, "a file it read, not the folder it writes"
    inside = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "run" / ".c1.tmp" / "x"))
    assert isinstance(write_error(inside, path=tmp_path / "run" / "c1"), OutputNotWritableError)
    wrapped = RuntimeError("save_pretrained failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(write_error(wrapped, path=tmp_path), DiskFullError)


# a real full and a real read-only file system: a tmpfs in a private mount namespace (gone when it exits) ------
def _in_small_tmpfs(tmp_path: Path, script: str) -> subprocess.CompletedProcess:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    mount = tmp_path / "mnt"
    mount.mkdir()
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"mount -t tmpfs -o size=256k tmpfs {mount}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    shell = f'mount -t tmpfs -o size=256k tmpfs {mount} && exec "{sys.executable}" -c "$0"'
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", shell, textwrap.dedent(script)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "MNT": str(mount)})


def test_a_full_disk_in_safetensors_and_a_read_only_folder_are_named(tmp_path):
    done = _in_small_tmpfs(tmp_path, """
        import os, subprocess, torch
        from pathlib import Path
        from safetensors.torch import save_file
        from hubevo.errors import DiskFullError, OutputNotWritableError
        from hubevo.fsio import atomic_dir, atomic_write_text, write_error
        mnt = Path(os.environ["MNT"])
        try:
            with atomic_dir(mnt / "survivors" / "c1") as tmp:
                save_file({"w": torch.zeros(1 << 20)}, tmp / "model.safetensors")  # 4 MB into 256 kB
        except DiskFullError as err:
            print("full:", err)
        print("left:", sorted(p.name for p in (mnt / "survivors").iterdir()))
        atomic_write_text(mnt / "state.json", "{}")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        try:
            atomic_write_text(mnt / "state.json", "{\\"generation\\": 1}")
        except OutputNotWritableError as err:
            print("read-only:", err)
        try:
            with atomic_dir(mnt / "survivors" / "c2") as tmp:
                pass
        except OutputNotWritableError as err:
            print("read-only:", err)
        try:
            save_file({"w": torch.zeros(4)}, mnt / "x.safetensors")
        except Exception as err:
            print("read-only:", type(err).__name__, write_error(err, path=mnt / "x.safetensors"))
        print("state:", (mnt / "state.json").read_text())
    """)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    mnt = tmp_path / "mnt"
    assert out[0].startswith(f"full: no space left on the device while writing '{mnt / 'survivors' / 'c1'}'")
    assert out[1] == "left: []"
    assert out[2].startswith(f"read-only: cannot write '{mnt / 'state.json'}': '{mnt}' is not writable (Read-only")
    assert out[3].startswith(f"read-only: cannot write '{mnt / 'survivors' / 'c2'}': '{mnt / 'survivors'}' is not")
    assert out[4].startswith(f"read-only: SafetensorError cannot write '{mnt / 'x.safetensors'}': '{mnt}' is not")
    assert all("make the folder writable" in line for line in out[2:5])
    assert out[5] == "state: {}"


# atomic_dir(replace=True): killed at each step, then settled -----------------------------------------------
KILL = """
import os, shutil, sys
from pathlib import Path
from hubevo import fsio
final, step = Path(sys.argv[1]), sys.argv[2]
calls = {"replace": 0}
real_replace, real_rmtree = os.replace, shutil.rmtree

def replace(src, dst):
    calls["replace"] += 1
    if step == f"before-replace-{calls['replace']}":
        os._exit(0)
    real_replace(src, dst)

def rmtree(path, *args, **kwargs):
    if str(path).endswith(".aside") and step == "mid-delete":
        Path(path, "model.safetensors").unlink()  # part of the old copy gone, then the kill
        os._exit(0)
    real_rmtree(path, *args, **kwargs)

fsio.os.replace, fsio.shutil.rmtree = replace, rmtree
with fsio.atomic_dir(final) as tmp:
    (tmp / "config.json").write_text("new")
    if step == "mid-build":
        os._exit(0)
    (tmp / "model.safetensors").write_text("new")
os._exit(0)
"""
OLD, NEW = {"config.json": "old", "model.safetensors": "old"}, {"config.json": "new", "model.safetensors": "new"}


@pytest.mark.parametrize("step, expected", [
    ("mid-build", OLD),              # the new folder half-written
    ("before-replace-1", OLD),       # the new folder complete, the old one in place
    ("before-replace-2", OLD),       # the old folder moved aside, the new one not yet renamed in
    ("mid-delete", NEW),             # the new folder in place, the aside copy half deleted
    ("done", NEW),
])
def test_a_replaced_folder_survives_a_kill_at_every_step(tmp_path, step, expected):
    run = tmp_path / "run"
    final = run / "survivors" / "c1"
    final.mkdir(parents=True)
    (run / RUN_MARKER).write_text("")
    for name, text in OLD.items():
        (final / name).write_text(text)
    done = subprocess.run([sys.executable, "-c", KILL, str(final), step], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert final.is_dir() or (final.parent / ".c1.aside").is_dir(), "one complete copy at every instant"
    clean_temp_dirs(run)
    assert {p.name: p.read_text() for p in final.iterdir()} == expected
    assert sorted(p.name for p in final.parent.iterdir()) == ["c1"]


def test_the_next_write_of_a_folder_settles_a_killed_one_first(tmp_path):
    final = tmp_path / "c1"
    final.mkdir()
    (final / "config.json").write_text("old")
    done = subprocess.run([sys.executable, "-c", KILL, str(final), "before-replace-2"], cwd=ROOT)
    assert done.returncode == 0 and not final.exists()
    with atomic_dir(final) as tmp:
        assert (final / "config.json").read_text() == "old"  # put back before the new one is built
        (tmp / "config.json").write_text("newer")
    assert (final / "config.json").read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c1"]


def test_leftovers_of_interrupted_writes_are_settled_in_a_run_folder_only(tmp_path):
    run = tmp_path / "run"
    (run / "survivors" / ".c1.tmp").mkdir(parents=True)
    (run / "survivors" / "c2").mkdir()
    (run / "survivors" / ".c3.aside").mkdir()            # c3 never renamed in: the aside copy goes back
    (run / "survivors" / ".c3.aside" / "README.md").write_text("c3")
    (run / "survivors" / ".c2.aside").mkdir()            # c2 in place: the aside copy goes
    (run / ".train.tmp" / "inner").mkdir(parents=True)
    (run / "state.json").write_text("{}")
    (run / ".state.json.k2j4_x9a.tmp").write_text("half")  # atomic_write_text's temporary file
    (run / ".state.json.abcd1234").write_text("half")      # the same, as earlier versions named it
    (run / ".notes.tmp").write_text("the user's: kept")
    (run / ".results.csv.abcd1234").write_text("no results.csv beside it: kept")
    assert clean_temp_dirs(run) == [], "not a folder hubevo made: nothing is touched"
    (run / RUN_MARKER).write_text("")
    removed = clean_temp_dirs(run)
    assert sorted(p.name for p in removed) == [".c1.tmp", ".c2.aside", ".c3.aside", ".state.json.abcd1234",
                                               ".state.json.k2j4_x9a.tmp", ".train.tmp"]
    assert sorted(p.name for p in (run / "survivors").iterdir()) == ["c2", "c3"]
    assert (run / "survivors" / "c3" / "README.md").read_text() == "c3"
    assert sorted(p.name for p in run.iterdir()) == [".hubevo-run", ".notes.tmp", ".results.csv.abcd1234",
                                                     "state.json", "survivors"]
    assert clean_temp_dirs(tmp_path / "missing") == []


def test_a_written_file_leaves_no_temporary_file(tmp_path):
    atomic_write_text(tmp_path / "state.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_run_removes_the_temporary_folders_of_an_interrupted_one(world, tmp_path, capsys):
    stale = tmp_path / "run" / "survivors" / ".c9.tmp"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    (tmp_path / "run" / RUN_MARKER).write_text("")
    (tmp_path / "run" / "state.json").write_text("{}")  # never renamed in: the run starts without it
    state_tmp = tmp_path / "run" / ".state.json.abcd1234.tmp"
    state_tmp.write_text("{half")
    (tmp_path / "run" / "state.json").unlink()
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(good(world, tmp_path)))
    assert main(["evolve", str(path), "--no-progress"]) == 0, capsys.readouterr().err
    assert not stale.exists() and not state_tmp.exists()


@pytest.mark.slow
def test_hubevo_evolve_into_a_read_only_folder_is_one_line(world, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**good(world, tmp_path), "output": {"dir": str(tmp_path / "mnt" / "run")}}))
    done = _in_small_tmpfs(tmp_path, f"""
        import os, subprocess, sys
        subprocess.run(["mount", "-o", "remount,ro", os.environ["MNT"]], check=True)
        from hubevo.cli.main import main
        sys.exit(main(["evolve", {str(config)!r}, "--no-progress"]))
    """)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"output.dir '{tmp_path / 'mnt' / 'run'}'" in done.stderr
    assert "is not writable (a read-only file system); remount it read-write" in done.stderr
