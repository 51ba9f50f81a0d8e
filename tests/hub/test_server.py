"""The Hub test server answers the real `huggingface_hub` client like the Hub does.

Every test talks HTTP to `HubServer` on 127.0.0.1 through the public client API, so the
project's own tests can rely on the server for uploads, downloads, cards, refs, listings,
privacy and errors.
"""

from __future__ import annotations

import itertools
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import HfApi, ModelCard, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors.numpy import load_file, save_file

from tests.hub_server import HubServer, git_blob_sha1

ALICE, ALICE_TOKEN, ALICE_ORG = "alice", "token-alice", "alice-org"
BOB, BOB_TOKEN = "bob", "token-bob"


_names = itertools.count()


@pytest.fixture
def repo_id(hub_server) -> str:
    """A fresh repo name under alice (the HF cache is shared by the whole session)."""
    return f"{ALICE}/repo-{next(_names)}"


@pytest.fixture
def alice(hub_server) -> HfApi:
    return HfApi(endpoint=hub_server.url, token=ALICE_TOKEN)


@pytest.fixture
def bob(hub_server) -> HfApi:
    return HfApi(endpoint=hub_server.url, token=BOB_TOKEN)


CARD = """---
license: apache-2.0
library_name: transformers
base_model: org/parent-model
tags:
- evolved
---
# A tiny model
"""


def write_model_folder(folder: Path, scale: float = 1.0, card: str = CARD) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"weight": np.arange(12, dtype=np.float32).reshape(3, 4) * scale}
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4}))
    (folder / "README.md").write_text(card)
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "notes.txt").write_text(f"scale={scale}\n")
    return folder


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def lfs_puts(server: HubServer) -> list[str]:
    return [p for method, p in server.request_log if method == "PUT" and p.startswith("/lfs-objects/")]


# --------------------------------------------------------------------------- auth


def test_whoami_lists_name_and_orgs(alice):
    me = alice.whoami()
    assert me["name"] == ALICE
    assert [org["name"] for org in me["orgs"]] == [ALICE_ORG]


def test_unknown_token_is_a_401_http_error(hub_server, alice, repo_id):
    alice.create_repo(repo_id)
    stranger = HfApi(endpoint=hub_server.url, token="not-a-token")
    with pytest.raises(HfHubHTTPError) as whoami_error:
        stranger.whoami()
    assert whoami_error.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as info_error:
        stranger.model_info(repo_id)
    assert info_error.value.response.status_code == 401
    assert not isinstance(info_error.value, RepositoryNotFoundError)


# --------------------------------------------------------------------------- upload and download


def test_upload_folder_round_trip_with_lfs(hub_server, alice, repo_id, tmp_path):
    folder = write_model_folder(tmp_path / "model")
    alice.create_repo(repo_id)
    commit = alice.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="Add model")

    assert hub_server.commit_count(repo_id) == 2  # the initial .gitattributes commit, then ours
    assert len(lfs_puts(hub_server)) >= 1
    info = alice.model_info(repo_id, files_metadata=True)
    assert info.sha == commit.oid
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == {
        ".gitattributes", "README.md", "config.json", "model.safetensors", "sub/notes.txt"
    }
    assert siblings["model.safetensors"].lfs is not None
    assert siblings["config.json"].lfs is None
    assert siblings["config.json"].blob_id == git_blob_sha1((folder / "config.json").read_bytes())
    assert info.config == {"model_type": "llama", "hidden_size": 4}
    assert info.safetensors.total == 12
    assert alice.get_safetensors_metadata(repo_id).parameter_count == {"F32": 12}  # read with a Range request

    snapshot = Path(snapshot_download(repo_id, token=ALICE_TOKEN))
    downloaded = folder_files(snapshot)
    downloaded.pop(".gitattributes")
    assert downloaded == folder_files(folder)
    weights = hf_hub_download(repo_id, "model.safetensors", token=ALICE_TOKEN, force_download=True)
    assert Path(weights).read_bytes() == (folder / "model.safetensors").read_bytes()
    np.testing.assert_array_equal(load_file(weights)["weight"], np.arange(12, dtype=np.float32).reshape(3, 4))


