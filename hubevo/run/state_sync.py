"""The run state on the Hub (`publish.state: hub`): the loop's memory kept where a job's disk is not.

This wraps the whole loop. Before the state is opened (`hubevo.run.run.start`), `pull_state` brings
a run folder that holds no state up to date from the run's results dataset
(`{namespace}/{run}-results`, under `state/`), so a worker started on an empty disk resumes where
the last one stopped; a state written under another config is refused, naming the fields that
differ. After every save of the state (`Run.save`), `StateSync` pushes the run folder's state files
every `publish.state_every` paid evaluations and at each step of a generation (evaluated, survivors
chosen, next generation begun, run finished).

One commit holds the state (the strategy's included), events, results table, lineage, config and
the survivors' cards and recipes, never weights: a survivor is rebuilt from its recipe. The client
drops files the Hub already holds, so a repeated push changes nothing; survivor repos are pushed by
`hubevo.publish.hub`, idempotent by their tags. A failed push is logged and done by the next one.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from hubevo.config import RunConfig
from hubevo.errors import ConfigError, HubError
from hubevo.fsio import atomic_write_text
from hubevo.hub.client import ensure_api, hub_call
from hubevo.hub.repos import commit_files, download_folder, ensure_repo, folder_files
from hubevo.state.runstate import STATE_FILE, RunState, changed_fields, load_state, same_config

log = logging.getLogger("hubevo")

STATE_PREFIX = "state/"
STATE_PATTERNS = [
    STATE_FILE, "events.jsonl", "config.yaml", "env.json", "results.parquet", "results.csv", "lineage.json",
    "outcomes.parquet",
    "models/*/README.md", "models/*/recipe.yaml", "candidates/*/training.json",
    # a LoRA child is its parent plus its adapter: without it a resumed job could not rebuild the child
    "candidates/*/adapter_config.json", "candidates/*/adapter_model.safetensors",
]


class HubStateError(ConfigError):
    """The Hub holds a state this run may not take: another config's, or a run not asked to resume."""


# what is pushed (pure over the run folder) -----------------------------------------------------------
def state_files(run_dir: Path) -> dict[str, Path]:
    """Path in the dataset -> local file of every state file of `run_dir` (no weights, no caches)."""
    return {STATE_PREFIX + path: file for path, file in folder_files(Path(run_dir), patterns=STATE_PATTERNS).items()}


def milestone(state: RunState) -> tuple:
    """The steps of a generation that each get a push: evaluated, survivors chosen, next begun, finished."""
    return state.generation, state.told, tuple(sorted(state.survivors)), state.finished


def paid(state: RunState) -> int:
    """Evaluations paid for so far: fitness, validation and held-out scores."""
    return len(state.evaluations) + len(state.validation) + len(state.heldout)


# push -----------------------------------------------------------------------------------------------
def push_state(*, run_dir: Path, cfg: RunConfig, state: RunState, api=None) -> str:
    """One commit of the run folder's state files to the results dataset; returns its repo id."""
    api = ensure_api(api)
    repo_id = cfg.publish.results_repo(cfg.name)
    files = state_files(run_dir)
    message = f"run state: generation {state.generation}, {len(state.evaluations)} candidates"
    with hub_call(repo_id, action="push the run state to", api=api, missing=HubError):
        ensure_repo(api, repo_id, private=cfg.publish.private, repo_type="dataset")
        commit_files(api, repo_id, files, message=message, repo_type="dataset")
    return repo_id


@dataclass
class StateSync:
    """Decides, after each save of the state, whether the Hub copy is due; remembers what it last pushed."""

    cfg: RunConfig
    api: object | None = None
    pushed_paid: int = 0
    pushed_at: tuple | None = None

    @classmethod
    def of(cls, cfg: RunConfig, *, state: RunState, api=None) -> StateSync | None:
        """The sync of a run whose state lives on the Hub (None for `publish.state: local`), at `state`."""
        if cfg.publish.state != "hub":
            return None
        return cls(cfg=cfg, api=api, pushed_paid=paid(state), pushed_at=milestone(state))

    def due(self, state: RunState) -> bool:
        return paid(state) - self.pushed_paid >= self.cfg.publish.state_every or milestone(state) != self.pushed_at

    def saved(self, *, run_dir: Path, state: RunState) -> None:
        """Push the state if it is due; a failure is logged and left to the next push."""
        if not self.due(state):
            return
        try:
            push_state(run_dir=run_dir, cfg=self.cfg, state=state, api=self.api)
        except HubError as err:
            log.warning("pushing the run state to the Hub failed (it is kept locally; the next push retries): %s", err)
            return
        self.pushed_paid, self.pushed_at = paid(state), milestone(state)


# pull -----------------------------------------------------------------------------------------------
def pull_state(cfg: RunConfig, *, resume: bool, api=None) -> RunState | None:
    """Fill `cfg.output.dir`, when it holds no state, from the run's Hub state (if that paid for anything).

    HubStateError when that state was written under another config (naming the changed fields), or
    when `resume` is False (a fresh run would overwrite it).
    """
    if cfg.publish.state != "hub" or (Path(cfg.output.dir) / STATE_FILE).is_file():
        return None  # a state on disk is this run's latest: only an empty folder is filled from the Hub
    repo_id = cfg.publish.results_repo(cfg.name)
    folder = download_state(repo_id, api=api)
    state = load_state(folder) if folder is not None else None
    if state is None or not state.evaluations:
        return None
    check_config(state, cfg, folder=folder, repo_id=repo_id)
    if not resume:
        raise HubStateError(
            f"the Hub dataset {repo_id!r} holds the state of run {cfg.name!r} (generation {state.generation}, "
            f"{len(state.evaluations)} candidates); pass --resume to continue it, or give the run another name")
    copy_state(folder, Path(cfg.output.dir))
    log.info("resumed run %s from %s: generation %d, %d candidates", cfg.name, repo_id, state.generation,
             len(state.evaluations))
    return state


def download_state(repo_id: str, *, api=None) -> Path | None:
    """The `state/` folder of the results dataset in the local cache; None when there is none."""
    api = ensure_api(api)
    with hub_call(repo_id, action="download the run state from", api=api, missing=HubError):
        path = download_folder(api, repo_id, repo_type="dataset", patterns=[f"{STATE_PREFIX}**"])
    folder = path / STATE_PREFIX if path is not None else None
    return folder if folder is not None and (folder / STATE_FILE).is_file() else None


def check_config(state: RunState, cfg: RunConfig, *, folder: Path, repo_id: str) -> None:
    if same_config(state, cfg, run_dir=folder):  # output.dir as the Hub's copy of config.yaml names it
        return
    changed = changed_fields(folder, cfg)
    raise HubStateError(
        f"the Hub dataset {repo_id!r} holds the state of run {cfg.name!r} made with a different config"
        f"{f' (changed: {changed})' if changed else ''}; resume it with the same config (only budget generations, "
        "max_evaluations and wall_time_s, publish, execution and tracking may change), or give the run another "
        "name")


def copy_state(folder: Path, run_dir: Path) -> None:
    """Copy the downloaded state files into `run_dir`, the state itself last (a partial copy is no state)."""
    for source in sorted(folder.rglob("*")):
        rel = source.relative_to(folder)
        if source.is_file() and rel.as_posix() != STATE_FILE:
            (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, run_dir / rel)
    atomic_write_text(run_dir / STATE_FILE, (folder / STATE_FILE).read_text())
