"""Failures that end: a permanent one marks the run `failed` at once, a transient one is retried
with backoff a bounded number of times, a busy run folder is skipped, and the worker exits non-zero.

Real apscheduler jobs on short intervals, a real worker process and the Hub test server.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import HfApi

from hubevo.run.scheduler import Scheduler, generation_job, read_control, run_status
from tests.helpers import wait_until
from tests.helpers.locks import HOLD
from tests.tiny_models import build_zoo, push_members, write_generation_task

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(hub_server, tmp_path_factory):
    """Two tiny compatible models on the test Hub (alice/fail-ft1, alice/fail-ft2) and a local task."""
    root = tmp_path_factory.mktemp("failures")
    api = HfApi(endpoint=hub_server.url, token="token-alice")
    zoo = build_zoo(root / "zoo", finetunes=2)
    push_members(api, zoo, prefix="fail")
    rows = [{"q": f"{a}+{b}=", "a": str(a + b)} for a in range(3) for b in range(3)]
    return {"api": api, "tasks": write_generation_task(root / "tasks", "fail_add", rows, max_gen_toks=3)}


def config(world, *, name, members):
    return {"name": name, "population": {"members": members},
            "fitness": {"tasks": ["fail_add"], "include_path": [str(world["tasks"])], "limit": 4, "finalists": 0},
            "crossover": {"methods": ["linear"]}, "search": {"baselines": []},
            "budget": {"generations": 0, "population_size": 2}}


def status_of(sched, name):
    return {s["name"]: s for s in sched.status()}[name]


def test_a_permanent_failure_ends_the_run_without_retries(world, tmp_path):
    sched = Scheduler(tmp_path / "runs", generation_every_s=0.2, retry_base_s=0.1, api=world["api"]).start()
    try:
        name = sched.submit(config(world, name="gone", members=["./no-such-a", "./no-such-b"]), user="alice",
                            root=tmp_path)
        wait_until(lambda: status_of(sched, name)["state"] == "failed", what="the run to fail")
    finally:
        sched.shutdown()  # after any job still running: none may have run it again
    status, control = status_of(sched, name), read_control(tmp_path / "runs" / name)
    assert "no-such-a" in status["message"] and "does not exist" in status["message"]
    assert "(permanent)" in status["message"]
    assert control["failures"] == 1 and sched.jobs(name) == []


@pytest.mark.slow
def test_a_transient_failure_is_retried_with_backoff_then_fails_and_can_be_resumed(world, hub_server, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv("HUBEVO_HUB_ATTEMPTS", "1")  # one request per job: the scheduler's retries are counted
    hub_server.fail_next("/api/models/alice/fail-ft1", 503, count=3, method="GET")
    sched = Scheduler(tmp_path / "runs", generation_every_s=0.1, retry_base_s=0.4, max_retries=2,
                      api=world["api"]).start()
    try:
        started = time.monotonic()
        name = sched.submit(config(world, name="flaky", members=["alice/fail-ft1", "alice/fail-ft2"]), user="alice")
        wait_until(lambda: status_of(sched, name)["state"] == "failed", what="the run to fail")
        took = time.monotonic() - started
        status = status_of(sched, name)
        assert "HTTP 503" in status["message"] and "alice/fail-ft1" in status["message"]
        assert "(transient, 3 tries)" in status["message"]
        assert took >= 0.4 + 0.8, f"backoff of 0.4 s then 0.8 s not kept: failed after {took:.2f} s"
        sched.resume(name)  # the outage is over: the run goes on from where it was
        wait_until(lambda: status_of(sched, name)["state"] == "finished", what="the resumed run to finish")
        assert read_control(tmp_path / "runs" / name)["failures"] == 0
    finally:
        sched.shutdown()


def test_a_busy_run_folder_is_skipped_not_failed(world, tmp_path):
    sched = Scheduler(tmp_path / "runs", api=world["api"])
    name = sched.submit(config(world, name="busy", members=["./no-such-a", "./no-such-b"]), user="alice",
                        root=tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "runs" / name)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        generation_job(str(sched.runs_root), name)
        control = read_control(tmp_path / "runs" / name)
        assert control["state"] == "active" and "failures" not in control
    finally:
        holder.kill()
        holder.wait()
    generation_job(str(sched.runs_root), name)  # free again: now the missing members are found out
    assert read_control(tmp_path / "runs" / name)["state"] == "failed"
    assert run_status(tmp_path / "runs" / name)["state"] == "failed"


@pytest.mark.slow
def test_the_worker_exits_non_zero_on_a_permanent_failure(world, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config(world, name="doomed", members=["./no-such-a", "./no-such-b"])))
    done = subprocess.run(
        [sys.executable, "app.py", "worker", str(path), "--runs", str(tmp_path / "runs"), "--every", "0.2",
         "--poll", "0.2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "run doomed failed" in done.stderr and "no-such-a" in done.stderr and "(permanent)" in done.stderr
    assert done.stderr.count("Traceback") == 0
