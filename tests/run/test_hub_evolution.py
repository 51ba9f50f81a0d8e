"""End to end on the Hub: a population given as Hub repo ids evolves and its survivors are pushed.

Tiny Llamas (a base and three fine-tunes) are uploaded to the Hub-protocol test server,
scored on a tiny local multiple-choice lm-eval task, merged for one generation, and every
survivor, the champion's history and the results dataset are read back from the server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from huggingface_hub import HfApi, ModelCard, hf_hub_download, snapshot_download
from safetensors.torch import load_file

from hubevo.config import parse_config
from hubevo.publish.export import export_from_folder
from hubevo.publish.hub import champion_history
from hubevo.publish.rebuild import full_folders
from hubevo.run.loop import evolve
from tests.tiny_models import build_zoo, write_choice_task

torch.set_num_threads(1)
pytestmark = pytest.mark.slow  # every test evolves

ALICE, ALICE_TOKEN = "alice", "token-alice"
TASK = "hubevo_e2e_mc"


def write_task(folder: Path) -> Path:
    return write_choice_task(folder, TASK)


@pytest.fixture(scope="module")
def hub_members(hub_server, tmp_path_factory) -> dict[str, str]:
    alice = HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)
    repos = {}
    for name, folder in build_zoo(tmp_path_factory.mktemp("e2e-zoo"), finetunes=3).items():
        repo = f"{ALICE}/e2e-{name}"
        alice.create_repo(repo, exist_ok=True)
        alice.upload_folder(repo_id=repo, folder_path=folder)
        repos[name] = repo
    return repos


def test_evolution_from_hub_ids_pushes_survivors_champion_and_results(hub_server, hub_members, tmp_path):
    alice = HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)
    cfg = parse_config({
        "name": "e2e",
        "population": {"members": [hub_members[f"ft{i}"] for i in (1, 2, 3)], "base_model": hub_members["base"]},
        "fitness": {"tasks": [{"name": TASK, "metric": "acc"}], "include_path": [str(write_task(tmp_path / "tasks"))],
                    "limit": 8, "batch_size": 16},
        "selection": {"keep_top_k": 0},  # the next generation is all children, so a child survives at the end
        "crossover": {"methods": ["linear", "ties"]},
        "budget": {"generations": 1, "population_size": 3},
        "search": {"strategy": "ga", "baselines": []},
        "output": {"dir": str(tmp_path / "run")},
        "publish": {"namespace": ALICE, "private": False, "push": "survivors"},
    }, root=tmp_path)

    state = evolve(cfg, progress=False, api=alice)

    assert state.finished and len(state.evaluations) == 6 + len(state.baselines)  # members, children, recipes
    children = [i for gen in sorted(state.survivors) for i in state.survivors[gen]
                if state.individuals[i].kind != "seed"]
    assert children, "the final generation's best child survives"
    seeds_by_id = {i: ind.source for i, ind in state.individuals.items() if ind.kind == "seed"}
    for cid in children:
        repo, ind = cfg.publish.survivor_repo(cfg.name, cid), state.individuals[cid]
        card = ModelCard.load(repo, token=ALICE_TOKEN)
        parents = [seeds_by_id[p] for p in ind.parents]
        assert set(parents) <= set(hub_members.values())
        assert card.data.base_model == (parents if len(parents) > 1 else parents[0])
        assert card.data.base_model_relation == "merge"
        for parent in parents:  # the recipe pins each parent to the commit that was merged
            assert f"{parent}@{alice.model_info(parent).sha}" in card.text
        generations = [g for g, ids in state.survivors.items() if cid in ids]
        assert sorted(t.name for t in alice.list_repo_refs(repo).tags) == [f"gen-{g}" for g in generations]
        at_tag = Path(snapshot_download(repo, revision=f"gen-{generations[0]}", token=ALICE_TOKEN))
        _, exported = export_from_folder(cfg.output.dir, cid, tmp_path / "exported" / cid)  # pushed while light
        local = load_file(exported / "model.safetensors")
        remote = load_file(at_tag / "model.safetensors")
        assert local.keys() == remote.keys() and all(torch.equal(local[k], remote[k]) for k in local)

    kept = [Path(state.saved[state.champion()])] if state.champion() in state.saved else []  # a member: its own
    assert full_folders(cfg.output.dir) == kept  # pushes left no folder behind
    champion = cfg.publish.champion_repo(cfg.name)
    history = champion_history(state)
    assert history[-1][1] == state.champion()
    assert sorted(t.name for t in alice.list_repo_refs(champion).tags) == sorted(f"gen-{g}" for g, _ in history)
    assert hub_server.commit_count(champion) == len(history) + 1

    results = cfg.publish.results_repo(cfg.name)
    frame = pd.read_parquet(hf_hub_download(results, "results.parquet", repo_type="dataset", token=ALICE_TOKEN))
    assert len(frame) == 6 and set(frame["id"]) == set(state.evaluations)
    pushed = frame[frame["survivor"] & (frame["kind"] != "seed")]
    assert sorted(pushed["repo"]) == sorted(cfg.publish.survivor_repo(cfg.name, c) for c in children)
    assert alice.file_exists(results, "lineage.json", repo_type="dataset")
    assert alice.file_exists(results, "config.yaml", repo_type="dataset")
    decision = json.loads(Path(hf_hub_download(results, "champion.json", repo_type="dataset", token=ALICE_TOKEN))
                          .read_text())
    assert decision["champion"] == state.champion() and decision["text"]  # the viewers' reason, as recorded


def test_a_failing_push_never_stops_the_run_nor_loses_a_survivor(hub_server, hub_members, tmp_path, caplog):
    cfg = parse_config({
        "name": "e2e-forbidden",
        "population": {"members": [hub_members["ft1"], hub_members["ft2"]]},
        "fitness": {"tasks": [{"name": TASK, "metric": "acc"}], "include_path": [str(write_task(tmp_path / "tasks"))],
                    "limit": 4, "batch_size": 16},
        "selection": {"keep_top_k": 0},
        "crossover": {"methods": ["linear"]},
        "budget": {"generations": 1, "population_size": 2},
        "output": {"dir": str(tmp_path / "run")},
        "publish": {"namespace": ALICE, "push": "survivors"},
    }, root=tmp_path)
    alice = HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)  # may write at the start; the Hub refuses later
    hub_server.fail_next("/api/repos/create", 403, count=10_000, method="POST")
    try:
        state = evolve(cfg, progress=False, api=alice)
    finally:
        hub_server.clear_faults()

    assert state.finished and state.saved
    for cid, folder in state.saved.items():
        assert (Path(folder) / "README.md").is_file()
        _, exported = export_from_folder(cfg.output.dir, cid, tmp_path / "exported" / cid)
        assert (exported / "model.safetensors").is_file()
    warnings = [r.getMessage() for r in caplog.records if "publishing to the Hub failed" in r.getMessage()]
    assert warnings and all("403" in w and f"{ALICE}/e2e-forbidden" in w for w in warnings)
    assert ALICE_TOKEN not in caplog.text
    assert not alice.repo_exists(cfg.publish.champion_repo(cfg.name))
