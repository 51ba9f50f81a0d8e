"""Continuous mode: apscheduler jobs that keep populations evolving, one generation at a time.

Per population (a folder `runs_root/<name>/` holding `run.yaml`, `control.json` and the run's
output), two jobs:

- `generation`: resume the run for exactly one more generation (evaluate, select, write
  survivors, publish), until its budget's generation count is reached;
- `immigrants` (when the population has a Hub query): look for new compatible models and
  queue them to join the next generation.

A Hub webhook can bring immigrants instead of the polling: `Scheduler.handle` answers a
webhook event (served by `hubevo.hub.webhooks.webhooks_server`) for every run whose query it
matches, and queues a one-off `immigrant_job` for the model at the commit that was checked.

All jobs share one worker thread, so only one generation touches the GPU at a time, and
every job is `max_instances=1` and coalescing. Jobs live in a SQLite job store in hubevo's state
folder (`state_dir`: one folder per runs folder, never inside it), so they and their next run times
survive a restart; a lost job store is rebuilt from the runs' control files, and a run resumes from
its state file where it stopped. The runs folder itself is only read, and written only in the run
folders a scheduler creates there.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

import yaml
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED

from hubevo.config import RunConfig, load_config, parse_config
from hubevo.errors import ConfigError, HubevoError, RunLockedError, describe_error, is_transient
from hubevo.fsio import atomic_write_text, claim_run_folder
from hubevo.run.lock import run_lock
from hubevo.state.clock import budget_time_left
from hubevo.state.runstate import RunState, RunStatus, load_state, load_status
from hubevo.state.runstate import run_status as status_of

log = logging.getLogger("hubevo")

RUN_FILE, CONTROL_FILE, JOBS_FILE = "run.yaml", "control.json", "jobs.sqlite"
_SCHEDULERS: dict[str, "Scheduler"] = {}  # runs_root -> live scheduler, for jobs to find their Hub client
_RUNNING: set[str] = set()
_SHUT_DOWN: set[str] = set()  # runs roots whose scheduler stopped without waiting: a job broken off is not failed
_LOCK = threading.Lock()
MAX_RETRIES, RETRY_BASE_S = 4, 60.0  # transient failures: tries after the first, and the first backoff


def run_dir(runs_root: Path, name: str) -> Path:
    return Path(runs_root) / name


def state_dir(runs_root: Path) -> Path:
    """hubevo's own folder for the scheduler and Space over `runs_root` (job store, launched jobs): `$HUBEVO_STATE_DIR`,
    else `hubevo/space` in the user's cache folder (`$XDG_CACHE_HOME` or `~/.cache`, beside the demo zoo), then one
    folder per runs folder, named by it and a hash of its absolute path."""
    root = Path(runs_root).resolve()
    home = os.environ.get("HUBEVO_STATE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / \
        "hubevo" / "space"
    return Path(home) / f"{root.name or 'root'}-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"


def check_runs_root(runs_root: Path, *, must_exist: bool = False, field: str = "--runs") -> Path:
    """`runs_root`, absolute, if it can be a folder of runs: a folder this user may read (`must_exist`), or one that
    does not exist yet; ConfigError naming `field` otherwise."""
    root = Path(runs_root).resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{field} {str(root)!r} is a file, not a folder; name the folder that holds the runs")
    if not root.exists() and must_exist:
        raise ConfigError(f"{field} {str(root)!r} does not exist; name an existing folder of runs (it is read, never "
                          "created)")
    if root.exists() and not os.access(root, os.R_OK | os.X_OK):
        raise ConfigError(f"{field} {str(root)!r} cannot be read (permission denied); make it readable or name "
                          "another folder of runs")
    return root


def _job_store(runs_root: Path) -> str:
    """The SQLite URL of `runs_root`'s job store, its folder created."""
    folder = state_dir(runs_root)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create hubevo's state folder {str(folder)!r} for the scheduler's jobs "
                          f"({err.strerror or err}); set HUBEVO_STATE_DIR to a writable folder") from None
    return f"sqlite:///{folder / JOBS_FILE}"


