"""The run state kept on the Hub (`publish.state: hub`), through the real client and the Hub-protocol server.

Tiny Llamas evolve with their state pushed to the run's results dataset; the local run folder is
then deleted and the run continues from the Hub alone: nothing evaluated twice, a state written by
another config refused by name, and a run killed mid-generation resumed on an empty disk with every
survivor pushed once, as a process and as Hugging Face Jobs (the test server runs each job's real
worker as a local process; both jobs use the same folder, emptied in between, as containers of one
image share their working directory).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import HfApi

from hubevo.config import parse_config
from hubevo.errors import ConfigError
from hubevo.hub.jobs import (
    CONFIG_ENV,
    cancel_run,
    job_logs,
    job_request,
    submit,
    worker_command,
)
from hubevo.run.loop import evolve
from hubevo.run.state_sync import STATE_PREFIX, HubStateError, download_state
from hubevo.state.events import read_events
from hubevo.state.runstate import load_state
from tests.helpers import wait_for_generation, wait_job_end
from tests.tiny_models import build_zoo, write_choice_task

torch.set_num_threads(1)
pytestmark = pytest.mark.slow  # every test evolves

ALICE, ALICE_TOKEN = "alice", "token-alice"
TASK = "hubevo_state_mc"
REPO = Path(__file__).resolve().parents[2]
_runs = itertools.count()


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("state-zoo")
    return {**build_zoo(root / "models", finetunes=3), "tasks": write_choice_task(root / "tasks", TASK)}


@pytest.fixture
def alice(hub_server) -> HfApi:
    return HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)


@pytest.fixture(scope="module")
def reference(zoo, hub_server, tmp_path_factory):
    """The two generations run in one go with a local state: what every run resumed from the Hub must equal."""
    cfg = make_config(zoo, tmp_path_factory.mktemp("reference") / "run", name="reference", generations=2,
                      state="local")
    return evolve(cfg, progress=False, api=HfApi(endpoint=hub_server.url, token=ALICE_TOKEN))


def config_data(zoo, out_dir: Path, *, name: str, generations: int = 1, push: str = "none", **publish) -> dict:
    return {
        "name": name,
        "population": {"members": [str(zoo[f"ft{i}"]) for i in (1, 2, 3)], "base_model": str(zoo["base"])},
        "fitness": {"tasks": [{"name": TASK, "metric": "acc"}], "include_path": [str(zoo["tasks"])], "limit": 8,
                    "batch_size": 16},
        "selection": {"keep_top_k": 1},
        "crossover": {"methods": ["linear", "ties"]},
        "budget": {"generations": generations, "population_size": 3},
        "search": {"baselines": []},
        "output": {"dir": str(out_dir)},
        "publish": {"namespace": ALICE, "private": True, "push": push, "state": "hub", "state_every": 2, **publish},
    }


def make_config(zoo, out_dir: Path, **kwargs):
    return parse_config(config_data(zoo, out_dir, **kwargs), root=out_dir.parent)


def evaluated_ids(run_dir: Path, *, since: float = 0.0) -> list[str]:
    return [e["id"] for e in read_events(run_dir) if e["event"] == "evaluated" and e["time"] >= since]


def fitnesses(state) -> dict[str, float]:
    return {i: e.fitness for i, e in state.evaluations.items()}


# ------------------------------------------------------------------------ push, delete, resume


def test_the_state_goes_to_the_results_dataset_and_an_empty_disk_resumes_from_it(zoo, alice, reference, tmp_path):
    cfg = make_config(zoo, tmp_path / "run", name=f"state{next(_runs)}")
    first = evolve(cfg, progress=False, api=alice)
    assert first.finished

    results = cfg.publish.results_repo(cfg.name)
    files = alice.list_repo_files(results, repo_type="dataset")
    for name in ("state.json", "events.jsonl", "config.yaml", "results.parquet", "lineage.json"):
        assert STATE_PREFIX + name in files
    cards = [f for f in files if f.startswith(f"{STATE_PREFIX}models/") and f.endswith("README.md")]
    assert len(cards) == len(first.saved) > 0  # every survivor's card and recipe, never its weights
    assert not any(f.endswith((".safetensors", ".bin", ".lock")) for f in files)
    hub_state = load_state(download_state(results, api=alice))
    assert fitnesses(hub_state) == fitnesses(first) and hub_state.finished
    for path in download_state(results, api=alice).rglob("*"):
        assert not path.is_file() or ALICE_TOKEN not in path.read_text(errors="ignore")

    shutil.rmtree(cfg.output.dir)  # a new worker: nothing on disk but the config
    more = cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"generations": 2})})
    resumed_at = time.time()
    resumed = evolve(more, resume=True, progress=False, api=alice)

    assert resumed.finished and resumed.generation == 2
    assert fitnesses(first).items() <= fitnesses(resumed).items()
    evaluated = evaluated_ids(cfg.output.dir)
    assert len(evaluated) == len(set(evaluated)) == len(resumed.evaluations), "an evaluation was repeated"
    assert set(evaluated_ids(cfg.output.dir, since=resumed_at)) == set(resumed.evaluations) - set(first.evaluations)
    assert fitnesses(resumed) == fitnesses(reference) and resumed.survivors == reference.survivors
    assert load_state(download_state(results, api=alice)).generation == 2


def test_a_hub_state_of_another_config_is_refused_naming_the_field(zoo, alice, tmp_path):
    name = f"state{next(_runs)}"
    evolve(make_config(zoo, tmp_path / "run", name=name), progress=False, api=alice)
    shutil.rmtree(tmp_path / "run")

    changed = parse_config({**config_data(zoo, tmp_path / "run", name=name),
                            "selection": {"keep_top_k": 2}}, root=tmp_path)
    with pytest.raises(HubStateError, match=r"selection\.keep_top_k: 1 -> 2") as err:
        evolve(changed, resume=True, progress=False, api=alice)
    assert f"{ALICE}/{name}-results" in str(err.value)
    assert not (tmp_path / "run" / "state.json").exists()  # nothing of the other run was written here

    with pytest.raises(HubStateError, match="pass --resume"):  # a fresh start would overwrite the Hub state
        evolve(make_config(zoo, tmp_path / "run", name=name), progress=False, api=alice)


def test_without_a_hub_state_a_run_starts_fresh_and_a_local_state_needs_no_hub(zoo, alice, tmp_path):
    cfg = make_config(zoo, tmp_path / "run", name=f"state{next(_runs)}")
    assert not alice.repo_exists(cfg.publish.results_repo(cfg.name), repo_type="dataset")
    local = make_config(zoo, tmp_path / "local", name=f"state{next(_runs)}", state="local")
    state = evolve(local, progress=False, api=alice)
    assert state.finished and not alice.repo_exists(local.publish.results_repo(local.name), repo_type="dataset")


def test_a_state_push_that_fails_is_logged_and_the_run_goes_on(zoo, hub_server, tmp_path, caplog):
    cfg = make_config(zoo, tmp_path / "run", name=f"state{next(_runs)}")
    alice = HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)  # may write at the start; the Hub refuses later
    hub_server.fail_next("/api/repos/create", 403, count=10_000, method="POST")
    try:
        state = evolve(cfg, progress=False, api=alice)
    finally:
        hub_server.clear_faults()

    assert state.finished and (tmp_path / "run" / "state.json").is_file()
    warnings = [r.getMessage() for r in caplog.records if "pushing the run state" in r.getMessage()]
    assert warnings and all("403" in w and cfg.publish.results_repo(cfg.name) in w for w in warnings)
    assert ALICE_TOKEN not in caplog.text
    with pytest.raises(ConfigError, match="publish.state is 'hub' but publish.namespace is not set"):
        parse_config({**config_data(zoo, tmp_path / "x", name="nons"), "publish": {"state": "hub"}}, root=tmp_path)


def test_a_job_keeps_its_state_on_the_hub_unless_the_config_says_local(zoo, tmp_path):
    data = config_data(zoo, tmp_path / "run", name="jobstate", push="survivors")
    data["population"] = {"members": ["alice/seed-a", "alice/seed-b"]}
    data["crossover"] = {"methods": ["linear"]}
    data["publish"] = {k: v for k, v in data["publish"].items() if k != "state"}

    def sent_state(config: dict) -> str:
        request = job_request(parse_config(config, root=tmp_path), image="python:3.11", flavor="cpu-basic")
        return yaml.safe_load(request.env[CONFIG_ENV])["publish"]["state"]

    assert sent_state(data) == "hub"
    assert sent_state({**data, "publish": {**data["publish"], "state": "local"}}) == "local"


# ------------------------------------------------------------------------ killed mid-generation


def test_a_run_killed_mid_generation_resumes_on_an_empty_disk_and_pushes_every_survivor_once(
        zoo, alice, hub_server, reference, tmp_path):
    cfg = make_config(zoo, tmp_path / "run", name=f"killed{next(_runs)}", generations=2, push="survivors")
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    env = {**os.environ, "HF_TOKEN": ALICE_TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "hubevo.cli", "evolve", str(config_path), "--no-progress"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_generation(proc, cfg.output.dir, generation=1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = load_state(cfg.output.dir)
    results = cfg.publish.results_repo(cfg.name)
    on_hub = load_state(download_state(results, api=alice))
    assert not on_hub.finished and on_hub.generation == 1
    lost = set(killed.evaluations) - set(on_hub.evaluations)
    assert len(lost) <= cfg.publish.state_every  # at most those since the last push (the kill may land mid-push)
    shutil.rmtree(cfg.output.dir)

    resumed_at = time.time()
    after = evolve(cfg, resume=True, progress=False, api=alice)

    assert after.finished and fitnesses(on_hub).items() <= fitnesses(after).items()
    evaluated = evaluated_ids(cfg.output.dir)
    assert len(evaluated) == len(set(evaluated)), "an evaluation the Hub state holds was repeated"
    assert set(evaluated_ids(cfg.output.dir, since=resumed_at)) == set(after.evaluations) - set(on_hub.evaluations)
    assert fitnesses(after) == fitnesses(reference) and after.survivors == reference.survivors
    assert_every_survivor_pushed_once(hub_server, alice, cfg, after)


def assert_every_survivor_pushed_once(hub_server, alice, cfg, after) -> None:
    """Each bred survivor's repo has a tag per generation it survived, and no commit beyond them."""
    bred = {cid for ids in after.survivors.values() for cid in ids if after.individuals[cid].kind != "seed"}
    assert bred
    for cid in bred:
        repo = cfg.publish.survivor_repo(cfg.name, cid)
        tags = sorted(t.name for t in alice.list_repo_refs(repo).tags)
        assert tags == [f"gen-{g}" for g in sorted(after.survivors) if cid in after.survivors[g]]
        assert hub_server.commit_count(repo) - 1 <= len(tags), f"{repo} was pushed twice"


