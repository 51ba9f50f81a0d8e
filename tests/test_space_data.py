"""The Space's pure side: leaderboard, family tree, progress, model detail and status tables built
from what the loop writes (a run directory, or a results dataset read back from the Hub), the
seeding form's validation, and who may act.

The run (`write_run` in tests/helpers/sim_runs.py) is written by the loop's own writers
(`save_state`, `write_tables`, `lineage_card`): two Hub seeds; generation 1 breeds c1 (linear,
the champion) and c3 (slerp, failed); generation 2 breeds c2 (slerp of c1 and s2), which does not
beat c1. Small hand-made tables check that every view names the champion by the core's one rule
(`hubevo.ranking`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from huggingface_hub import HfApi
from mergekit.config import MergeConfiguration
from PIL import Image

from hubevo.config import RunConfig
from hubevo.errors import HubError
from hubevo.finetune.recipe import FinetuneRecipe, PreferenceSource
from hubevo.genome import DataFlowGenome, LayerStep, MergeGenome, child_individual, finetune_individual, seed_individual
from hubevo.hub.publish import push_results
from hubevo.publish import lineage_graph
from hubevo.state import RunState, save_state
from space.auth import ADMIN, Access, AccessDenied
from space.catalog import Catalog
from space.compare import champion_summary, recipe_diff, side_by_side
from space.detail import card_sections, model_detail, recipe_yaml
from space.leaderboard import (
    BADGE, LEADERBOARD_COLUMNS, WHY, champion_key, find_model, generations_of, leaderboard, link_text, model_choices,
    model_key, plain,
)
from space.loading import RunData, load_results_repo, load_run_dir, run_dirs, with_columns
from space.progress import generation_stats
from space.ranking import best_first, champion_id
from space.seeding import (
    BudgetCaps, SeedError, SeedForm, TaskCatalog, build_run_config, config_from_yaml, form_numbers,
    local_task_names,
)
from space.settings import SpaceSettings
from space.status import local_status, merge_statuses, status_table
from space.tree import (
    family_tree, page_choices, page_count, page_note, tree_figure, tree_layout, tree_page, tree_png,
)
from tests.helpers.sim_runs import ALICE_TOKEN, write_run
from tests.helpers.space_runs import FITNESS_STDERR, SECOND_TASK, VALIDATION_STDERR, write_finals_run

HUB = "https://hub.example"


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("space-runs")
    write_run(root, name="sim")
    write_run(root, name="other", finished=False)
    (root / "not-a-run").mkdir()
    return root


@pytest.fixture(scope="module")
def sim(runs_root) -> RunData:
    return load_run_dir(runs_root / "sim")


def ids(run: RunData) -> dict[str, str]:
    """Short names (s1, s2, c1, c2, c3) -> individual ids."""
    table = run.results
    seeds = dict(zip(table["model"], table["id"], strict=True))
    bred = {(g, m): i for g, m, i in zip(table["generation"], table["method"], table["id"], strict=True)}
    return {"s1": seeds["alice/s1"], "s2": seeds["alice/s2"], "c1": bred[1, "linear"], "c3": bred[1, "slerp"],
            "c2": bred[2, "slerp"]}


# --------------------------------------------------------------------------- leaderboard
def test_run_directories_are_found_under_the_runs_root(runs_root):
    assert [p.name for p in run_dirs(runs_root)] == ["other", "sim"]
    assert run_dirs(runs_root / "sim") == [runs_root / "sim"]
    assert run_dirs(runs_root / "missing") == []


def test_leaderboard_ranks_every_candidate_best_first_and_links_each_model_to_its_repo(sim):
    i = ids(sim)
    names = dict(zip(sim.results["id"], sim.results["model"], strict=True))
    table = leaderboard([sim], hub_url=HUB)
    assert list(table.columns) == [*LEADERBOARD_COLUMNS, "fitness/tiny", "heldout/tiny_heldout", WHY]  # one per task
    assert [link_text(m) for m in table["model"]] == [names[i[k]] for k in ("c1", "c2", "s2", "s1", "c3")]
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]
    assert table["fitness"].tolist()[:4] == [0.6, 0.55, 0.5, 0.3]
    assert table["model"].iloc[0] == f"{BADGE} [{names[i['c1']]}]({HUB}/alice/sim-{i['c1']})"  # the champion
    assert not any(m.startswith(BADGE) for m in table["model"].iloc[1:])
    assert table["model"].iloc[2] == f"[alice/s2]({HUB}/alice/s2)"  # a Hub seed links to where it came from
    assert table["model"].iloc[4] == names[i["c3"]]  # failed, never pushed: no link
    assert table["status"].iloc[4] == "failed"
    assert table["parents"].iloc[1] == f"{names[i['c1']]} + alice/s2"
    assert table["held-out"].iloc[0] == 0.45
    assert table["survivor"].tolist() == ["yes", "yes", "yes", "yes", ""]


def test_leaderboard_filters_by_run_generation_text_and_survivors(runs_root, sim):
    runs = [load_run_dir(p) for p in run_dirs(runs_root)]
    assert len(leaderboard(runs)) == 10
    assert set(leaderboard(runs, run="sim")["run"]) == {"sim"}
    assert leaderboard(runs, run="sim", generation="1")["method"].tolist() == ["linear", "slerp"]
    assert leaderboard(runs, run="sim", query="SLERP")["generation"].tolist() == [2, 1]
    assert len(leaderboard(runs, run="sim", survivors_only=True)) == 4
    assert leaderboard(runs, run="nope").empty
    assert generations_of(runs, run="sim") == [0, 1, 2]


def test_model_keys_resolve_from_the_pickers_and_from_a_leaderboard_row(sim):
    i = ids(sim)
    choices = model_choices([sim])
    assert choices[0] == (f"sim · {sim.row(i['c1'])['model']}", f"sim/{i['c1']}")
    assert find_model([sim], f"sim/{i['c1']}") == (sim, i["c1"])
    assert find_model([sim], f"sim/{sim.row(i['c2'])['model']}") == (sim, i["c2"])  # by displayed name
    assert find_model([sim], "sim/unknown") is None
    assert find_model([sim], None) is None


# --------------------------------------------------------------------------- family tree
def test_family_tree_holds_the_model_and_its_ancestors_with_methods_on_the_edges(sim):
    i = ids(sim)
    tree = family_tree(sim.lineage, i["c2"])
    assert set(tree.nodes) == {i["c2"], i["c1"], i["s1"], i["s2"]}  # c3 is a cousin, not an ancestor
    assert {(u, v): d["method"] for u, v, d in tree.edges(data=True)} == {
        (i["c1"], i["c2"]): "slerp", (i["s2"], i["c2"]): "slerp",
        (i["s1"], i["c1"]): "linear", (i["s2"], i["c1"]): "linear",
    }
    layout = tree_layout(tree)
    rows = {n: y for n, (_, y) in layout.items()}
    assert rows[i["s1"]] == rows[i["s2"]] > rows[i["c1"]] > rows[i["c2"]]  # one row per generation, oldest on top
    assert layout[i["s2"]][0] < layout[i["s1"]][0]  # the fitter seed is drawn on the left
    with pytest.raises(KeyError, match="not in the lineage"):
        family_tree(sim.lineage, "nobody")


def test_family_tree_picture_is_a_png_growing_with_the_generations(sim):
    i = ids(sim)
    deep = Image.open(io.BytesIO(tree_png(family_tree(sim.lineage, i["c2"]), focus=i["c2"])))
    alone = Image.open(io.BytesIO(tree_png(family_tree(sim.lineage, i["s1"]), focus=i["s1"])))
    assert deep.format == alone.format == "PNG"
    assert deep.height > alone.height > 200


def breeding_lineage() -> tuple[dict, dict[str, str]]:
    """A lineage with a long-named seed, a ties merge on a base model, a linear merge and a data-flow child."""
    s1, s2 = (seed_individual(name=f"alice/{n}", source=f"alice/{n}") for n in ("s1", "s2"))
    long = seed_individual(name="alice/a-very-long-model-name-that-never-fits-a-box", source="alice/long")
    lin = child_individual(MergeGenome(method="linear", parents=(s1.id, s2.id),
                                       per_parent=({"weight": 0.7}, {"weight": 0.3})), generation=1)
    ties = child_individual(MergeGenome(method="ties", parents=(s2.id, long.id), base=s1.id,
                                        per_parent=({"weight": 0.55, "density": 0.5}, {"weight": 0.45, "density": 0.5})),
                            generation=1)
    path = [LayerStep(parent=p, layer=k) for p, k in ((lin.id, 0), (lin.id, 1), (ties.id, 1), (lin.id, 2), (ties.id, 3))]
    dfs = child_individual(DataFlowGenome(path=tuple(path)), generation=2)
    tuned = finetune_individual(FinetuneRecipe(operator="dpo", parent=lin.id, dataset=PreferenceSource(path="p.jsonl"),
                                               learning_rate=1e-5, steps=2, lora_rank=4, samples=8, seed=0,
                                               batch_size=2), generation=2)
    state = RunState(config_hash="test", individuals={i.id: i for i in (s1, s2, long, lin, ties, dfs, tuned)})
    names = {"s1": s1.id, "s2": s2.id, "long": long.id, "lin": lin.id, "ties": ties.id, "dfs": dfs.id,
             "tuned": tuned.id}
    return lineage_graph(state), names


def test_tree_figure_draws_a_box_per_individual_weights_on_edges_and_no_overlapping_labels():
    lineage, i = breeding_lineage()
    fig = tree_figure(family_tree(lineage, i["dfs"]), focus=i["dfs"], champion=i["lin"])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes = {p.get_gid()[5:]: p for p in ax.patches if str(p.get_gid()).startswith("node:")}
    assert set(boxes) == set(i.values()) - {i["tuned"]}
    for node, box in boxes.items():  # every name fits its box; the long one ends in an ellipsis
        name = next(t for t in ax.texts if t.get_gid() == f"name:{node}")
        assert box.get_window_extent(renderer).contains(*name.get_window_extent(renderer).p0)
        assert box.get_window_extent(renderer).contains(*name.get_window_extent(renderer).p1)
    assert "…" in next(t.get_text() for t in ax.texts if t.get_gid() == f"name:{i['long']}")
    labels = [t for t in ax.texts if t.get_gid() == "edge-label"]
    assert sorted(t.get_text() for t in labels) == ["2 layers", "3 layers", "w 0.30", "w 0.45", "w 0.55", "w 0.70"]
    extents = [t.get_bbox_patch().get_window_extent(renderer) for t in labels]
    extents += [b.get_window_extent(renderer) for b in boxes.values()]
    assert not any(a.overlaps(b) for k, a in enumerate(extents) for b in extents[k + 1:])
    assert boxes[i["lin"]].get_facecolor() != boxes[i["s2"]].get_facecolor()  # the champion stands out
    assert any("base model" in t.get_text() and "alice/s1" in t.get_text() for t in fig.texts)  # base edge as a note
    tuned = tree_figure(family_tree(lineage, i["tuned"]), focus=i["tuned"])
    assert "dpo" in [t.get_text() for t in tuned.axes[0].texts if t.get_gid() == "edge-label"]  # fine-tuned: the operator


def test_a_data_flow_child_has_a_strip_with_one_cell_per_layer_coloured_by_its_parent():
    lineage, i = breeding_lineage()
    fig = tree_figure(family_tree(lineage, i["dfs"]), focus=i["dfs"])
    cells = sorted((p for a in fig.axes for p in a.patches if str(p.get_gid()).startswith(f"layer:{i['dfs']}:")),
                   key=lambda p: int(p.get_gid().rsplit(":", 1)[1]))
    colours = [p.get_facecolor() for p in cells]
    assert len(cells) == 5
    assert colours[0] == colours[1] == colours[3] != colours[2] == colours[4]  # lin, lin, ties, lin, ties
    alone = tree_figure(tree_page(family_tree(lineage, i["dfs"]), focus=i["dfs"], generations=1), focus=i["dfs"])
    strip = next(a for a in alone.axes if a.get_legend())  # its parents are on the next page, named all the same
    names = {node["id"]: node["name"] for node in lineage["nodes"]}
    assert [t.get_text() for t in strip.get_legend().get_texts()] == [names[i["lin"]], names[i["ties"]]]


def deep_lineage(generations: int = 10) -> dict:
    """A GA lineage as node-link JSON: two seeds, then two children a generation, each bred from both of the
    generation before; 8b also from 5a, an elite kept from further back."""
    nodes = [{"id": f"{g}{x}", "name": f"alice/m{g}{x}", "kind": "seed" if g == 0 else "merge", "generation": g,
              "method": None if g == 0 else "linear", "fitness": 0.1 * g + (0.05 if x == "a" else 0.0)}
             for g in range(generations) for x in "ab"]
    edges = [{"source": f"{g - 1}{p}", "target": f"{g}{x}", "role": "parent", "weight": 0.5}
             for g in range(1, generations) for x in "ab" for p in "ab"]
    edges.append({"source": "5a", "target": "8b", "role": "parent", "weight": 0.2})
    return {"directed": True, "multigraph": False, "graph": {}, "nodes": nodes, "edges": edges}


def generations_on(page) -> set[int]:
    return {d["generation"] for _, d in page.nodes(data=True)}


def test_a_deep_family_tree_is_cut_into_pages_of_at_most_n_generations_that_together_hold_it_all():
    tree = family_tree(deep_lineage(), "9a")
    assert page_count(tree) == 4 and page_count(tree, generations=5) == 2  # 10 generations
    pages = [tree_page(tree, focus="9a", page=k) for k in range(page_count(tree))]
    assert [sorted(generations_on(p)) for p in pages] == [[7, 8, 9], [4, 5, 6], [1, 2, 3], [0]]  # newest first
    assert "9a" in pages[0]  # page 0 holds the model itself
    assert set().union(*(p.nodes for p in pages)) == set(tree.nodes)
    assert sum(len(p) for p in pages) == len(tree)  # no model on two pages
    assert all(set(p.edges) <= set(tree.edges) for p in pages)
    assert [label for label, _ in page_choices(tree)] == ["generations 7–9", "generations 4–6", "generations 1–3",
                                                           "generation 0"]
    assert page_note(pages[1]) == "page 2 of 4 (newest first): generations 4–6 of the lineage's 0–9, oldest at top"
    with pytest.raises(IndexError):
        tree_page(tree, focus="9a", page=4)


def test_a_model_whose_parents_are_on_an_older_page_counts_the_ancestors_hidden_there(sim):
    tree = family_tree(deep_lineage(), "9a")
    newest = tree_page(tree, focus="9a")
    older = {n: d["older"] for n, d in newest.nodes(data=True) if "older" in d}
    assert older == {"7a": 14, "7b": 14, "8b": 11}  # generations 0-6; 5a and generations 0-4
    assert "older" not in tree.nodes["7a"]  # the whole tree is left as it was
    assert {n: d.get("older") for n, d in tree_page(tree, focus="9a", page=3).nodes(data=True)} == {"0a": None,
                                                                                                  "0b": None}
    i = ids(sim)
    one = tree_page(family_tree(sim.lineage, i["c2"]), focus=i["c2"], generations=1)
    assert set(one.nodes) == {i["c2"]} and one.nodes[i["c2"]]["older"] == 3  # c1, s1, s2
    fig = tree_figure(newest, focus="9a")
    fig.canvas.draw()
    texts = {t.get_gid(): t for t in fig.axes[0].texts}
    assert texts["name:7a"].get_text().endswith("+14 older") and "older" not in texts["name:9a"].get_text()
    box = next(b for b in fig.axes[0].patches if b.get_gid() == "node:7a").get_window_extent()
    label = texts["name:7a"].get_window_extent()
    assert box.contains(*label.p0) and box.contains(*label.p1)  # three lines still fit the box
    assert fig.texts[0].get_text().endswith("generations 7–9")  # the title names the generations shown


def test_a_page_of_a_deep_tree_is_drawn_n_rows_tall_whatever_the_depth():
    tree = family_tree(deep_lineage(), "9a")
    height = lambda t: Image.open(io.BytesIO(tree_png(t, focus="9a"))).height  # noqa: E731
    full, newest = height(tree), height(tree_page(tree, focus="9a"))
    one_row = Image.open(io.BytesIO(tree_png(family_tree(deep_lineage(), "0a"), focus="0a"))).height
    per_row = (full - one_row) / 9  # the full tree has 10 rows
    assert newest <= one_row + 2 * per_row + 2  # 3 rows
    assert newest < full / 2


# --------------------------------------------------------------------------- progress
def test_generation_stats_give_fitness_and_the_champions_held_out_score(sim):
    stats = generation_stats(sim.results)
    assert stats["generation"].tolist() == [0, 1, 2]
    assert stats["candidates"].tolist() == [2, 2, 1]
    assert stats["failed"].tolist() == [0, 1, 0]
    assert stats["best fitness"].tolist() == [0.5, 0.6, 0.55]
    assert stats["mean fitness"].tolist() == [0.4, 0.6, 0.55]
    c1 = sim.row(ids(sim)["c1"])["model"]
    assert stats["champion"].tolist() == ["alice/s2", c1, c1]
    assert stats["champion fitness"].tolist() == [0.5, 0.6, 0.6]
    assert stats["champion held-out"].tolist() == [0.4, 0.45, 0.45]


def table_of(*rows: dict) -> RunData:
    """A run read from a results table holding only `rows` (missing columns empty, as in an older table)."""
    base = {"generation": 1, "kind": "merge", "method": "linear", "parents": [], "heldout": None}
    frame = with_columns(pd.DataFrame([base | {"model": r["id"]} | r for r in rows]))
    return RunData(name="t", source="hub", where="alice/t-results", results=frame, lineage={}, config={})


TIED = (  # fitness ties broken by the core's rule: earlier evaluation, then smaller id
    {"id": "late", "evaluated_in": 2, "status": "ok", "fitness": 0.6},
    {"id": "zeta", "evaluated_in": 1, "status": "ok", "fitness": 0.6},
    {"id": "alpha", "evaluated_in": 1, "status": "ok", "fitness": 0.6},
    {"id": "racer", "evaluated_in": 1, "status": "raced_out", "fitness": 0.9},
    {"id": "broke", "evaluated_in": 1, "status": "failed", "fitness": None},
    {"id": "low", "evaluated_in": 0, "status": "ok", "fitness": 0.2},
)


def test_every_view_names_the_same_champion_by_the_cores_rule():
    run = table_of(*TIED)
    assert champion_id(run.results) == "alpha"  # never the raced-out row, whatever its estimate
    assert best_first(run.results)["id"].tolist() == ["alpha", "zeta", "late", "low", "racer", "broke"]
    assert [link_text(m) for m in leaderboard([run])["model"]] == ["alpha", "zeta", "late", "low", "racer", "broke"]
    assert model_choices([run])[0] == ("t · alpha", "t/alpha") and champion_key([run]) == "t/alpha"
    stats = generation_stats(run.results)
    assert stats["champion"].tolist() == ["low", "alpha", "alpha"]
    assert stats[["failed", "raced out"]].values.tolist() == [[0, 0], [1, 1], [0, 0]]
    assert local_status(run)["best_fitness"] == 0.6


def test_the_champion_column_of_the_table_names_the_champion_when_present():
    marked = table_of(*({**r, "champion": r["id"] == "late"} for r in TIED))
    assert champion_id(marked.results) == "late" and champion_key([marked]) == "t/late"
    assert generation_stats(marked.results)["champion"].tolist() == ["low", "alpha", "late"]
    only_raced = table_of(*({**r, "champion": r["id"] == "racer"} for r in TIED))  # only ok rows can be champion
    assert champion_id(only_raced.results) == "alpha"
    assert champion_id(table_of(TIED[3], TIED[4]).results) is None and champion_key([table_of(TIED[4])]) is None


# --------------------------------------------------------------------------- model detail
def test_model_detail_shows_the_lineage_card_and_a_recipe_mergekit_accepts(sim):
    i = ids(sim)
    detail = model_detail(sim, i["c2"])
    assert (detail.method, detail.generation, detail.fitness, detail.heldout) == ("slerp", 2, 0.55, 0.5)
    assert detail.repo == f"alice/sim-{i['c2']}"
    assert detail.scores == {"fitness/tiny": 0.55, "heldout/tiny_heldout": 0.5}
    meta, body = card_sections(detail.card)
    assert yaml.safe_load(meta)["base_model"] == [f"alice/sim-{i['c1']}", "alice/s2"]
    assert "## Recipe" in body and "## Lineage" in body
    recipe = yaml.safe_load(detail.recipe)
    MergeConfiguration.model_validate(recipe)
    assert recipe["merge_method"] == "slerp" and recipe["parameters"] == {"t": 0.4}
    assert [m["model"] for m in recipe["models"]] == [f"alice/sim-{i['c1']}", "alice/s2"]
    seed = model_detail(sim, i["s1"])
    assert (seed.recipe, seed.card, seed.repo) == ("", None, "alice/s1")


def test_the_recipe_shown_is_the_one_the_table_stored():
    stored = "merge_method: passthrough\nslices:\n- sources:\n  - model: models/g1-abcd1234\n    layer_range: [0, 2]\n"
    run = table_of({"id": "flow", "status": "ok", "fitness": 0.5, "recipe": stored},
                   {"id": "old", "status": "ok", "fitness": 0.4, "genes": '{"shared": {"t": 0.5}}'},
                   {"id": "seed", "kind": "seed", "status": "ok", "fitness": 0.3, "recipe": float("nan")})
    assert recipe_yaml(run, "flow") == stored  # shown as stored: no second renderer in the Space
    assert recipe_yaml(run, "old") == "" and recipe_yaml(run, "seed") == ""  # an older table without recipes


def test_a_card_without_metadata_is_all_prose():
    assert card_sections("# the champion\n") == ("", "# the champion\n")


# --------------------------------------------------------------------------- results dataset on the Hub
def test_a_results_dataset_on_the_hub_gives_the_same_leaderboard_tree_and_recipes(hub_server, runs_root, sim, tmp_path):
    alice = HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)
    cfg = RunConfig.model_validate(sim.config)
    repo_id = push_results(alice, run_dir=Path(sim.where), state=sim.state, cfg=cfg)
    hub = load_results_repo(repo_id, api=alice, cache_dir=tmp_path)
    assert (hub.name, hub.source, hub.where) == ("sim", "hub", "alice/sim-results")
    # the results dataset holds champion.json: the same rows and the same recorded reason
    assert hub.decision == sim.decision is not None
    assert leaderboard([hub], hub_url=HUB).equals(leaderboard([sim], hub_url=HUB))
    c2 = ids(sim)["c2"]
    assert set(family_tree(hub.lineage, c2).nodes) == set(family_tree(sim.lineage, c2).nodes)
    for key, ident in ids(sim).items():  # the recipes the table stored, read back from the Hub
        if key != "c3":  # never pushed: no repo to name it by
            assert recipe_yaml(hub, ident) == recipe_yaml(sim, ident), key
    with pytest.raises(HubError, match="alice/missing-results"):
        load_results_repo("alice/missing-results", api=alice, cache_dir=tmp_path)


def test_the_catalog_shows_local_and_hub_runs_and_notes_what_it_cannot_read(hub_server, runs_root, sim):
    alice = HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)
    push_results(alice, run_dir=Path(sim.where), state=sim.state, cfg=RunConfig.model_validate(sim.config))
    c1 = ids(sim)["c1"]
    card = "---\nlicense: mit\n---\n# the champion\n"
    alice.create_repo(f"alice/sim-{c1}", exist_ok=True)
    alice.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=f"alice/sim-{c1}")
    catalog = Catalog(runs_root=runs_root, hub_datasets=["alice/sim-results", "alice/missing-results"], api=alice)
    runs = catalog.runs()
    assert [r.name for r in runs] == ["other", "sim", "sim@hub"]  # the same run from the Hub keeps apart
    assert list(catalog.notes) == ["alice/missing-results"] and "alice/missing-results" in catalog.notes[
        "alice/missing-results"]
    assert catalog.card(runs[2], c1) == card  # a Hub run's card comes from the survivor's repo
    assert catalog.card(runs[1], c1) is None  # a local run's card is its README on disk
    assert catalog.runs()[1] is runs[1]  # unchanged folders are not read again


def test_a_status_tick_reads_the_small_status_file_and_matches_the_full_reload(tmp_path):
    from hubevo.state import STATUS_FILE, load_state

    cfg = write_run(tmp_path, name="live", finished=False)
    run_dir = cfg.output.dir
    catalog = Catalog(runs_root=tmp_path, hub_datasets=())
    full = local_status(load_run_dir(run_dir), now=0)
    quick = catalog.statuses()
    assert [s["name"] for s in quick] == ["live"] and catalog._local == {}  # no state parsed for the tick
    assert quick[0]["best_fitness"] is None  # the run's best comes from the run as the page read it: not yet
    catalog.runs()  # the page's first view
    quick = catalog.statuses()
    assert {k: v for k, v in quick[0].items() if k != "message"} == {k: v for k, v in full.items() if k != "message"}
    assert full["best_fitness"] == 0.6 and full["candidate"] is not None

    state = load_state(run_dir)
    state.finished, state.stop_reason = True, "budget spent"
    save_state(state, run_dir)
    assert catalog.statuses()[0]["state"] == "finished" and catalog.statuses()[0]["message"] == "budget spent"

    (run_dir / STATUS_FILE).write_text((run_dir / STATUS_FILE).read_text().replace('"finished":true', '"finished":false'))
    os.utime(run_dir / STATUS_FILE, ns=(1, 1))  # older than the state: stale, so the state is read instead
    assert catalog.statuses()[0]["state"] == "finished" and run_dir in catalog._local


def test_a_live_runs_recipes_are_rendered_on_demand(sim):
    merged = sim.results[sim.results["kind"] == "merge"]["id"].tolist()
    assert merged and all(r is None for r in sim.results["recipe"])  # the table skips 20k YAML dumps
    text = sim.recipe(merged[0])
    assert yaml.safe_load(text)["merge_method"] == sim.row(merged[0])["method"]
    assert yaml.safe_load(recipe_yaml(sim, merged[0]))["merge_method"] == sim.row(merged[0])["method"]
    seed = sim.results[sim.results["kind"] == "seed"]["id"].iloc[0]
    assert sim.recipe(seed) is None and recipe_yaml(sim, seed) == ""


def test_settings_come_from_the_environment():
    settings = SpaceSettings.from_env({"HUBEVO_RUNS_ROOT": "/srv/runs", "HUBEVO_ALLOW_LIST": "alice, bob,",
                                       "HUBEVO_RESULTS_DATASETS": "alice/a-results", "HUBEVO_TASK_DIRS": "/t1,/t2",
                                       "HUBEVO_SPACE_LOCAL_ROOT": "/srv/models"})
    assert settings.app_kwargs() == {"runs_root": Path("/srv/runs"), "admin_token": None,
                                     "allow_list": ["alice", "bob"], "hub_datasets": ["alice/a-results"],
                                     "task_dirs": [Path("/t1"), Path("/t2")], "local_root": Path("/srv/models")}
    assert SpaceSettings.from_env({}).runs_root == Path("runs")
    assert SpaceSettings.from_env({}).local_root is None  # Hub repos only unless an admin names a root


# --------------------------------------------------------------------------- status
def test_status_rows_show_progress_and_the_controllers_runs_win(runs_root):
    found = [local_status(load_run_dir(p), now=0) for p in run_dirs(runs_root)]
    other, sim = found
    assert (sim["state"], sim["generation"], sim["generations"], sim["best_fitness"]) == ("finished", 2, 2, 0.6)
    assert other["state"] == "unfinished" and "resume" in other["message"]
    managed = [{"name": "other", "state": "running", "generation": 1, "generations": 2, "candidate": 2,
                "candidates": 6, "elapsed_s": 3725, "eta_s": 65, "best_fitness": 0.41, "message": ""},
               {"name": "new", "state": "queued"},
               {"name": "ended", "state": "finished", "generation": 2, "generations": 2, "candidate": 1,
                "candidates": 13, "elapsed_s": 60, "eta_s": 121, "best_fitness": 0.5}]
    table = status_table(merge_statuses(managed, found))
    assert table["run"].tolist() == ["other", "new", "ended", "sim"]
    columns = ["state", "generations done", "evaluated this generation", "elapsed", "time left", "best fitness"]
    # the controller reports the champion's fitness: the row shows the run's best, as found on disk
    assert table.iloc[0][columns].tolist() == ["running", "1 of 2", "2 of 6", "1h 02m", "1m 05s", "0.600"]
    assert table.iloc[1][columns[1:]].tolist() == ["-", "-", "-", "-", "-"]
    # an ended run counts no candidates of a generation under way and has no time left
    assert table.iloc[2][columns].tolist() == ["finished", "2 of 2", "-", "1m 00s", "-", "-"]
    assert table.iloc[3][["state", "elapsed", "best fitness"]].tolist() == ["finished", "2m 05s", "0.600"]
    assert status_table([]).empty and "best fitness" in status_table([]).columns


def test_the_best_fitness_is_the_best_any_candidate_scored_not_the_champions(tmp_path):
    cfg = write_finals_run(tmp_path, name="fin", champion="seed")
    run = load_run_dir(cfg.output.dir)
    champion = run.row(champion_id(run.results))
    assert champion["model"] == "alice/s2" and champion["fitness"] == 0.5
    assert local_status(run)["best_fitness"] == 0.6  # c1, a finalist the champion rule did not crown


# --------------------------------------------------------------------------- seeding form
def write_tasks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "add.yaml").write_text("task: local_add\ndataset_path: json\n")
    (folder / "group.yaml").write_text("group: local_group\ntask:\n  - local_add\n")
    return folder


def good_form(**changes) -> SeedForm:
    fields = dict(name="fresh", candidates="alice/a\nalice/b@v1", base_model="alice/base",
                  methods=["linear", "ties"], tasks="local_add", heldout="local_group", limit=32,
                  generations=2, population_size=4)
    return SeedForm(**(fields | changes))


def test_a_valid_form_becomes_a_run_config_within_the_caps(tmp_path):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    config = build_run_config(good_form(), runs_root=tmp_path / "runs", tasks=tasks, caps=BudgetCaps())
    cfg = RunConfig.model_validate(config)
    assert [m.repo for m in cfg.population.members] == ["alice/a", "alice/b@v1"]
    assert cfg.population.base_model.repo == "alice/base"
    assert cfg.crossover.methods == ["linear", "ties"]
    assert [t.name for t in cfg.fitness.tasks] == ["local_add"] and cfg.fitness.heldout[0].name == "local_group"
    assert cfg.fitness.include_path == [tmp_path / "tasks"]
    assert cfg.output.dir == (tmp_path / "runs" / "fresh").resolve()
    assert (cfg.budget.max_evaluations, cfg.budget.wall_time_s) == (200, 6 * 3600)  # open budget -> the caps
    assert cfg.publish.push == "none"


def test_a_hub_query_can_replace_the_candidate_list(tmp_path):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    form = good_form(candidates="", query_author="alice", query_filter="base_model:alice/base, merge", query_limit=5)
    cfg = RunConfig.model_validate(build_run_config(form, runs_root=tmp_path, tasks=tasks))
    assert cfg.population.members == []
    assert (cfg.population.query.author, cfg.population.query.filter, cfg.population.query.limit) == (
        "alice", ["base_model:alice/base", "merge"], 5)


def test_a_bad_form_is_refused_with_every_problem_named(tmp_path):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    form = good_form(name="taken", candidates="/etc/passwd\nalice/ok\nnot a repo", base_model="",
                     methods=["linaer", "ties"], tasks="local_ad", heldout="", generations=50, population_size=1,
                     namespace="bad ns", push="survivors")
    with pytest.raises(SeedError) as refused:
        build_run_config(form, runs_root=tmp_path / "runs", tasks=tasks)
    message = str(refused.value)
    for expected in ("'taken' already exists", "'/etc/passwd' is a local path", "'not a repo' is not a Hub",
                     "unknown merge method 'linaer'. Did you mean linear?", "ties need a base model",
                     "task 'local_ad' is unknown; did you mean local_add", "generations 50 is outside 1..20",
                     "population size 1 is outside 2..16", "namespace 'bad ns'"):
        assert expected in message, expected


@pytest.mark.parametrize("changes, expected", [
    (dict(candidates="", query_author=""), "give candidate repo ids, a Hub query"),
    (dict(methods=[]), "choose at least one merge method"),
    (dict(tasks=""), "give at least one fitness task"),
    (dict(max_evaluations=500), "max evaluations 500 is outside 1..200"),
    (dict(wall_time_s=10 * 3600.0), "wall time (s) 36000 is outside 1..21600"),
    (dict(push="champion"), "needs a namespace"),
    (dict(name="../escape"), "run name '../escape' must be"),
    (dict(candidates="\n".join(f"alice/m{k}" for k in range(17))), "exceed the cap of 16 candidates"),
])
def test_each_cap_and_rule_is_enforced(tmp_path, changes, expected):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    with pytest.raises(SeedError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        build_run_config(good_form(**changes), runs_root=tmp_path, tasks=tasks)


def model_folders(root: Path) -> Path:
    for name in ("a", "b"):
        (root / "models" / name).mkdir(parents=True)
    (root / "elsewhere").mkdir()
    return root / "models"


def test_local_folders_are_seeded_only_from_under_the_allowed_root(tmp_path):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    root = model_folders(tmp_path)
    form = good_form(candidates=f"{root / 'a'}\nb", base_model="alice/base")
    cfg = RunConfig.model_validate(build_run_config(form, runs_root=tmp_path / "runs", tasks=tasks, local_root=root))
    assert [m.path for m in cfg.population.members] == [root / "a", root / "b"]  # relative names read under the root
    with pytest.raises(SeedError, match="is a local path.*HUBEVO_SPACE_LOCAL_ROOT"):
        build_run_config(form, runs_root=tmp_path / "runs", tasks=tasks)  # no root set: Hub repos only
    outside = good_form(candidates=f"{tmp_path / 'elsewhere'}\n{root}/../elsewhere\n{root / 'missing'}")
    with pytest.raises(SeedError) as refused:
        build_run_config(outside, runs_root=tmp_path / "runs", tasks=tasks, local_root=root)
    message = str(refused.value)
    assert message.count(f"outside the allowed local root '{root}'") == 2 and "HUBEVO_SPACE_LOCAL_ROOT" in message
    assert f"'{root / 'missing'}' is not a folder under the allowed local root" in message


def test_a_repo_id_that_names_a_folder_in_the_servers_working_folder_stays_a_repo(tmp_path, monkeypatch):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    (tmp_path / "hubevo" / "demo").mkdir(parents=True)
    (tmp_path / "alice" / "a").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    form = good_form(candidates="hubevo/demo\nalice/b", base_model="alice/a")
    for local_root in (None, model_folders(tmp_path / "allowed")):
        cfg = RunConfig.model_validate(build_run_config(form, runs_root=tmp_path / "runs", tasks=tasks,
                                                        local_root=local_root))
        assert [(m.repo, m.path) for m in cfg.population.members] == [("hubevo/demo", None), ("alice/b", None)]
        assert (cfg.population.base_model.repo, cfg.population.base_model.path) == ("alice/a", None)
    uploaded = RunConfig.model_validate(config_from_yaml(
        run_yaml(population={"members": ["hubevo/demo", "alice/b"], "base_model": "alice/a"}),
        runs_root=tmp_path / "runs", tasks=tasks))
    assert [m.repo for m in uploaded.population.members] == ["hubevo/demo", "alice/b"]
    assert uploaded.population.base_model.repo == "alice/a"


def test_a_number_field_holding_text_is_named_with_what_to_enter():
    assert form_numbers(whole={"Generations": 3.0, "Max evaluations": ""}, real={"Wall time, hours": "1.5"}) == {
        "Generations": 3, "Max evaluations": None, "Wall time, hours": 1.5}
    with pytest.raises(SeedError) as refused:
        form_numbers(whole={"Generations": "three", "Population size": 2.5}, real={"Wall time, hours": "soon"})
    message = str(refused.value)
    for expected in ("Generations 'three' is not a number; enter a whole number",
                     "Population size 2.5 is not a whole number", "Wall time, hours 'soon' is not a number"):
        assert expected in message, message


def run_yaml(**changes) -> str:
    data = {"name": "uploaded", "population": {"members": ["alice/a", "alice/b"]},
            "fitness": {"tasks": ["local_add"], "heldout": ["local_group"]},
            "crossover": {"methods": ["linear", "slerp"]}, "budget": {"generations": 2, "population_size": 4},
            "output": {"dir": "/tmp/anywhere"}}
    return yaml.safe_dump(data | changes)


def test_an_uploaded_run_yaml_is_parsed_capped_and_kept_under_the_runs_root(tmp_path):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    cfg = RunConfig.model_validate(config_from_yaml(run_yaml(), runs_root=tmp_path / "runs", tasks=tasks))
    assert cfg.name == "uploaded" and [m.repo for m in cfg.population.members] == ["alice/a", "alice/b"]
    assert cfg.output.dir == (tmp_path / "runs" / "uploaded").resolve()  # never where the YAML says
    assert (cfg.budget.max_evaluations, cfg.budget.wall_time_s) == (200, 6 * 3600)
    assert cfg.fitness.include_path == [(tmp_path / "tasks").resolve()]


@pytest.mark.parametrize("text, expected", [
    ("name: [unclosed", "not valid YAML"),
    ("- a list", "must be a YAML mapping, got list"),
    (run_yaml(budget={"generations": -1}), "budget.generations: Input should be greater than or equal to 0"),
    (run_yaml(fitness={"tasks": []}), "fitness.tasks"),
    (run_yaml(budget={"generations": 50}), "budget.generations 50 is over this deployment's cap of 20"),
    (run_yaml(population={"members": ["/etc", "alice/b"]}), "population.members '/etc' is a local path"),
    (run_yaml(fitness={"tasks": ["local_ad"]}), "task 'local_ad' is unknown; did you mean local_add"),
    (run_yaml(fitness={"tasks": ["local_add"], "include_path": ["/srv/other"]}), "'/srv/other' is not one of"),
])
def test_a_bad_uploaded_run_yaml_is_refused_with_the_field_named(tmp_path, text, expected):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    with pytest.raises(SeedError, match=re.escape(expected)):
        config_from_yaml(text, runs_root=tmp_path / "runs", tasks=tasks)


def test_tasks_outside_the_local_folders_are_left_to_lm_eval(tmp_path):
    asked = []

    def registry(folders):
        asked.append(folders)
        return frozenset({"arc_easy", "hellaswag"})

    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=registry)
    assert local_task_names(tasks.folders) == {"local_add", "local_group"}
    assert tasks.unknown(["local_add"]) == [] and asked == []  # local names never index lm-eval
    assert tasks.unknown(["arc_easy", "local_add"]) == []
    assert tasks.unknown(["arc_esay"]) == ["task 'arc_esay' is unknown; did you mean arc_easy?"]


# --------------------------------------------------------------------------- who may act
def test_only_allow_listed_users_or_the_admin_token_may_act():
    access = Access.of(admin_token="s3cret", allow_list=["Alice", " bob "])
    assert access.user(username="alice", token=None) == "alice"
    assert access.user(username="BOB", token="") == "BOB"
    assert access.user(username=None, token="s3cret") == ADMIN
    with pytest.raises(AccessDenied, match="sign in"):
        access.user(username=None, token=None)
    with pytest.raises(AccessDenied, match="'mallory' is not on this Space's allow-list"):
        access.user(username="mallory", token=None)
    with pytest.raises(AccessDenied, match="admin token is wrong"):
        access.user(username="alice", token="guess")  # a wrong token is never excused by a login


def test_with_nothing_configured_nobody_may_act():
    closed = Access.of(admin_token="", allow_list=[])
    assert not closed.anyone_can_act
    for username, token in ((None, None), ("alice", None), (None, "anything")):
        with pytest.raises(AccessDenied):
            closed.user(username=username, token=token)


def test_a_started_run_reads_running_between_its_generation_jobs(tmp_path):
    from hubevo.scheduler import RUN_FILE, run_status

    for name, finished in (("mid", False), ("done", True)):
        cfg = write_run(tmp_path, name=name, finished=finished)
        (cfg.output.dir / RUN_FILE).write_text((cfg.output.dir / "config.yaml").read_text())
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / RUN_FILE).write_text((tmp_path / "mid" / RUN_FILE).read_text().replace(
        str(tmp_path / "mid"), str(tmp_path / "fresh")))
    mid = run_status(tmp_path / "mid")  # no job holds it right now
    assert mid["state"] == "running" and mid["generation"] == 2 and mid["generations"] == 2
    assert run_status(tmp_path / "done")["state"] == "finished"
    assert run_status(tmp_path / "fresh")["state"] == "queued"  # never started
    spent = yaml.safe_load((tmp_path / "done" / RUN_FILE).read_text())
    spent["budget"].update(generations=5, wall_time_s=100.0)  # 125 s used: stopped by its wall time at 2 of 5
    (tmp_path / "done" / RUN_FILE).write_text(yaml.safe_dump(spent))
    assert run_status(tmp_path / "done")["state"] == "finished"
    spent["budget"].update(wall_time_s=1000.0)  # budget raised: the next generation job will carry it on
    (tmp_path / "done" / RUN_FILE).write_text(yaml.safe_dump(spent))
    assert run_status(tmp_path / "done")["state"] == "running"



def test_the_generation_column_counts_generations_done_out_of_the_budget(tmp_path):
    """Between the scheduler's one-generation jobs a run's state reads finished with 'N generations done' for the
    job's own target; the page counts generations whose survivors are chosen and says what comes next."""
    from hubevo.scheduler import RUN_FILE, run_status
    from hubevo.state import load_state, save_state

    cfg = write_run(tmp_path, name="steps", finished=True)
    spec = yaml.safe_load((cfg.output.dir / "config.yaml").read_text())
    spec["budget"].update(generations=3, wall_time_s=None, max_evaluations=None)
    (cfg.output.dir / RUN_FILE).write_text(yaml.safe_dump(spec))
    state = load_state(cfg.output.dir)
    state.survivors = {0: state.survivors[0]}  # only generation 0 (the members) is done
    state.generation, state.stop_reason = 0, "0 generations done"
    save_state(state, cfg.output.dir)
    after_zero = run_status(cfg.output.dir)
    assert status_table([after_zero])["generations done"].tolist() == ["0 of 3"]
    assert after_zero["message"] == "generation 0 of 3 done (the members scored); generation 1 is next"
    state.finished, state.generation = False, 1  # generation 1 under way
    save_state(state, cfg.output.dir)
    assert run_status(cfg.output.dir, running=True)["message"] == "generation 1 of 3 running"
    spec["budget"]["generations"] = 2
    (cfg.output.dir / RUN_FILE).write_text(yaml.safe_dump(spec))
    write_run(tmp_path, name="steps", finished=True)  # the whole budget spent
    (cfg.output.dir / RUN_FILE).write_text(yaml.safe_dump(spec))
    spent = run_status(cfg.output.dir)
    assert (spent["state"], spent["message"]) == ("finished", "2 generations done")
    assert status_table([spent])["generations done"].tolist() == ["2 of 2"]


