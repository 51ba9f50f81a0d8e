"""The Family tree tab: the lineage graph, a model's ancestors, and their picture as a PNG.

`family_tree` cuts a model and its ancestors out of the run's lineage graph (networkx's
node-link JSON, as the loop writes it: edges carry the parent's role and merge weight, data-flow
children the parent of each layer). `tree_page` cuts that tree to one page of a few generations
(page 0 the newest, holding the model; `page_count` says how many), so a deep lineage reads at any
screen size: a model whose parents are on an older page says how many ancestors lie there
("+N older"), and `page_note` names the generations shown. `tree_layout` puts one row per
generation, oldest on top, the best (by `space.data.ranking`) on the left. `tree_figure` draws labelled
boxes (long names end in an ellipsis), each edge labelled at its midpoint with the parent's weight
(or "dpo"/"sft", or the layer count a data-flow parent gave), label boxes nudged along their edge
until none overlap. Edges from a merge's base model are left out and named in a note, so they do
not cross the picture. The champion is drawn gold, the selected model outlined red; below, one
strip per data-flow child shows which parent each layer came from; the title names the generations
of a page. Drawn on a bare matplotlib `Figure` (no pyplot), so concurrent requests never share a
global figure.
"""

from __future__ import annotations

import io
from collections import Counter

import networkx as nx
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch, Rectangle

from space.data.ranking import order_key

COLOURS = {"seed": "#9ecae1", "merge": "#fdae6b", "finetune": "#a1d99b"}
CHAMPION = "#ffd54f"
FOCUS_EDGE = "#d62728"
PARENT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
BOX_W, BOX_H, ROW_GAP, COL_GAP = 2.3, 0.72, 1.7, 2.7
NAME_CHARS = 24
INCH_PER_UNIT = 0.72
TOP_IN = 0.55  # the title, the legend and the base note
LABEL_SPOTS = (0.5, 0.38, 0.62, 0.27, 0.73, 0.18, 0.82)
GENERATIONS_SHOWN = 3  # generations on one page of the tree


def lineage_digraph(lineage: dict) -> nx.DiGraph:
    graph = nx.DiGraph()
    for node in lineage.get("nodes", []):
        graph.add_node(node["id"], **{k: v for k, v in node.items() if k != "id"})
    for edge in lineage.get("edges", []):
        graph.add_edge(edge["source"], edge["target"], **{k: v for k, v in edge.items() if k not in ("source", "target")})
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


# pages of a few generations -------------------------------------------------------------------------
def generation_of(data: dict) -> int:
    return int(data.get("generation") or 0)


def generation_windows(tree: nx.DiGraph, generations: int = GENERATIONS_SHOWN) -> list[list[int]]:
    """The generations present in `tree`, newest first, `generations` to a window (each oldest first)."""
    present = sorted({generation_of(data) for _, data in tree.nodes(data=True)}, reverse=True)
    return [sorted(present[k : k + generations]) for k in range(0, len(present), generations)]


def page_count(tree: nx.DiGraph, *, generations: int = GENERATIONS_SHOWN) -> int:
    return len(generation_windows(tree, generations))


def hidden_ancestors(tree: nx.DiGraph, node: str, shown: set[str]) -> set[str]:
    """What lies behind `node`'s edges cut by the page: its parents not `shown`, and their ancestors."""
    cut = [parent for parent in tree.predecessors(node) if parent not in shown]
    return set(cut).union(*(nx.ancestors(tree, parent) for parent in cut)) - shown


def tree_page(tree: nx.DiGraph, *, focus: str, generations: int = GENERATIONS_SHOWN, page: int = 0) -> nx.DiGraph:
    """`tree` (see `family_tree`) cut to its `page`-th window of `generations` generations, newest first.

    A node whose parents are off the page carries `older`: how many ancestors lie behind them. The
    graph's attributes name the focus, the generations shown, the page, the number of pages, and every
    node of `tree` (a data-flow child's strip names the parents of its layers, on this page or not)."""
    windows = generation_windows(tree, generations)
    if not 0 <= page < len(windows):
        raise IndexError(f"page {page} of a tree with {len(windows)} pages")
    shown = {node for node, data in tree.nodes(data=True) if generation_of(data) in windows[page]}
    cut = tree.subgraph(shown).copy()
    for node in cut:
        older = hidden_ancestors(tree, node, shown)
        if older:
            cut.nodes[node]["older"] = len(older)
    everything = sorted(generation_of(data) for _, data in tree.nodes(data=True))
    cut.graph.update(focus_name=str(tree.nodes[focus].get("name", focus)), window=windows[page],
                     lineage=(everything[0], everything[-1]), page=page, pages=len(windows),
                     names={node: str(data.get("name", node)) for node, data in tree.nodes(data=True)})
    return cut


