"""The Family tree tab: the lineage graph, a model's ancestors, and their picture as a PNG.

`family_tree` cuts a model and its ancestors out of the run's lineage graph (networkx's
node-link JSON, as the loop writes it); `tree_layout` puts one column per generation, the
best (by `space.ranking`) on top. Nodes are coloured by kind (seed or bred), labelled with name and fitness; every edge
parent -> child is labelled with the child's merge method. Drawn on a bare matplotlib
`Figure` (no pyplot), so concurrent requests never share a global figure.
"""

from __future__ import annotations

import io

import networkx as nx
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from space.ranking import order_key

COLOURS = {"seed": "#9ecae1", "merge": "#fdae6b", "finetune": "#a1d99b"}
FOCUS_EDGE = "#d62728"


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
    """x = generation, y = rank within the generation (best on top), centred on 0."""
    by_generation: dict[int, list[str]] = {}
    for node, data in tree.nodes(data=True):
        by_generation.setdefault(int(data.get("generation") or 0), []).append(node)
    positions = {}
    for generation, nodes in by_generation.items():
        nodes.sort(key=lambda n: order_key(tree.nodes[n].get("fitness"), generation, cid=n))
        for rank, node in enumerate(nodes):
            positions[node] = (float(generation), (len(nodes) - 1) / 2 - rank)
    return positions


# the picture -------------------------------------------------------------------------------------------
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
    """Draw `tree` (see `family_tree`), the node `focus` outlined."""
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
