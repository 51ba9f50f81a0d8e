"""Continuous mode with real apscheduler jobs on short intervals, against the Hub test server."""

import socket
import threading
from datetime import datetime, timezone

import pytest
from apscheduler.schedulers.base import STATE_PAUSED
from huggingface_hub import HfApi

from hubevo.errors import ConfigError
from hubevo.run.scheduler import Scheduler, _remove_jobs
from hubevo.state.runstate import load_state
from tests.helpers import wait_until
from tests.tiny_models import build_zoo, make_finetune, push_members, write_generation_task


@pytest.fixture(scope="module")
def hub_population(hub_server, tmp_path_factory):
    """Three tiny compatible models on the test Hub under alice/sched-*, plus a local task."""
    root = tmp_path_factory.mktemp("sched")
    api = HfApi(endpoint=hub_server.url, token="token-alice")
    zoo = build_zoo(root / "zoo", finetunes=3)
    push_members(api, zoo, prefix="sched")
    rows = [{"q": f"{a}+{b}=", "a": str(a + b)} for a in range(4) for b in range(4)]
    tasks = write_generation_task(root / "tasks", "sched_add", rows, max_gen_toks=3)
    return {"api": api, "zoo": zoo, "tasks": tasks, "root": root}


def run_config(pop, name="pop1", generations=3):
    return {
        "name": name,
        "population": {"query": {"author": "alice", "search": "sched-", "limit": 10}},
        "fitness": {"tasks": ["sched_add"], "include_path": [str(pop["tasks"])], "limit": 4},
        "selection": {"keep_top_k": 1},
        "crossover": {"methods": ["linear", "slerp"]},
        "budget": {"generations": generations, "population_size": 3},
    }


@pytest.mark.slow
def test_jobs_pull_an_immigrant_and_survive_a_restart(hub_population, tmp_path):
    pop = hub_population
    runs = tmp_path / "runs"
    sched = Scheduler(runs, generation_every_s=0.5, immigrants_every_s=1.0, api=pop["api"]).start()
    try:
        name = sched.submit(run_config(pop, generations=5), user="alice")
        folder = runs / name
        wait_until(lambda: (s := load_state(folder)) is not None and s.finished, what="generation 0")
        sched.scheduler.pause_job(f"{name}:generation")  # the run cannot end before the newcomer arrives
        first = load_state(folder)
        assert {m["source"].split("@")[0] for m in first.members.values()} == {"alice/sched-ft1", "alice/sched-ft2"}

        newcomer = make_finetune(pop["zoo"]["base"], pop["root"] / "ft9", seed=9)
        pop["api"].create_repo("alice/sched-ft9", exist_ok=True)
        pop["api"].upload_folder(repo_id="alice/sched-ft9", folder_path=newcomer)

        def immigrant():
            state = load_state(folder)
            return next((i for i, m in state.members.items() if m["source"].startswith("alice/sched-ft9")), None)

        wait_until(immigrant, what="the immigrants job to queue the newcomer")
        assert load_state(folder).generation < 5
        sched.scheduler.resume_job(f"{name}:generation")
        wait_until(lambda: immigrant() in load_state(folder).evaluations, what="the immigrant to be evaluated")
        assert {j.id for j in sched.jobs(name)} == {f"{name}:generation", f"{name}:immigrants"}
        sched.pause(name)
        paused = {j.id: j.next_run_time for j in sched.jobs(name)}
        assert all(t is None for t in paused.values())
    finally:
        sched.shutdown()

    again = Scheduler(runs, generation_every_s=0.5, immigrants_every_s=1.0, api=pop["api"]).start()
    try:
        kept = {j.id: j.next_run_time for j in again.jobs(name)}
        assert kept == paused, "jobs or their (paused) next run times were lost in the restart"
        status = {s["name"]: s for s in again.status()}[name]
        assert status["state"] == "paused" and status["generation"] >= 1
        again.resume(name)
        wait_until(lambda: load_state(folder).finished and load_state(folder).generation == 5, timeout=180,
                   what="the run to finish its 5 generations")
        wait_until(lambda: {s["name"]: s for s in again.status()}[name]["state"] == "finished", what="finished")
    finally:
        again.shutdown()


def test_submit_validates_before_queueing(hub_population, tmp_path):
    sched = Scheduler(tmp_path / "runs", api=hub_population["api"])
    bad = {**run_config(hub_population, name="bad"), "selection": {"method": "lottery"}}
    with pytest.raises(ConfigError, match="selection.method"):
        sched.submit(bad, user="alice")
    assert not (tmp_path / "runs" / "bad" / "run.yaml").exists()
    assert sched.status() == []


