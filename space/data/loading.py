"""Reading what the loop wrote: a local run directory or a Hub results dataset -> `RunData`.

Two sources give the same `RunData`: a local run directory (its `state.json` when there is
one, so a running evolution shows every evaluated candidate; else `results.parquet` and
`lineage.json`) and a results dataset `{namespace}/{run}-results` on the Hub. Either carries
the champion rule's decision as the run recorded it (`champion.json`), which the Space prints
rather than recomputes. Only this module and the catalog that calls it touch disk or the
network, and they only read; every view past it is a pure function of `RunData`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from pydantic import ValidationError

from hubevo.config import RunConfig
from hubevo.hub.download import dataset_snapshot, model_file
from hubevo.publish.decision import DECISION_FILE, decision_record
from hubevo.publish.tables import lineage_graph, recipe_text, results_frame
from hubevo.state.runstate import STATE_FILE, RunState, load_state

RESULT_FILES = ("results.parquet", "lineage.json", "config.yaml", DECISION_FILE)
RESULT_COLUMNS = (
    "generation", "evaluated_in", "id", "model", "kind", "method", "parents", "genes", "recipe", "status", "reason",
    "fitness", "fitness_stderr", "validation", "validation_stderr", "heldout", "examples", "seconds", "survivor",
    "pareto", "champion", "repo", "path",
)


@dataclass(frozen=True)
class RunData:
    """One run as the Space sees it: its candidate table, lineage graph and config."""

    name: str
    source: str  # "local" or "hub"
    where: str  # the run directory, or the results dataset repo id
    results: pd.DataFrame
    lineage: dict
    config: dict
    state: RunState | None = None
    cards: Mapping[str, Path] = field(default_factory=dict)  # individual id -> local README.md
    saved_at: float | None = None  # when the local state was last written (epoch seconds)
    decision: Mapping | None = None  # the champion rule's decision as recorded (`champion.json`); None before it was

    @property
    def reason(self) -> str | None:
        """Why the champion is champion, in the run's own words (the terminal prints it after "why:")."""
        text = (self.decision or {}).get("text")
        return text if isinstance(text, str) and text else None

    def row(self, model_id: str) -> pd.Series | None:
        hits = self.results[self.results["id"] == model_id]
        return hits.iloc[0] if len(hits) else None

    def recipe(self, model_id: str) -> str | None:
        """A candidate's mergekit recipe as YAML: the table's, or rendered from a live run's state."""
        row = self.row(model_id)
        stored = row["recipe"] if row is not None else None
        if isinstance(stored, str) and stored.strip():
            return stored
        if self.state is not None and model_id in self.state.recipes:
            return recipe_text(self.state.recipes[model_id])
        return None


def run_dirs(runs_root: Path) -> list[Path]:
    """`runs_root` itself if it is a run directory, and every run directory directly under it."""
    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        return []
    candidates = [runs_root, *sorted(p for p in runs_root.iterdir() if p.is_dir())]
    return [p for p in candidates if (p / STATE_FILE).is_file() or (p / "results.parquet").is_file()]


def load_run_dir(run_dir: Path) -> RunData:
    """A local run: the live `state.json` when present, else the tables the loop last wrote."""
    run_dir = Path(run_dir)
    config = read_yaml(run_dir / "config.yaml")
    state = load_state(run_dir)
    if state is None:
        return read_results_folder(run_dir, source="local", where=str(run_dir))
    results = with_columns(results_frame(state, recipes=False))  # rendered on demand: `RunData.recipe`
    results["repo"] = hub_repos(state, config, results["id"])
    cards = {cid: Path(folder) / "README.md" for cid, folder in state.saved.items()}
    return RunData(name=config.get("name") or run_dir.name, source="local", where=str(run_dir), results=results,
                   lineage=lineage_graph(state), config=config, state=state,
                   cards={cid: p for cid, p in cards.items() if p.is_file()},
                   saved_at=(run_dir / STATE_FILE).stat().st_mtime, decision=live_decision(run_dir, state))


def read_results_folder(folder: Path, *, source: str, where: str) -> RunData:
    """A run from `results.parquet`, `lineage.json` and `config.yaml` (a results dataset's files)."""
    config = read_yaml(folder / "config.yaml")
    parquet, lineage = folder / "results.parquet", folder / "lineage.json"
    results = with_columns(pd.read_parquet(parquet) if parquet.is_file() else pd.DataFrame())
    graph = json.loads(lineage.read_text()) if lineage.is_file() else {"nodes": [], "edges": []}
    name = config.get("name") or Path(where).name.removesuffix("-results")
    return RunData(name=name, source=source, where=where, results=results, lineage=graph, config=config,
                   decision=read_decision(folder))


def read_decision(folder: Path) -> dict | None:
    """The decision a run recorded in `champion.json`; None when it has none (written before the file existed)
    or it cannot be read."""
    try:
        data = json.loads((Path(folder) / DECISION_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def live_decision(run_dir: Path, state: RunState) -> dict | None:
    """The recorded decision of a run read from its state. A live run saves its state after each candidate and
    records the decision with its tables: when the state's champion has changed since, the decision is the
    core's record of the state in hand (`decision_record`, the same words), never the Space's own comparison."""
    recorded = read_decision(run_dir)
    if recorded is None or recorded.get("champion") == state.champion():
        return recorded
    return decision_record(state)


def load_results_repo(repo_id: str, *, api=None, cache_dir: Path | None = None) -> RunData:
    """A results dataset `{namespace}/{run}-results` from the Hub; HubError naming the repo on failure."""
    folder = dataset_snapshot(repo_id, patterns=list(RESULT_FILES), action="read the results dataset", api=api,
                              cache_dir=cache_dir)
    return read_results_folder(folder, source="hub", where=repo_id)


def fetch_card(repo_id: str, *, api=None) -> str:
    """The README of a model repo on the Hub (a survivor's lineage card)."""
    return model_file(repo_id, "README.md", action="read the card of", api=api).read_text()


def read_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    return data if isinstance(data, dict) else {}


def with_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every standard column (an empty run, or an older table, lacks some)."""
    frame = frame.copy()
    for column in RESULT_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.Series([None] * len(frame), dtype=object)
    return frame


def hub_repos(state: RunState, config: dict, ids: Iterable[str]) -> list[str | None]:
    """The Hub repo of each individual, as the results dataset records it (None when only local)."""
    from hubevo.publish.resolver import Resolver

    try:
        cfg = RunConfig.model_validate(config)
    except ValidationError:
        return [None for _ in ids]
    resolver = Resolver.of(state, cfg)  # one for the table, not one per row
    return [resolver.hub_repo(cid) for cid in ids]


def as_list(value) -> list[str]:
    """A list cell (`parents`) as strings; parquet gives arrays, a missing cell None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [str(v) for v in value]


def rounded(value) -> float | None:
    """A score cell as shown: 4 decimals, None when missing."""
    return None if value is None or pd.isna(value) else round(float(value), 4)
