"""Hub faults: idempotent reads and commits are tried again with backoff (honouring Retry-After),
and the error that ends them says truthfully how many attempts were made.

Every call goes through the real `huggingface_hub` client to the Hub-protocol test server,
whose `fail_next` answers the next matching requests with an injected status.
"""

from __future__ import annotations

import time

import pytest
import torch
from huggingface_hub import HfApi

from hubevo.errors import HubError, MemberNotFoundError, is_transient
from hubevo.hub.download import snapshot
from hubevo.publish.hub import commit_files
from tests.tiny_models import build_llama

torch.set_num_threads(1)
STAMP = "retryzoo"


@pytest.fixture(scope="module")
def alice(hub_server) -> HfApi:
    return HfApi(endpoint=hub_server.url, token="token-alice")


@pytest.fixture(scope="module")
def model_repo(alice, tmp_path_factory) -> str:
    repo = f"alice/{STAMP}-model"
    alice.create_repo(repo, exist_ok=True)
    alice.upload_folder(repo_id=repo, folder_path=build_llama(tmp_path_factory.mktemp("retry") / "m", seed=3))
    return repo


def info_requests(hub_server, repo: str) -> int:
    return sum(1 for method, path in hub_server.request_log if method == "GET" and path == f"/api/models/{repo}")


def test_a_single_503_on_model_info_is_retried(hub_server, alice, model_repo):
    before = info_requests(hub_server, model_repo)
    hub_server.fail_next(f"/api/models/{model_repo}", 503, method="GET")
    path, sha = snapshot(model_repo, api=alice)
    assert (path / "config.json").is_file() and len(sha) == 40
    assert info_requests(hub_server, model_repo) - before == 2


def test_a_429_waits_as_long_as_retry_after_says(hub_server, alice, model_repo):
    hub_server.fail_next(f"/api/models/{model_repo}", 429, method="GET", headers={"Retry-After": "1"})
    started = time.monotonic()
    snapshot(model_repo, api=alice)
    assert time.monotonic() - started >= 1.0, "Retry-After: 1 was not honoured"


def test_a_lasting_outage_ends_naming_the_attempts_and_is_transient(hub_server, alice, model_repo):
    before = info_requests(hub_server, model_repo)
    hub_server.fail_next(f"/api/models/{model_repo}", 503, count=5, method="GET")
    with pytest.raises(HubError) as err:
        snapshot(model_repo, api=alice)
    message = str(err.value)
    assert "HTTP 503, after 5 attempts" in message and model_repo in message and "run again later" in message
    assert "client's retries" not in message
    assert info_requests(hub_server, model_repo) - before == 5
    assert is_transient(err.value)


def test_a_missing_repo_is_asked_once_and_is_permanent(hub_server, alice):
    repo = f"alice/{STAMP}-nope"
    before = info_requests(hub_server, repo)
    with pytest.raises(MemberNotFoundError) as err:
        snapshot(repo, api=alice)
    assert info_requests(hub_server, repo) - before == 1
    assert "after" not in str(err.value) and not is_transient(err.value)


def test_a_bad_token_is_permanent(hub_server, model_repo):
    with pytest.raises(HubError) as err:
        snapshot(model_repo, api=HfApi(endpoint=hub_server.url, token="hf_" + "x" * 30))
    assert "401" in str(err.value) and "hf_xxx" not in str(err.value) and not is_transient(err.value)


def test_a_500_on_a_commit_is_retried_and_commits_once(hub_server, alice):
    repo = f"alice/{STAMP}-results"
    alice.create_repo(repo, exist_ok=True)
    before = hub_server.commit_count(repo)
    hub_server.fail_next(f"/api/models/{repo}/commit/", 500, method="POST")
    commit_files(alice, repo, {"table.csv": b"id,fitness\na,0.5\n"}, message="results")
    assert hub_server.commit_count(repo) == before + 1
    assert hub_server.get_file(repo, "table.csv") == b"id,fitness\na,0.5\n"


def test_a_commit_that_keeps_failing_says_how_often_it_was_tried(hub_server, alice):
    from hubevo.hub.client import hub_call

    repo = f"alice/{STAMP}-results2"
    alice.create_repo(repo, exist_ok=True)
    hub_server.fail_next(f"/api/models/{repo}/commit/", 500, count=5, method="POST")
    with pytest.raises(HubError, match=r"HTTP 500, after 5 attempts\) while trying to push to 'alice/retryzoo"):
        with hub_call(repo, action="push to", api=alice, missing=HubError):
            commit_files(alice, repo, {"table.csv": b"x"}, message="results")


def test_offline_mode_is_tried_once_and_says_how_to_reach_the_hub(alice, model_repo, monkeypatch):
    from huggingface_hub import constants

    calls, model_info = [], alice.model_info
    monkeypatch.setattr(alice, "model_info", lambda *a, **kw: calls.append(a) or model_info(*a, **kw))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets when the client is imported
    with pytest.raises(HubError) as err:
        snapshot(model_repo, api=alice)
    assert len(calls) == 1, f"tried {len(calls)} times: offline mode does not pass by itself"
    message = str(err.value)
    assert "offline mode is on (HF_HUB_OFFLINE is set)" in message and "unset HF_HUB_OFFLINE" in message
    assert model_repo in message and "after" not in message and not is_transient(err.value)