def test_uploading_an_unchanged_folder_makes_no_commit(hub_server, alice, repo_id, tmp_path):
    folder = write_model_folder(tmp_path / "model")
    alice.create_repo(repo_id)
    first = alice.upload_folder(repo_id=repo_id, folder_path=folder)
    puts_before = len(lfs_puts(hub_server))

    again = alice.upload_folder(repo_id=repo_id, folder_path=folder)
    assert again.oid == first.oid
    assert hub_server.commit_count(repo_id) == 2
    assert len(lfs_puts(hub_server)) == puts_before

    (folder / "sub" / "notes.txt").write_text("changed\n")
    changed = alice.upload_folder(repo_id=repo_id, folder_path=folder)
    assert changed.oid != first.oid
    assert hub_server.commit_count(repo_id) == 3
    assert len(lfs_puts(hub_server)) == puts_before  # the weights did not change
    assert hub_server.get_file(repo_id, "sub/notes.txt") == b"changed\n"


def test_partial_snapshot_downloads_no_weights(hub_server, alice, repo_id, tmp_path):
    alice.create_repo(repo_id)
    alice.upload_folder(repo_id=repo_id, folder_path=write_model_folder(tmp_path / "model"))
    hub_server.request_log.clear()
    snapshot = Path(snapshot_download(repo_id, allow_patterns=["*.json"], token=ALICE_TOKEN))
    assert (snapshot / "config.json").exists() and not (snapshot / "model.safetensors").exists()
    assert not any(path.endswith("model.safetensors") for _, path in hub_server.request_log)


def test_range_request_and_missing_entries(hub_server, alice, repo_id):
    alice.create_repo(repo_id)
    alice.upload_file(path_or_fileobj=b"0123456789", path_in_repo="digits.txt", repo_id=repo_id)
    request = urllib.request.Request(
        f"{hub_server.url}/{repo_id}/resolve/main/digits.txt",
        headers={"Range": "bytes=2-4", "Authorization": f"Bearer {ALICE_TOKEN}"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 206
        assert response.read() == b"234"
        assert response.headers["Content-Range"] == "bytes 2-4/10"
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "missing.txt", token=ALICE_TOKEN)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "digits.txt", revision="no-such-branch", token=ALICE_TOKEN)
    with pytest.raises(RevisionNotFoundError):
        alice.model_info(repo_id, revision="v9")


# --------------------------------------------------------------------------- cards


def test_model_card_yaml_shows_in_card_and_info(alice, repo_id, tmp_path):
    alice.create_repo(repo_id)
    alice.upload_folder(repo_id=repo_id, folder_path=write_model_folder(tmp_path / "model"))

    card = ModelCard.load(repo_id, token=ALICE_TOKEN)
    assert card.data.base_model == "org/parent-model"
    assert card.data.license == "apache-2.0"
    assert card.data.tags == ["evolved"]

    info = alice.model_info(repo_id)
    assert info.card_data.base_model == "org/parent-model"
    assert info.library_name == "transformers"
    for tag in ("evolved", "transformers", "safetensors", "license:apache-2.0",
                "base_model:org/parent-model", "base_model:finetune:org/parent-model"):
        assert tag in info.tags


def test_model_card_push_to_hub_validates_yaml(alice, repo_id):
    alice.create_repo(repo_id)
    ModelCard(CARD.replace("org/parent-model", "org/other")).push_to_hub(repo_id, token=ALICE_TOKEN)
    assert ModelCard.load(repo_id, token=ALICE_TOKEN).data.base_model == "org/other"
    with pytest.raises(ValueError, match="Invalid metadata"):
        bad_yaml = b"---\nkey: [unclosed\n---\n"
        alice.upload_file(path_or_fileobj=bad_yaml, path_in_repo="README.md", repo_id=repo_id)


# --------------------------------------------------------------------------- refs and history


def test_tags_branches_commits_and_snapshot_at_tag(alice, repo_id, tmp_path):
    alice.create_repo(repo_id)
    folder = write_model_folder(tmp_path / "model", scale=1.0)
    v1 = alice.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="v1 weights")
    alice.create_tag(repo_id, tag="v1", tag_message="first")
    write_model_folder(folder, scale=2.0)
    v2 = alice.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="v2 weights")

    at_v1 = Path(snapshot_download(repo_id, revision="v1", token=ALICE_TOKEN))
    assert (at_v1 / "sub" / "notes.txt").read_text() == "scale=1.0\n"
    np.testing.assert_array_equal(load_file(at_v1 / "model.safetensors")["weight"][0], [0, 1, 2, 3])
    assert alice.model_info(repo_id, revision="v1").sha == v1.oid

    with pytest.raises(HfHubHTTPError) as duplicate:
        alice.create_tag(repo_id, tag="v1")
    assert duplicate.value.response.status_code == 409
    alice.create_tag(repo_id, tag="v1", exist_ok=True)
    alice.create_branch(repo_id, branch="experiment", revision="v1")

    refs = alice.list_repo_refs(repo_id)
    assert {(r.name, r.target_commit) for r in refs.branches} == {("main", v2.oid), ("experiment", v1.oid)}
    assert [(r.name, r.ref, r.target_commit) for r in refs.tags] == [("v1", "refs/tags/v1", v1.oid)]

    commits = alice.list_repo_commits(repo_id)
    assert [c.title for c in commits] == ["v2 weights", "v1 weights", "initial commit"]
    assert [c.commit_id for c in commits[:2]] == [v2.oid, v1.oid]
    assert commits[0].authors == [ALICE]

    alice.delete_tag(repo_id, tag="v1")
    alice.delete_branch(repo_id, branch="experiment")
    refs = alice.list_repo_refs(repo_id)
    assert refs.tags == [] and [r.name for r in refs.branches] == ["main"]