# ------------------------------------------------------------------------ as Hugging Face Jobs


@pytest.fixture(scope="module")
def hub_zoo(hub_server, zoo) -> dict[str, str]:
    alice = HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)
    repos = {}
    for name in ("base", "ft1", "ft2", "ft3"):
        repo = f"{ALICE}/state-{name}"
        alice.create_repo(repo, exist_ok=True)
        alice.upload_folder(repo_id=repo, folder_path=zoo[name])
        repos[name] = repo
    return repos


@pytest.fixture
def container(hub_server, tmp_path, monkeypatch) -> Path:
    """The jobs' working folder: this repository's app.py, and `python` meaning this venv's interpreter."""
    folder, bindir = tmp_path / "container", tmp_path / "bin"
    folder.mkdir()
    bindir.mkdir()
    (folder / "app.py").symlink_to(REPO / "app.py")
    (bindir / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # this venv's interpreter
    (bindir / "python").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(hub_server.jobs, "cwd", str(folder))
    return folder


def test_a_job_killed_mid_generation_is_continued_by_the_next_job_from_the_hub_state(
        zoo, hub_zoo, alice, hub_server, container, tmp_path):
    data = config_data(zoo, tmp_path / "unused", name=f"jobkilled{next(_runs)}", generations=2, push="survivors")
    data["population"] = {"members": [hub_zoo[f"ft{i}"] for i in (1, 2, 3)], "base_model": hub_zoo["base"]}
    data["publish"] = {k: v for k, v in data["publish"].items() if k != "state"}  # launched: hub by default
    cfg = parse_config(data, root=tmp_path)
    sh, flag, script = worker_command()
    request = job_request(cfg, image="hf.co/spaces/alice/hubevo", flavor="cpu-basic",
                          command=[sh, flag, script + " --every 0.5 --poll 0.2"])
    run_dir = container / "runs" / cfg.name

    first = submit(request, api=alice)
    wait_for_generation(RunningJob(alice, first.id), run_dir, generation=1)
    cancel_run(cfg.name, namespace=ALICE, api=alice)
    assert wait_job_end(alice, first.id, namespace=ALICE) == "CANCELED"
    results = cfg.publish.results_repo(cfg.name)
    on_hub = load_state(download_state(results, api=alice))
    assert on_hub.generation == 1 and not on_hub.finished
    shutil.rmtree(container / "runs")  # the next container starts with nothing but the image

    resumed_at = time.time()
    second = submit(request, api=alice)
    assert wait_job_end(alice, second.id, namespace=ALICE, timeout=300) == "COMPLETED", job_logs(
        second.id, namespace=ALICE, api=alice)

    after = load_state(run_dir)
    assert after.finished and after.generation == 2
    assert fitnesses(on_hub).items() <= fitnesses(after).items()
    evaluated = evaluated_ids(run_dir)
    assert len(evaluated) == len(set(evaluated)), "an evaluation the Hub state holds was repeated"
    assert set(evaluated_ids(run_dir, since=resumed_at)) == set(after.evaluations) - set(on_hub.evaluations)
    assert load_state(download_state(results, api=alice)).finished
    reference = evolve(parse_config({**data, "name": f"jobref{next(_runs)}", "publish": {"push": "none"},
                                     "output": {"dir": str(tmp_path / "ref")}}, root=tmp_path),
                       progress=False, api=alice)
    assert fitnesses(after) == fitnesses(reference) and after.survivors == reference.survivors
    assert_every_survivor_pushed_once(hub_server, alice, cfg, after)
    logs = job_logs(second.id, namespace=ALICE, api=alice)
    assert any(line.startswith(f"run {cfg.name} finished: generation 2,") for line in logs), logs[-3:]
    assert not any(ALICE_TOKEN in line for line in logs)


class RunningJob:
    """`poll()` of a job, as `wait_for_generation` asks of a process: None while it runs."""

    def __init__(self, api: HfApi, job_id: str):
        self.api, self.job_id = api, job_id

    def poll(self):
        stage = self.api.inspect_job(job_id=self.job_id, namespace=ALICE).status.stage
        if stage in ("SCHEDULING", "RUNNING"):
            return None
        return f"{stage}: " + "\n".join(job_logs(self.job_id, namespace=ALICE, tail=20, api=self.api))


def test_the_pushed_state_keeps_each_lora_childs_adapter_and_no_weights(tmp_path):
    """A resumed job rebuilds a LoRA child from its parent and its adapter: the adapter travels with the state
    (megabytes), a model's weights never do."""
    from hubevo.run.state_sync import state_files

    (tmp_path / "candidates" / "ft1").mkdir(parents=True)
    for name in ("training.json", "adapter_config.json", "adapter_model.safetensors"):
        (tmp_path / "candidates" / "ft1" / name).write_text("{}")
    (tmp_path / "models" / "champ").mkdir(parents=True)
    for name in ("README.md", "recipe.yaml", "model.safetensors", "config.json"):
        (tmp_path / "models" / "champ" / name).write_text("x")
    (tmp_path / "state.json").write_text("{}")
    assert sorted(state_files(tmp_path)) == [STATE_PREFIX + p for p in (
        "candidates/ft1/adapter_config.json", "candidates/ft1/adapter_model.safetensors",
        "candidates/ft1/training.json", "models/champ/README.md", "models/champ/recipe.yaml", "state.json")]
