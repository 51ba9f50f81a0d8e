"""The runs the Space shows, kept between requests: local run directories and results datasets.

Local runs are re-read only when their state, table, recorded decision or config file changed,
and the Status tab's tick reads a changed run's `status.json` rather than its whole state (its
best fitness comes from the run as the page last read it); results datasets are downloaded once and again
on `refresh`; a survivor's card is fetched from its Hub repo once. A folder or dataset that cannot
be read becomes a note, logged once when it appears or changes, and the others are still shown.
The catalog only reads: showing a run never writes into its folder.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import yaml

from hubevo.errors import HubevoError
from hubevo.publish.decision import DECISION_FILE
from hubevo.state.runstate import STATE_FILE, load_status
from space.data.loading import (
    RunData,
    fetch_card,
    load_results_repo,
    load_run_dir,
    read_yaml,
    run_dirs,
)
from space.data.status import best_fitness, local_status, saved_status

log = logging.getLogger("hubevo.space")


class Catalog:
    """The runs the Space shows: local run directories (re-read when they change) and results datasets."""

    def __init__(self, *, runs_root: Path, hub_datasets: Sequence[str], api=None):
        self.runs_root, self.hub_datasets, self.api = Path(runs_root), list(hub_datasets), api
        self._local: dict[Path, tuple[tuple, RunData]] = {}
        self._hub: list[RunData] | None = None
        self._cards: dict[str, str] = {}
        self.notes: dict[str, str] = {}
        self._lock = threading.Lock()  # Gradio serves requests from several threads

    def runs(self) -> list[RunData]:
        with self._lock:
            local = [(d, r) for d in run_dirs(self.runs_root) if (r := self._local_run(d)) is not None]
            hub = self._hub_runs()
        local_names, hub_names = shown_names([(r.name, d) for d, r in local], [r.name for r in hub])
        return [r if r.name == n else dataclasses.replace(r, name=n)
                for r, n in zip([r for _, r in local] + hub, local_names + hub_names)]

    def statuses(self) -> list[dict]:
        """A status dict per run (`space.data.status`); a local run is read from its `status.json` when that is
        current, so a tick costs no reload of a large live run. Runs are named as `runs` names them."""
        with self._lock:
            local = [(d, s) for d in run_dirs(self.runs_root) if (s := self._local_status(d)) is not None]
            hub = [local_status(r) for r in self._hub_runs()]
        local_names, hub_names = shown_names([(s["name"], d) for d, s in local], [s["name"] for s in hub])
        return [{**s, "name": n} for s, n in zip([s for _, s in local] + hub, local_names + hub_names)]

    def refresh(self) -> None:
        with self._lock:
            self._hub, self._cards = None, {}

    def card(self, run: RunData, model_id: str) -> str | None:
        """A Hub run's model card, fetched from the model's repo once; None when it has none."""
        repo = run.row(model_id)["repo"]
        if run.source != "hub" or not isinstance(repo, str):
            return None
        if repo not in self._cards:
            try:
                self._cards[repo] = fetch_card(repo, api=self.api)
            except HubevoError as err:
                return f"*The card of `{repo}` could not be read: {err}*"
        return self._cards[repo]

    def _local_status(self, run_dir: Path) -> dict | None:
        status = load_status(run_dir)
        if status is not None:
            config = read_yaml(run_dir / "config.yaml")
            known = self._local.get(run_dir)  # the run as last read: a tick never parses a whole state
            return saved_status(status, name=config.get("name") or run_dir.name, config=config,
                                saved_at=(run_dir / STATE_FILE).stat().st_mtime,
                                best=best_fitness(known[1]) if known is not None else None)
        run = self._local_run(run_dir)
        return local_status(run) if run is not None else None

    def _local_run(self, run_dir: Path) -> RunData | None:
        stamp = _stamp(run_dir)
        cached = self._local.get(run_dir)
        if cached is None or cached[0] != stamp:
            try:
                self._local[run_dir] = (stamp, load_run_dir(run_dir))
                self.notes.pop(str(run_dir), None)
            except (OSError, ValueError, yaml.YAMLError) as err:  # a half-copied or foreign folder
                self._note(str(run_dir), f"could not read run directory {str(run_dir)!r}: {err}")
                return None
        return self._local[run_dir][1]

    def _hub_runs(self) -> list[RunData]:
        if self._hub is None:
            loaded = []
            for repo_id in self.hub_datasets:
                try:
                    loaded.append(load_results_repo(repo_id, api=self.api))
                    self.notes.pop(repo_id, None)
                except (HubevoError, OSError, ValueError, yaml.YAMLError) as err:
                    self._note(repo_id, str(err))
            self._hub = loaded
        return self._hub

    def _note(self, where: str, text: str) -> None:
        """Keep a note for the page; log it once, when it is new or has changed (not on every page load)."""
        if self.notes.get(where) != text:
            log.warning("%s", text)
        self.notes[where] = text


def _stamp(run_dir: Path) -> tuple:
    """When a run directory's state, table, recorded decision and config last changed."""
    return tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in
                 (run_dir / STATE_FILE, run_dir / "results.parquet", run_dir / DECISION_FILE, run_dir / "config.yaml"))


def shown_names(local: Sequence[tuple[str, Path]], hub: Sequence[str]) -> tuple[list[str], list[str]]:
    """The names the tabs show, so every run can be told apart and chosen: a local run's own, or `name (folder)`
    where several folders hold runs of one name (runs of one config, seeds of a bench); a results dataset's
    own, or `name@hub` where a local run is shown by that name. A model's key is `run/id`: no name has a `/`."""
    counts = Counter(name for name, _ in local)
    local_names = [name if counts[name] == 1 else f"{name} ({Path(folder).name})" for name, folder in local]
    return local_names, [name if name not in local_names else f"{name}@hub" for name in hub]