def test_the_candidate_column_counts_the_generations_evaluations_when_bars_were_off(tmp_path):
    """Runs without progress bars wrote `done: 1` on every event: the column counts the state's candidates."""
    from hubevo.scheduler import RUN_FILE, run_status
    from hubevo.state import append_event, load_state

    cfg = write_run(tmp_path, name="mid", finished=False)
    (cfg.output.dir / RUN_FILE).write_text((cfg.output.dir / "config.yaml").read_text())
    state = load_state(cfg.output.dir)
    state.population = [*state.population[:2], "not-yet-evaluated"]
    save_state(state, cfg.output.dir)
    for cid in state.population[:2]:
        append_event(cfg.output.dir, "evaluated", id=cid, generation=state.generation, status="ok", done=1, total=3)
    status = run_status(cfg.output.dir)
    assert (status["candidate"], status["candidates"]) == (2, 3)
    assert status_table([status])["evaluated this generation"].tolist() == ["2 of 3"]


# --------------------------------------------------------------------------- columns, sorting, downloads, comparisons
def test_leaderboard_columns_can_be_chosen_and_rows_sorted_by_any_score(sim):
    assert list(leaderboard([sim], columns=["fitness", "heldout/tiny_heldout"]).columns) == [
        "model", "fitness", "heldout/tiny_heldout"]
    by_heldout = leaderboard([sim], sort_by="held-out")
    assert by_heldout["held-out"].tolist()[:4] == [0.5, 0.45, 0.4, 0.2]
    assert by_heldout["held-out"].isna().tolist()[-1]  # a missing score sorts last
    rows = plain(leaderboard([sim], hub_url=HUB))
    assert rows.columns[:2].tolist() == ["model", "champion"] and rows["champion"].tolist()[0] is True
    assert not rows["model"].str.contains(r"\]\(|" + BADGE).any()


