"""The runs the Space shows, kept between requests: local run directories and results datasets.

Local runs are re-read only when their state, table or config file changed; results datasets
are downloaded once and again on `refresh`; a survivor's card is fetched from its Hub repo
once. A folder or dataset that cannot be read becomes a note, and the others are still shown.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path

import yaml

from hubevo.errors import HubevoError
from space.loading import RunData, fetch_card, load_results_repo, load_run_dir, run_dirs


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
            local = [r for r in map(self._local_run, run_dirs(self.runs_root)) if r is not None]
            hub = self._hub_runs()
        names = {r.name for r in local}
        return local + [r if r.name not in names else dataclasses.replace(r, name=f"{r.name}@hub") for r in hub]

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

    def _local_run(self, run_dir: Path) -> RunData | None:
        stamp = tuple(p.stat().st_mtime_ns if p.exists() else 0
                      for p in (run_dir / "state.json", run_dir / "results.parquet", run_dir / "config.yaml"))
        cached = self._local.get(run_dir)
        if cached is None or cached[0] != stamp:
            try:
                self._local[run_dir] = (stamp, load_run_dir(run_dir))
                self.notes.pop(str(run_dir), None)
            except (OSError, ValueError, yaml.YAMLError) as err:  # a half-copied or foreign folder
                self.notes[str(run_dir)] = f"could not read run directory {str(run_dir)!r}: {err}"
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
                    self.notes[repo_id] = str(err)
            self._hub = loaded
        return self._hub