def read_control(folder: Path) -> dict:
    path = folder / CONTROL_FILE
    return json.loads(path.read_text()) if path.is_file() else {"state": "active"}


def managed(folder: Path) -> bool:
    """Whether a scheduler was handed this run (submitted, or seeded on the Space's page): its control file."""
    return (folder / RUN_FILE).is_file() and (folder / CONTROL_FILE).is_file()


def write_control(folder: Path, **fields) -> None:
    atomic_write_text(folder / CONTROL_FILE, json.dumps({**read_control(folder), **fields}, indent=1))


def load_run_config(runs_root: str | Path, name: str) -> RunConfig:
    return load_config(run_dir(Path(runs_root), name) / RUN_FILE)


def next_target(cfg: RunConfig, state: RunState | RunStatus | None = None) -> int | None:
    """The generation to run up to next (after `state`, default: the saved one), or None when the budget's
    generations are done."""
    state = load_state(cfg.output.dir) if state is None else state
    if state is None:
        return 0
    target = state.generation + (1 if state.finished else 0)
    return None if target > cfg.budget.generations else target


# jobs: module-level functions, so the persistent job store can name them --------------------------
def generation_job(runs_root: str, name: str) -> None:
    """Run one more generation of `name` (resuming from its state), then publish."""
    folder = run_dir(Path(runs_root), name)
    if time.time() < read_control(folder).get("retry_at", 0):
        return  # backing off after a transient failure
    with _running(name):
        try:
            one_generation(runs_root, name)
        except RunLockedError as err:  # a manual --resume or another worker has it: try at the next tick
            log.info("run %s: skipped this turn: %s", name, err)
        except Exception as err:  # noqa: BLE001 (the run's boundary: every failure is recorded, none kills the thread)
            if str(Path(runs_root).resolve()) in _SHUT_DOWN:  # Ctrl-C or SIGTERM: the interpreter is going down
                log.info("run %s: stopped mid-generation with its scheduler; it goes on at the next start", name)
                return
            record_failure(runs_root, name, err)


def one_generation(runs_root: str, name: str) -> None:
    from hubevo.run.loop import evolve
    from hubevo.run.state_sync import pull_state

    folder = run_dir(Path(runs_root), name)
    cfg = load_run_config(runs_root, name)
    pull_state(cfg, resume=True, api=_api(runs_root))  # a job's empty disk: count from the Hub state
    target = next_target(cfg)
    if target is None:
        # The jobs go before "finished" is written, so whoever sees "finished" sees no jobs of the run.
        # A kill in between leaves an active run without jobs, which rebuild() restores.
        _remove_jobs(runs_root, name)
        write_control(folder, state="finished")
        return
    budget = cfg.budget.model_copy(update={"generations": target})
    evolve(cfg.model_copy(update={"budget": budget}), resume=True, progress=False, api=_api(runs_root))
    write_control(folder, last_error=None, failures=0, retry_at=0)


def record_failure(runs_root: str, name: str, err: Exception) -> None:
    """A permanent failure ends the run (`failed`, with the reason); a transient one is retried with
    exponential backoff, and ends it too after `max_retries` tries in a row."""
    folder = run_dir(Path(runs_root), name)
    reason, live = describe_error(err), _SCHEDULERS.get(str(Path(runs_root).resolve()))
    max_retries, base_s = (live.max_retries, live.retry_base_s) if live else (MAX_RETRIES, RETRY_BASE_S)
    failures = read_control(folder).get("failures", 0) + 1
    if not isinstance(err, HubevoError):
        log.exception("run %s: unexpected error", name)
    if is_transient(err) and failures <= max_retries:
        wait = base_s * 2 ** (failures - 1)
        log.warning("run %s: %s (transient; try %d of %d in %.0f s)", name, reason, failures + 1, max_retries + 1,
                    wait)
        write_control(folder, last_error=reason, failures=failures, retry_at=time.time() + wait)
        return
    kind = "permanent" if not is_transient(err) else f"transient, {failures} tries"
    log.error("run %s failed (%s): %s", name, kind, reason)
    _remove_jobs(runs_root, name)  # before the state that ends it, as in `one_generation`
    write_control(folder, state="failed", last_error=f"{reason} ({kind})", failures=failures, retry_at=0)


