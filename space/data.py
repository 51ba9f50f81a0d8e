"""What the Space shows, read from what the loop wrote: leaderboard, family tree, progress, model, status.

Two sources give the same `RunData`: a local run directory (its `state.json` when there is
one, so a running evolution shows every evaluated candidate; else `results.parquet` and
`lineage.json`) and a results dataset `{namespace}/{run}-results` on the Hub. Everything
past loading is a pure function of `RunData` that returns a table or a small dataclass
(a model's detail also reads its card file).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import pandas as pd
import yaml
from pydantic import ValidationError

from hubevo.config import RunConfig
from hubevo.errors import HubError
from hubevo.hub.client import ensure_api, hub_call
from hubevo.publish import lineage_graph, results_frame
from hubevo.state import STATE_FILE, RunState, load_state

HF_URL = "https://huggingface.co"
RESULT_FILES = ("results.parquet", "lineage.json", "config.yaml")
RESULT_COLUMNS = (
    "generation", "evaluated_in", "id", "model", "kind", "method", "parents", "genes", "status", "reason",
    "fitness", "heldout", "examples", "seconds", "survivor", "repo",
)
LEADERBOARD_COLUMNS = ["rank", "run", "model", "generation", "method", "parents", "fitness", "held-out", "status",
                       "survivor"]
STATUS_COLUMNS = ["run", "state", "generation", "candidate", "elapsed", "time left", "best fitness", "message"]
ALL = "all"


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

    def row(self, model_id: str) -> pd.Series | None:
        hits = self.results[self.results["id"] == model_id]
        return hits.iloc[0] if len(hits) else None


# loading ---------------------------------------------------------------------------------------------
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
    results = with_columns(results_frame(state))
    results["repo"] = hub_repos(state, config, results["id"])
    cards = {cid: Path(folder) / "README.md" for cid, folder in state.saved.items()}
    return RunData(name=config.get("name") or run_dir.name, source="local", where=str(run_dir), results=results,
                   lineage=lineage_graph(state), config=config, state=state,
                   cards={cid: p for cid, p in cards.items() if p.is_file()},
                   saved_at=(run_dir / STATE_FILE).stat().st_mtime)


def read_results_folder(folder: Path, *, source: str, where: str) -> RunData:
    """A run from `results.parquet`, `lineage.json` and `config.yaml` (a results dataset's files)."""
    config = read_yaml(folder / "config.yaml")
    parquet, lineage = folder / "results.parquet", folder / "lineage.json"
    results = with_columns(pd.read_parquet(parquet) if parquet.is_file() else pd.DataFrame())
    graph = json.loads(lineage.read_text()) if lineage.is_file() else {"nodes": [], "edges": []}
    name = config.get("name") or Path(where).name.removesuffix("-results")
    return RunData(name=name, source=source, where=where, results=results, lineage=graph, config=config)


def load_results_repo(repo_id: str, *, api=None, cache_dir: Path | None = None) -> RunData:
    """A results dataset `{namespace}/{run}-results` from the Hub; HubError naming the repo on failure."""
    api = ensure_api(api)
    with hub_call(repo_id, action="read the results dataset", api=api, missing=HubError):
        folder = api.snapshot_download(repo_id, repo_type="dataset", allow_patterns=list(RESULT_FILES),
                                       cache_dir=cache_dir)
    return read_results_folder(Path(folder), source="hub", where=repo_id)


def fetch_card(repo_id: str, *, api=None) -> str:
    """The README of a model repo on the Hub (a survivor's lineage card)."""
    api = ensure_api(api)
    with hub_call(repo_id, action="read the card of", api=api, missing=HubError):
        return Path(api.hf_hub_download(repo_id, "README.md")).read_text()


def read_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    return data if isinstance(data, dict) else {}


def with_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every standard column (an empty run has none)."""
    frame = frame.copy()
    for column in RESULT_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.Series([None] * len(frame), dtype=object)
    return frame


def hub_repos(state: RunState, config: dict, ids: Iterable[str]) -> list[str | None]:
    """The Hub repo of each individual, as the results dataset records it (None when only local)."""
    from hubevo.hub.publish import hub_repo_of

    try:
        cfg = RunConfig.model_validate(config)
    except ValidationError:
        return [None for _ in ids]
    return [hub_repo_of(state, cfg, cid) for cid in ids]


# leaderboard -----------------------------------------------------------------------------------------
def model_link(name: str, repo: str | None, *, hub_url: str = HF_URL) -> str:
    """Markdown for a model cell: a link to its Hub repo, or the bare name when it lives only on disk."""
    return f"[{name}]({hub_url.rstrip('/')}/{repo})" if isinstance(repo, str) and repo else name


def link_text(cell: str) -> str:
    """The model name inside a `model_link` cell."""
    match = re.match(r"^\[(.*)\]\(.*\)$", str(cell))
    return match.group(1) if match else str(cell)


def leaderboard(
    runs: Sequence[RunData], *, run: str = ALL, generation: str | int = ALL, query: str = "",
    survivors_only: bool = False, hub_url: str = HF_URL,
) -> pd.DataFrame:
    """Every candidate of `runs`, best fitness first, filtered by run, generation and a text query."""
    frames = [r.results.assign(run=r.name) for r in runs if run in (ALL, r.name) and len(r.results)]
    if not frames:
        return pd.DataFrame(columns=LEADERBOARD_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    if generation not in (ALL, None, ""):
        table = table[table["generation"] == int(generation)]
    if survivors_only:
        table = table[table["survivor"].fillna(False).astype(bool)]
    if query.strip():
        text = table["model"].astype(str) + " " + table["method"].astype(str) + " " + table["run"]
        table = table[text.str.contains(query.strip(), case=False, regex=False)]
    table = table.sort_values(["fitness", "generation", "model"], ascending=[False, True, True], na_position="last")
    return pd.DataFrame({
        "rank": range(1, len(table) + 1),
        "run": table["run"].to_numpy(),
        "model": [model_link(n, r, hub_url=hub_url) for n, r in zip(table["model"], table["repo"], strict=True)],
        "generation": table["generation"].astype(int).to_numpy(),
        "method": table["method"].to_numpy(),
        "parents": [" + ".join(p) if len(p) else "-" for p in table["parents"].map(_as_list)],
        "fitness": table["fitness"].map(_rounded).to_numpy(),
        "held-out": table["heldout"].map(_rounded).to_numpy(),
        "status": table["status"].to_numpy(),
        "survivor": ["yes" if s is True else "" for s in table["survivor"]],
    })


def generations_of(runs: Sequence[RunData], *, run: str = ALL) -> list[int]:
    found = {int(g) for r in runs if run in (ALL, r.name) for g in r.results["generation"].dropna()}
    return sorted(found)


def model_choices(runs: Sequence[RunData]) -> list[tuple[str, str]]:
    """(label, key) of every candidate, best first within each run; the key is `run/id`."""
    choices = []
    for r in runs:
        table = r.results.sort_values("fitness", ascending=False, na_position="last")
        choices += [(f"{r.name} · {m}", model_key(r.name, i)) for m, i in zip(table["model"], table["id"], strict=True)]
    return choices


def model_key(run_name: str, model_id: str) -> str:
    return f"{run_name}/{model_id}"


def find_model(runs: Sequence[RunData], key: str | None) -> tuple[RunData, str] | None:
    """The run and individual id of a `run/id` key, or of a `run/name` key (as the leaderboard shows it)."""
    if not key or "/" not in key:
        return None
    run_name, _, ident = key.partition("/")
    for r in runs:
        if r.name == run_name:
            hits = r.results[(r.results["id"] == ident) | (r.results["model"] == ident)]
            if len(hits):
                return r, str(hits.iloc[0]["id"])
    return None


def _as_list(value) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [str(v) for v in value]


def _rounded(value) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 4)


# family tree -----------------------------------------------------------------------------------------
def lineage_digraph(lineage: dict) -> nx.DiGraph:
    graph = nx.DiGraph()
    for node in lineage.get("nodes", []):
        graph.add_node(node["id"], **{k: v for k, v in node.items() if k != "id"})
    for edge in lineage.get("edges", []):
        graph.add_edge(edge["source"], edge["target"])
    return graph


def family_tree(lineage: dict, model_id: str) -> nx.DiGraph:
    """The model and all its ancestors; every edge parent -> child carries the child's merge method."""
    graph = lineage_digraph(lineage)
    if model_id not in graph:
        raise KeyError(f"model {model_id!r} is not in the lineage graph")
    tree = graph.subgraph(nx.ancestors(graph, model_id) | {model_id}).copy()
    for _parent, child, data in tree.edges(data=True):
        data["method"] = tree.nodes[child].get("method") or ""
    return tree


def tree_layout(tree: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """x = generation, y = rank within the generation (best fitness on top), centred on 0."""
    by_generation: dict[int, list[str]] = {}
    for node, data in tree.nodes(data=True):
        by_generation.setdefault(int(data.get("generation") or 0), []).append(node)
    positions = {}
    for generation, nodes in by_generation.items():
        nodes.sort(key=lambda n: (-_fitness_or_inf(tree.nodes[n].get("fitness")), str(tree.nodes[n].get("name", n))))
        for rank, node in enumerate(nodes):
            positions[node] = (float(generation), (len(nodes) - 1) / 2 - rank)
    return positions


def _fitness_or_inf(value) -> float:
    return -math.inf if value is None or pd.isna(value) else float(value)


# progress --------------------------------------------------------------------------------------------
STATS_COLUMNS = ["generation", "candidates", "failed", "best fitness", "mean fitness", "champion",
                 "champion fitness", "champion held-out"]


def generation_stats(results: pd.DataFrame) -> pd.DataFrame:
    """Per generation: candidates evaluated in it, their best and mean fitness, and the champion so far.

    The champion after generation g is the best candidate evaluated up to g; its held-out score
    is the one the loop measured when it survived (held-out tasks never select).
    """
    rows = []
    for generation in sorted(int(g) for g in results["evaluated_in"].dropna().unique()):
        now = results[results["evaluated_in"] == generation]
        ok = now[now["status"] == "ok"]
        so_far = results[(results["evaluated_in"] <= generation) & (results["status"] == "ok")]
        best = so_far.sort_values(["fitness", "id"], ascending=False).iloc[0] if len(so_far) else None
        rows.append({
            "generation": generation, "candidates": len(now), "failed": len(now) - len(ok),
            "best fitness": _rounded(ok["fitness"].max()) if len(ok) else None,
            "mean fitness": _rounded(ok["fitness"].mean()) if len(ok) else None,
            "champion": best["model"] if best is not None else None,
            "champion fitness": _rounded(best["fitness"]) if best is not None else None,
            "champion held-out": _rounded(best["heldout"]) if best is not None else None,
        })
    return pd.DataFrame(rows, columns=STATS_COLUMNS)


# model detail ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelDetail:
    run: str
    id: str
    name: str
    kind: str
    generation: int
    method: str
    parents: list[str]
    status: str
    fitness: float | None
    heldout: float | None
    scores: dict[str, float]
    repo: str | None
    recipe: str  # mergekit YAML ("" for a seed)
    card: str | None  # the lineage card (README.md), when there is one


def model_detail(run: RunData, model_id: str, *, card: str | None = None) -> ModelDetail:
    """Everything known about one candidate; `card` overrides the local README (e.g. fetched from the Hub)."""
    row = run.row(model_id)
    if row is None:
        raise KeyError(f"model {model_id!r} is not in run {run.name!r}")
    scores = {k: float(v) for k, v in row.items() if "/" in str(k) and isinstance(v, (int, float)) and not pd.isna(v)}
    local = run.cards.get(model_id)
    return ModelDetail(
        run=run.name, id=model_id, name=str(row["model"]), kind=str(row["kind"]), generation=int(row["generation"]),
        method=str(row["method"]), parents=_as_list(row["parents"]), status=str(row["status"]),
        fitness=_rounded(row["fitness"]), heldout=_rounded(row["heldout"]), scores=scores,
        repo=row["repo"] if isinstance(row["repo"], str) else None, recipe=recipe_yaml(run, model_id),
        card=card if card is not None else (local.read_text() if local else None),
    )


def recipe_yaml(run: RunData, model_id: str) -> str:
    """The mergekit YAML of a candidate, naming parents by Hub repo (else by name); "" for a seed."""
    if run.state is not None:
        ind = run.state.individuals[model_id]
        if ind.genome is None:
            return ""
        from hubevo.genome import to_merge_dict

        refs = dict(zip(run.results["id"], run.results["model"], strict=True))
        refs |= {i: ind.name for i, ind in run.state.individuals.items() if i not in refs}
        refs |= {i: r for i, r in zip(run.results["id"], run.results["repo"], strict=True) if isinstance(r, str)}
        return yaml.safe_dump(to_merge_dict(ind.genome, refs=refs, dtype=run.config.get("dtype", "float32")),
                              sort_keys=False)
    repos = {m: r for m, r in zip(run.results["model"], run.results["repo"], strict=True) if isinstance(r, str)}
    return recipe_from_row(run.row(model_id), refs=repos, dtype=run.config.get("dtype", "float32"))


def recipe_from_row(row: pd.Series, *, refs: Mapping[str, str] | None = None, dtype: str = "float32") -> str:
    """A candidate's mergekit recipe from a results-table row: the stored recipe (parents by name),
    or, for tables without that column, one rebuilt from genes and parents (`refs` renames parents)."""
    if isinstance(row.get("recipe"), str) and row["recipe"]:
        return yaml.safe_dump(_renamed(yaml.safe_load(row["recipe"]), refs or {}), sort_keys=False)
    if row["kind"] == "seed" or not isinstance(row["genes"], str):
        return ""
    genes = json.loads(row["genes"])
    parents = [(refs or {}).get(p, p) for p in _as_list(row["parents"])]
    per_parent = genes.get("per_parent") or []
    merged = parents[: len(per_parent)] if per_parent else parents
    models = [{"model": p, "parameters": g} if g else {"model": p} for p, g in zip(merged, per_parent or [{}] * len(merged), strict=True)]
    config: dict = {"merge_method": row["method"], "models": models, "dtype": dtype}
    base = parents[len(merged):]
    if row["method"] == "slerp" and parents:
        config["base_model"] = parents[0]
    elif base:
        config["base_model"] = base[0]
    if genes.get("shared"):
        config["parameters"] = genes["shared"]
    return yaml.safe_dump(config, sort_keys=False)


def _renamed(node, refs: Mapping[str, str]):
    """A recipe with every model reference (`model`, `base_model`) renamed through `refs`."""
    if isinstance(node, dict):
        return {k: (refs.get(v, v) if k in ("model", "base_model") and isinstance(v, str) else _renamed(v, refs))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed(v, refs) for v in node]
    return node


def split_card(text: str) -> tuple[str, str]:
    """(YAML metadata, markdown body) of a model card."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n(.*)$", text, flags=re.DOTALL)
    return (match.group(1), match.group(2)) if match else ("", text)


# run status ------------------------------------------------------------------------------------------
def local_status(run: RunData, *, now: float | None = None) -> dict:
    """A status dict (the controller's shape) for a run found on disk that no controller manages."""
    budget = run.config.get("budget", {}) or {}
    ok = run.results[run.results["status"] == "ok"]
    best = _rounded(ok["fitness"].max()) if len(ok) else None
    base = {"name": run.name, "generations": budget.get("generations"), "best_fitness": best, "eta_s": None}
    if run.state is None:
        return {**base, "state": "published" if run.source == "hub" else "finished", "generation": None,
                "candidate": None, "candidates": None, "elapsed_s": None, "message": run.where}
    state = run.state
    done = sum(1 for i in state.population if i in state.evaluations)
    if state.finished:
        phase, message = "finished", state.stop_reason or ""
    else:
        ago = format_duration((time.time() if now is None else now) - run.saved_at) if run.saved_at else "?"
        phase, message = "unfinished", f"not managed here; state saved {ago} ago (resume with `hubevo evolve --resume`)"
    return {**base, "state": phase, "generation": state.generation, "candidate": done,
            "candidates": len(state.population), "elapsed_s": state.elapsed_s, "message": message}


def status_table(statuses: Sequence[Mapping]) -> pd.DataFrame:
    """One row per run: state, generation g / G, candidate c / C, elapsed and remaining time, best fitness."""
    rows = [{
        "run": s.get("name"), "state": s.get("state"),
        "generation": _of(s.get("generation"), s.get("generations")),
        "candidate": _of(s.get("candidate"), s.get("candidates")),
        "elapsed": format_duration(s.get("elapsed_s")), "time left": format_duration(s.get("eta_s")),
        "best fitness": _rounded(s.get("best_fitness")), "message": s.get("message") or "",
    } for s in statuses]
    return pd.DataFrame(rows, columns=STATUS_COLUMNS)


def merge_statuses(managed: Sequence[Mapping], found: Sequence[Mapping]) -> list[Mapping]:
    """The controller's runs first, then runs found on disk or on the Hub under another name."""
    names = {s.get("name") for s in managed}
    return [*managed, *(s for s in found if s.get("name") not in names)]


def _of(done, total) -> str:
    if done is None:
        return "-"
    return f"{done} / {total}" if total is not None else str(done)


def format_duration(seconds: float | None) -> str:
    if seconds is None or pd.isna(seconds):
        return "-"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
