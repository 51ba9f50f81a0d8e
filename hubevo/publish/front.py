"""Stage 6, publish: the Pareto front of a run's candidates over its fitness tasks, and its plot.

The front itself is `hubevo.selection.pareto`'s (pure); here it is read from a run state and drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hubevo.selection.pareto import front, non_dominated
from hubevo.state.runstate import RunState


def fitness_tasks(state: RunState) -> list[str]:
    """The tasks every fully evaluated candidate has a score for."""
    common = None
    for ev in state.evaluations.values():
        if ev.status == "ok":
            common = set(ev.scores) if common is None else common & set(ev.scores)
    return sorted(common or [])


def run_front(state: RunState) -> set[str]:
    scores = {i: e.scores for i, e in state.evaluations.items() if e.status == "ok"}
    return set(front(scores, fitness_tasks(state)))


def plot_front(frame: pd.DataFrame, path: Path, *, tasks: Sequence[str] | None = None) -> Path | None:
    """Scatter every fully evaluated candidate on two fitness tasks, the front joined; None if < 2 tasks."""
    cols = [f"fitness/{t}" for t in tasks] if tasks else sorted(c for c in frame.columns if c.startswith("fitness/"))
    done = frame[frame["status"] == "ok"] if "status" in frame else frame
    if len(cols) < 2 or done.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = cols[:2]
    on = done[non_dominated(done[cols].to_numpy(dtype=float))].sort_values(x)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(done[x], done[y], s=18, c="#9aa5b1", label="evaluated")
    seeds = done[done["kind"] == "seed"] if "kind" in done else done.iloc[:0]
    ax.scatter(seeds[x], seeds[y], s=50, marker="s", facecolors="none", edgecolors="k", label="initial members")
    ax.plot(on[x], on[y], "o-", c="#d1495b", label="Pareto front" + (f" (over {len(cols)} tasks)" if len(cols) > 2 else ""))
    for _, row in seeds.iterrows():
        ax.annotate(str(row.get("model", "")), (row[x], row[y]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(x.removeprefix("fitness/"))
    ax.set_ylabel(y.removeprefix("fitness/"))
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