def generations_text(window: list[int]) -> str:
    """"generation 4", "generations 4–6", or "generations 1, 5, 9" where the lineage skips some."""
    if len(window) == 1:
        return f"generation {window[0]}"
    if window == list(range(window[0], window[-1] + 1)):
        return f"generations {window[0]}–{window[-1]}"
    return "generations " + ", ".join(str(g) for g in window)


def page_choices(tree: nx.DiGraph, *, generations: int = GENERATIONS_SHOWN) -> list[tuple[str, int]]:
    """(label, page) for each page of `tree`, newest first."""
    return [(generations_text(window), page) for page, window in enumerate(generation_windows(tree, generations))]


def page_note(page: nx.DiGraph) -> str:
    """One line saying which page of which generations a `tree_page` shows."""
    first, last = page.graph["lineage"]
    return (f"page {page.graph['page'] + 1} of {page.graph['pages']} (newest first): "
            f"{generations_text(page.graph['window'])} of the lineage's {first}–{last}, oldest at top")


# rows --------------------------------------------------------------------------------------------------
def tree_rows(tree: nx.DiGraph) -> dict[str, tuple[int, int]]:
    """Each node's row as (generation, depth): depth counts parents of its own generation above it (the
    standard recipes of generation 0 sit below the members they merge), so every edge points down."""
    rows: dict[str, tuple[int, int]] = {}
    for node in nx.topological_sort(tree):
        generation = generation_of(tree.nodes[node])
        same = [rows[p][1] + 1 for p in tree.predecessors(node) if rows[p][0] == generation]
        rows[node] = (generation, max(same, default=0))
    return rows


def row_numbers(rows: dict[str, tuple[int, int]]) -> dict[tuple[int, int], int]:
    return {row: k for k, row in enumerate(sorted(set(rows.values())))}