def test_the_first_view_holds_the_leaderboard_files_each_call_in_a_folder_of_its_own(runs_root, tmp_path):
    from space.ui import everything

    catalog = Catalog(runs_root=runs_root, hub_datasets=())
    *_, csv, parquet = everything(catalog, hub_url=HUB, controller=None, downloads=tmp_path)
    shown = plain(leaderboard(catalog.runs(), hub_url=HUB))
    for frame in (pd.read_csv(csv), pd.read_parquet(parquet)):
        assert frame["model"].tolist() == shown["model"].tolist()
        assert frame["champion"].tolist() == shown["champion"].tolist() and frame["champion"].any()
    *_, again, _ = everything(catalog, hub_url=HUB, controller=None, downloads=tmp_path)
    assert Path(again).parent != Path(csv).parent and Path(csv).is_file()  # another visitor's files stand apart


def test_two_models_side_by_side_and_their_recipe_diff(sim):
    i = ids(sim)
    a, b = model_key("sim", i["c1"]), model_key("sim", i["c2"])
    table = side_by_side([sim], a, b).set_index("score")
    assert table.loc["fitness", "A − B"] == "+0.050" and table.loc["heldout/tiny_heldout", "A − B"] == "-0.050"
    assert table.loc["fitness"].tolist()[:2] == ["0.600", "0.550"]  # 3 decimals, as on every page
    diff = recipe_diff([sim], a, b)
    assert "-merge_method: linear" in diff and "+merge_method: slerp" in diff
    assert recipe_diff([sim], a, a).startswith("# the two recipes are identical")
    assert side_by_side([sim], a, "sim/nope").empty


