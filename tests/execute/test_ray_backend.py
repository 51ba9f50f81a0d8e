"""The Ray execution backend (`hubevo.execute.ray_backend`) on a local two-CPU Ray cluster.

An evolution on the demo zoo with two Ray workers proposes and scores exactly what the local
backend does, even when a worker is killed in the middle of an evaluation (that costs a
retry, not the run) and the run is resumed; a candidate whose worker dies twice is recorded
as failed while the run goes on; worker resources follow the cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from hubevo.breed.genome import finetune_individual, identity_dict
from hubevo.config import ExecutionConfig
from hubevo.config.finetune import FinetuneSpace
from hubevo.demo.runner import demo_config
from hubevo.errors import ConfigError
from hubevo.execute.runner import CandidateJob, RunnerSpec
from hubevo.finetune.recipe import sample_recipe
from hubevo.run.loop import evolve
from hubevo.run.run import start

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'hubevo[ray]'); not installed")
pytestmark = pytest.mark.ray

from hubevo.execute import backends as execution  # noqa: E402
from hubevo.execute.ray_backend import EvalWorker, RayBackend, RayBackendError, plan_resources  # noqa: E402

torch.set_num_threads(1)


# fixtures (the demo zoo is conftest's `demo_zoo`) --------------------------------------------------
@pytest.fixture(scope="session")
def ray_cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def config(zoo, out_dir: Path, *, backend: str, generations: int = 2):
    """The demo run, small: two elites and four children a generation, so each worker holds two at a time.

    No held-out tasks: survivors' held-out scores are computed by the driver, whatever the backend.
    """
    cfg = demo_config(zoo, out_dir=out_dir, generations=generations, population_size=6)
    return cfg.model_copy(update={
        "execution": ExecutionConfig(backend=backend, workers=2),
        "search": cfg.search.model_copy(update={"strategy": "ga", "baselines": []}),  # members and children only
        "budget": cfg.budget.model_copy(update={"wall_time_s": None}),
        "fitness": cfg.fitness.model_copy(update={"heldout": []}),
    })


def outcome(state) -> dict:
    """Per generation: the candidates and their (status, fitness, scores)."""
    return {i: (e.generation, e.status, e.fitness, e.scores) for i, e in sorted(state.evaluations.items())}


@pytest.fixture(scope="session")
def local_run(demo_zoo, tmp_path_factory):
    return evolve(config(demo_zoo, tmp_path_factory.mktemp("local") / "run", backend="local"), progress=False)


@pytest.fixture
def backend_class(monkeypatch):
    """Install a RayBackend subclass as the `ray` backend; instances are kept for inspection."""
    made = []

    def install(cls):
        class Recorded(cls):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                made.append(self)

        monkeypatch.setitem(execution.BACKENDS, "ray", Recorded)
        return made

    return install


# an evolution on two workers ---------------------------------------------------------------------
class DieOnceOnLetters(EvalWorker):
    """A worker process that dies mid-evaluation the first time any worker is handed `letters`."""

    def score(self, job):
        marker = Path(tempfile.gettempdir()) / f"hubevo-ray-died-once-{job.id}"
        if job.name == "letters" and not marker.exists():
            marker.touch()
            os._exit(1)
        return super().score(job)


def test_two_ray_workers_match_the_local_backend_through_a_killed_worker_and_a_resume(
        demo_zoo, ray_cluster, local_run, tmp_path, backend_class):
    for stale in Path(tempfile.gettempdir()).glob("hubevo-ray-died-once-*"):
        stale.unlink()
    made = backend_class(type("DyingOnceBackend", (RayBackend,), {"worker_class": DieOnceOnLetters}))
    first = evolve(config(demo_zoo, tmp_path / "run", backend="ray", generations=1), progress=False)

    backend = made[0]
    [letters] = [i for i, ind in first.individuals.items() if ind.name == "letters"]
    assert (Path(tempfile.gettempdir()) / f"hubevo-ray-died-once-{letters}").exists(), "no worker died"
    # letters, in flight on the worker that died, ran again: retried, or its back-up copy on the other worker
    assert first.finished and letters in backend.retried + backend.covered
    assert all(e.status == "ok" for e in first.evaluations.values())

    backend_class(RayBackend)
    resumed = evolve(config(demo_zoo, tmp_path / "run", backend="ray", generations=2), resume=True, progress=False)
    assert resumed.finished and len(local_run.evaluations) > 4  # seeds and children of two generations
    assert outcome(resumed) == outcome(local_run)  # same candidates, same fitness and per-task scores
    assert resumed.champion() == local_run.champion()


class CrashOnDigits(EvalWorker):
    """A worker process that dies whenever it is handed the member named digits."""

    def score(self, job):
        if job.name == "digits":
            os._exit(1)
        return super().score(job)


def test_a_candidate_whose_worker_dies_twice_is_recorded_failed_and_the_run_goes_on(
        demo_zoo, ray_cluster, local_run, tmp_path, backend_class):
    made = backend_class(type("CrashingBackend", (RayBackend,), {"worker_class": CrashOnDigits}))
    state = evolve(config(demo_zoo, tmp_path / "run", backend="ray", generations=0), progress=False)

    failed = [e for e in state.evaluations.values() if e.status == "failed"]
    assert state.finished and len(state.evaluations) == 2
    assert [state.individuals[e.id].name for e in failed] == ["digits"]
    assert "worker died on 2 attempts" in failed[0].reason
    assert {w for i, w in made[0].dispatched if i == failed[0].id} == {0, 1}  # retried on the other worker
    [letters] = [e for e in state.evaluations.values() if e.status == "ok"]
    assert letters.fitness == local_run.evaluations[letters.id].fitness


def test_out_of_memory_in_a_worker_fails_that_candidate_only(demo_zoo, ray_cluster, tmp_path, monkeypatch):
    from hubevo.breed.materialize import Materializer

    cfg = config(demo_zoo, tmp_path / "run", backend="ray")
    worker = EvalWorker(RunnerSpec(template=str(demo_zoo.base), fitness=cfg.fitness, dtype="float32"))  # in-process
    job = CandidateJob(id="digits", name="digits", generation=0,
                       merge=identity_dict(str(demo_zoo.specialists["digits"]), dtype="float32"))

    def out_of_memory(self, config, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with monkeypatch.context() as patched:
        patched.setattr(Materializer, "materialize", out_of_memory)
        failed = worker.score(job).evaluation
    assert failed.status == "failed" and "out of memory" in failed.reason
    assert worker.score(job).evaluation.status == "ok"  # the worker goes on with the next candidate


# fine-tuning mutations as Ray tasks --------------------------------------------------------------
def test_a_dpo_child_trains_as_a_ray_task_and_scores_what_the_local_backend_scores(demo_zoo, ray_cluster, tmp_path):
    digits = ["".join(map(str, np.random.default_rng(i).integers(0, 10, size=6))) for i in range(64)]
    rows = [{"prompt": f"{d}#", "chosen": "".join(sorted(d)), "rejected": d} for d in digits]  # the digits skill
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    space = FinetuneSpace(datasets=[str(pairs)], samples=32, steps=(8, 8), learning_rate=(1e-3, 1e-3), batch_size=8)

    def run_with(backend: str):
        cfg = config(demo_zoo, tmp_path / backend, backend=backend, generations=0)
        mutation = cfg.mutation.model_copy(update={"operators": ["perturb", "dpo"], "finetune": space})
        return start(cfg.model_copy(update={"mutation": mutation}), progress=False)

    run = run_with("ray")
    child = finetune_individual(sample_recipe(space, parent=run.seed_ids[0], rng=np.random.default_rng(0)),
                                generation=1)
    run.state.individuals[child.id] = child
    backend = RayBackend.for_run(run.cfg, runner=run.runner)
    try:
        [evaluation] = list(backend.evaluate([run.job(child)]))
    finally:
        backend.close()

    assert backend.plan.workers == 1 and backend.plan.train_cpus == 1  # one of the two CPUs kept for training
    trained = run.resolver.train_dir(child.id)  # the child keeps its LoRA adapter, not a full copy
    assert evaluation.status == "ok" and json.loads((trained / "training.json").read_text())["steps"] == 8
    assert (trained / "adapter_model.safetensors").is_file() and not (trained / "model.safetensors").exists()
    local = run_with("local")
    local.state.individuals[child.id] = child
    assert evaluation.scores == local.runner.run(local.job(child)).scores


def test_racing_runs_each_rung_on_the_ray_workers(demo_zoo, ray_cluster, tmp_path, backend_class):
    """Racing is a policy over the backend: every rung's scores come from the Ray workers, as locally."""
    from hubevo.config import RacingConfig

    made = backend_class(RayBackend)

    def raced(backend):
        cfg = config(demo_zoo, tmp_path / backend, backend=backend, generations=1)
        fitness = cfg.fitness.model_copy(update={"limit": 24, "racing": RacingConfig(rungs=[8], keep=0.5)})
        return evolve(cfg.model_copy(update={"fitness": fitness}), progress=False)

    remote, local = raced("ray"), raced("local")
    assert remote.finished and "raced_out" in {e.status for e in remote.evaluations.values()}
    assert outcome(remote) == outcome(local)
    raced_out = [i for i, e in remote.evaluations.items() if e.status == "raced_out"]
    dispatched = [i for i, _ in made[0].dispatched]
    assert all(dispatched.count(i) >= 1 for i in raced_out)  # raced-out candidates ran on the workers
    finalists = [i for i, e in remote.evaluations.items() if e.status == "ok" and e.generation == 1]
    assert finalists and all(dispatched.count(i) >= 2 for i in finalists)  # one job per rung


