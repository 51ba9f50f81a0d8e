"""The Leaderboard tab and the keys that pick a model: every candidate of every run, each run's champion first.

Pure functions of `RunData`. Runs are shown one after the other: each run's champion
(`space.data.ranking.champion_id`) heads its run's rows behind a badge, with the reason the run recorded
for it (`space.data.verdict`) in its `why` cell; then the run's other candidates, best first, ranked within
the run. The scores come first (fitness and validation with their standard errors, held-out), so they
stay beside the model name on a narrow screen; every task a shown candidate was scored on has a fitness
or held-out column; a model of an m2n2 archive shows its niche (the fitness examples it alone solves
there). The columns shown and the score sorted by (across runs) are the user's. A model is
picked by a `run/id` key (the pickers' values) or a `run/name` key (what a leaderboard row shows); its
model cell links to its Hub repo when the run published it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from space.data.loading import RunData, as_list, rounded
from space.data.numbers import error_column
from space.data.ranking import best_first, champion_id

HF_URL = "https://huggingface.co"
SCORES = ["fitness", "validation", "held-out"]
LEADERBOARD_COLUMNS = ["model", "fitness", error_column("fitness"), "validation", error_column("validation"),
                       "held-out", "rank", "run", "generation", "method", "parents", "status", "survivor", "pareto",
                       "niche"]
WHY = "why"  # the champion's row: the run's recorded reason; after the per-task columns
ALL = "all"
BADGE = "★"
SORT_DEFAULT = "rank"


def model_link(name: str, repo: str | None, *, hub_url: str = HF_URL) -> str:
    """Markdown for a model cell: a link to its Hub repo, or the bare name when it lives only on disk."""
    return f"[{name}]({hub_url.rstrip('/')}/{repo})" if isinstance(repo, str) and repo else name


def link_text(cell: str) -> str:
    """The model name inside a model cell (a `model_link`, maybe behind the champion's badge)."""
    text = str(cell).removeprefix(f"{BADGE} ")
    match = re.match(r"^\[(.*)\]\(.*\)$", text)
    return match.group(1) if match else text


def leaderboard(
    runs: Sequence[RunData], *, run: str = ALL, generation: str | int = ALL, query: str = "",
    survivors_only: bool = False, hub_url: str = HF_URL, columns: Sequence[str] | None = None,
    sort_by: str = SORT_DEFAULT,
) -> pd.DataFrame:
    """Every candidate of `runs` (or of the one named `run`), run after run: the run's champion (badged, with its
    recorded reason) first, then best first (`space.data.ranking`), ranked within the run; filtered by generation,
    survival and a text query, with a column per task a shown candidate was scored on.

    `columns` picks the columns shown (the model always is); `sort_by` names a score column to sort every shown
    row by instead, best first.
    """
    shown_runs = [r for r in runs if run in (ALL, r.name) and len(r.results)]
    frames = [run_rows(r, generation=generation, query=query, survivors_only=survivors_only) for r in shown_runs]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=[*LEADERBOARD_COLUMNS, WHY])
    table = pd.concat(frames, ignore_index=True)
    reasons = {r.name: r.reason or "" for r in shown_runs}
    shown = pd.DataFrame({
        "model": [badged(model_link(n, r, hub_url=hub_url), c) for n, r, c in
                  zip(table["model"], table["repo"], table["is_champion"], strict=True)],
        "fitness": table["fitness"].map(rounded).to_numpy(),
        error_column("fitness"): table["fitness_stderr"].map(rounded).to_numpy(),
        "validation": table["validation"].map(rounded).to_numpy(),
        error_column("validation"): table["validation_stderr"].map(rounded).to_numpy(),
        "held-out": table["heldout"].map(rounded).to_numpy(),
        "rank": table["rank"].to_numpy(),
        "run": table["run"].to_numpy(),
        "generation": table["generation"].astype(int).to_numpy(),
        "method": table["method"].to_numpy(),
        "parents": [" + ".join(p) if len(p) else "-" for p in table["parents"].map(as_list)],
        "status": table["status"].to_numpy(),
        "survivor": ["yes" if s is True else "" for s in table["survivor"]],
        "pareto": ["yes" if _is_true(p) else "" for p in table["pareto"]],
        "niche": niche_cells(table),
        **{c: table[c].map(rounded).to_numpy() for c in task_columns(table)},
        WHY: [reasons[r] if c else "" for r, c in zip(table["run"], table["is_champion"], strict=True)],
    })
    return sorted_by(chosen(shown, columns), sort_by)


