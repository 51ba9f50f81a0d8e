"""One process per run folder: a real second process is refused with the holder's PID and host."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hubevo.errors import RunLockedError
from hubevo.lock import run_lock

ROOT = Path(__file__).resolve().parents[1]
HOLD = "import sys, time; from hubevo.lock import run_lock\nwith run_lock(sys.argv[1]):\n print('held', flush=True)\n time.sleep(600)"


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
    started = time.monotonic()
    done = subprocess.run([sys.executable, "app.py", "evolve", str(config), "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"in use by process {holder.pid} on host" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "run" / "state.json").exists(), "the refused process must not touch the run"
