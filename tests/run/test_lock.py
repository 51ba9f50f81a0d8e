"""One process per run folder: a real second process is refused with the holder's PID and host, and a folder
hubevo did not make is never taken (nor emptied by `hubevo demo`)."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hubevo.errors import NotARunFolderError, RunLockedError
from hubevo.fsio import LOCK_FILE, RUN_MARKER, remove_tree
from hubevo.run.lock import reset_run_folder, run_lock
from tests.helpers.locks import HOLD

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/run until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_a_second_process_is_refused_naming_the_holder(holder, tmp_path):
    with pytest.raises(RunLockedError) as err:
        with run_lock(tmp_path / "run"):
            pass
    message = str(err.value)
    assert f"process {holder.pid} " in message and socket.gethostname() in message
    assert str(tmp_path / "run") in message and "choose another output.dir" in message


def test_the_lock_is_released_when_its_holder_is_killed(holder, tmp_path):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with run_lock(tmp_path / "run"):
        assert f'"pid": {os.getpid()}' in (tmp_path / "run" / ".lock").read_text()


def test_the_lock_is_reentrant_within_a_process_and_released_after(tmp_path):
    with run_lock(tmp_path / "run"):
        with run_lock(tmp_path / "run"):
            pass
        probe = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(600)", "pass"), str(tmp_path / "run")],
                               cwd=ROOT, capture_output=True, text=True)
        assert probe.returncode != 0 and f"process {os.getpid()} " in probe.stderr
    probe = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(600)", "pass"), str(tmp_path / "run")],
                           cwd=ROOT, capture_output=True, text=True)
    assert probe.returncode == 0 and probe.stdout.strip() == "held"


def test_hubevo_evolve_on_a_held_folder_exits_with_the_holder_named(holder, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "population": {"members": ["./a", "./b"]}, "fitness": {"tasks": ["t"]}, "output": {"dir": "run"}}))
    done = subprocess.run([sys.executable, "app.py", "evolve", str(config), "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # the holder sleeps 600 s: waiting times out
    assert done.returncode == 2, done.stderr
    assert f"in use by process {holder.pid} on host" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "state.json").exists(), "the refused process must not touch the run"


# taking a folder: hubevo's own, new or empty; never one of the user's -------------------------------------
def test_a_new_folder_becomes_a_run_folder_and_a_legacy_one_stays_one(tmp_path):
    with run_lock(tmp_path / "new" / "run"):
        assert (tmp_path / "new" / "run" / RUN_MARKER).is_file()
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "state.json").write_text("{}")  # a run of a version without the marker
    with run_lock(legacy):
        assert (legacy / RUN_MARKER).is_file() and (legacy / "state.json").read_text() == "{}"


def test_a_folder_of_the_users_is_refused_and_left_untouched(tmp_path):
    mine = tmp_path / "mine"
    (mine / "cache").mkdir(parents=True)
    (mine / "cache" / "keep.txt").write_text("mine")
    with pytest.raises(NotARunFolderError) as err:
        with run_lock(mine):
            pass
    message = str(err.value)
    assert "\n" not in message and f"output.dir {str(mine)!r} is not empty ('cache')" in message
    assert "choose a new or empty folder for output.dir, or move those files away" in message
    assert sorted(p.relative_to(mine).as_posix() for p in mine.rglob("*")) == ["cache", "cache/keep.txt"]


def test_removal_happens_only_in_folders_hubevo_made(tmp_path):
    (tmp_path / "mine" / "cache").mkdir(parents=True)
    with pytest.raises(NotARunFolderError, match="refusing to remove .*cache"):
        remove_tree(tmp_path / "mine" / "cache")
    assert (tmp_path / "mine" / "cache").is_dir()
    with run_lock(tmp_path / "run"):
        (tmp_path / "run" / "cache" / "p1").mkdir(parents=True)
        remove_tree(tmp_path / "run" / "cache")
        assert not (tmp_path / "run" / "cache").exists()


def test_resetting_a_held_folder_is_refused_and_removes_nothing(holder, tmp_path):
    (tmp_path / "run" / "state.json").write_text("{}")
    with pytest.raises(RunLockedError, match=f"in use by process {holder.pid} .*choose another --out"):
        reset_run_folder(tmp_path / "run", field="--out")
    assert (tmp_path / "run" / "state.json").read_text() == "{}"


def test_resetting_a_run_folder_keeps_its_lock_file(tmp_path):
    run = tmp_path / "run"
    with run_lock(run):
        (run / "models" / "m").mkdir(parents=True)
        (run / "state.json").write_text("{}")
    inode = (run / LOCK_FILE).stat().st_ino
    reset_run_folder(run)
    assert sorted(p.name for p in run.iterdir()) == sorted([LOCK_FILE, RUN_MARKER])
    assert (run / LOCK_FILE).stat().st_ino == inode, "a held lock file must never be deleted and made anew"


DEMO = """
import sys
from types import SimpleNamespace
import hubevo.demo.zoo
hubevo.demo.zoo.build_zoo = lambda *a, **k: SimpleNamespace()  # the zoo is not what is tested
from hubevo.cli.main import main
sys.exit(main(["demo", "--out", sys.argv[1], "--no-progress"]))
"""


@pytest.mark.slow
def test_hubevo_demo_on_a_folder_in_use_exits_and_deletes_nothing(holder, tmp_path):
    (tmp_path / "run" / "state.json").write_text('{"generation": 3}')
    (tmp_path / "run" / ".hubevo-demo").write_text("")  # an earlier demo's folder: the one kind a demo replaces
    done = subprocess.run([sys.executable, "-c", DEMO, str(tmp_path / "run")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"in use by process {holder.pid} on host" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "run" / "state.json").is_file()


@pytest.mark.slow
def test_hubevo_demo_on_a_folder_of_the_users_exits_and_deletes_nothing(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    done = subprocess.run([sys.executable, "-c", DEMO, str(tmp_path / "mine")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"--out {str(tmp_path / 'mine')!r} is not empty ('thesis.tex')" in done.stderr
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["thesis.tex"]
