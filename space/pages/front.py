"""The Pareto view on the Progress tab: a run's fully evaluated candidates, scored per fitness task.

Two tasks give a scatter, one axis per task, with the front joined; more give one line per
candidate across the tasks (the front's lines over the others); a single task gives each
candidate's score by generation (the front is then the best candidate). The champion is a gold
star and the other finalists are ringed, so a champion off the front reads as the rule's choice,
not a mistake: it is picked on validation examples, the front on fitness. The front is the core's
`pareto` flag where the table has it, else `hubevo.selection.pareto.non_dominated` over the tasks. Drawn on a
bare matplotlib `Figure` (no pyplot), like the other charts.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hubevo.selection.pareto import non_dominated
from space.data.loading import RunData
from space.data.ranking import champion_id
from space.pages.tree import short_name

GREY, FRONT, CHAMPION, FINALIST = "#9aa5b1", "#d1495b", "#f2b705", "#1f77b4"


def front_table(run: RunData) -> tuple[pd.DataFrame, list[str]]:
    """The run's fully evaluated rows with a score on every fitness task, flagged `on_front`, `is_champion` and
    `finalist`; and the task columns (`fitness/<task>`)."""
    table = run.results
    tasks = [c for c in sorted(table.columns) if str(c).startswith("fitness/") and table[c].notna().any()]
    done = table[(table["status"] == "ok") & table[tasks].notna().all(axis=1)] if tasks else table.iloc[:0]
    if "pareto" in done.columns and done["pareto"].notna().any():
        front = done["pareto"].fillna(False).astype(bool).to_numpy()
    else:
        front = non_dominated(done[tasks].to_numpy(dtype=float)) if len(done) else []
    cid = champion_id(table)
    return done.assign(on_front=front, is_champion=done["id"] == cid,
                       finalist=done["validation"].notna() if "validation" in done else False), tasks


def front_figure(run: RunData) -> Figure | None:
    """The run's Pareto picture (see the module docstring); None when no candidate has a score per task."""
    done, tasks = front_table(run)
    if not len(done):
        return None
    fig = Figure(figsize=(7.5, 5.2), dpi=100)
    ax = fig.add_subplot()
    if len(tasks) == 2:
        _scatter(ax, done, tasks)
    elif len(tasks) > 2:
        _lines(ax, done, tasks)
    else:
        _by_generation(ax, done, tasks[0])
    ax.grid(alpha=0.3)
    ax.set_title(f"run {run.name}: " + ("Pareto front over the fitness tasks" if len(tasks) > 1 else
                                        "one fitness task: the front is the best candidate"), fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def _marks(ax, done: pd.DataFrame, x, y) -> None:
    """Champion and finalists over the points already drawn; `x` and `y` pick each row's coordinates."""
    finalists = done[done["finalist"] & ~done["is_champion"]]
    if len(finalists):
        ax.scatter(x(finalists), y(finalists), s=140, facecolors="none", edgecolors=FINALIST, linewidths=1.5,
                   label="finalist", zorder=4)
    champion = done[done["is_champion"]]
    if len(champion):
        ax.scatter(x(champion), y(champion), s=260, marker="*", c=CHAMPION, edgecolors="k", linewidths=0.8,
                   label=f"champion: {short_name(str(champion.iloc[0]['model']))}", zorder=5)


def _scatter(ax, done: pd.DataFrame, tasks: list[str]) -> None:
    x, y = tasks
    seeds = done[done["kind"] == "seed"]
    ax.scatter(done[x], done[y], s=22, c=GREY, label="candidate", zorder=2)
    ax.scatter(seeds[x], seeds[y], s=60, marker="s", facecolors="none", edgecolors="k", label="initial member",
               zorder=3)
    on = done[done["on_front"]].sort_values(x)
    ax.plot(on[x], on[y], "o-", c=FRONT, label="Pareto front", zorder=3)
    _marks(ax, done, lambda rows: rows[x], lambda rows: rows[y])
    for _, row in done[done["on_front"] | done["is_champion"] | done["finalist"]].iterrows():
        ax.annotate(short_name(str(row["model"]), limit=18), (row[x], row[y]), textcoords="offset points",
                    xytext=(6, 5), fontsize=8)
    ax.set_xlabel(x.removeprefix("fitness/"))
    ax.set_ylabel(y.removeprefix("fitness/"))


def _lines(ax, done: pd.DataFrame, tasks: list[str]) -> None:
    positions = list(range(len(tasks)))
    layers = (  # later layers over earlier ones
        (~done["on_front"], "candidate", {"c": GREY, "alpha": 0.5}),
        (done["on_front"], "Pareto front", {"c": FRONT}),
        (done["finalist"] & ~done["is_champion"], "finalist", {"c": FINALIST, "linestyle": "--"}),
        (done["is_champion"], "champion", {"c": CHAMPION, "linewidth": 3, "marker": "*", "markersize": 14,
                                           "markeredgecolor": "k"}),
    )
    for mask, label, style in layers:
        for k, (_, row) in enumerate(done[mask].iterrows()):
            ax.plot(positions, row[tasks].astype(float), label=label if k == 0 else None, **style)
    ax.set_xticks(positions, [t.removeprefix("fitness/") for t in tasks], rotation=20, ha="right")
    ax.set_ylabel("score")


def _by_generation(ax, done: pd.DataFrame, task: str) -> None:
    generation = done["evaluated_in"].fillna(done["generation"]).astype(int)
    ax.scatter(generation, done[task], s=22, c=GREY, label="candidate", zorder=2)
    best = done[done["on_front"]]
    ax.scatter(best["evaluated_in"].fillna(best["generation"]).astype(int), best[task], s=60, c=FRONT,
               label="Pareto front", zorder=3)
    _marks(ax, done.assign(_g=generation), lambda rows: rows["_g"], lambda rows: rows[task])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation evaluated in")
    ax.set_ylabel(task.removeprefix("fitness/"))
