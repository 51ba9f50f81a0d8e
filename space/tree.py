"""The family tree picture: a model and its ancestors, one column per generation, as a PNG.

Nodes are coloured by kind (seed or bred), labelled with name and fitness; every edge
parent -> child is labelled with the child's merge method. Drawn on a bare matplotlib
`Figure` (no pyplot), so concurrent requests never share a global figure.
"""

from __future__ import annotations

import io

import networkx as nx
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from space.data import tree_layout

COLOURS = {"seed": "#9ecae1", "merge": "#fdae6b", "finetune": "#a1d99b"}
FOCUS_EDGE = "#d62728"


def node_label(data: dict) -> str:
    fitness = data.get("fitness")
    score = f"\n{fitness:.3f}" if isinstance(fitness, (int, float)) else ""
    return f"{data.get('name', '?')}{score}"


def split_edges(tree: nx.DiGraph, positions: dict) -> list[tuple[list, str]]:
    """Edges to the next generation drawn almost straight; longer ones bent, so they skip the nodes between."""
    short = [(u, v) for u, v in tree.edges if positions[v][0] - positions[u][0] <= 1]
    long = [(u, v) for u, v in tree.edges if positions[v][0] - positions[u][0] > 1]
    return [(edges, bend) for edges, bend in ((short, "arc3,rad=0.05"), (long, "arc3,rad=-0.25")) if edges]


def tree_figure(tree: nx.DiGraph, *, focus: str) -> Figure:
    """Draw `tree` (see `space.data.family_tree`), the node `focus` outlined."""
    positions = tree_layout(tree)
    generations = sorted({int(x) for x, _ in positions.values()}) or [0]
    height = max((sum(1 for x, _ in positions.values() if x == g) for g in generations), default=1)
    fig = Figure(figsize=(2.6 + 2.4 * len(generations), 1.2 + 1.1 * height), dpi=110)
    ax = fig.add_subplot()
    kinds = [tree.nodes[n].get("kind", "merge") for n in tree.nodes]
    for edges, bend in split_edges(tree, positions):
        nx.draw_networkx_edges(tree, positions, ax=ax, edgelist=edges, arrows=True, arrowsize=14,
                               edge_color="#777777", node_size=2600, connectionstyle=bend)
        nx.draw_networkx_edge_labels(tree, positions, ax=ax, font_size=6, label_pos=0.3, rotate=False,
                                     connectionstyle=bend, node_size=2600,
                                     edge_labels={(u, v): tree.edges[u, v].get("method", "") for u, v in edges})
    nx.draw_networkx_nodes(tree, positions, ax=ax, node_size=2600, node_color=[COLOURS.get(k, "#dddddd") for k in kinds],
                           edgecolors=[FOCUS_EDGE if n == focus else "#555555" for n in tree.nodes],
                           linewidths=[3.0 if n == focus else 1.0 for n in tree.nodes])
    nx.draw_networkx_labels(tree, positions, ax=ax, font_size=7,
                            labels={n: node_label(d) for n, d in tree.nodes(data=True)})
    ax.set_xticks(generations, [f"generation {g}" for g in generations])
    ax.tick_params(axis="x", length=0, labelsize=8, labelbottom=True)  # networkx hides tick labels
    ax.set_yticks([])
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.margins(x=0.25 / len(generations) + 0.08, y=0.25)
    handles = [Patch(facecolor=COLOURS[k], edgecolor="#555555", label=k) for k in sorted(set(kinds)) if k in COLOURS]
    ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=False)
    ax.set_title(f"family tree of {tree.nodes[focus].get('name', focus)}", fontsize=10)
    fig.tight_layout()
    return fig


def tree_png(tree: nx.DiGraph, *, focus: str) -> bytes:
    buffer = io.BytesIO()
    tree_figure(tree, focus=focus).savefig(buffer, format="png")
    return buffer.getvalue()
