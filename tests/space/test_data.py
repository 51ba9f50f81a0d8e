"""The Space's data layer (`space.data`): runs read from what the loop writes (a run directory, or a results
dataset read back from the Hub), the catalog that keeps them, each run's status, and the champion rule's
decision as the run recorded it.

The run (`write_run` in tests/helpers/sim_runs.py) is written by the loop's own writers
(`save_state`, `write_tables`, `lineage_card`): two Hub seeds; generation 1 breeds c1 (linear,
the champion) and c3 (slerp, failed); generation 2 breeds c2 (slerp of c1 and s2), which does not
beat c1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi

from hubevo.config import RunConfig
from hubevo.errors import HubError
from hubevo.publish.hub import push_results
from hubevo.state.runstate import save_state
from space.data.catalog import Catalog
from space.data.loading import load_results_repo, load_run_dir, run_dirs
from space.data.ranking import champion_id
from space.data.status import local_status, merge_statuses
from space.pages.detail import recipe_yaml
from space.pages.leaderboard import find_model, leaderboard, model_key
from space.pages.status_table import status_table
from space.pages.tree import family_tree
from tests.helpers.sim_runs import ALICE_TOKEN, write_run
from tests.helpers.space_runs import write_finals_run
from tests.space.runs import HUB, ids, recorded


# --------------------------------------------------------------------------- loading and the catalog
def test_run_directories_are_found_under_the_runs_root(runs_root):
    assert [p.name for p in run_dirs(runs_root)] == ["other", "sim"]
    assert run_dirs(runs_root / "sim") == [runs_root / "sim"]
    assert run_dirs(runs_root / "missing") == []


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


def test_a_live_runs_recipes_are_rendered_on_demand(sim):
    merged = sim.results[sim.results["kind"] == "merge"]["id"].tolist()
    assert merged and all(r is None for r in sim.results["recipe"])  # the table skips 20k YAML dumps
    text = sim.recipe(merged[0])
    assert yaml.safe_load(text)["merge_method"] == sim.row(merged[0])["method"]
    assert yaml.safe_load(recipe_yaml(sim, merged[0]))["merge_method"] == sim.row(merged[0])["method"]
    seed = sim.results[sim.results["kind"] == "seed"]["id"].iloc[0]
    assert sim.recipe(seed) is None and recipe_yaml(sim, seed) == ""


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


# --------------------------------------------------------------------------- status
def test_a_status_tick_reads_the_small_status_file_and_matches_the_full_reload(tmp_path):
    from hubevo.state.runstate import STATUS_FILE, load_state

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


def test_status_rows_show_progress_and_the_controllers_runs_win(runs_root):
    found = [local_status(load_run_dir(p), now=0) for p in run_dirs(runs_root)]
    other, sim = found
    assert (sim["state"], sim["generation"], sim["generations"], sim["best_fitness"]) == ("finished", 2, 2, 0.6)
    assert other["state"] == "unfinished" and "resume" in other["message"]
    managed = [{"name": "other", "state": "running", "generation": 1, "generations": 2, "candidate": 2,
                "candidates": 6, "elapsed_s": 3725, "eta_s": 65, "eta_low_s": 40, "best_fitness": 0.41, "message": ""},
               {"name": "new", "state": "queued"},
               {"name": "ended", "state": "finished", "generation": 2, "generations": 2, "candidate": 1,
                "candidates": 13, "elapsed_s": 60, "eta_s": 121, "best_fitness": 0.5}]
    table = status_table(merge_statuses(managed, found))
    assert table["run"].tolist() == ["other", "new", "ended", "sim"]
    columns = ["state", "generations done", "evaluated this generation", "elapsed", "time left", "best fitness"]
    # the controller reports the champion's fitness: the row shows the run's best, as found on disk
    assert table.iloc[0][columns].tolist() == ["running", "1 of 2", "2 of 6", "1 h 02 m", "40-65 s", "0.600"]
    assert table.iloc[1][columns[1:]].tolist() == ["-", "-", "-", "-", "-"]
    # an ended run counts no candidates of a generation under way and has no time left
    assert table.iloc[2][columns].tolist() == ["finished", "2 of 2", "-", "1 m 00 s", "-", "-"]
    assert table.iloc[3][["state", "elapsed", "best fitness"]].tolist() == ["finished", "2 m 05 s", "0.600"]
    assert status_table([]).empty and "best fitness" in status_table([]).columns


def test_the_best_fitness_is_the_best_any_candidate_scored_not_the_champions(tmp_path):
    cfg = write_finals_run(tmp_path, name="fin", champion="seed")
    run = load_run_dir(cfg.output.dir)
    champion = run.row(champion_id(run.results))
    assert champion["model"] == "alice/s2" and champion["fitness"] == 0.5
    assert local_status(run)["best_fitness"] == 0.6  # c1, a finalist the champion rule did not crown


# --------------------------------------------------------------------------- the recorded decision (champion.json)
def test_a_live_runs_newer_state_is_told_in_the_cores_words(tmp_path):
    from hubevo.publish.decision import decision_record
    from hubevo.state.runstate import load_state

    cfg = write_finals_run(tmp_path, name="live", champion="seed")
    state = load_state(cfg.output.dir)
    s2 = next(i for i, ind in state.individuals.items() if ind.name == "alice/s2")
    state.validation[s2] = state.validation[s2].model_copy(update={"fitness": 0.3})  # saved after the tables were
    save_state(state, cfg.output.dir)
    run = load_run_dir(cfg.output.dir)
    assert recorded(run)["champion"] == s2 and run.decision == decision_record(state)
    assert run.decision["champion"] != s2 and run.reason == decision_record(state)["text"]