def test_an_older_runs_champion_summary_compares_it_with_the_best_member(sim):
    """A run written before champion.json existed: the summary the Space gave before."""
    i = ids(sim)
    names = dict(zip(sim.results["id"], sim.results["model"], strict=True))
    older = dataclasses.replace(sim, decision=None)
    text = champion_summary([older])
    assert text.startswith(f"{BADGE} **{names[i['c1']]}** is the champion of run `sim`: fitness 0.600")
    assert "best initial member **alice/s2**: held-out 0.400, champion +0.050" in text


# --------------------------------------------------------------------------- one champion story (champion.json)
@pytest.fixture(scope="module")
def finals(tmp_path_factory) -> dict[str, RunData]:
    """Two finished runs with finals: one crowns a bred child, the other keeps a member (tests/helpers/space_runs)."""
    root = tmp_path_factory.mktemp("space-finals")
    return {kind: load_run_dir(write_finals_run(root, name=f"fin-{kind}", champion=kind).output.dir)
            for kind in ("bred", "seed")}


def recorded(run: RunData) -> dict:
    return json.loads((Path(run.where) / "champion.json").read_text())


def test_every_page_says_why_in_the_words_the_run_recorded(finals):
    from space.verdict import NOT_FINALIST, markdown_text, model_verdict

    for kind, run in finals.items():
        decision = recorded(run)
        text, champion = decision["text"], decision["champion"]
        assert run.reason == text and "± 0.028" in text  # the lead's error is part of the sentence
        assert champion_id(run.results) == champion
        summary = champion_summary([run])
        assert markdown_text(text) in summary and "Against" not in summary  # no comparison of the Space's own
        board = leaderboard([run])
        assert board[WHY].tolist() == [text] + [""] * (len(board) - 1)  # the champion's row, and only it
        names = dict(zip(run.results["model"], run.results["id"], strict=True))
        other = decision["challenger"] if kind == "seed" else decision["holder"]  # the finalist that lost
        assert model_verdict(run, champion) == text == model_detail(run, champion).verdict
        assert model_verdict(run, other) == f"not champion: {text}"
        assert model_verdict(run, names["alice/s1"]) == NOT_FINALIST == model_detail(run, names["alice/s1"]).verdict
    assert finals["seed"].row(recorded(finals["seed"])["champion"])["kind"] == "seed"
    assert finals["bred"].row(recorded(finals["bred"])["champion"])["kind"] == "merge"


