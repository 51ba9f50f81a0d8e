"""The Leaderboard tab and the keys that pick a model: every candidate of every run, best first.

Pure functions of `RunData`. A model is picked by a `run/id` key (the pickers' values) or a
`run/name` key (what a leaderboard row shows); its model cell links to its Hub repo.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from space.loading import RunData, as_list, rounded
from space.ranking import best_first, champion_id

HF_URL = "https://huggingface.co"
LEADERBOARD_COLUMNS = ["rank", "run", "model", "generation", "method", "parents", "fitness", "held-out", "status",
                       "survivor"]
ALL = "all"


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
    """Every candidate of `runs`, best first (`space.ranking`), filtered by run, generation and a text query."""
    frames = [r.results.assign(run=r.name) for r in runs if run in (ALL, r.name) and len(r.results)]
    if not frames:
        return pd.DataFrame(columns=LEADERBOARD_COLUMNS)
    table = best_first(_filtered(pd.concat(frames, ignore_index=True), generation=generation, query=query,
                                 survivors_only=survivors_only))
    return pd.DataFrame({
        "rank": range(1, len(table) + 1),
        "run": table["run"].to_numpy(),
        "model": [model_link(n, r, hub_url=hub_url) for n, r in zip(table["model"], table["repo"], strict=True)],
        "generation": table["generation"].astype(int).to_numpy(),
        "method": table["method"].to_numpy(),
        "parents": [" + ".join(p) if len(p) else "-" for p in table["parents"].map(as_list)],
        "fitness": table["fitness"].map(rounded).to_numpy(),
        "held-out": table["heldout"].map(rounded).to_numpy(),
        "status": table["status"].to_numpy(),
        "survivor": ["yes" if s is True else "" for s in table["survivor"]],
    })


def _filtered(table: pd.DataFrame, *, generation: str | int, query: str, survivors_only: bool) -> pd.DataFrame:
    if generation not in (ALL, None, ""):
        table = table[table["generation"] == int(generation)]
    if survivors_only:
        table = table[table["survivor"].fillna(False).astype(bool)]
    if query.strip():
        text = table["model"].astype(str) + " " + table["method"].astype(str) + " " + table["run"]
        table = table[text.str.contains(query.strip(), case=False, regex=False)]
    return table


def generations_of(runs: Sequence[RunData], *, run: str = ALL) -> list[int]:
    found = {int(g) for r in runs if run in (ALL, r.name) for g in r.results["generation"].dropna()}
    return sorted(found)


def model_choices(runs: Sequence[RunData]) -> list[tuple[str, str]]:
    """(label, key) of every candidate, best first within each run; the key is `run/id`."""
    choices = []
    for r in runs:
        table = best_first(r.results)
        choices += [(f"{r.name} · {m}", model_key(r.name, i)) for m, i in zip(table["model"], table["id"], strict=True)]
    return choices


def champion_key(runs: Sequence[RunData]) -> str | None:
    """The key of the first run's champion (the model the pickers open on); None before any candidate succeeded."""
    for r in runs:
        if (cid := champion_id(r.results)) is not None:
            return model_key(r.name, cid)
    return None


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
