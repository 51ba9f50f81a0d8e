"""The Space's pages (`space.pages`): leaderboard, family tree, progress, model detail, status table,
comparisons and the Pareto front, each a pure function of the runs `space.data` reads.

The run (`write_run` in tests/helpers/sim_runs.py) is written by the loop's own writers
(`save_state`, `write_tables`, `lineage_card`): two Hub seeds; generation 1 breeds c1 (linear,
the champion) and c3 (slerp, failed); generation 2 breeds c2 (slerp of c1 and s2), which does not
beat c1. Small hand-made tables check that every view names the champion by the core's one rule
(`hubevo.selection.ranking`).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mergekit.config import MergeConfiguration
from PIL import Image

from hubevo.breed.genome import (
    DataFlowGenome,
    LayerStep,
    MergeGenome,
    child_individual,
    finetune_individual,
    seed_individual,
)
from hubevo.config.finetune import PreferenceSource
from hubevo.finetune.recipe import FinetuneRecipe
from hubevo.publish.tables import lineage_graph
from hubevo.state.runstate import RunState, save_state
from space.data.loading import RunData, load_run_dir, run_dirs, with_columns
from space.data.ranking import best_first, champion_id
from space.data.status import local_status
from space.pages.compare import champion_summary, recipe_diff, side_by_side
from space.pages.detail import card_sections, model_detail, recipe_yaml
from space.pages.leaderboard import (
    BADGE,
    LEADERBOARD_COLUMNS,
    WHY,
    champion_key,
    find_model,
    generations_of,
    leaderboard,
    link_text,
    model_choices,
    model_key,
    plain,
)
from space.pages.progress import generation_stats
from space.pages.status_table import status_table
from space.pages.tree import (
    family_tree,
    page_choices,
    page_count,
    page_note,
    tree_figure,
    tree_layout,
    tree_page,
    tree_png,
)
from tests.helpers.sim_runs import write_run
from tests.helpers.space_runs import FITNESS_STDERR, SECOND_TASK, VALIDATION_STDERR
from tests.space.runs import HUB, ids, recorded


# --------------------------------------------------------------------------- leaderboard
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
    assert "## Rebuild it with mergekit" in body and "## Lineage" in body
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


# --------------------------------------------------------------------------- status table
def test_a_started_run_reads_running_between_its_generation_jobs(tmp_path):
    from hubevo.run.scheduler import RUN_FILE, run_status

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
    from hubevo.run.scheduler import RUN_FILE, run_status
    from hubevo.state.runstate import load_state, save_state

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
    from hubevo.run.scheduler import RUN_FILE, run_status
    from hubevo.state.events import append_event
    from hubevo.state.runstate import load_state

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


# --------------------------------------------------------------------------- columns, sorting, comparisons
def test_leaderboard_columns_can_be_chosen_and_rows_sorted_by_any_score(sim):
    assert list(leaderboard([sim], columns=["fitness", "heldout/tiny_heldout"]).columns) == [
        "model", "fitness", "heldout/tiny_heldout"]
    by_heldout = leaderboard([sim], sort_by="held-out")
    assert by_heldout["held-out"].tolist()[:4] == [0.5, 0.45, 0.4, 0.2]
    assert by_heldout["held-out"].isna().tolist()[-1]  # a missing score sorts last
    rows = plain(leaderboard([sim], hub_url=HUB))
    assert rows.columns[:2].tolist() == ["model", "champion"] and rows["champion"].tolist()[0] is True
    assert not rows["model"].str.contains(r"\]\(|" + BADGE).any()


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
def test_every_page_says_why_in_the_words_the_run_recorded(finals):
    from space.data.verdict import NOT_FINALIST, markdown_text, model_verdict

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


def test_scores_show_three_decimals_and_their_error_where_known(finals):
    from space.data.numbers import styled, with_error

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
    from space.pages.leaderboard import column_choices, sort_choices

    runs = [sim, finals["bred"]]
    second = f"fitness/{SECOND_TASK}"
    assert second in leaderboard(runs).columns and second in column_choices(runs)
    assert second not in leaderboard(runs, run="sim").columns
    assert second not in column_choices(runs, run="sim") and second not in sort_choices(runs, run="sim")
    failed_only = leaderboard([finals["bred"]], generation="1", query="7adad")  # a failed child: no score at all
    assert len(failed_only) == 1 and not [c for c in failed_only.columns if "/" in c]


def test_use_it_offers_from_pretrained_only_where_weights_exist(finals, tmp_path):
    from space.pages.detail import use_it
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
    from space.pages.detail import card_prose

    run = finals["bred"]
    champion = recorded(run)["champion"]
    _meta, body = card_sections(model_detail(run, champion).card)
    assert "## Rebuild it with mergekit" in body and "merge_method" in body and "from_pretrained" in body
    prose = card_prose(body)
    assert "## Lineage" in prose and "Bred by hubevo" in prose
    for gone in ("## Rebuild it with mergekit", "merge_method", "from_pretrained", "## Use it", "## Scores", "## Champion"):
        assert gone not in prose, gone
    assert not prose.lstrip().startswith("# ")  # the page has the title


def test_the_family_tree_opens_on_the_best_bred_lineage_when_a_seed_is_champion(finals):
    from space.pages.leaderboard import lineage_key

    seed_run, bred_run = finals["seed"], finals["bred"]
    names = dict(zip(seed_run.results["id"], seed_run.results["model"], strict=True))
    assert champion_key([seed_run]) == f"fin-seed/{recorded(seed_run)['champion']}"
    key = lineage_key([seed_run])
    assert names[key.partition("/")[2]].startswith("g1-")  # c1: the best bred candidate
    assert lineage_key([bred_run]) == champion_key([bred_run])


def test_the_pareto_plot_marks_the_front_the_champion_and_the_finalists(finals, sim):
    from space.pages.front import front_figure, front_table

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