@pytest.mark.slow
def test_a_signed_webhook_brings_an_immigrant_to_the_runs_whose_query_it_matches(hub_population, tmp_path):
    import gradio as gr

    from hubevo.hub.webhooks import launch, webhooks_server
    from tests.helpers.webhooks import event, post

    pop = hub_population
    runs = tmp_path / "runs"
    sched = Scheduler(runs, generation_every_s=0.5, immigrants_every_s=3600, api=pop["api"]).start()
    try:
        name = sched.submit(run_config(pop, name="hooked", generations=50), user="alice")
        wait_until(lambda: load_state(runs / name) is not None, what="generation 0")
        newcomer = make_finetune(pop["zoo"]["base"], pop["root"] / "ft7", seed=7)
        pop["api"].create_repo("alice/sched-ft7", exist_ok=True)
        pop["api"].upload_folder(repo_id="alice/sched-ft7", folder_path=newcomer)
        sha = pop["api"].model_info("alice/sched-ft7").sha

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = launch(webhooks_server(sched, webhook_secret="hook-secret"), port=port)
        assert post(url, event("alice/sched-ft7"), secret="wrong").status_code == 403
        answer = post(url, event("alice/sched-ft7"), secret="hook-secret")
        assert answer.status_code == 200
        assert answer.json() == {"runs": {name: {"status": "queued", "repo": f"alice/sched-ft7@{sha}"}}}
        ignored = post(url, event("bob/other"), secret="hook-secret").json()["runs"][name]
        assert ignored["status"] == "ignored" and "author 'bob' is not 'alice'" in ignored["reason"]

        def joined():
            return any(m["source"] == f"alice/sched-ft7@{sha}" or m.get("revision") == sha
                       for m in load_state(runs / name).members.values())

        wait_until(joined, what="the webhook's model to join the population")
        assert {j.id for j in sched.jobs(name)} == {f"{name}:generation", f"{name}:immigrants"}  # one-off job gone
    finally:
        sched.stop(name)
        sched.shutdown()
        gr.close_all()


_STARTED, _GO = threading.Event(), threading.Event()


def _ends_its_run(runs_root: str, name: str) -> None:
    """A job that, like a finished or failed run's, removes its run's jobs as it ends."""
    _STARTED.set()
    _GO.wait(30)
    _remove_jobs(runs_root, name)


def test_a_shutdown_waits_for_a_job_that_removes_its_own_jobs(tmp_path):
    sched = Scheduler(tmp_path / "runs", generation_every_s=0.2).start()
    sched.scheduler.add_job(_ends_its_run, "interval", seconds=0.2, args=[str(sched.runs_root), "ending"],
                            id="ending:generation", next_run_time=datetime.now(timezone.utc))
    assert _STARTED.wait(30)
    stopping = threading.Thread(target=sched.shutdown, daemon=True)
    stopping.start()
    wait_until(lambda: sched.scheduler.state == STATE_PAUSED, timeout=30, what="the shutdown to pause the scheduler")
    _GO.set()
    stopping.join(30)
    assert not stopping.is_alive(), "the shutdown deadlocked with the job removing its jobs"
    assert not sched.scheduler.running
    reopened = Scheduler(tmp_path / "runs").start()
    try:
        assert reopened.jobs("ending") == []  # the job's removal reached the job store
    finally:
        reopened.shutdown()


def test_a_one_off_job_due_as_the_scheduler_stops_is_kept_for_the_next_start(tmp_path, monkeypatch):
    crashed = []
    monkeypatch.setattr(threading, "excepthook", crashed.append)
    sched = Scheduler(tmp_path / "runs").start()
    sched.scheduler.pause()  # the webhook's immigrant falls due, and the scheduler stops before it runs
    sched.immigrant("arriving", "org/newcomer@0123abc")
    sched.shutdown()
    assert crashed == []  # the scheduler's thread ended without an error
    reopened = Scheduler(tmp_path / "runs")
    reopened.scheduler.start(paused=True)  # reads the job store, runs nothing
    try:
        assert [job.id for job in reopened.jobs("arriving")] == ["arriving:immigrant:org/newcomer@0123abc"]
    finally:
        reopened.scheduler.shutdown()


def test_submit_marks_the_run_folder_and_refuses_a_folder_of_someone_elses(hub_population, tmp_path):
    from hubevo.errors import NotARunFolderError
    from hubevo.fsio import RUN_MARKER

    sched = Scheduler(tmp_path / "runs", api=hub_population["api"])
    name = sched.submit(run_config(hub_population, name="marked"), user="alice")
    assert (tmp_path / "runs" / name / RUN_MARKER).is_file()
    theirs = tmp_path / "runs" / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("not hubevo's")
    with pytest.raises(NotARunFolderError, match=r"'notes.txt'.*choose another run name, or move those files away"):
        sched.submit(run_config(hub_population, name="theirs"), user="alice")
    assert sorted(p.name for p in theirs.iterdir()) == ["notes.txt"]
    assert [s["name"] for s in sched.status()] == ["marked"]
