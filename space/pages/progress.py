"""The Progress tab: per generation, the candidates evaluated in it and the champion so far, as a table and a chart.

`generation_stats` is a pure function of a results table; the champion after generation g is
`space.data.ranking.champion_id` of the `ok` rows evaluated up to g. `progress_figure` draws the
table on a bare matplotlib `Figure` (no pyplot), with one integer tick per generation. The "champion" columns
follow the champion the run recorded after each generation; "best fitness" is the best any candidate of
the generation scored, which a champion picked on validation examples may not reach.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from space.data.loading import rounded
from space.data.ranking import champion_id

STATS_COLUMNS = ["generation", "candidates", "failed", "raced out", "best fitness", "mean fitness", "champion",
                 "champion fitness", "champion held-out"]

SERIES = (  # column, legend, style
    ("best fitness", "best fitness of the generation", {"marker": "o", "color": "#1f77b4"}),
    ("mean fitness", "mean fitness of the generation", {"marker": ".", "color": "#aec7e8", "linestyle": ":"}),
    ("champion fitness", "champion so far: fitness", {"marker": "s", "color": "#ff7f0e"}),
    ("champion held-out", "champion so far: held-out", {"marker": "D", "color": "#2ca02c", "linestyle": "--"}),
)


def generation_stats(results: pd.DataFrame) -> pd.DataFrame:
    """Per generation: candidates evaluated in it, how many failed or were raced out, their best and mean
    fitness, and the champion so far.

    The champion after generation g is the champion among the candidates evaluated up to g; its
    held-out score is the one the loop measured when it survived (held-out tasks never select).
    """
    evaluated = results[results["evaluated_in"].notna()]
    status = evaluated["status"]
    per_generation = pd.DataFrame({
        "generation": evaluated["evaluated_in"].astype(int), "failed": status == "failed",
        "raced": status == "raced_out", "ok_fitness": evaluated["fitness"].where(status == "ok").astype(float),
    }).groupby("generation").agg(candidates=("failed", "size"), failed=("failed", "sum"), raced=("raced", "sum"),
                                 best=("ok_fitness", "max"), mean=("ok_fitness", "mean"))
    reigns, position = reign_table(results), first_rows(results)
    rows = []
    for generation, now in per_generation.iterrows():
        best = champion_after(results, int(generation), reigns=reigns)
        champion = results.iloc[position[best]] if best is not None else None
        rows.append({
            "generation": int(generation), "candidates": int(now["candidates"]), "failed": int(now["failed"]),
            "raced out": int(now["raced"]), "best fitness": rounded(now["best"]), "mean fitness": rounded(now["mean"]),
            "champion": champion["model"] if champion is not None else None,
            "champion fitness": rounded(champion["fitness"]) if champion is not None else None,
            "champion held-out": rounded(champion["heldout"]) if champion is not None else None,
        })
    return pd.DataFrame(rows, columns=STATS_COLUMNS)


def first_rows(results: pd.DataFrame) -> dict[str, int]:
    """Individual id -> the position of its first row."""
    position: dict[str, int] = {}
    for k, cid in enumerate(results["id"]):
        position.setdefault(str(cid), k)
    return position


def champion_after(results: pd.DataFrame, generation: int, *, reigns: dict[int, str] | None = None) -> str | None:
    """The champion after `generation`: as the run recorded it (`champion_in`), else by the ranking rule."""
    reigns = reign_table(results) if reigns is None else reigns
    if generation in reigns:
        return reigns[generation]
    return champion_id(results[results["evaluated_in"] <= generation])


def reign_table(results: pd.DataFrame) -> dict[int, str]:
    """Generation -> the champion the run recorded after it (`champion_in`), read in one pass over the rows."""
    table: dict[int, str] = {}
    if "champion_in" in results.columns:
        for cid, reign in zip(results["id"], results["champion_in"], strict=True):
            if reign is not None and not isinstance(reign, float):
                for generation in list(reign):
                    table.setdefault(int(generation), str(cid))
    return table


def progress_figure(stats: pd.DataFrame, *, run_name: str) -> Figure:
    fig = Figure(figsize=(7.5, 4.6), dpi=100)  # tall enough to read at phone width
    ax = fig.add_subplot()
    for column, label, style in SERIES:
        points = stats[["generation", column]].dropna()
        if len(points):
            ax.plot(points["generation"], points[column].astype(float), label=label, **style)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    ax.set_title(f"run {run_name}: fitness and held-out score per generation", fontsize=10)
    if ax.lines:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