# resources follow the cluster --------------------------------------------------------------------
CPU_NODE = {"Alive": True, "Resources": {"CPU": 2.0, "memory": 1e10}}
GPU_NODE = {"Alive": True, "Resources": {"CPU": 32.0, "GPU": 8.0}}


def test_a_gpu_request_on_a_cpu_only_cluster_gets_cpu_workers_with_one_thread():
    plan = plan_resources(ExecutionConfig(backend="ray", gpus_per_worker=1), [CPU_NODE])
    assert (plan.workers, plan.num_gpus, plan.num_cpus, plan.threads) == (2, 0, 1, 1)
    assert "no GPU" in plan.note


def test_gpu_workers_fill_the_gpus_of_every_node_and_several_gpus_per_candidate_fit_on_one_node():
    assert plan_resources(ExecutionConfig(backend="ray"), [GPU_NODE, GPU_NODE]).workers == 16
    half = plan_resources(ExecutionConfig(backend="ray", gpus_per_worker=0.5), [GPU_NODE])
    assert (half.workers, half.num_gpus) == (16, 0.5)
    sharded = plan_resources(ExecutionConfig(backend="ray", gpus_per_worker=4), [GPU_NODE])
    assert (sharded.workers, sharded.num_gpus, sharded.num_cpus) == (2, 4, 4)
    capped = plan_resources(ExecutionConfig(backend="ray", workers=20), [GPU_NODE])
    assert capped.workers == 8 and "20 asked" in capped.note