def test_tree_listing_paginates_and_paths_info(hub_server, alice, repo_id, tmp_path):
    alice.create_repo(repo_id)
    alice.upload_folder(repo_id=repo_id, folder_path=write_model_folder(tmp_path / "model"))
    hub_server.request_log.clear()
    files = alice.list_repo_files(repo_id)
    assert files == [".gitattributes", "README.md", "config.json", "model.safetensors", "sub/notes.txt"]
    tree_pages = [p for m, p in hub_server.request_log if "/tree/" in p]
    assert len(tree_pages) == 2  # 6 entries (5 files + "sub") at 3 per page

    top = {entry.path: type(entry).__name__ for entry in alice.list_repo_tree(repo_id)}
    assert top["sub"] == "RepoFolder" and "sub/notes.txt" not in top
    info = alice.get_paths_info(repo_id, ["model.safetensors", "sub", "nope.txt"])
    assert [entry.path for entry in info] == ["model.safetensors", "sub"]
    assert info[0].lfs.size == info[0].size
    assert alice.file_exists(repo_id, "sub/notes.txt") and not alice.file_exists(repo_id, "nope.txt")


def test_deletions_and_commits_to_a_branch(hub_server, alice, repo_id, tmp_path):
    alice.create_repo(repo_id)
    alice.upload_folder(repo_id=repo_id, folder_path=write_model_folder(tmp_path / "model"))
    alice.create_branch(repo_id, branch="dev")
    alice.upload_file(path_or_fileobj=b"dev only", path_in_repo="dev.txt", repo_id=repo_id, revision="dev")
    alice.delete_folder("sub", repo_id=repo_id)
    alice.delete_file("config.json", repo_id=repo_id)
    assert alice.list_repo_files(repo_id) == [".gitattributes", "README.md", "model.safetensors"]
    assert "dev.txt" in alice.list_repo_files(repo_id, revision="dev")
    assert "sub/notes.txt" in alice.list_repo_files(repo_id, revision="dev")
    with pytest.raises(EntryNotFoundError):
        alice.delete_file("config.json", repo_id=repo_id)
    assert hub_server.commit_count(repo_id) == 4
    hub_server.request_log.clear()
    titles = [c.title for c in alice.list_repo_commits(repo_id)]
    assert titles == [
        "Delete config.json with huggingface_hub",
        "Delete folder sub with huggingface_hub",
        "Upload folder using huggingface_hub",
        "initial commit",
    ]
    assert sum("/commits/" in path for _, path in hub_server.request_log) == 2  # 4 commits, 3 per page


# --------------------------------------------------------------------------- listing


