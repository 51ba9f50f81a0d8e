"""The Seed tab's Hugging Face Job path and the Status tab's list of jobs, through the handlers Gradio calls.

The app is built as on a Space (sign-in on, the Space's own image from `SPACE_ID`) over the Hub-protocol
test server, which runs each job's command as a local process in a folder holding a stand-in `app.py`
(it reports its arguments, the run config it was given and whether the token arrived as `HF_TOKEN`).
The handlers behind "Launch job" and the jobs table are called as Gradio calls them for a visitor:
with the `gr.OAuthProfile` and `gr.OAuthToken` of a signed-in user, or with None when nobody is.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import gradio as gr
import pytest
import yaml
from huggingface_hub import HfApi

from hubevo.hub.jobs import CONFIG_ENV, RUN_LABEL, worker_command
from hubevo.run.scheduler import state_dir
from space.controls.jobs import BOOK_FILE
from space.controls.ui import build_app
from tests.hub_server_jobs import job_container

ALICE, ALICE_TOKEN = "alice", "token-alice"
TASK = "jobs_add_mc"
_runs = itertools.count()

FAKE_APP = '''
import os, sys, yaml
cfg = yaml.safe_load(open("run.yaml"))
print("argv:", " ".join(sys.argv[1:]), flush=True)
print("run:", cfg["name"], "state:", cfg["publish"]["state"], "output:", cfg.get("output"), flush=True)
print("token:", "set" if os.environ.get("HF_TOKEN") else "missing", flush=True)
'''


@pytest.fixture
def job_folder(hub_server, tmp_path, monkeypatch) -> Path:
    """Where the test Hub runs jobs: a stand-in app.py, and `python` meaning this interpreter."""
    return job_container(hub_server.jobs, tmp_path, monkeypatch, app=FAKE_APP)


@pytest.fixture
def space(hub_server, job_folder, tmp_path, monkeypatch) -> dict:
    """The app as the Space `alice/hubevo` offering jobs, with no scheduler and no token of its own."""
    monkeypatch.setenv("SPACE_ID", "alice/hubevo")
    monkeypatch.delenv("HUBEVO_JOB_IMAGE", raising=False)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / f"{TASK}.yaml").write_text(f"task: {TASK}\n")
    runs = tmp_path / "runs"
    return {"runs": runs, "tasks": tasks, "demo": app(runs, tasks=tasks, api=HfApi(endpoint=hub_server.url))}


def app(runs: Path, *, tasks: Path, api: HfApi, jobs: bool = True) -> gr.Blocks:
    """The Space's app; the sign-in button itself is left out (off a Space, Gradio's sign-in needs a machine
    logged in to the Hub), since the handlers are given what Gradio would inject for a signed-in visitor."""
    return build_app(runs_root=runs, controller=None, admin_token=None, allow_list=[], task_dirs=[tasks], api=api,
                     oauth=False, jobs=jobs)


def handler(demo: gr.Blocks, api_name: str):
    """The Python function behind an event, as Gradio calls it."""
    return next(fn.fn for fn in demo.fns.values() if fn.api_name == api_name)


def signed_in(user: str = ALICE, token: str = ALICE_TOKEN, scope: str = "openid profile jobs") -> dict:
    profile = gr.OAuthProfile({"name": user.title(), "preferred_username": user, "profile": f"/{user}", "picture": ""})
    return {"profile": profile, "oauth_token": gr.OAuthToken(token=token, scope=scope, expires_at=int(time.time()) + 600)}


SIGNED_OUT = {"profile": None, "oauth_token": None}


def form(**changes) -> dict:
    """The seeding form's fields by name as the page sends them, plus the job's hardware and timeout."""
    return {"name": f"spacejob{next(_runs)}", "namespace": ALICE, "push": "survivors", "private": True,
            "candidates": "alice/seed-a\nalice/seed-b", "base_model": "", "query_author": "", "query_search": "",
            "query_filter": "", "query_limit": 8, "methods": ["linear"], "tasks": TASK, "heldout": "", "limit": 8,
            "generations": 1, "population_size": 2, "max_evaluations": 4, "wall_hours": 0.5, "flavor": "cpu-basic",
            "timeout": "1h", **changes}


def booked(runs: Path) -> list[dict]:
    path = state_dir(runs) / BOOK_FILE  # hubevo's state folder, never the runs folder
    return json.loads(path.read_text())["jobs"] if path.exists() else []


def row_of(table, run: str) -> dict:
    rows = [row for row in table.to_dict("records") if row["run"] == run]
    assert len(rows) == 1, table
    return rows[0]


# --------------------------------------------------------------------------- launching


def test_a_signed_in_user_launches_the_run_as_a_job_under_their_account(space, hub_server):
    launch, fields = handler(space["demo"], "launch_job"), form(flavor="a10g-small")
    message = launch(**fields, **signed_in())
    assert "**Launched**" in message and fields["name"] in message and ALICE_TOKEN not in message

    sent = hub_server.jobs.requests[-1]  # the spec exactly as the client sent it
    assert sent["command"] == worker_command() and sent["arguments"] == []
    assert sent["secrets"] == {"HF_TOKEN": ALICE_TOKEN}
    assert sent["spaceId"] == "alice/hubevo" and sent["flavor"] == "a10g-small" and sent["timeoutSeconds"] == 3600
    assert set(sent["environment"]) == {CONFIG_ENV} and sent["labels"][RUN_LABEL] == fields["name"]
    config = yaml.safe_load(sent["environment"][CONFIG_ENV])
    assert config["name"] == fields["name"] and "output" not in config
    assert config["publish"] == {**config["publish"], "namespace": ALICE, "push": "survivors", "state": "hub"}
    assert [m["repo"] for m in config["population"]["members"]] == ["alice/seed-a", "alice/seed-b"]
    assert all(ALICE_TOKEN not in json.dumps(sent[key]) for key in ("command", "arguments", "environment", "labels"))

    [entry] = booked(space["runs"])
    assert entry["owner"] == entry["namespace"] == ALICE and entry["run"] == fields["name"]
    assert hub_server.jobs.jobs[entry["job_id"]].namespace == ALICE  # run (and billed) under the user
    assert ALICE_TOKEN not in (state_dir(space["runs"]) / BOOK_FILE).read_text()
    assert not (space["runs"] / BOOK_FILE).exists()  # the user's runs folder is only read
    assert entry["job_id"] in message

    assert hub_server.jobs.wait(entry["job_id"]) == "COMPLETED"
    lines = [line for _, line in hub_server.jobs.jobs[entry["job_id"]].logs]
    assert "argv: worker run.yaml" in lines and "token: set" in lines
    assert f"run: {fields['name']} state: hub output: None" in lines


def test_an_uploaded_run_yaml_launches_as_a_job_after_the_same_checks(space, hub_server, tmp_path):
    name = f"spaceyaml{next(_runs)}"
    spec = {"name": name, "population": {"members": ["alice/seed-a", "alice/seed-b"]},
            "fitness": {"tasks": [TASK], "limit": 8}, "crossover": {"methods": ["linear"]},
            "budget": {"generations": 1, "population_size": 2, "max_evaluations": 4},
            "publish": {"namespace": ALICE, "push": "survivors"}}
    upload = tmp_path / "run.yaml"
    upload.write_text(yaml.safe_dump(spec))
    launch = handler(space["demo"], "launch_yaml_job")
    message = launch(str(upload), "cpu-basic", "1h", **signed_in())
    assert "**Launched**" in message and name in message
    sent = hub_server.jobs.requests[-1]
    config = yaml.safe_load(sent["environment"][CONFIG_ENV])
    assert config["name"] == name and config["publish"]["state"] == "hub" and "output" not in config
    assert sent["secrets"] == {"HF_TOKEN": ALICE_TOKEN} and booked(space["runs"])[-1]["run"] == name

    before = len(hub_server.jobs.requests)
    upload.write_text(yaml.safe_dump({**spec, "name": f"{name}b", "budget": {"generations": 10_000}}))
    refused = launch(str(upload), "cpu-basic", "1h", **signed_in())
    assert refused.startswith("**Refused.**") and "generations" in refused
    assert launch(str(upload), "cpu-basic", "1h", **SIGNED_OUT).startswith("**Refused.**")
    assert len(hub_server.jobs.requests) == before  # nothing submitted for a refused upload


def test_the_status_tab_shows_the_job_state_and_a_link_to_its_logs(space, hub_server):
    fields = form()
    handler(space["demo"], "launch_job")(**fields, **signed_in())
    [entry] = booked(space["runs"])
    assert hub_server.jobs.wait(entry["job_id"]) == "COMPLETED"

    table = handler(space["demo"], "space_jobs")(**signed_in())
    row = row_of(table, fields["name"])
    assert row["state"] == "COMPLETED" and row["owner"] == ALICE and row["job"] == entry["job_id"]
    assert row["flavor"] == "cpu-basic"
    assert row["logs"] == f"[logs]({hub_server.url}/jobs/{ALICE}/{entry['job_id']})"
    assert ALICE_TOKEN not in table.to_json()


def test_a_job_the_viewer_cannot_read_shows_unknown_with_the_reason(space, hub_server):
    fields = form()
    handler(space["demo"], "launch_job")(**fields, **signed_in())

    signed_out = row_of(handler(space["demo"], "space_jobs")(**SIGNED_OUT), fields["name"])  # no token at all
    assert signed_out["state"] == "unknown" and "401" in signed_out["message"]

    as_bob = app(space["runs"], tasks=space["tasks"], api=HfApi(endpoint=hub_server.url, token="token-bob"))
    for who in (SIGNED_OUT, signed_in("bob", "token-bob")):  # the Space's own token is bob's: not alice's jobs
        row = row_of(handler(as_bob, "space_jobs")(**who), fields["name"])
        assert row["state"] == "unknown" and "403" in row["message"] and "token-bob" not in row["message"]
        assert row["logs"].endswith(f"/jobs/{ALICE}/{row['job']})")


# --------------------------------------------------------------------------- refusals


def test_nobody_signed_in_is_refused_and_no_job_is_submitted(space, hub_server):
    launch, before = handler(space["demo"], "launch_job"), len(hub_server.jobs.requests)
    message = launch(**form(), **SIGNED_OUT)
    assert message.startswith("**Refused.**") and "sign in with Hugging Face" in message
    message = launch(**form(), **signed_in(scope="openid profile"))
    assert message.startswith("**Refused.**") and "'jobs' scope" in message and ALICE_TOKEN not in message
    assert len(hub_server.jobs.requests) == before and booked(space["runs"]) == []


def test_a_bad_form_is_refused_before_any_job_is_submitted(space, hub_server, monkeypatch):
    launch, before = handler(space["demo"], "launch_job"), len(hub_server.jobs.requests)
    refusals = {
        "publish.push is 'none'": form(push="none", namespace=""),
        "'/etc/passwd' is a local path": form(candidates="/etc/passwd\nalice/seed-b"),
        "give at least one fitness task": form(tasks=""),
        "unknown job flavor 'a10g-huge'": form(flavor="a10g-huge"),
        "job timeout 'soon'": form(timeout="soon"),
        "Generations 'three' is not a number": form(generations="three"),
    }
    for expected, fields in refusals.items():
        message = launch(**fields, **signed_in())
        assert message.startswith("**Refused.**") and expected in message, message
    monkeypatch.delenv("SPACE_ID")
    message = launch(**form(), **signed_in())
    assert message.startswith("**Refused.**") and "no image for the job: set HUBEVO_JOB_IMAGE" in message
    assert len(hub_server.jobs.requests) == before and booked(space["runs"]) == []


def test_without_sign_in_the_deployment_launches_no_jobs(space, hub_server):
    demo = app(space["runs"], tasks=space["tasks"], api=HfApi(endpoint=hub_server.url), jobs=False)
    before = len(hub_server.jobs.requests)
    message = handler(demo, "launch_job")(**form(), **signed_in())
    assert message.startswith("**Refused.**") and "launches no Hugging Face Jobs" in message
    assert len(hub_server.jobs.requests) == before
