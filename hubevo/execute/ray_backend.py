"""Stage 2's engine on a Ray cluster: evaluation workers as actors, fine-tuning mutations as tasks.

Workers are Ray actors that load the resident model once (the in-memory materialisation of
`hubevo.breed.materialize`) and then receive merge configs, never weights: parents are read from
their safetensors folders through mmap, so a node's page cache holds them once for all
workers. The driver keeps the run state; a worker only ever returns an `Evaluation`.
Model folders, task folders and the run directory must be visible at the same paths on
every node (one machine, or a shared filesystem).

Pipelining. An actor runs two calls at a time (`max_concurrency=2`) over two resident
slots: while one candidate is evaluated in one slot, the next one is merged into the other,
so the evaluation stage waits neither for a merge nor for the driver (one slot when the
model does not fit twice; then the second call waits in the actor instead). The driver
keeps two candidates in flight per worker, filled breadth first, and hands out the next
one as soon as a result comes back, to whichever worker freed up: no lock-step batches.

Determinism. mergekit draws DARE/DELLA masks from torch's global generator, which lm-eval
reseeds at the start of every evaluation (`simple_evaluate` is the only place lm-eval 0.4
seeds torch); merging in one thread while evaluating in another would let the two
interleave. A worker therefore tells lm-eval not to seed torch and holds one lock over
every merge. Its first evaluation runs under that lock too, seeded as lm-eval would, and
checks whether it drew from torch's generator: fitness tasks that do not sample
(log-likelihood, multiple choice, greedy generation) draw nothing, so later evaluations
overlap merges freely; tasks that sample keep the lock and the seed, trading the overlap
for results identical to the local backend's.

Resources follow the cluster: GPU actors only where GPUs exist, CPU actors (one CPU, one
torch thread) otherwise; a request no node can hold is an error, never a silent hang.
`gpus_per_worker > 1` spreads one resident model over that many GPUs (accelerate's
device map). Fine-tuned children (dpo, sft) train in Ray tasks with their own resource
request, and a run that fine-tunes keeps one worker's share free for them.

Faults. A worker that dies (killed, out of host memory) loses its in-flight candidates
(at most two); each is retried once, alone on another worker where there is one, then
recorded as failed. The dead worker is replaced. A torch out-of-memory error inside a
worker fails only that candidate, after releasing the memory.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import ray
from ray.exceptions import ActorUnschedulableError, RayActorError, WorkerCrashedError
from ray.exceptions import OutOfMemoryError as RayOutOfMemoryError

from hubevo.config import ExecutionConfig, RunConfig
from hubevo.errors import CandidateError, ConfigError, HubevoError
from hubevo.evaluation.records import Evaluation
from hubevo.execute.runner import CandidateJob, RunnerSpec, failed, scored_evaluation, train, trained

log = logging.getLogger("hubevo")

IN_FLIGHT = 2  # candidates per worker: one evaluating, one merging (or queued in the actor)
# An actor runs IN_FLIGHT + 1 calls at once: the extra thread answers `ready` and `cancel` while both slots work.
MAX_ATTEMPTS = 2  # a candidate whose worker dies is retried once, then recorded as failed
MAX_RESTARTS = 3  # replacements of one worker slot before the slot is given up
STARTUP_WARN_S = 60.0
STARTUP_TIMEOUT_S = 900.0
DEFAULT_CPU_WORKERS = 2
LMEVAL_TORCH_SEED = 1234  # lm_eval.defaults.DEFAULT_OTHER_SEED: what simple_evaluate seeds torch with
WORKER_ENV = {"TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error"}
WORKER_DEATHS = (RayActorError, RayOutOfMemoryError, ActorUnschedulableError)


class RayBackendError(HubevoError, RuntimeError):
    """The cluster cannot run the workers: unreachable, too small, or every worker fails to start."""


# resources: a pure function of the execution config and the cluster's nodes ---------------------
@dataclass(frozen=True)
class ResourcePlan:
    workers: int
    num_cpus: int
    num_gpus: float
    threads: int  # torch threads per worker
    train_cpus: float  # what one fine-tuning task asks for
    train_gpus: float
    note: str


def plan_resources(execution: ExecutionConfig, nodes: list[dict], *, trains: bool = False) -> ResourcePlan:
    """Worker count and shape for the cluster described by `ray.nodes()`: GPU actors only where GPUs exist.

    With `trains` (the run fine-tunes children), one worker's share is kept free for the
    fine-tuning tasks, so that they never wait on evaluation workers that hold everything; a
    cluster with a single share lets the two squeeze onto it (half a GPU each, or a task
    that asks for no CPU).
    """
    alive = [node["Resources"] for node in nodes if node.get("Alive", True)]
    gpus = execution.gpus_per_worker
    if gpus > 0 and any(res.get("GPU", 0) > 0 for res in alive):
        if gpus > 1 and not gpus.is_integer():
            raise ConfigError(f"execution.gpus_per_worker={gpus:g}: above 1 it must be a whole number of GPUs")
        cpus = max(1, math.ceil(gpus))
        capacity = sum(min(int(res.get("GPU", 0) // gpus), int(res.get("CPU", 0) // cpus)) for res in alive)
        if capacity == 0:
            most = max(res.get("GPU", 0) for res in alive)
            raise RayBackendError(
                f"execution.gpus_per_worker={gpus:g} (with {cpus} CPU) fits on no node of the cluster; "
                f"the largest node has {most:g} GPUs"
            )
        return _capped(execution, capacity=capacity, default=capacity, cpus=cpus, gpus=gpus, trains=trains,
                       kind=f"GPU workers ({gpus:g} GPU, {cpus} CPU each)")
    capacity = sum(int(res.get("CPU", 0)) for res in alive)
    if capacity == 0:
        raise RayBackendError("the Ray cluster advertises no CPU and no GPU; no worker can be scheduled")
    why = "no GPU in the cluster: " if gpus > 0 else ""
    return _capped(execution, capacity=capacity, default=DEFAULT_CPU_WORKERS, cpus=1, gpus=0.0, trains=trains,
                   kind=f"{why}CPU workers (1 CPU, 1 torch thread each)")


def _capped(execution, *, capacity: int, default: int, cpus: int, gpus: float, trains: bool, kind: str):
    room = capacity - 1 if trains and capacity > 1 else capacity
    wanted = execution.workers or default
    workers = min(wanted, room)
    note = f"{workers} {kind}"
    if workers < wanted:
        kept = " less one share kept for fine-tuning" if trains else ""
        note += f"; {wanted} asked, the cluster holds {capacity}{kept}"
    train_cpus, train_gpus = (1, gpus) if gpus else (1, 0.0)
    if trains and room == capacity:  # a single share: evaluation and fine-tuning squeeze onto it
        gpus, train_gpus, train_cpus = (gpus / 2, gpus / 2, 1) if gpus else (gpus, 0.0, 0)
        note += "; fine-tuning shares it"
    return ResourcePlan(workers=workers, num_cpus=cpus, num_gpus=gpus, threads=cpus, train_cpus=train_cpus,
                        train_gpus=train_gpus, note=note)


# the worker actor -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    evaluation: Evaluation
    spans: tuple[tuple[str, float, float], ...]  # (stage, start, end), wall-clock seconds


class EvalWorker:
    """A Ray actor (`ray.remote(EvalWorker)`): resident models, an Evaluator, one merge and one evaluation at a time."""

    def __init__(self, spec: RunnerSpec):
        import torch
        from transformers import AutoTokenizer

        from hubevo.evaluation.evaluator import Evaluator

        torch.set_num_threads(spec.threads)
        logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its per-call warnings, once per candidate
        self.spec = spec
        self.device = "cuda" if ray.get_gpu_ids() else "cpu"
        kwargs = dict(spec.fitness.lm_eval_kwargs)
        self.torch_seed = kwargs.pop("torch_random_seed", LMEVAL_TORCH_SEED)
        fitness = spec.fitness.model_copy(update={"lm_eval_kwargs": {**kwargs, "torch_random_seed": None}})
        self.evaluator = Evaluator(fitness, device=self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(spec.template)
        self.slots: queue.Queue = queue.Queue()
        first = self._materializer()
        self.slots.put(first)
        if not spec.shard and self._fits_twice(first.model):
            self.slots.put(self._materializer())
        self.slot_count = self.slots.qsize()
        self.merge_lock, self.eval_lock, self.rng_lock = threading.Lock(), threading.Lock(), threading.Lock()
        self.eval_draws: bool | None = None  # does an evaluation draw from torch's generator? (first one tells)
        self.cancelled: set[str] = set()  # job keys whose other copy already finished: skip if not started

    def cancel(self, key: str) -> None:
        self.cancelled.add(key)

    def ready(self) -> dict:
        return {"device": self.device, "slots": self.slot_count, "pid": os.getpid(),
                "node": ray.get_runtime_context().get_node_id()}

    def score(self, job: CandidateJob) -> Outcome | None:
        import torch

        spans = []
        slot = self.slots.get()
        try:
            with self.merge_lock, self.rng_lock:
                if self._cancelled(job):
                    return None
                begin = time.time()
                model = slot.materialize(job.merge, adapter=job.adapter)
                spans.append(("merge", begin, time.time()))
            with self.eval_lock:
                if self._cancelled(job):
                    return None
                begin = time.time()
                scored = self._fitness(model, job=job)
                spans.append(("evaluate", begin, time.time()))
        except (CandidateError, torch.OutOfMemoryError) as err:
            self._release()
            return Outcome(failed(job, reason=str(err) or type(err).__name__, seconds=_busy(spans)), tuple(spans))
        finally:
            self.slots.put(slot)
        evaluation = scored_evaluation(job, scored, seconds=_busy(spans))  # merge + evaluation, as locally
        return Outcome(evaluation, tuple(spans))

    def _cancelled(self, job: CandidateJob) -> bool:
        if job.key not in self.cancelled:
            return False
        self.cancelled.discard(job.key)
        return True

    def _fitness(self, model, *, job: CandidateJob):
        if self.eval_draws is False:  # nothing in it touches torch's generator: overlap merges freely
            return self.evaluator.fitness(model, self.tokenizer, generation=job.generation, sample=job.sample)
        import torch

        with self.rng_lock:
            torch.manual_seed(self.torch_seed)  # what simple_evaluate does when it seeds torch
            before = _rng_states()
            result = self.evaluator.fitness(model, self.tokenizer, generation=job.generation, sample=job.sample)
            if self.eval_draws is None:
                self.eval_draws = not all(a.equal(b) for a, b in zip(before, _rng_states(), strict=True))
        return result

    def _materializer(self):
        import torch

        from hubevo.breed.materialize import Materializer

        dtype = getattr(torch, self.spec.dtype)
        if not self.spec.shard:
            return Materializer(self.spec.template, device=self.device, dtype=dtype)
        # Load on the host, then spread the layers over this actor's GPUs; mergekit then merges
        # on the host and each merged tensor is copied onto the GPU that holds its parameter.
        from accelerate import dispatch_model, infer_auto_device_map

        slot = Materializer(self.spec.template, device="cpu", dtype=dtype)
        room = {gpu: int(0.8 * torch.cuda.mem_get_info(gpu)[0]) for gpu in range(torch.cuda.device_count())}
        device_map = infer_auto_device_map(slot.model, max_memory=room,
                                           no_split_module_classes=slot.model._no_split_modules)
        dispatch_model(slot.model, device_map=device_map)
        return slot

    def _fits_twice(self, model) -> bool:
        """A second slot only if it leaves a quarter of the device (or host) memory for evaluation."""
        import psutil
        import torch

        size = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
        if self.device == "cuda":
            free, total = torch.cuda.mem_get_info()
        else:
            memory = psutil.virtual_memory()
            free, total = memory.available, memory.total
        return free - size >= 0.25 * total

    def _release(self) -> None:
        import torch

        gc.collect()
        if self.device == "cuda":
            torch.cuda.empty_cache()


def _rng_states() -> list:
    import torch

    states = [torch.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states += torch.cuda.get_rng_state_all()
    return states


def _busy(spans: list[tuple[str, float, float]]) -> float:
    return sum(end - start for _, start, end in spans)


# fine-tuning mutations as Ray tasks --------------------------------------------------------------
@ray.remote(num_cpus=1, num_gpus=0, max_retries=1, retry_exceptions=False)
def run_finetune_task(job: CandidateJob, *, threads: int = 1) -> dict:
    """The runner's fine-tuning stage on a Ray worker (its GPU, if the task was given one).

    Resources are set per call: `run_finetune_task.options(num_gpus=1).remote(...)`. Writes the
    child as the local backend does (a temporary sibling renamed into place, with its
    `training.json`), so a resumed run finds a finished folder or none. Returns the metrics.
    A worker that dies is retried once by Ray; a `CandidateError` (diverged, out of memory,
    empty sample) is not.
    """
    import torch

    device = "cuda" if ray.get_gpu_ids() else "cpu"
    if device == "cpu":
        torch.set_num_threads(threads)
    return train(job, device=device)


# the driver side --------------------------------------------------------------------------------
@dataclass
class _Worker:
    index: int
    actor: object
    probe: object | None  # ObjectRef of `ready()` until the actor has answered it
    jobs: dict = field(default_factory=dict)  # ObjectRef -> CandidateJob
    restarts: int = 0


@dataclass
class _Round:
    """One `evaluate` call: where candidates come from and what waits for a worker."""

    source: Iterator[CandidateJob]
    waiting: deque = field(default_factory=deque)  # Jobs ready to run: retries and freshly trained children
    training: dict = field(default_factory=dict)  # ObjectRef of a fine-tuning task -> CandidateJob
    exhausted: bool = False


class RayBackend:
    """Runs candidate jobs on a Ray cluster's workers as they free up; yields evaluations as they finish."""

    name = "ray"
    worker_class = EvalWorker

    def __init__(self, spec: RunnerSpec, execution: ExecutionConfig, *, trains: bool = False):
        self._owns_ray = connect(execution.address)
        self.plan = plan_resources(execution, ray.nodes(), trains=trains)
        self.spec = replace(spec, device=None, threads=self.plan.threads, shard=self.plan.num_gpus > 1)
        log.info("ray backend: %s", self.plan.note)
        self._ever_ready, self._since = False, time.monotonic()
        self.workers = [self._spawn(index) for index in range(self.plan.workers)]
        self.spans: list[tuple[int, str, float, float]] = []  # (worker slot, stage, start, end)
        self.retried: list[str] = []  # ids of candidates re-run after their worker died
        self.covered: list[str] = []  # ids of candidates whose worker died while another copy still ran
        self.dispatched: list[tuple[str, int]] = []  # (candidate id, worker slot), in dispatch order

    @classmethod
    def for_run(cls, cfg: RunConfig, *, runner) -> "RayBackend":
        """The backend of a run: workers built like the driver's `runner` (same template, tasks, dtype)."""
        return cls(runner.spec, cfg.execution, trains=cfg.fine_tunes)

    # public -------------------------------------------------------------------------------------
    def evaluate(self, jobs: Iterable[CandidateJob]) -> Iterator[Evaluation]:
        round_ = _Round(source=iter(jobs))
        try:
            while True:
                self._dispatch(round_)
                jobs = [ref for w in self.workers for ref in w.jobs]
                if round_.exhausted and not (jobs or round_.waiting or round_.training):
                    return
                probes = [w.probe for w in self.workers if w.probe is not None]
                done, _ = ray.wait(jobs + list(round_.training) + probes, num_returns=1, timeout=STARTUP_WARN_S)
                if not done:
                    self._check_startup()
                elif done[0] in round_.training:
                    yield from self._trained(done[0], round_)
                else:
                    yield from self._collect(done[0], round_)
        finally:  # a caller that stops early abandons what is in flight; the next round starts clean
            for worker in self.workers:
                worker.jobs.clear()

    def submit_finetune(self, job: CandidateJob):
        """Start training fine-tuned child `job` as a Ray task with the plan's training resources."""
        return run_finetune_task.options(num_cpus=self.plan.train_cpus, num_gpus=self.plan.train_gpus).remote(
            job, threads=self.plan.threads)

    def close(self) -> None:
        for worker in self.workers:
            ray.kill(worker.actor)
        self.workers = []
        if self._owns_ray:
            ray.shutdown()

    # dispatch -----------------------------------------------------------------------------------
    def _dispatch(self, round_: _Round) -> None:
        """Top every ready worker up to IN_FLIGHT jobs, breadth first: each gets one before any gets two.

        A retry runs alone on its worker (which first drains), so that if this worker dies
        too, the death is blamed on that candidate only and no bystander loses its second try.
        """
        ready = [w for w in self.workers if w.probe is None]
        for depth in range(1, IN_FLIGHT + 1):
            for worker in ready:
                if len(worker.jobs) >= depth or any(j.attempt > 1 for j in worker.jobs.values()):
                    continue
                job = next((j for j in round_.waiting if j.avoid != worker.index or len(ready) == 1), None)
                if job is not None and job.attempt > 1 and worker.jobs:
                    continue
                if job is not None:
                    round_.waiting.remove(job)
                else:
                    job = self._next_job(round_)
                if job is not None:
                    self._submit(worker, job)
        if round_.exhausted and not (round_.waiting or round_.training):
            self._back_up(ready)

    def _submit(self, worker: _Worker, job: CandidateJob) -> None:
        worker.jobs[worker.actor.score.remote(job)] = job
        self.dispatched.append((job.id, worker.index))

    def _back_up(self, ready: list[_Worker]) -> None:
        """The round's tail: an idle worker also runs a job still queued behind another (first result wins).

        Work handed out two deep cannot move once given; without this, one worker could sit
        idle while another still holds two candidates. Results are deterministic, so either
        copy is the evaluation; the loser is cancelled if it has not started, ignored if it has.
        """
        for idle in (w for w in ready if not w.jobs):
            copies = Counter(job.key for w in self.workers for job in w.jobs.values())
            queued = [job for w in ready if len(w.jobs) >= IN_FLIGHT
                      for job in list(w.jobs.values())[1:] if copies[job.key] == 1]  # behind the one evaluating
            if queued:
                self._submit(idle, queued[-1])

    def _next_job(self, round_: _Round) -> CandidateJob | None:
        """The next job ready to evaluate; fine-tuned children go to training first (once)."""
        while not round_.exhausted:
            job = next(round_.source, None)
            round_.exhausted = job is None
            if job is None or trained(job):
                return job
            round_.training[self.submit_finetune(job)] = job
        return None

    # results and faults -------------------------------------------------------------------------
    def _trained(self, ref, round_: _Round) -> Iterator[Evaluation]:
        job = round_.training.pop(ref)
        try:
            ray.get(ref)
        except (CandidateError, *WORKER_DEATHS, WorkerCrashedError) as err:
            reason = str(getattr(err, "cause", None) or _first_line(err))  # a task's error: the CandidateError
            log.warning("candidate %s failed: %s", job.name, reason)
            yield failed(job, reason=reason)
            return
        round_.waiting.append(job)

    def _collect(self, ref, round_: _Round) -> Iterator[Evaluation]:
        worker = next(w for w in self.workers if ref in w.jobs or ref == w.probe)
        if ref == worker.probe:
            self._started(worker)
            return
        job = worker.jobs.pop(ref)
        try:
            outcome = ray.get(ref)
        except WORKER_DEATHS as err:
            yield from self._lost(worker, [job, *worker.jobs.values()], err, round_)
            return
        self._drop_copies(job.key)
        self.spans += [(worker.index, stage, start, end) for stage, start, end in outcome.spans]
        if outcome.evaluation.status == "failed":
            log.warning("candidate %s failed: %s", job.name, outcome.evaluation.reason)
        yield outcome.evaluation

    def _drop_copies(self, key: str) -> None:
        """Stop waiting for the other copy of a finished job, and tell its worker to skip it."""
        for worker in self.workers:
            for ref, job in list(worker.jobs.items()):
                if job.key == key:
                    del worker.jobs[ref]
                    worker.actor.cancel.remote(key)

    def _lost(self, worker: _Worker, jobs: list[CandidateJob], err: Exception, round_: _Round) -> Iterator[Evaluation]:
        """Worker died: replace it; retry each of its jobs once elsewhere, then record it failed."""
        log.warning("ray worker %d died with %d candidate(s) in flight: %s", worker.index, len(jobs),
                    _first_line(err))
        worker.jobs.clear()
        self._replace(worker, err)
        alive = {job.key for w in self.workers for job in w.jobs.values()}
        for job in jobs:
            if job.key in alive:  # its backup copy is still running elsewhere
                self.covered.append(job.id)
                continue
            if job.attempt < MAX_ATTEMPTS:
                self.retried.append(job.id)
                round_.waiting.append(replace(job, attempt=job.attempt + 1, avoid=worker.index))
            else:
                yield failed(job, reason=f"its worker died on {MAX_ATTEMPTS} attempts: {_first_line(err)}")

    def _started(self, worker: _Worker) -> None:
        try:
            info = ray.get(worker.probe)
        except WORKER_DEATHS as err:
            if not self._ever_ready:  # every worker would fail the same way: say why now
                raise RayBackendError(f"ray worker {worker.index} failed to start: {_first_line(err)}") from err
            worker.probe = None
            self._replace(worker, err)
            return
        worker.probe, self._ever_ready = None, True
        log.info("ray worker %d ready on %s (%d resident slot%s, node %s)", worker.index, info["device"],
                 info["slots"], "" if info["slots"] == 1 else "s", info["node"][:8])

    def _replace(self, worker: _Worker, err: Exception) -> None:
        ray.kill(worker.actor, no_restart=True)
        if worker.restarts >= MAX_RESTARTS:
            log.warning("ray worker %d gave up after %d restarts", worker.index, worker.restarts)
            self.workers.remove(worker)
            if not self.workers:
                raise RayBackendError(f"every ray worker died; the last error: {_first_line(err)}") from err
            return
        fresh = self._spawn(worker.index)
        worker.actor, worker.probe, worker.restarts = fresh.actor, fresh.probe, worker.restarts + 1

    def _spawn(self, index: int) -> _Worker:
        actor = ray.remote(self.worker_class).options(
            num_cpus=self.plan.num_cpus, num_gpus=self.plan.num_gpus, max_concurrency=IN_FLIGHT + 1, max_restarts=0,
            runtime_env={"env_vars": {**WORKER_ENV, "OMP_NUM_THREADS": str(self.plan.threads)}},
        ).remote(self.spec)
        self._since = time.monotonic()
        return _Worker(index=index, actor=actor, probe=actor.ready.remote())

    def _check_startup(self) -> None:
        """Nothing finished for a while: if no worker has started, say what is missing, then give up."""
        if any(w.probe is None for w in self.workers):
            return
        waited = time.monotonic() - self._since
        message = (f"no ray worker has started after {waited:.0f} s; each asks for {self.plan.num_cpus} CPU and "
                   f"{self.plan.num_gpus:g} GPU, the cluster has {ray.available_resources()} free")
        if waited >= STARTUP_TIMEOUT_S:
            raise RayBackendError(message)
        log.warning(message)


def connect(address: str) -> bool:
    """Join the cluster at `address` (auto: a running one; local: start one here). True if we started it."""
    if ray.is_initialized():
        return False
    options = {"include_dashboard": False} if address == "local" else {}
    try:
        ray.init(address=address, logging_level=logging.WARNING, **options)
    except ConnectionError as err:
        raise RayBackendError(
            f"execution.address {address!r} found no Ray cluster ({err}); start one with `ray start --head`, "
            "pass its address (ray://host:10001), or set execution.address: local to start one in this process"
        ) from err
    return address == "local"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
