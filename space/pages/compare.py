"""Comparisons on the Leaderboard tab: two models side by side, and each run's champion with the reason the run
recorded for it.

Pure functions of `RunData`. The summary prints the champion rule's decision as the run recorded it
(`space.data.verdict`), the same sentence as the terminal and the model cards; only a run written before
decisions were recorded falls back to comparing its champion with the best initial member and the best
standard recipe. Scores are written as on every page (`space.data.numbers`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import pandas as pd

from space.data.loading import RunData, rounded
from space.data.numbers import MISSING, score_text, with_error
from space.data.ranking import best_first, champion_id
from space.data.verdict import champion_scores, markdown_text
from space.pages.leaderboard import BADGE, find_model, task_columns

SCORE_ROWS = ("fitness", "validation", "heldout")
DIFFERENCE = "A − B"  # short enough for a phone's column


def side_by_side(runs: Sequence[RunData], key_a: str | None, key_b: str | None) -> pd.DataFrame:
    """One row per score (fitness, validation, held-out mean, each task), one column per model (with its error
    where known), and their difference, written as on every page."""
    picked = [find_model(runs, k) for k in (key_a, key_b)]
    if any(p is None for p in picked):
        return pd.DataFrame(columns=["score"])
    rows = [run.row(cid) for run, cid in picked]
    names = [str(r["model"]) for r in rows]
    if names[0] == names[1]:
        names = [f"{picked[0][0].name} · {names[0]}", f"{picked[1][0].name} · {names[1]}"]
    scores = [s for s in (*SCORE_ROWS, *task_columns(pd.DataFrame([r.to_dict() for r in rows])))
              if any(_value(r, s) is not None for r in rows)]
    a, b = ([_value(r, s) for s in scores] for r in rows)
    gap = [MISSING if x is None or y is None else f"{x - y:+.3f}" for x, y in zip(a, b, strict=True)]  # A - B
    shown = [[with_error(r.get(s), r.get(f"{s}_stderr")) for s in scores] for r in rows]
    return pd.DataFrame({"score": scores, names[0]: shown[0], names[1]: shown[1], DIFFERENCE: gap})


def recipe_diff(runs: Sequence[RunData], key_a: str | None, key_b: str | None) -> str:
    """A unified diff of the two models' stored mergekit recipes, in full ('' when a model is not found)."""
    picked = [find_model(runs, k) for k in (key_a, key_b)]
    if any(p is None for p in picked):
        return ""
    texts, labels = [], []
    for run, cid in picked:
        row = run.row(cid)
        recipe = run.recipe(cid)
        texts.append(recipe if recipe else f"# {row['kind']}: no mergekit recipe\n")
        labels.append(f"{run.name}/{row['model']}")
    lines = [t.splitlines(keepends=True) for t in texts]
    diff = difflib.unified_diff(*lines, fromfile=labels[0], tofile=labels[1], n=max(map(len, lines)))  # whole recipes
    return "".join(diff) or "# the two recipes are identical\n"


def champion_summary(runs: Sequence[RunData], *, run: str | None = None) -> str:
    """Markdown: each run's champion and why, as the run recorded it."""
    lines = [champion_line(r) for r in runs if run in (None, "", "all", r.name)]
    return "\n\n".join(line for line in lines if line) or "*No champion yet: no candidate has been fully evaluated.*"


def champion_line(run: RunData) -> str:
    """The champion with its own scores and the run's recorded reason; an older run's line (no recorded reason)
    compares it with the best initial member and the best standard recipe, as the Space did before."""
    cid = champion_id(run.results)
    if cid is None:
        return ""
    row = run.row(cid)
    if run.reason is not None:
        scores = champion_scores(run, cid)
        return (f"{BADGE} **{markdown_text(row['model'])}** is the champion of run `{run.name}`"
                + (f" ({scores})" if scores else "") + f". why: {markdown_text(run.reason)}")
    rivals = [(role, best_of(run, rows)) for role, rows in (("best initial member", members(run)),
                                                             ("best standard recipe", standard(run)))]
    against = "; ".join(rival_text(role, row, rival) for role, rival in rivals if rival is not None and
                        rival["id"] != cid)
    return (f"{BADGE} **{row['model']}** is the champion of run `{run.name}`: fitness {score_text(row['fitness'])}, "
            f"held-out {score_text(row['heldout'])}" + (f". Against the {against}." if against else "."))


def rival_text(role: str, champion: pd.Series, rival: pd.Series) -> str:
    """`role` `name`: held-out x (champion +d), or fitness when the rival has no held-out score."""
    column = "heldout" if _value(rival, "heldout") is not None and _value(champion, "heldout") is not None \
        else "fitness"
    gap = _value(champion, column) - _value(rival, column) if _value(rival, column) is not None else None
    lead = f", champion {gap:+.3f}" if gap is not None else ""
    label = "held-out" if column == "heldout" else "fitness (no held-out score)"
    return f"{role} **{rival['model']}**: {label} {score_text(rival[column])}{lead}"


def members(run: RunData) -> pd.DataFrame:
    return run.results[run.results["kind"] == "seed"]


def standard(run: RunData) -> pd.DataFrame:
    """The standard recipes' rows (`baseline` names the recipe; older tables: models named `std-*`), not the merge +
    fine-tune baselines."""
    table = run.results
    if "baseline" in table.columns and table["baseline"].notna().any():
        return table[table["baseline"].notna() & (table["kind"] != "finetune")]
    return table[table["model"].astype(str).str.startswith("std-")]


def best_of(run: RunData, rows: pd.DataFrame) -> pd.Series | None:
    ok = rows[(rows["status"] == "ok") & rows["fitness"].notna()]
    return best_first(ok).iloc[0] if len(ok) else None


def _value(row: pd.Series, column: str) -> float | None:
    value = row.get(column)
    return rounded(value) if isinstance(value, (int, float)) else None