def immigrant_job(runs_root: str, name: str, repos: list[str] | None = None) -> None:
    """Queue immigrants for the next generation: `repos` (pinned `org/name@sha`, from a webhook) or else the
    new compatible Hub models matching the population's query."""
    from hubevo.config import Member
    from hubevo.run.run import add_immigrants, start
    from hubevo.seed.discover import discover_members
    from hubevo.seed.members import ResolvedMember, resolve

    cfg = load_run_config(runs_root, name)
    if cfg.population.query is None or load_state(cfg.output.dir) is None:
        return
    with _running(name):
        try:
            with run_lock(cfg.output.dir):
                run = start(cfg, resume=True, progress=False, api=_api(runs_root))
                known = [m["source"] for m in run.state.members.values()]
                if repos is None:
                    reference = ResolvedMember(label="population", source=run.template, path=Path(run.template))
                    found = discover_members(cfg.population.query, reference=reference, api=run.api, exclude=known)
                else:
                    found = [Member(repo=r, name=r.split("@")[0]) for r in repos if r not in known]
                added = add_immigrants(run, [resolve(m, api=run.api) for m in found])
            if added:
                log.info("run %s: %d immigrant(s) queued for the next generation", name, len(added))
        except HubevoError as err:
            log.warning("run %s: looking for immigrants failed: %s", name, err)


class _running:
    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        with _LOCK:
            _RUNNING.add(self.name)

    def __exit__(self, *exc):
        with _LOCK:
            _RUNNING.discard(self.name)


def _api(runs_root: str):
    live = _SCHEDULERS.get(str(Path(runs_root).resolve()))
    return live.api if live else None


def _remove_jobs(runs_root: str, name: str) -> None:
    live = _SCHEDULERS.get(str(Path(runs_root).resolve()))
    if live:
        for job in live.jobs(name):
            job.remove()


class _JoinableExecutor(ThreadPoolExecutor):
    """apscheduler's thread pool, which `join` waits out and then closes; a job submitted after that is
    skipped quietly, where a closed pool would log a failed submission."""

    closed = False

    def submit_job(self, job, run_times):
        if not self.closed:
            super().submit_job(job, run_times)

    def join(self) -> None:
        self.closed = True
        self.shutdown(wait=True)


class _BackgroundScheduler(BackgroundScheduler):
    """apscheduler's background scheduler without its last look for due jobs once stopped. Its thread wakes once
    more after `shutdown`: a one-off job due then (a webhook's immigrant) is not run, and apscheduler's removal
    of it from the stopped scheduler raised `JobLookupError` in that thread. The job store keeps the job, which
    runs at the next start.
    """

    def _process_jobs(self):
        return None if self.state == STATE_STOPPED else super()._process_jobs()