def test_list_models_search_author_filter_sort_limit_and_pages(hub_server, alice):
    stamp = f"zoo{next(_names)}"
    specs = [  # (repo id, downloads, likes, base model)
        (f"{ALICE}/{stamp}-a", 5, 1, "org/base"),
        (f"{ALICE}/{stamp}-b", 50, 3, "org/base"),
        (f"{ALICE}/{stamp}-c", 20, 9, "org/other"),
        (f"{ALICE_ORG}/{stamp}-d", 40, 2, "org/base"),
        (f"{ALICE_ORG}/{stamp}-e", 1, 0, None),
    ]
    for repo, downloads, likes, base in specs:
        alice.create_repo(repo)
        card = f"---\nbase_model: {base}\n---\n" if base else "---\nlicense: mit\n---\n"
        alice.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo)
        hub_server.set_stats(repo, downloads=downloads, likes=likes)

    hub_server.request_log.clear()
    everything = [m.id for m in alice.list_models(search=stamp)]
    assert sorted(everything) == sorted(repo for repo, *_ in specs)
    assert sum(1 for m, p in hub_server.request_log if p == "/api/models") == 2  # 5 results, 3 per page

    by_downloads = [m.id.split("-")[-1] for m in alice.list_models(search=stamp, sort="downloads")]
    assert by_downloads == ["b", "d", "c", "a", "e"]
    by_likes = [m.id.split("-")[-1] for m in alice.list_models(search=stamp, sort="likes")]
    assert by_likes == ["c", "b", "d", "a", "e"]
    newest = [m.id.split("-")[-1] for m in alice.list_models(search=stamp, sort="last_modified")]
    assert newest == ["e", "d", "c", "b", "a"]
    assert [m.id for m in alice.list_models(search=stamp, author=ALICE_ORG, sort="created_at")] == [
        f"{ALICE_ORG}/{stamp}-e",
        f"{ALICE_ORG}/{stamp}-d",
    ]
    children = alice.list_models(search=stamp, filter="base_model:org/base", sort="downloads", cardData=True)
    children = list(children)
    assert [m.id.split("-")[-1] for m in children] == ["b", "d", "a"]
    assert children[0].card_data.base_model == "org/base"
    assert len(list(alice.list_models(search=stamp, limit=2, sort="downloads"))) == 2
    both = alice.list_models(search=stamp, filter=["base_model:org/base", "base_model:finetune:org/base"])
    assert len(list(both)) == 3
    assert [m.downloads for m in alice.list_models(search=stamp, sort="downloads", limit=1)] == [50]


def test_list_datasets(alice):
    repo = f"{ALICE}/data-{next(_names)}"
    alice.create_repo(repo, repo_type="dataset")
    alice.upload_file(
        path_or_fileobj=b"a,b\n1,2\n", path_in_repo="train.csv", repo_id=repo, repo_type="dataset"
    )
    assert [d.id for d in alice.list_datasets(search=repo.split("/")[1])] == [repo]
    assert not list(alice.list_models(search=repo.split("/")[1]))
    path = hf_hub_download(repo, "train.csv", repo_type="dataset", token=ALICE_TOKEN)
    assert Path(path).read_bytes() == b"a,b\n1,2\n"


# --------------------------------------------------------------------------- privacy and permissions


def test_private_repo_is_invisible_to_others(hub_server, alice, bob, repo_id):
    alice.create_repo(repo_id, private=True)
    alice.upload_file(path_or_fileobj=b"secret", path_in_repo="secret.txt", repo_id=repo_id)
    anonymous = HfApi(endpoint=hub_server.url, token=False)
    for api in (bob, anonymous):
        with pytest.raises(RepositoryNotFoundError):
            api.model_info(repo_id)
        assert repo_id not in [m.id for m in api.list_models(author=ALICE)]
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, "secret.txt", token=BOB_TOKEN)
    assert alice.model_info(repo_id).private is True
    assert repo_id in [m.id for m in alice.list_models(author=ALICE)]

    alice.update_repo_settings(repo_id, private=False)
    assert bob.model_info(repo_id).private is False


def test_writes_outside_ones_namespace_are_forbidden(alice, bob, repo_id):
    alice.create_repo(repo_id)
    with pytest.raises(HfHubHTTPError) as upload_error:
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert upload_error.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as create_error:
        bob.create_repo(f"{ALICE_ORG}/bob-was-here")
    assert create_error.value.response.status_code == 403
    alice.create_repo(f"{ALICE_ORG}/{repo_id.split('/')[1]}")  # alice may write to her org


def test_create_existing_and_delete_repo(alice, repo_id):
    url = alice.create_repo(repo_id)
    assert url.repo_id == repo_id
    with pytest.raises(HfHubHTTPError) as exists:
        alice.create_repo(repo_id)
    assert exists.value.response.status_code == 409
    assert alice.create_repo(repo_id, exist_ok=True).repo_id == repo_id
    alice.delete_repo(repo_id)
    assert not alice.repo_exists(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        alice.delete_repo(repo_id)
    alice.delete_repo(repo_id, missing_ok=True)


# --------------------------------------------------------------------------- fault injection


def test_injected_faults(hub_server, alice, repo_id):
    alice.create_repo(repo_id)
    hub_server.fail_next(f"/api/models/{repo_id}", 500)
    with pytest.raises(HfHubHTTPError) as error:  # model_info does not retry
        alice.model_info(repo_id)
    assert error.value.response.status_code == 500
    assert alice.model_info(repo_id).id == repo_id

    hub_server.fail_next("/api/models", 429, method="GET")
    assert repo_id in [m.id for m in alice.list_models(search=repo_id.split("/")[1])]  # retried after ~1 s