def niche_cells(table: pd.DataFrame) -> list[str]:
    """An m2n2 archive model's niche (the fitness examples it alone solves there); empty elsewhere and in tables
    written before the column existed."""
    if "niche" not in table.columns:
        return [""] * len(table)
    return [n if isinstance(n, str) else "" for n in table["niche"]]


def run_rows(run: RunData, *, generation: str | int, query: str, survivors_only: bool) -> pd.DataFrame:
    """One run's rows that pass the filters: its champion first, then best first, ranked 1, 2, ... in the run."""
    table = champions_first(run.results.assign(run=run.name), runs=[run])
    table = table.assign(rank=range(1, len(table) + 1))
    return _filtered(table, generation=generation, query=query, survivors_only=survivors_only)


def task_columns(results: pd.DataFrame) -> list[str]:
    """The per-task score columns of a results table that hold a score: `fitness/<task>` first, then
    `heldout/<task>` (a column another run brought into a joined table, empty here, is left out)."""
    scored = [c for c in sorted(results.columns) if results[c].notna().any()]
    return ([c for c in scored if str(c).startswith("fitness/")]
            + [c for c in scored if str(c).startswith("heldout/")])


def column_choices(runs: Sequence[RunData], *, run: str = ALL) -> list[str]:
    """Every column the leaderboard can show besides the model: the per-task columns of the runs shown."""
    frames = [r.results for r in runs if run in (ALL, r.name) and len(r.results)]
    tasks = task_columns(pd.concat(frames, ignore_index=True)) if frames else []
    return [*LEADERBOARD_COLUMNS[1:], *tasks, WHY]


def sort_choices(runs: Sequence[RunData], *, run: str = ALL) -> list[str]:
    """What the leaderboard can be sorted by: its rank (each run's order) or any score column."""
    tasks = [c for c in column_choices(runs, run=run) if "/" in c]
    return [SORT_DEFAULT, *SCORES, *tasks, "generation"]


def chosen(table: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    if columns is None:
        return table
    return table[["model", *(c for c in table.columns if c in set(columns) and c != "model")]]


def sorted_by(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows sorted by `column`, highest first and missing values last; the core's rank breaks ties."""
    if column in (SORT_DEFAULT, "", None) or column not in table.columns or column == "model":
        return table.reset_index(drop=True)
    values = pd.to_numeric(table[column], errors="coerce")
    missing, negated = values.isna().to_numpy(), (-values.fillna(0)).to_numpy()
    order = sorted(range(len(table)), key=lambda i: (missing[i], negated[i], i))
    return table.iloc[order].reset_index(drop=True)


def champions_first(table: pd.DataFrame, *, runs: Sequence[RunData]) -> pd.DataFrame:
    """Rows best first, with each run's champion (by the core's rule) moved to the top."""
    champions = {(r.name, champion_id(r.results)) for r in runs}
    ordered = best_first(table)
    flags = [(r, i) in champions for r, i in zip(ordered["run"], ordered["id"], strict=True)]
    ordered = ordered.assign(is_champion=pd.Series(flags, index=ordered.index, dtype=bool))
    return pd.concat([ordered[ordered["is_champion"]], ordered[~ordered["is_champion"]]])


def _is_true(flag) -> bool:
    return flag is not None and not (isinstance(flag, float) and pd.isna(flag)) and bool(flag)


def badged(cell: str, is_champion: bool) -> str:
    return f"{BADGE} {cell}" if is_champion else cell


def plain(table: pd.DataFrame) -> pd.DataFrame:
    """A shown leaderboard as a download holds it: model names without markdown, the badge as a column."""
    out = table.copy()
    out.insert(1, "champion", [str(m).startswith(BADGE) for m in table["model"]])
    out["model"] = table["model"].map(link_text)
    return out


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


def lineage_key(runs: Sequence[RunData]) -> str | None:
    """The model the family tree opens on: the first run's champion when it was bred, else that run's best bred
    candidate (a seed's tree is a single box), else the champion."""
    for r in runs:
        if (cid := champion_id(r.results)) is None:
            continue
        table = r.results
        if r.row(cid)["kind"] == "seed":
            bred = table[(table["kind"] != "seed") & (table["status"] == "ok") & table["fitness"].notna()]
            cid = str(best_first(bred).iloc[0]["id"]) if len(bred) else cid
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
