"""`hubevo space` stopped the way a Space or a Job stops it (SIGTERM): the app's temporary download folder goes
with it, and the process ends with one line and status 0, no traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_served(process: subprocess.Popen, port: int, *, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the Space did not answer on port {port} within {timeout_s:g} s")


@pytest.mark.slow  # a Space process: about 10 s
def test_sigterm_removes_the_spaces_temporary_folder_and_ends_cleanly(tmp_path):
    temp, port = tmp_path / "tmp", free_port()
    temp.mkdir()
    (tmp_path / "runs").mkdir()  # `--runs` names a folder that exists: it is read, never created
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("WEBHOOK_SECRET", None)
    process = subprocess.Popen([sys.executable, "-m", "hubevo.cli", "space", "--runs", str(tmp_path / "runs"),
                                "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_until_served(process, port)
        assert list(temp.glob("hubevo-leaderboard-*"))  # the folder the test is about exists while the Space runs
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    assert out.splitlines()[-1] == "hubevo space: stopped (SIGTERM)" and out.count("stopped") == 1, out
    assert not list(temp.glob("hubevo-leaderboard-*"))
