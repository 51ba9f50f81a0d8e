"""The progress chart: fitness and held-out score per generation, from `space.data.generation_stats`.

A bare matplotlib `Figure` (no pyplot), with one integer tick per generation.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

SERIES = (  # column, legend, style
    ("best fitness", "best fitness of the generation", {"marker": "o", "color": "#1f77b4"}),
    ("mean fitness", "mean fitness of the generation", {"marker": ".", "color": "#aec7e8", "linestyle": ":"}),
    ("champion fitness", "champion so far: fitness", {"marker": "s", "color": "#ff7f0e"}),
    ("champion held-out", "champion so far: held-out", {"marker": "D", "color": "#2ca02c", "linestyle": "--"}),
)


def progress_figure(stats: pd.DataFrame, *, run_name: str) -> Figure:
    fig = Figure(figsize=(9, 3.8), dpi=100)
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