# the controller ------------------------------------------------------------------------------------
class Scheduler:
    """Owns the apscheduler instance; the Space's controller (submit, status, pause, resume, stop)."""

    def __init__(self, runs_root: Path, *, generation_every_s: float = 30, immigrants_every_s: float = 3600,
                 api=None, max_retries: int = MAX_RETRIES, retry_base_s: float = RETRY_BASE_S):
        self.runs_root = check_runs_root(runs_root)  # created with its first run, never before
        self.max_retries, self.retry_base_s = max_retries, retry_base_s
        self.generation_every_s = generation_every_s
        self.immigrants_every_s = immigrants_every_s
        self.api = api
        self._accepted: dict[str, set[str]] = {}  # run -> repos its webhook already queued
        self._executor = _JoinableExecutor(1)  # one generation at a time on the GPU
        self.scheduler = _BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=_job_store(self.runs_root))},
            executors={"default": self._executor},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> "Scheduler":
        _SCHEDULERS[str(self.runs_root)] = self
        _SHUT_DOWN.discard(str(self.runs_root))
        self.scheduler.start()
        self.rebuild()
        return self

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop; with `wait`, after the running and queued jobs end.

        apscheduler's own `shutdown(wait=True)` joins the jobs while it holds its job-store lock, so a job that
        adds or removes jobs as it ends (a finished or failed run removes its own) would wait for that lock
        forever. So first no new submissions (pause), then a barrier: `get_jobs` takes the job-store lock, so a
        submission round in progress has ended when it returns; then the jobs are joined outside the lock.
        """
        if not wait:  # a job still running is broken off as the process ends: the run stays as it was
            _SHUT_DOWN.add(str(self.runs_root))
        if wait and self.scheduler.running:
            self.scheduler.pause()
            self.scheduler.get_jobs()
            self._executor.join()
        self.scheduler.shutdown(wait=wait)
        _SCHEDULERS.pop(str(self.runs_root), None)

    def rebuild(self) -> None:
        """Re-create missing jobs of active runs (a lost job store, or runs copied in by hand with their
        control file). A run folder without one was never handed to a scheduler: it is shown, never resumed."""
        for folder in sorted(p for p in self._folders() if managed(p)):
            if read_control(folder).get("state") == "active" and not self.jobs(folder.name):
                self._schedule(folder.name, load_run_config(self.runs_root, folder.name))

    def _folders(self) -> list[Path]:
        """The folders in the runs folder (none before its first run)."""
        return list(self.runs_root.iterdir()) if self.runs_root.is_dir() else []

    def jobs(self, name: str) -> list:
        return [job for job in self.scheduler.get_jobs() if job.id.startswith(f"{name}:")]

    def submit(self, run_config: dict, *, user: str, root: Path | None = None) -> str:
        """Validate a run config (from the seeding page or a file) and queue it; returns its name.

        Relative paths in it are resolved against `root` (default: the run's own folder). The run's folder is
        created with hubevo's marker; a folder of that name that holds files hubevo did not make is refused.
        """
        name = run_config.get("name") or ""
        folder = run_dir(self.runs_root, name)
        if (folder / RUN_FILE).exists():
            raise ConfigError(f"a run named {name!r} already exists; choose another name")
        cfg = parse_config({**run_config, "output": {"dir": str(folder)}}, root=Path(root or folder),
                           source=f"for run {name!r}")
        data = cfg.model_dump(mode="json")
        claim_run_folder(folder, field="run folder", fix="choose another run name")  # marked like every run folder
        atomic_write_text(folder / RUN_FILE, yaml.safe_dump(data, sort_keys=False))
        write_control(folder, state="active", owner=user, submitted=time.time())
        self._schedule(name, cfg)
        return name

    def _schedule(self, name: str, cfg: RunConfig) -> None:
        args = [str(self.runs_root), name]
        self.scheduler.add_job(generation_job, "interval", seconds=self.generation_every_s, args=args,
                               id=f"{name}:generation", next_run_time=_now(), replace_existing=True)
        if cfg.population.query is not None:
            self.scheduler.add_job(immigrant_job, "interval", seconds=self.immigrants_every_s, args=args,
                                   id=f"{name}:immigrants", replace_existing=True)

    def _known(self, name: str) -> Path:
        folder = run_dir(self.runs_root, name)
        if not name or folder.parent != self.runs_root or not (folder / RUN_FILE).is_file():
            raise ConfigError(f"no run named {name!r} in {str(self.runs_root)!r}")
        return folder

    def pause(self, name: str) -> None:
        folder = self._known(name)
        for job in self.jobs(name):
            job.pause()
        write_control(folder, state="paused")

    def resume(self, name: str) -> None:
        """Resume a paused run, or try a failed or stopped one again (after its input was fixed)."""
        folder = self._known(name)
        for job in self.jobs(name):
            job.resume()
        write_control(folder, state="active", failures=0, retry_at=0)
        if not self.jobs(name):
            self._schedule(name, load_run_config(self.runs_root, name))

    def stop(self, name: str) -> None:
        folder = self._known(name)
        for job in self.jobs(name):
            job.remove()
        write_control(folder, state="stopped")

    def status(self) -> list[dict]:
        return [run_status(folder, running=folder.name in _RUNNING)
                for folder in sorted(self._folders()) if (folder / RUN_FILE).is_file()]

    def handle(self, payload) -> dict:
        """A Hub webhook event (`WebhookPayload`): each active run whose query it matches queues the model as an
        immigrant (a one-off job after the generation in hand); the answer says what each run decided."""
        from hubevo.seed.immigrants import ImmigrantWebhook

        answers = {}
        for name, cfg in self._listening():
            hook = ImmigrantWebhook(cfg.population.query, on_candidate=functools.partial(self.immigrant, name),
                                    api=self.api, accepted=self._accepted.setdefault(name, set()))
            answers[name] = hook.handle(payload)
        return {"runs": answers} if answers else {"status": "ignored", "reason": "no active run has a Hub query"}

    def immigrant(self, name: str, repo: str) -> None:
        """Queue `repo` (`org/name@sha`) to join run `name`'s next generation."""
        self.scheduler.add_job(immigrant_job, args=[str(self.runs_root), name, [repo]], id=f"{name}:immigrant:{repo}",
                               next_run_time=_now(), replace_existing=True, misfire_grace_time=None)

    def _listening(self) -> list[tuple[str, RunConfig]]:
        runs = []
        for folder in sorted(p for p in self._folders() if managed(p)):
            if read_control(folder).get("state") == "active":
                cfg = load_run_config(self.runs_root, folder.name)
                if cfg.population.query is not None:
                    runs.append((folder.name, cfg))
        return runs


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def progress_message(cfg: RunConfig, state: RunState | RunStatus | None, *, phase: str) -> str:
    """Why a finished run stopped; for one still going, the generations done and the one running or next."""
    if state is None:
        return "queued"
    if phase not in ("running", "paused"):
        return state.stop_reason or ""
    done, total = state.generations_done, cfg.budget.generations
    if done is None or done < state.generation and not state.finished:
        return f"generation {state.generation} of {total} running"
    scored = " (the members scored)" if done == 0 else ""
    return f"generation {done} of {total} done{scored}; generation {done + 1} is next"


def budget_spent(cfg: RunConfig, state: RunState | RunStatus) -> bool:
    """Whether a run has no budget left: its generations, its wall time or its evaluations."""
    budget = cfg.budget
    evaluated = state.evaluated if isinstance(state, RunStatus) else len(state.evaluations)
    return (next_target(cfg, state) is None
            or (budget.wall_time_s is not None and state.elapsed_s >= budget.wall_time_s)
            or (budget.max_evaluations is not None and evaluated >= budget.max_evaluations))


def best_of(status) -> float | None:
    """The best fitness any candidate scored (status files written before that field: the champion's)."""
    if status is None:
        return None
    return status.best_fitness if status.best_fitness is not None else status.champion_fitness


def time_left_of(cfg: RunConfig, status) -> tuple[float, float] | None:
    """(low, high) seconds left from the measured generation times (`hubevo.state.clock`), as the loop's lines say."""
    if status is None or status.generations_done is None:
        return None
    return budget_time_left(cfg.budget, generation=status.generations_done, evaluated=status.evaluated,
                            ends=status.generation_ends)


def run_status(folder: Path, *, running: bool = False) -> dict:
    """One run's progress for the status page: generation, candidate, time left, best fitness. Read from the
    run's `status.json`, a few hundred bytes, rather than its whole state (which a tick would parse anew)."""
    cfg = load_config(folder / RUN_FILE)
    control, status = read_control(folder), load_status(folder)
    if status is None and (state := load_state(folder)) is not None:
        status = status_of(state)  # written before status files existed, or the status is stale
    estimate = time_left_of(cfg, status)
    phase = control.get("state", "active")
    if phase == "active":  # started and not done: running, also between its generation jobs
        done = status is not None and status.finished and budget_spent(cfg, status)
        phase = "running" if running or (status is not None and not done) else "finished" if done else "queued"
    return {
        "name": folder.name, "state": phase, "generation": status.generations_done if status else None,
        "generations": cfg.budget.generations, "candidate": status.candidate if status else 0,
        "candidates": status.candidates if status else 0, "elapsed_s": status.elapsed_s if status else 0.0,
        "eta_s": estimate[1] if estimate else None, "eta_low_s": estimate[0] if estimate else None,
        "best_fitness": best_of(status),
        "message": control.get("last_error") or progress_message(cfg, status, phase=phase),
        "owner": control.get("owner"),
    }