def test_a_run_that_fine_tunes_keeps_one_share_free_for_its_training_tasks():
    gpu = plan_resources(ExecutionConfig(backend="ray"), [GPU_NODE], trains=True)
    assert (gpu.workers, gpu.train_gpus) == (7, 1)
    cpu = plan_resources(ExecutionConfig(backend="ray", workers=2), [CPU_NODE], trains=True)
    assert (cpu.workers, cpu.train_cpus) == (1, 1)
    single = plan_resources(ExecutionConfig(backend="ray"), [{"Resources": {"CPU": 4.0, "GPU": 1.0}}], trains=True)
    assert (single.workers, single.num_gpus, single.train_gpus) == (1, 0.5, 0.5)  # they share the one GPU


def test_a_request_no_node_can_hold_is_an_error_not_a_hang():
    with pytest.raises(RayBackendError, match="largest node has 8 GPUs"):
        plan_resources(ExecutionConfig(backend="ray", gpus_per_worker=16), [GPU_NODE])
    with pytest.raises(ConfigError, match="whole number"):
        plan_resources(ExecutionConfig(backend="ray", gpus_per_worker=1.5), [GPU_NODE])


def test_the_local_backend_never_imports_ray_and_a_missing_ray_says_how_to_install_it():
    code = """
import sys
from hubevo.run import loop
from hubevo.errors import ConfigError
from hubevo.execute.backends import BACKENDS
assert BACKENDS["local"].name == "local" and "ray" not in sys.modules
sys.modules["ray"] = None  # as if Ray were not installed
try:
    BACKENDS["ray"]
except ConfigError as err:
    assert "pip install 'hubevo[ray]'" in str(err), err
else:
    raise AssertionError("no ConfigError")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