def test_a_run_without_champion_json_falls_back_to_what_the_space_showed(finals):
    older = dataclasses.replace(finals["bred"], decision=None)
    assert older.reason is None and set(leaderboard([older])[WHY]) == {""}
    cid = champion_id(older.results)
    assert model_detail(older, cid).verdict is None
    assert "is the champion of run `fin-bred`: fitness 0.600" in champion_summary([older])


def test_a_live_runs_newer_state_is_told_in_the_cores_words(tmp_path):
    from hubevo.publish import decision_record
    from hubevo.state import load_state

    cfg = write_finals_run(tmp_path, name="live", champion="seed")
    state = load_state(cfg.output.dir)
    s2 = next(i for i, ind in state.individuals.items() if ind.name == "alice/s2")
    state.validation[s2] = state.validation[s2].model_copy(update={"fitness": 0.3})  # saved after the tables were
    save_state(state, cfg.output.dir)
    run = load_run_dir(cfg.output.dir)
    assert recorded(run)["champion"] == s2 and run.decision == decision_record(state)
    assert run.decision["champion"] != s2 and run.reason == decision_record(state)["text"]


def test_scores_show_three_decimals_and_their_error_where_known(finals):
    from space.numbers import styled, with_error

    assert with_error(0.62, 0.02) == "0.620 ± 0.020" and with_error(0.5, None) == "0.500"
    assert with_error(None, 0.02) == "-"
    board = leaderboard([finals["bred"]])
    assert {"validation", "validation ±", "fitness ±", "pareto"} <= set(board.columns)
    assert board["validation ±"].tolist()[:3] == [VALIDATION_STDERR] * 3 and board["fitness ±"][0] == FITNESS_STDERR
    shown = styled(board, scores=[c for c in board.columns if "/" in c or c in ("fitness", "validation", "held-out")])
    assert "validation ±" not in shown.data.columns  # the error is written into its score's cell
    text = shown.to_string()
    assert "0.620 ± 0.020" in text and "0.600 ± 0.020" in text and "0.450" in text and "0.4500" not in text
    assert board["pareto"].tolist()[:2] == ["yes", ""]  # c1 is on the front, s2 is not
    plain_board = plain(board)
    assert plain_board["validation ±"].tolist()[0] == VALIDATION_STDERR  # the download keeps the error as a number


