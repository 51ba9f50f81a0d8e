"""Publishing to the Hub: survivors as versioned repos with lineage cards, the champion's history,
the results dataset; idempotent, resumable, private when asked, and never leaking the token.

A run is simulated generation by generation (seeds on the test Hub, bred survivors as tiny
Llama folders with real lineage cards) and `publish_generation` is called after each one,
as the loop does, against the Hub-protocol test server through the real client.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from huggingface_hub import HfApi, ModelCard, hf_hub_download, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError
from safetensors.torch import load_file

from hubevo.errors import HubError
from hubevo.publish.hub import champion_history, survivor_generations
from hubevo.publish.lineage_recipe import REBUILD_COMMAND
from hubevo.publish.tables import results_frame
from tests.helpers.sim_runs import ALICE, ALICE_TOKEN, BOB_TOKEN, SimRun, new_run, tiny_weights

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def alice(hub_server) -> HfApi:
    return HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    return tiny_weights(tmp_path_factory.mktemp("publish-weights"))


@pytest.fixture(scope="module")
def seed_repos(alice, weights) -> dict[str, str]:
    repos = {}
    for name in ("s1", "s2"):
        repo = f"{ALICE}/pubseed-{name}"
        alice.create_repo(repo, exist_ok=True)
        alice.upload_folder(repo_id=repo, folder_path=weights[name])
        repos[name] = repo
    return repos


# --------------------------------------------------------------------------- a simulated run


def grow(run: SimRun, generation: int) -> None:
    """Generation 0: seeds (s2 best); 1: c1 beats s2, c3 fails; 2: c2 does not beat c1."""
    if generation == 0:
        run.evaluate(run.seeds["s1"], 0.3, 0)
        run.evaluate(run.seeds["s2"], 0.5, 0)
        run.survive(0, ["s2", "s1"])
    elif generation == 1:
        run.evaluate(run.children["c1"], 0.6, 1)
        run.evaluate(run.children["c3"], None, 1)
        run.survive(1, ["c1", "s2"])
    else:
        run.evaluate(run.children["c2"], 0.55, 2)
        run.survive(2, ["c1", "c2"])


def run_all(run: SimRun, api) -> None:
    for generation in range(3):
        grow(run, generation)
        run.publish(api)


@pytest.fixture(scope="module")
def published(alice, weights, seed_repos, tmp_path_factory) -> SimRun:
    run = new_run(tmp_path_factory.mktemp("published"), weights, seed_repos)
    run_all(run, alice)
    return run


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


def repos_of(run: SimRun) -> list[tuple[str, str]]:
    """(repo id, repo type) of everything the run pushed."""
    pub, name = run.cfg.publish, run.cfg.name
    survivors = [(run.repo(k), "model") for k in ("c1", "c2")] if pub.push == "survivors" else []
    return survivors + [(pub.champion_repo(name), "model"), (pub.results_repo(name), "dataset")]


# --------------------------------------------------------------------------- the state decides what is pushed


def test_what_to_push_is_derived_from_the_state(published):
    run = published
    c1, c2 = run.children["c1"].id, run.children["c2"].id
    assert survivor_generations(run.state) == {c1: [1, 2], c2: [2]}  # seeds are not re-published
    assert champion_history(run.state) == [(0, run.seeds["s2"].id), (1, c1)]  # no change in generation 2


# --------------------------------------------------------------------------- survivors


def test_survivor_repo_carries_the_lineage_card_and_the_weights_at_every_tag(published, alice, seed_repos):
    run = published
    c1_repo, c2_repo = run.repo("c1"), run.repo("c2")

    card = ModelCard.load(c2_repo, token=ALICE_TOKEN)
    assert card.data.base_model == [c1_repo, seed_repos["s2"]]  # parents by their Hub repo ids
    assert card.data.base_model_relation == "merge"
    assert card.data.library_name == "transformers"
    assert REBUILD_COMMAND in card.text and f"- model: {c1_repo}" not in card.text  # the card's stages: by name
    info = alice.model_info(c2_repo)
    assert f"base_model:merge:{c1_repo}" in info.tags and f"base_model:merge:{seed_repos['s2']}" in info.tags

    refs = alice.list_repo_refs(c1_repo)
    head = alice.model_info(c1_repo).sha
    assert {(t.name, t.target_commit) for t in refs.tags} == {("gen-1", head), ("gen-2", head)}
    assert [t.name for t in alice.list_repo_refs(c2_repo).tags] == ["gen-2"]
    titles = [c.title for c in alice.list_repo_commits(c1_repo)]
    assert titles == [f"{run.children['c1'].name}: generation 1 linear merge, fitness 0.6000", "initial commit"]

    for key, tag in (("c1", "gen-1"), ("c1", "gen-2"), ("c2", "gen-2")):
        folder = Path(snapshot_download(run.repo(key), revision=tag, token=ALICE_TOKEN))
        local = Path(run.state.saved[run.children[key].id])
        assert_same_tensors(folder, local)
        assert (folder / "README.md").read_text() == (local / "README.md").read_text()


def test_failed_candidates_and_seeds_get_no_repo(published, alice):
    run = published
    assert not alice.repo_exists(run.repo("c3"))
    for seed in run.seeds.values():
        assert not alice.repo_exists(run.cfg.publish.survivor_repo(run.cfg.name, seed.id))


# --------------------------------------------------------------------------- champion


def test_champion_repo_history_is_the_succession_of_champions(published, alice, seed_repos, weights):
    run = published
    repo = run.cfg.publish.champion_repo(run.cfg.name)
    c1 = run.children["c1"]
    commits = alice.list_repo_commits(repo)
    assert [c.title for c in commits] == [
        f"gen-1: {c1.name} is the champion (fitness 0.6000)",
        f"gen-0: {seed_repos['s2']} is the champion (fitness 0.5000)",
        "initial commit",
    ]
    tags = {t.name: t.target_commit for t in alice.list_repo_refs(repo).tags}
    assert tags == {"gen-1": commits[0].commit_id, "gen-0": commits[1].commit_id}

    at_gen0 = Path(snapshot_download(repo, revision="gen-0", token=ALICE_TOKEN))
    assert_same_tensors(at_gen0, weights["s2"])  # a seed champion: the member's own weights
    assert ModelCard.load(at_gen0 / "README.md").data.base_model == seed_repos["s2"]
    at_gen1 = Path(snapshot_download(repo, revision="gen-1", token=ALICE_TOKEN))
    assert_same_tensors(at_gen1, Path(run.state.saved[c1.id]))
    card = ModelCard.load(at_gen1 / "README.md")
    assert card.data.base_model == list(seed_repos.values()) and card.data.base_model_relation == "merge"
    assert "champion" in card.data.tags and f"Champion of hubevo run `{run.cfg.name}` from generation 1" in card.text
    assert sorted(p.name for p in at_gen1.iterdir()) == sorted(
        [".gitattributes", ".eval_results", *(p.name for p in Path(run.state.saved[c1.id]).iterdir())]
    )


# --------------------------------------------------------------------------- results dataset


def test_results_dataset_reads_back_into_a_dataframe(published):
    run = published
    repo = run.cfg.publish.results_repo(run.cfg.name)
    frame = pd.read_parquet(hf_hub_download(repo, "results.parquet", repo_type="dataset", token=ALICE_TOKEN))
    local = results_frame(run.state).drop(columns=["path"])
    pd.testing.assert_frame_equal(frame.drop(columns=["repo"]), local)
    repos = dict(zip(frame["model"], frame["repo"]))
    assert repos[run.children["c1"].name] == run.repo("c1")
    assert repos[run.seeds["s1"].name] == run.seeds["s1"].source
    assert pd.isna(repos[run.children["c3"].name])  # failed: never pushed
    assert list(frame.loc[frame["status"] == "failed", "model"]) == [run.children["c3"].name]

    def read(name: str) -> str:
        return Path(hf_hub_download(repo, name, repo_type="dataset", token=ALICE_TOKEN)).read_text()

    assert json.loads(read("lineage.json")) == json.loads((run.run_dir / "lineage.json").read_text())
    config = yaml.safe_load(read("config.yaml"))
    assert config["name"] == run.cfg.name and config["publish"]["push"] == "survivors"
    assert "data_files: results.parquet" in read("README.md")


# --------------------------------------------------------------------------- idempotence and resumption


def test_pushing_the_same_state_again_makes_no_commit(published, alice, hub_server):
    run = published
    counts = {repo: hub_server.commit_count(repo, kind) for repo, kind in repos_of(run)}
    hub_server.request_log.clear()
    done = run.publish(alice)
    assert {repo: hub_server.commit_count(repo, kind) for repo, kind in repos_of(run)} == counts
    assert not [p for method, p in hub_server.request_log if method == "POST" and "/commit/" in p]
    assert not [p for method, p in hub_server.request_log if method == "PUT"]  # no weights re-uploaded
    assert set(done.survivors.values()) == {run.repo("c1"), run.repo("c2")}


def test_an_interrupted_push_is_completed_by_the_next_call(alice, hub_server, weights, seed_repos, tmp_path):
    run = new_run(tmp_path, weights, seed_repos)
    grow(run, 0)
    run.publish(alice)
    grow(run, 1)
    c1_repo, champion = run.repo("c1"), run.cfg.publish.champion_repo(run.cfg.name)
    hub_server.fail_next(f"/api/models/{c1_repo}/tag/", 400)  # the weights are committed, the tag is not
    with pytest.raises(HubError, match=c1_repo):
        run.publish(alice)
    assert Path(run.state.saved[run.children["c1"].id], "model.safetensors").is_file()  # the local survivor stays
    assert hub_server.commit_count(c1_repo) == 2 and not alice.list_repo_refs(c1_repo).tags

    hub_server.fail_next(f"/api/models/{champion}/commit/", 400)  # the champion of generation 1 fails
    with pytest.raises(HubError, match=champion):
        run.publish(alice)
    assert [t.name for t in alice.list_repo_refs(c1_repo).tags] == ["gen-1"]
    assert [t.name for t in alice.list_repo_refs(champion).tags] == ["gen-0"]

    run.publish(alice)
    assert hub_server.commit_count(c1_repo) == 2  # still one commit for the model
    assert hub_server.commit_count(champion) == 3
    assert [t.name for t in alice.list_repo_refs(champion).tags] == ["gen-0", "gen-1"]
    grow(run, 2)
    run.publish(alice)
    assert [t.name for t in alice.list_repo_refs(c1_repo).tags] == ["gen-1", "gen-2"]
    assert hub_server.commit_count(champion) == 3


def test_push_champion_only_creates_no_survivor_repos(alice, weights, seed_repos, tmp_path):
    run = new_run(tmp_path, weights, seed_repos, push="champion")
    run_all(run, alice)
    assert not alice.repo_exists(run.repo("c1")) and not alice.repo_exists(run.repo("c2"))
    champion = run.cfg.publish.champion_repo(run.cfg.name)
    assert [t.name for t in alice.list_repo_refs(champion).tags] == ["gen-0", "gen-1"]
    assert alice.repo_exists(run.cfg.publish.results_repo(run.cfg.name), repo_type="dataset")


# --------------------------------------------------------------------------- privacy and secrets


def test_private_repos_are_invisible_to_another_token(alice, hub_server, weights, seed_repos, tmp_path):
    run = new_run(tmp_path, weights, seed_repos, private=True)
    run_all(run, alice)
    bob = HfApi(endpoint=hub_server.url, token=BOB_TOKEN)
    for repo, kind in repos_of(run):
        assert alice.repo_info(repo, repo_type=kind).private is True
        with pytest.raises(RepositoryNotFoundError):
            bob.repo_info(repo, repo_type=kind)
    visible_to_bob = {m.id for m in bob.list_models(author=ALICE)} | {d.id for d in bob.list_datasets(author=ALICE)}
    assert not visible_to_bob & {repo for repo, _ in repos_of(run)}
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(run.cfg.publish.results_repo(run.cfg.name), "results.parquet", repo_type="dataset",
                        token=BOB_TOKEN)


def test_no_token_in_any_pushed_file_card_or_log_line(
    alice, hub_server, weights, seed_repos, tmp_path, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    run = new_run(tmp_path, weights, seed_repos)
    grow(run, 0)
    grow(run, 1)
    hub_server.fail_next(f"/api/models/{run.repo('c1')}/commit/", 400)
    with pytest.raises(HubError) as failed:
        run.publish(alice)
    grow(run, 2)
    run.publish(alice)
    run.publish(alice)

    texts = [str(failed.value), caplog.text, *capsys.readouterr()]
    for repo, kind in repos_of(run):
        for f in alice.list_repo_files(repo, repo_type=kind):
            texts.append(hub_server.get_file(repo, f, repo_type=kind).decode("latin-1"))
        for commit in alice.list_repo_commits(repo, repo_type=kind):
            texts += [commit.title, commit.message]
    texts += [p.read_bytes().decode("latin-1") for p in run.run_dir.rglob("*") if p.is_file()]
    assert len(texts) > 30
    assert not [t for t in texts if ALICE_TOKEN in t]


# --------------------------------------------------------------------------- errors


def test_errors_name_the_repo_and_never_the_token(hub_server, weights, seed_repos, tmp_path):
    run = new_run(tmp_path, weights, seed_repos)
    grow(run, 0)
    grow(run, 1)
    c1_repo = run.repo("c1")

    with pytest.raises(HubError) as bad_token:
        run.publish(HfApi(endpoint=hub_server.url, token="hf_" + "x" * 30))
    assert c1_repo in str(bad_token.value) and "401" in str(bad_token.value) and "hf_xxx" not in str(bad_token.value)

    with pytest.raises(HubError) as forbidden:  # bob may not write to alice's namespace
        run.publish(HfApi(endpoint=hub_server.url, token=BOB_TOKEN))
    assert c1_repo in str(forbidden.value) and "403" in str(forbidden.value) and BOB_TOKEN not in str(forbidden.value)

    hub_server.fail_next(f"/api/models/{c1_repo}/refs", 429, count=5)
    with pytest.raises(HubError, match=f"rate-limited .*{c1_repo}.*after 5 attempts"):
        run.publish(HfApi(endpoint=hub_server.url, token=ALICE_TOKEN))

    with pytest.raises(HubError, match=f"could not reach the Hub .*{c1_repo}"):
        run.publish(HfApi(endpoint="http://127.0.0.1:9", token=ALICE_TOKEN))


def test_a_survivor_folder_without_weights_is_never_pushed(alice, weights, seed_repos, tmp_path):
    run = new_run(tmp_path, weights, seed_repos)
    grow(run, 0)
    grow(run, 1)
    (Path(run.state.saved[run.children["c1"].id]) / "model.safetensors").unlink()
    with pytest.raises(HubError, match=f"cannot push '{run.repo('c1')}'.*holds no .safetensors weights"):
        run.publish(alice)
    assert not alice.repo_exists(run.repo("c1"))
