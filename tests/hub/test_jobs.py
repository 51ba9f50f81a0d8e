"""Runs that live on the Hub: the worker submitted as a Hugging Face Job through the real client.

The Hub-protocol test server runs each job's command as a local process (the image is
ignored) in a temporary folder holding a stand-in `app.py`, which reports what the real
worker would get: its arguments, the run config written from the environment, and whether
the token arrived as the `HF_TOKEN` secret. The tests then follow the job through the client:
RUNNING -> COMPLETED, its logs, its run label, cancelling, schedules, and the CLI.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi

from hubevo.cli.hub import add_commands
from hubevo.config import RunConfig, parse_config
from hubevo.errors import ConfigError, HubError, UnknownNameError
from hubevo.hub.jobs import (
    CONFIG_ENV,
    RUN_LABEL,
    cancel_run,
    job_logs,
    job_request,
    run_jobs,
    submit,
    worker_command,
)
from tests.helpers import wait_job_end, wait_until
from tests.hub_server_jobs import job_container

ALICE, ALICE_TOKEN = "alice", "token-alice"
_runs = itertools.count()

FAKE_APP = '''
import os, sys, time, yaml
cfg = yaml.safe_load(open("run.yaml"))
print("argv:", " ".join(sys.argv[1:]), flush=True)
print("run:", cfg["name"], "members:", ",".join(cfg["population"]["members"][i]["repo"] for i in range(2)), flush=True)
print("token:", "set" if os.environ.get("HF_TOKEN") else "missing", flush=True)
if cfg["name"].startswith("sleepy"):
    time.sleep(120)
sys.exit(3 if cfg["name"].startswith("failing") else 0)
'''


@pytest.fixture
def alice(hub_server) -> HfApi:
    return HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)


@pytest.fixture
def job_folder(hub_server, tmp_path, monkeypatch) -> Path:
    """Where the test Hub runs jobs: a stand-in app.py, and `python` meaning this interpreter."""
    return job_container(hub_server.jobs, tmp_path, monkeypatch, app=FAKE_APP)


def run_config(prefix: str = "jobrun", **publish) -> RunConfig:
    return parse_config({
        "name": f"{prefix}{next(_runs)}",
        "population": {"members": ["alice/seed-a", "alice/seed-b"]},
        "fitness": {"tasks": ["tiny"]},
        "publish": {"namespace": ALICE, "push": "survivors", **publish},
    }, root=Path.cwd())


def no_token_in(*things) -> bool:
    return all(ALICE_TOKEN not in json.dumps(thing, default=str) for thing in things)


# --------------------------------------------------------------------------- the request


def test_the_token_goes_only_as_a_secret(alice, hub_server, job_folder):
    cfg = run_config()
    job = submit(job_request(cfg, image="hf.co/spaces/alice/hubevo", flavor="a10g-small", timeout="2h"), api=alice)

    sent = hub_server.jobs.requests[-1]  # the spec exactly as the client sent it
    assert sent["command"] == worker_command() and sent["arguments"] == []
    assert sent["flavor"] == "a10g-small" and sent["timeoutSeconds"] == 7200 and sent["spaceId"] == "alice/hubevo"
    assert sent["secrets"] == {"HF_TOKEN": ALICE_TOKEN}
    assert set(sent["environment"]) == {CONFIG_ENV}
    assert yaml.safe_load(sent["environment"][CONFIG_ENV])["name"] == cfg.name
    assert sent["labels"][RUN_LABEL] == cfg.name
    assert no_token_in(sent["command"], sent["arguments"], sent["environment"], sent["labels"])

    assert wait_job_end(alice, job.id, namespace=ALICE) == "COMPLETED"
    info = alice.inspect_job(job_id=job.id, namespace=ALICE)
    assert list(info.secrets) == ["HF_TOKEN"] and no_token_in(info.__dict__)
    lines = job_logs(job.id, namespace=ALICE, api=alice)
    assert "token: set" in lines and no_token_in(lines)  # the secret reached the process as HF_TOKEN


def test_a_job_runs_the_worker_and_completes(alice, hub_server, job_folder):
    cfg = run_config()
    job = submit(job_request(cfg, image="python:3.11", flavor="cpu-basic"), api=alice)
    assert job.status.stage == "RUNNING" and job.labels[RUN_LABEL] == cfg.name
    assert wait_job_end(alice, job.id, namespace=ALICE) == "COMPLETED"

    lines = job_logs(job.id, namespace=ALICE, api=alice)
    assert lines[:2] == ["argv: worker run.yaml", f"run: {cfg.name} members: alice/seed-a,alice/seed-b"]
    assert job_logs(job.id, namespace=ALICE, tail=1, api=alice) == ["token: set"]
    assert yaml.safe_load((job_folder / "run.yaml").read_text())["name"] == cfg.name

    other = run_config()
    submit(job_request(other, image="python:3.11", flavor="cpu-basic"), api=alice)
    jobs, scheduled = run_jobs(cfg.name, namespace=ALICE, api=alice)
    assert [j.id for j in jobs] == [job.id] and scheduled == []  # another run's job is not listed


def test_a_failing_worker_ends_in_error(alice, job_folder):
    job = submit(job_request(run_config("failing"), image="python:3.11", flavor="cpu-basic"), api=alice)
    assert wait_job_end(alice, job.id, namespace=ALICE) == "ERROR"
    assert "exit code: 3" in alice.inspect_job(job_id=job.id, namespace=ALICE).status.message


def test_cancel_kills_the_running_job(alice, hub_server, job_folder):
    cfg = run_config("sleepy")
    job = submit(job_request(cfg, image="python:3.11", flavor="cpu-basic"), api=alice)
    process = hub_server.jobs.jobs[job.id].process
    wait_until(lambda: "token: set" in job_logs(job.id, namespace=ALICE, api=alice), timeout=20,
               what="the job to start")
    assert alice.inspect_job(job_id=job.id, namespace=ALICE).status.stage == "RUNNING"

    assert cancel_run(cfg.name, namespace=ALICE, api=alice) == [job.id]
    assert wait_job_end(alice, job.id, namespace=ALICE, timeout=10) == "CANCELED"
    assert process.poll() is not None  # the process is gone, long before its 120 s sleep
    assert cancel_run(cfg.name, namespace=ALICE, api=alice) == []  # nothing left to cancel


def test_a_scheduled_job_carries_the_same_request_and_runs_when_triggered(alice, hub_server, job_folder):
    cfg = run_config()
    request = job_request(cfg, image="python:3.11", flavor="a10g-small", schedule="@hourly", timeout="90m")
    scheduled = submit(request, api=alice)
    sent = hub_server.jobs.requests[-1]
    assert sent["schedule"] == "@hourly" and sent["jobSpec"]["secrets"] == {"HF_TOKEN": ALICE_TOKEN}
    assert sent["jobSpec"]["timeoutSeconds"] == 5400 and sent["jobSpec"]["flavor"] == "a10g-small"
    assert no_token_in(sent["jobSpec"]["command"], sent["jobSpec"]["environment"], sent["jobSpec"]["labels"])

    run = alice.trigger_scheduled_job(scheduled_job_id=scheduled.id, namespace=ALICE)
    assert wait_job_end(alice, run.id, namespace=ALICE) == "COMPLETED"
    jobs, schedules = run_jobs(cfg.name, namespace=ALICE, api=alice)
    assert [j.id for j in jobs] == [run.id] and [s.id for s in schedules] == [scheduled.id]
    assert schedules[0].schedule == "@hourly" and no_token_in(schedules[0].job_spec.__dict__)

    assert cancel_run(cfg.name, namespace=ALICE, api=alice) == [scheduled.id]
    assert alice.list_scheduled_jobs(namespace=ALICE, labels={RUN_LABEL: cfg.name}) == []


# --------------------------------------------------------------------------- refusals


def test_what_a_container_cannot_run_is_refused_before_submitting(tmp_path):
    local = parse_config({"name": "loc", "population": {"members": [str(tmp_path / "a"), str(tmp_path / "b")]},
                          "fitness": {"tasks": ["t"]},
                          "publish": {"namespace": ALICE, "push": "survivors"}}, root=tmp_path)
    with pytest.raises(ConfigError, match=f"local member folder.*{tmp_path}"):
        job_request(local, image="python:3.11", flavor="cpu-basic")
    with pytest.raises(ConfigError, match="publish.push is 'none'"):
        job_request(run_config(push="none"), image="python:3.11", flavor="cpu-basic")
    with pytest.raises(UnknownNameError, match="unknown job flavor 'a10g-huge'.*a10g-small"):
        job_request(run_config(), image="python:3.11", flavor="a10g-huge")
    with pytest.raises(ConfigError, match="timeout '2 hours'"):
        job_request(run_config(), image="python:3.11", flavor="cpu-basic", timeout="2 hours")
    with pytest.raises(ConfigError, match="schedule 'hourly'"):
        job_request(run_config(), image="python:3.11", flavor="cpu-basic", schedule="hourly")
    job_request(run_config(), image="python:3.11", flavor="cpu-basic", schedule="0 */6 * * *")  # CRON is fine


def test_no_token_no_job_and_errors_name_the_run(hub_server, job_folder):
    request = job_request(run_config(), image="python:3.11", flavor="cpu-basic")
    with pytest.raises(HubError, match="no Hugging Face token"):
        submit(request, api=HfApi(endpoint=hub_server.url))
    with pytest.raises(HubError) as forbidden:  # bob may not run jobs under alice
        submit(request, namespace=ALICE, api=HfApi(endpoint=hub_server.url, token="token-bob"))
    assert "403" in str(forbidden.value) and request.labels[RUN_LABEL] in str(forbidden.value)
    assert "token-bob" not in str(forbidden.value)


# --------------------------------------------------------------------------- the CLI


def test_cli_launch_then_jobs_logs_and_cancel(hub_server, job_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", ALICE_TOKEN)
    name = f"sleepy{next(_runs)}"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"name": name, "population": {"members": ["alice/seed-a", "alice/seed-b"]},
                                      "fitness": {"tasks": ["tiny"]}, "publish": {"namespace": ALICE, "push": "champion"}}))
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> str:
        args = parser.parse_args(list(argv))
        assert args.func(args) == 0
        return capsys.readouterr().out

    out = run("launch", str(config), "--flavor", "a10g-small", "--image", "python:3.11", "--timeout", "1h")
    assert f"for run {name} runs now on a10g-small" in out
    job_id = out.split()[1]
    wait_until(lambda: "token: set" in run("jobs", name, "--logs"), timeout=20, what="the job to start")
    listing = run("jobs", name, "--logs", "--tail", "1")
    assert f"job {job_id}  RUNNING" in listing and listing.rstrip().endswith("token: set")
    assert f"cancelled 1 job(s) and schedule(s) of run {name}: {job_id}" in run("jobs", name, "--cancel")
    assert hub_server.jobs.wait(job_id) == "CANCELED"
    assert ALICE_TOKEN not in out + listing