def test_all_runs_show_one_run_after_the_other_each_champion_first(finals, sim):
    board = leaderboard([finals["bred"], finals["seed"], sim])
    runs = board["run"].tolist()
    assert runs == sorted(runs, key=["fin-bred", "fin-seed", "sim"].index)  # each run's rows together
    for name in ("fin-bred", "fin-seed", "sim"):
        rows = board[board["run"] == name]
        assert rows["rank"].tolist() == list(range(1, len(rows) + 1))
        assert rows["model"].iloc[0].startswith(BADGE) and not rows["model"].iloc[1:].str.startswith(BADGE).any()
    assert leaderboard([finals["seed"], sim], sort_by="fitness")["fitness"].tolist()[:2] == [0.6, 0.6]  # across runs


def test_task_columns_appear_only_for_the_tasks_the_shown_runs_have(finals, sim):
    from space.leaderboard import column_choices, sort_choices

    runs = [sim, finals["bred"]]
    second = f"fitness/{SECOND_TASK}"
    assert second in leaderboard(runs).columns and second in column_choices(runs)
    assert second not in leaderboard(runs, run="sim").columns
    assert second not in column_choices(runs, run="sim") and second not in sort_choices(runs, run="sim")
    failed_only = leaderboard([finals["bred"]], generation="1", query="7adad")  # a failed child: no score at all
    assert len(failed_only) == 1 and not [c for c in failed_only.columns if "/" in c]