def tree_layout(tree: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """One row per generation, oldest on top (see `tree_rows`); x = rank in the row (best left), centred on 0."""
    rows = tree_rows(tree)
    numbers = row_numbers(rows)
    positions = {}
    for row, number in numbers.items():
        nodes = sorted((n for n in rows if rows[n] == row),
                       key=lambda n: order_key(tree.nodes[n].get("fitness"), row[0], cid=n))
        for rank, node in enumerate(nodes):
            positions[node] = ((rank - (len(nodes) - 1) / 2) * COL_GAP, -number * ROW_GAP)
    return positions


# labels ------------------------------------------------------------------------------------------------
def short_name(name: str, *, limit: int = NAME_CHARS) -> str:
    """`name` cut to `limit` characters, ending in an ellipsis when cut."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def node_label(data: dict) -> str:
    fitness = data.get("fitness")
    score = f"{fitness:.3f}" if isinstance(fitness, (int, float)) else "no score"
    method = data.get("method") or data.get("kind") or ""
    older = f"\n+{data['older']} older" if data.get("older") else ""
    return f"{short_name(str(data.get('name', '?')))}\n{method} · {score}{older}"


def edge_label(tree: nx.DiGraph, parent: str, child: str) -> str:
    """The parent's share in the child: its weight, the fine-tuning operator, or its layer count."""
    data, child_data = tree.edges[parent, child], tree.nodes[child]
    if child_data.get("kind") == "finetune":
        return str(child_data.get("method") or "finetune")
    if child_data.get("layers"):
        count = child_data["layers"].count(parent)
        return f"{count} layer{'s' if count != 1 else ''}"
    if "weight" in data:
        return f"w {data['weight']:.2f}"
    return str(data.get("method") or "")


def drawn_edges(tree: nx.DiGraph) -> list[tuple[str, str]]:
    return [(u, v) for u, v, d in tree.edges(data=True) if d.get("role") != "base"]


def base_note(tree: nx.DiGraph) -> str:
    bases = sorted({tree.nodes[u].get("name", u) for u, _v, d in tree.edges(data=True) if d.get("role") == "base"})
    return f"base model of ties/task-arithmetic merges (edges not drawn): {', '.join(bases)}" if bases else ""


# the picture -------------------------------------------------------------------------------------------
def figure_size(positions: dict, strips: int) -> tuple[float, float]:
    xs, ys = [x for x, _ in positions.values()], [y for _, y in positions.values()]
    width = (max(xs) - min(xs) + BOX_W + 1.0) * INCH_PER_UNIT
    height = (max(ys) - min(ys) + BOX_H + 1.4) * INCH_PER_UNIT
    return max(width, 6.0), height + TOP_IN + 0.15 + (0.5 + 0.35 * strips if strips else 0)


def draw_node(ax, node: str, data: dict, xy: tuple[float, float], *, focus: bool, champion: bool) -> None:
    colour = CHAMPION if champion else COLOURS.get(data.get("kind", "merge"), "#dddddd")
    box = FancyBboxPatch((xy[0] - BOX_W / 2, xy[1] - BOX_H / 2), BOX_W, BOX_H, boxstyle="round,pad=0.02",
                         facecolor=colour, edgecolor=FOCUS_EDGE if focus else "#555555",
                         linewidth=2.5 if focus else 1.0, zorder=2, gid=f"node:{node}")
    ax.add_patch(box)
    ax.text(*xy, ("★ " if champion else "") + node_label(data), ha="center", va="center", fontsize=7,
            zorder=3, gid=f"name:{node}")


def edge_ends(tail: tuple[float, float], head: tuple[float, float]) -> tuple:
    return (tail[0], tail[1] - BOX_H / 2), (head[0], head[1] + BOX_H / 2)


def draw_edge(ax, ends: tuple, *, bend: float) -> None:
    ax.add_patch(FancyArrowPatch(*ends, connectionstyle=f"arc3,rad={bend}", arrowstyle="-|>", mutation_scale=10,
                                 color="#777777", linewidth=1.0, zorder=1, shrinkA=0, shrinkB=0))


def on_curve(ends: tuple, bend: float, fraction: float, ax) -> tuple[float, float]:
    """The data point a `fraction` of the way along the arc3 curve between `ends` bent by `bend`."""
    (x0, y0), (x2, y2) = (ax.transData.transform(end) for end in ends)
    cx, cy = (x0 + x2) / 2 + bend * (y2 - y0), (y0 + y2) / 2 - bend * (x2 - x0)
    t = fraction
    point = ((1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t**2 * x2, (1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t**2 * y2)
    return tuple(ax.transData.inverted().transform(point))


def overlaps(box, others) -> bool:
    return any(box.overlaps(other) for other in others)


def place_label(ax, text: str, ends: tuple, *, bend: float, taken: list, renderer) -> None:
    """Put `text` on the first spot along `arrow` whose box overlaps no label or node; else nudge it sideways."""
    label = ax.text(0, 0, text, ha="center", va="center", fontsize=6.5, zorder=4, gid="edge-label",
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "#bbbbbb", "linewidth": 0.5})
    for fraction in LABEL_SPOTS:
        label.set_position(on_curve(ends, bend, fraction, ax))
        if not overlaps(label_extent(label, renderer), taken):
            break
    else:
        x, y = on_curve(ends, bend, 0.5, ax)
        for shift in (0.25 * k * (-1) ** k for k in range(1, 200)):  # right and left, ever further
            label.set_position((x + shift, y))
            if not overlaps(label_extent(label, renderer), taken):
                break
    taken.append(label_extent(label, renderer))


def label_extent(label, renderer):
    """The label's white box in pixels: its text plus the box's padding and a little air."""
    return label.get_window_extent(renderer).padded(4)


def draw_edges(ax, tree: nx.DiGraph, positions: dict, *, renderer) -> None:
    taken = [p.get_window_extent(renderer) for p in ax.patches if str(p.get_gid()).startswith("node:")]
    taken += [t.get_window_extent(renderer) for t in ax.texts if t.get_gid() == "generation"]
    for u, v in sorted(drawn_edges(tree), key=lambda e: (positions[e[1]][1], positions[e[0]][0]), reverse=True):
        rows = round((positions[u][1] - positions[v][1]) / ROW_GAP)
        ends, bend = edge_ends(positions[u], positions[v]), 0.0 if rows <= 1 else 0.3
        draw_edge(ax, ends, bend=bend)
        place_label(ax, edge_label(tree, u, v), ends, bend=bend, taken=taken, renderer=renderer)


def layer_strips(tree: nx.DiGraph) -> list[str]:
    return sorted((n for n, d in tree.nodes(data=True) if d.get("layers")), key=lambda n: tree.nodes[n].get("generation", 0))


def node_name(tree: nx.DiGraph, node: str) -> str:
    """`node`'s name, also for a node off the page (`tree_page`)."""
    return str(tree.nodes[node].get("name", node)) if node in tree else tree.graph.get("names", {}).get(node, node)


def parent_colours(tree: nx.DiGraph, nodes: list[str]) -> dict[str, str]:
    parents = list(dict.fromkeys(p for n in nodes for p in tree.nodes[n]["layers"]))
    return {p: PARENT_COLOURS[i % len(PARENT_COLOURS)] for i, p in enumerate(parents)}


def draw_strips(ax, tree: nx.DiGraph, nodes: list[str]) -> None:
    """One row per data-flow child: a cell per layer of its path, coloured by the parent it came from."""
    colours = parent_colours(tree, nodes)
    for row, node in enumerate(nodes):
        layers = tree.nodes[node]["layers"]
        for index, parent in enumerate(layers):
            ax.add_patch(Rectangle((index, -row - 0.4), 0.95, 0.8, facecolor=colours[parent], edgecolor="white",
                                   gid=f"layer:{node}:{index}"))
    ax.set_xlim(-0.2, max(len(tree.nodes[n]["layers"]) for n in nodes) + 0.2)
    ax.set_ylim(-len(nodes) + 0.4, 0.6)
    ax.set_yticks([-r for r in range(len(nodes))], [short_name(node_name(tree, n)) for n in nodes], fontsize=7)
    ax.set_xlabel("layer (which parent it came from)", fontsize=7)
    width = max(len(tree.nodes[n]["layers"]) for n in nodes)
    ax.set_xticks([k + 0.475 for k in range(width)], [str(k) for k in range(width)])
    ax.tick_params(axis="x", labelsize=6, length=0)
    handles = [Patch(facecolor=c, label=short_name(node_name(tree, p))) for p, c in colours.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6, frameon=False)


def tree_figure(tree: nx.DiGraph, *, focus: str, champion: str | None = None) -> Figure:
    """Draw `tree` (see `family_tree`, or a page of it: `tree_page`): the node `focus` outlined, `champion` (an
    id) in gold."""
    positions = tree_layout(tree)
    strips = layer_strips(tree)
    width, height = figure_size(positions, len(strips))
    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)  # a renderer to measure label boxes with
    bottom = (0.15 + (0.5 + 0.35 * len(strips) if strips else 0)) / height
    ax = fig.add_axes((0.02, bottom, 0.96, 1 - bottom - TOP_IN / height))
    xs, ys = [x for x, _ in positions.values()], [y for _, y in positions.values()]
    ax.set_xlim(min(xs) - BOX_W / 2 - 0.4, max(xs) + BOX_W / 2 + 0.4)
    ax.set_ylim(min(ys) - BOX_H / 2 - 0.3, max(ys) + BOX_H / 2 + 0.3)
    ax.set_axis_off()
    for node, data in tree.nodes(data=True):
        draw_node(ax, node, data, positions[node], focus=node == focus, champion=node == champion)
    draw_generations(ax, tree)
    draw_edges(ax, tree, positions, renderer=fig.canvas.get_renderer())
    draw_legend(ax, tree, focus=focus)
    if strips:
        draw_strips(fig.add_axes((0.18, 0.45 / height, 0.6, 0.3 * len(strips) / height)), tree, strips)
    return fig


def draw_generations(ax, tree: nx.DiGraph) -> None:
    for (generation, depth), number in row_numbers(tree_rows(tree)).items():
        label = f"generation {generation}" + (", merged from the row above" if depth else "")
        ax.text(ax.get_xlim()[0], -number * ROW_GAP + BOX_H / 2 + 0.08, label,
                fontsize=7, color="#666666", ha="left", va="bottom", gid="generation")


def draw_legend(ax, tree: nx.DiGraph, *, focus: str) -> None:
    kinds = Counter(d.get("kind", "merge") for _, d in tree.nodes(data=True))
    handles = [Patch(facecolor=COLOURS[k], edgecolor="#555555", label=k) for k in sorted(kinds) if k in COLOURS]
    handles.append(Patch(facecolor=CHAMPION, edgecolor="#555555", label="champion"))
    ax.figure.legend(handles=handles, loc="upper right", fontsize=7, frameon=False, ncols=len(handles))
    ax.figure.suptitle(figure_title(tree, focus=focus), fontsize=10, x=0.02, ha="left")
    note = base_note(tree)
    if note:
        ax.figure.text(0.02, 1 - 0.32 / ax.figure.get_figheight(), short_name(note, limit=140), fontsize=6.5,
                       color="#555555", va="top")


def figure_title(tree: nx.DiGraph, *, focus: str) -> str:
    """"family tree of <focus>", and for a page (`tree_page`) the generations it shows."""
    name = tree.graph.get("focus_name") or node_name(tree, focus)
    window = tree.graph.get("window")
    return f"family tree of {short_name(name, limit=48)}" + (f" · {generations_text(window)}" if window else "")


def tree_png(tree: nx.DiGraph, *, focus: str, champion: str | None = None) -> bytes:
    buffer = io.BytesIO()
    tree_figure(tree, focus=focus, champion=champion).savefig(buffer, format="png")
    return buffer.getvalue()
