"""Discovery and download: Hub queries find compatible candidates from their config alone,
skipped ones come with a reason, and members download at a pinned revision.

Tiny Llamas are uploaded to the Hub-protocol test server; every call goes through the
real client over HTTP.
"""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from huggingface_hub import HfApi

from hubevo.config import HubQuery, Member, PopulationConfig
from hubevo.errors import HubError, MemberNotFoundError
from hubevo.hub.client import GatedMemberError
from hubevo.hub.download import snapshot
from hubevo.seed.discover import discover, discover_members
from hubevo.seed.members import resolve
from hubevo.seed.population import seed_population
from tests.tiny_models import build_llama, build_zoo

torch.set_num_threads(1)

ALICE, ALICE_TOKEN, ALICE_ORG, BOB_TOKEN = "alice", "token-alice", "alice-org", "token-bob"
STAMP = "disczoo"  # every repo of this module has it in its name


@pytest.fixture(scope="module")
def alice(hub_server) -> HfApi:
    return HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)


@pytest.fixture(scope="module")
def hub_zoo(alice, hub_server, tmp_path_factory) -> dict[str, str]:
    """Name -> repo id of: a base, three fine-tunes of it (base_model card), and four misfits."""
    root = tmp_path_factory.mktemp("discover-zoo")
    local = build_zoo(root, finetunes=3)
    local["wide"] = build_llama(root / "wide", seed=7, hidden_size=64)
    odd = shutil.copytree(local["ft3"], root / "oddvocab")
    tok = json.loads((odd / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    first = next(iter(vocab))
    vocab[first + "x"] = vocab.pop(first)
    (odd / "tokenizer.json").write_text(json.dumps(tok))
    local["oddvocab"] = odd
    nosafe = root / "nosafe"
    nosafe.mkdir()
    shutil.copy(local["ft1"] / "config.json", nosafe)
    (nosafe / "pytorch_model.bin").write_bytes(b"\0" * 64)
    local["nosafe"] = nosafe
    local["gated"] = local["ft2"]

    stats = {"base": 1, "ft1": 50, "ft2": 40, "ft3": 30, "wide": 45, "oddvocab": 35, "nosafe": 42, "gated": 38}
    repos = {}
    for name, folder in local.items():
        namespace = ALICE_ORG if name == "ft3" else ALICE
        repo = f"{namespace}/{STAMP}-{name}"
        alice.create_repo(repo, exist_ok=True)
        card = f"---\nbase_model: {ALICE}/{STAMP}-base\n---\n" if name != "base" else "---\nlicense: mit\n---\n"
        alice.upload_folder(repo_id=repo, folder_path=folder)
        alice.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo)
        hub_server.set_stats(repo, downloads=stats[name], likes=len(name))
        repos[name] = repo
    return repos


def weight_requests(server) -> list[str]:
    return [p for _, p in server.request_log if p.endswith(".safetensors") or p.endswith(".bin")]


def test_query_with_filter_sort_and_pagination_keeps_compatible_candidates(hub_zoo, alice, hub_server, tmp_path):
    base = resolve(Member(repo=hub_zoo["base"]), api=alice)
    query = HubQuery(search=STAMP, filter=[f"base_model:{hub_zoo['base']}"], sort="downloads", limit=20)
    hub_server.request_log.clear()
    hub_server.fail_next(f"/{hub_zoo['gated']}/resolve/", 403, headers={"X-Error-Code": "GatedRepo"})

    found = discover(query, reference=base, api=alice)

    by_downloads = ["ft1", "ft2", "ft3"]  # the base itself (the reference) is not a candidate
    assert [m.label for m in found.members] == [hub_zoo[n] for n in by_downloads]
    shas = {name: alice.model_info(hub_zoo[name]).sha for name in by_downloads}
    assert [m.repo for m in found.members] == [f"{hub_zoo[n]}@{shas[n]}" for n in by_downloads]  # pinned
    reasons = {s.repo_id: s.reason for s in found.skipped}
    assert list(reasons) == [hub_zoo[n] for n in ("wide", "nosafe", "gated", "oddvocab")]
    assert reasons[hub_zoo["wide"]].startswith("incompatible: hidden_size: 64 vs 32")
    assert reasons[hub_zoo["nosafe"]].startswith("missing safetensors")
    assert reasons[hub_zoo["gated"]].startswith("gated:") and hub_zoo["gated"] in reasons[hub_zoo["gated"]]
    assert reasons[hub_zoo["oddvocab"]].startswith("incompatible: tokenizer vocabulary differs")
    listing_pages = [p for m, p in hub_server.request_log if m == "GET" and p == "/api/models"]
    assert len(listing_pages) >= 2  # more candidates than the server's page size of 3
    assert weight_requests(hub_server) == []  # judged on config.json and tokenizer files alone


def test_author_and_limit_narrow_the_listing(hub_zoo, alice):
    by_org = discover(HubQuery(author=ALICE_ORG, search=STAMP), api=alice)
    assert [m.label for m in by_org.members] == [hub_zoo["ft3"]]
    top = discover(HubQuery(search=STAMP, sort="likes", limit=2), api=alice)  # likes = length of the name
    assert [m.label for m in top.members] == [hub_zoo["oddvocab"]]
    assert [s.repo_id for s in top.skipped] == [hub_zoo["nosafe"]]


def test_without_a_reference_the_first_usable_candidate_is_the_reference(hub_zoo, alice):
    found = discover(HubQuery(search=STAMP, sort="downloads", limit=3), api=alice)  # ft1, wide, nosafe
    assert [m.label for m in found.members] == [hub_zoo["ft1"]]
    assert {s.repo_id for s in found.skipped} == {hub_zoo["wide"], hub_zoo["nosafe"]}


def test_skipped_candidates_are_logged_with_their_reason(hub_zoo, alice, caplog):
    caplog.set_level(logging.INFO, logger="hubevo")
    members = discover_members(HubQuery(search=f"{STAMP}-wide"), exclude=[], api=alice,
                               reference=resolve(Member(repo=hub_zoo["ft1"]), api=alice))
    assert members == []
    assert f"Hub candidate {hub_zoo['wide']} skipped: incompatible: hidden_size: 64 vs 32" in caplog.text


def test_seed_population_from_a_query_downloads_pinned_weights(hub_zoo, alice, hub_server):
    cfg = PopulationConfig.model_validate({
        "members": [hub_zoo["ft1"]],
        "base_model": hub_zoo["base"],
        "query": {"search": STAMP, "filter": f"base_model:{hub_zoo['base']}", "sort": "downloads", "limit": 7},
    })
    hub_server.fail_next(f"/{hub_zoo['gated']}/resolve/", 403, headers={"X-Error-Code": "GatedRepo"})
    members, base = seed_population(cfg, api=alice)
    labels = [m.label for m in members]
    assert labels == [hub_zoo[n] for n in ("ft1", "ft2", "ft3")]  # ft1 given and found: kept once
    for member in members:
        assert (member.path / "model.safetensors").is_file()
        repo_id = member.source.split("@")[0]
        assert member.revision == alice.model_info(repo_id).sha
    assert base.revision == alice.model_info(hub_zoo["base"]).sha


# --------------------------------------------------------------------------- download


def test_snapshot_at_a_tag_records_the_commit_sha(hub_zoo, alice, tmp_path):
    repo = hub_zoo["ft1"]
    sha = alice.model_info(repo).sha
    alice.create_tag(repo, tag="v1", exist_ok=True)
    path, resolved = snapshot(f"{repo}@v1", api=alice)
    assert resolved == sha and path.name == sha
    assert {p.name for p in path.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert not (path / "README.md").exists()  # weights, config and tokenizer only


def test_missing_private_gated_and_weightless_repos_are_member_errors(hub_zoo, alice, hub_server):
    with pytest.raises(MemberNotFoundError, match=f"'{ALICE}/{STAMP}-nope' does not exist or is private"):
        snapshot(f"{ALICE}/{STAMP}-nope", api=alice)
    private = f"{ALICE}/{STAMP}-private"
    alice.create_repo(private, private=True, exist_ok=True)
    with pytest.raises(MemberNotFoundError, match=f"'{private}' does not exist or is private"):
        snapshot(private, api=HfApi(endpoint=hub_server.url, token=BOB_TOKEN))
    with pytest.raises(MemberNotFoundError, match="has no such revision"):
        snapshot(f"{hub_zoo['ft1']}@no-such-tag", api=alice)
    with pytest.raises(MemberNotFoundError, match="no .safetensors weights"):
        snapshot(hub_zoo["nosafe"], api=alice)
    hub_server.fail_next(f"/api/models/{hub_zoo['gated']}", 403, headers={"X-Error-Code": "GatedRepo"})
    with pytest.raises(GatedMemberError, match=f"'{hub_zoo['gated']}' is gated"):
        snapshot(hub_zoo["gated"], api=alice)


def test_bad_token_rate_limit_and_network_failures_are_hub_errors(hub_zoo, alice, hub_server, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "hf_" + "s3cr3t" * 6
    with pytest.raises(HubError) as bad:
        snapshot(hub_zoo["ft1"], api=HfApi(endpoint=hub_server.url, token=secret))
    assert "401" in str(bad.value) and hub_zoo["ft1"] in str(bad.value)
    hub_server.fail_next(f"/api/models/{hub_zoo['ft1']}", 429, count=5)
    with pytest.raises(HubError, match=f"rate-limited .*{hub_zoo['ft1']}.*after 5 attempts"):
        snapshot(hub_zoo["ft1"], api=alice)
    with pytest.raises(HubError, match=f"could not reach the Hub .*{hub_zoo['ft1']}"):
        snapshot(hub_zoo["ft1"], api=HfApi(endpoint="http://127.0.0.1:9", token=secret))
    with pytest.raises(HubError, match="list_models"):
        discover(HubQuery(search=STAMP), api=HfApi(endpoint=hub_server.url, token=secret))
    assert secret not in caplog.text and secret not in str(bad.value)