def test_use_it_offers_from_pretrained_only_where_weights_exist(finals, tmp_path):
    from space.detail import use_it
    from tests.tiny_models import build_llama

    run = finals["bred"]
    names = dict(zip(run.results["model"], run.results["id"], strict=True))
    champion = recorded(run)["champion"]
    on_hub = model_detail(run, champion)
    assert on_hub.weights == on_hub.repo and f"from_pretrained({on_hub.repo!r})" in use_it(on_hub)
    local = dataclasses.replace(run, results=run.results.assign(repo=None))  # a run that published nothing
    recipe_only = model_detail(local, champion)
    text = use_it(recipe_only)
    assert recipe_only.weights is None and "from_pretrained" not in text
    assert f"hubevo export {run.where} {champion} out" in text and "mergekit-yaml recipe.yaml out" in text
    assert "merge_method" not in text  # the recipe itself is printed once, in its own box
    folder = Path(run.row(champion)["path"])
    build_llama(tmp_path / "weights")
    for item in (tmp_path / "weights").iterdir():  # the survivor's folder now holds its weights
        (folder / item.name).write_bytes(item.read_bytes())
    assert model_detail(local, champion).weights == str(folder)
    assert f"from_pretrained({str(folder)!r})" in use_it(model_detail(local, champion))
    seed = model_detail(local, names["alice/s1"])
    assert seed.weights is None and "hubevo export" in use_it(seed)


def test_the_model_page_shows_the_cards_own_prose_once(finals):
    from space.detail import card_prose

    run = finals["bred"]
    champion = recorded(run)["champion"]
    _meta, body = card_sections(model_detail(run, champion).card)
    assert "## Recipe" in body and "merge_method" in body and "from_pretrained" in body
    prose = card_prose(body)
    assert "## Lineage" in prose and "Bred by hubevo" in prose
    for gone in ("## Recipe", "merge_method", "from_pretrained", "## Use it", "## Scores", "## Champion"):
        assert gone not in prose, gone
    assert not prose.lstrip().startswith("# ")  # the page has the title


def test_the_family_tree_opens_on_the_best_bred_lineage_when_a_seed_is_champion(finals):
    from space.leaderboard import lineage_key

    seed_run, bred_run = finals["seed"], finals["bred"]
    names = dict(zip(seed_run.results["id"], seed_run.results["model"], strict=True))
    assert champion_key([seed_run]) == f"fin-seed/{recorded(seed_run)['champion']}"
    key = lineage_key([seed_run])
    assert names[key.partition("/")[2]].startswith("g1-")  # c1: the best bred candidate
    assert lineage_key([bred_run]) == champion_key([bred_run])


def test_the_pareto_plot_marks_the_front_the_champion_and_the_finalists(finals, sim):
    from space.front import front_figure, front_table

    run = finals["bred"]
    done, tasks = front_table(run)
    assert tasks == ["fitness/tiny", f"fitness/{SECOND_TASK}"]
    assert sorted(done[done["on_front"]]["model"]) == sorted(["alice/s1", run.row(recorded(run)["champion"])["model"]])
    assert done["finalist"].sum() == 3 and done["is_champion"].sum() == 1
    ax = front_figure(run).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("tiny", SECOND_TASK)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"Pareto front", "finalist", "initial member"} <= set(labels)
    assert any(label.startswith("champion: g1-") for label in labels)
    one_task = front_figure(sim).axes[0]
    assert one_task.get_xlabel() == "generation evaluated in"
    three = dataclasses.replace(run, results=run.results.assign(**{"fitness/third": run.results["fitness"]}))
    assert [t.get_text() for t in front_figure(three).axes[0].get_xticklabels()] == ["third", "tiny", SECOND_TASK]


def test_a_folder_the_catalog_cannot_read_is_logged_once(tmp_path, caplog):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "state.json").write_text("{not json")
    catalog = Catalog(runs_root=tmp_path, hub_datasets=())
    with caplog.at_level("WARNING", logger="hubevo.space"):
        for _ in range(3):  # three page loads
            assert catalog.runs() == []
    assert len([r for r in caplog.records if "broken" in r.getMessage()]) == 1 and catalog.notes


def test_runs_of_one_name_in_two_folders_are_told_apart_on_every_tab(tmp_path):
    """Two folders whose runs share a config name (two seeds of one config) are named `name (folder)`, in the
    runs every tab lists and in the status table alike, and their models are found by key; a run whose name is
    its own keeps it."""
    for folder in ("seed-0", "seed-1"):
        cfg = write_run(tmp_path / folder, name="sim")
        (tmp_path / folder / "sim").rename(tmp_path / f"sim-{folder}")
        (tmp_path / folder).rmdir()
    write_run(tmp_path, name="alone")
    catalog = Catalog(runs_root=tmp_path, hub_datasets=())
    names = sorted(r.name for r in catalog.runs())
    assert names == ["alone", "sim (sim-seed-0)", "sim (sim-seed-1)"]
    assert sorted(s["name"] for s in catalog.statuses()) == names
    run = next(r for r in catalog.runs() if r.name == "sim (sim-seed-1)")
    assert Path(run.where).name == "sim-seed-1"
    model_id = str(run.results["id"].iloc[0])
    assert find_model(catalog.runs(), model_key(run.name, model_id)) == (run, model_id)


def test_the_apps_own_download_folder_leaves_with_its_process(tmp_path):
    """The leaderboard writes its CSV and parquet downloads into a temporary folder of its own; a process that
    built the app leaves nothing of it behind in the temporary folder."""
    import subprocess
    import sys

    temp = tmp_path / "tmp"
    temp.mkdir()
    code = ("from pathlib import Path; import tempfile, sys; from space.ui import build_app\n"
            "build_app(runs_root=Path(sys.argv[1]), controller=None, admin_token=None, allow_list=[])\n"
            "print(sorted(p.name for p in Path(tempfile.gettempdir()).glob('hubevo-leaderboard-*')))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "runs")], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], env={**os.environ, "TMPDIR": str(temp)}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith("['hubevo-leaderboard-")  # made while the app lived
    assert not list(temp.glob("hubevo-leaderboard-*"))
