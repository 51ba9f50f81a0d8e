"""A publishing run checks once, before any work, that its token can write to `publish.namespace`."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi

from hubevo.config import parse_config
from hubevo.errors import ConfigError
from hubevo.hub.access import check_write_access, writable_namespaces
from hubevo.run.loop import evolve

ALICE_TOKEN, BOB_TOKEN = "token-alice", "token-bob"


def api(hub_server, token: str) -> HfApi:
    return HfApi(endpoint=hub_server.url, token=token)


def test_the_users_own_namespace_and_its_orgs_are_writable(hub_server):
    alice = api(hub_server, ALICE_TOKEN)
    assert writable_namespaces(alice.whoami()) == {"alice", "alice-org"}
    check_write_access("alice", api=alice)
    check_write_access("alice-org", api=alice)


def test_a_namespace_the_token_cannot_write_to_is_named_with_the_fix(hub_server):
    with pytest.raises(ConfigError) as refused:
        check_write_access("alice", api=api(hub_server, BOB_TOKEN))
    message = str(refused.value)
    assert "publish.namespace 'alice'" in message and "belongs to 'bob'" in message and "writable: bob" in message
    assert "set publish.namespace to one of those" in message and BOB_TOKEN not in message


def test_a_refused_token_says_so_and_never_shows_itself(hub_server):
    with pytest.raises(ConfigError, match="refused the token.*HF_TOKEN") as refused:
        check_write_access("alice", api=api(hub_server, "hf_NotARealTokenButLongEnough1234"))
    assert "hf_NotARealTokenButLongEnough1234" not in str(refused.value)


def test_a_busy_hub_is_asked_again(hub_server, monkeypatch):
    monkeypatch.setenv("HUBEVO_HUB_BACKOFF_S", "0")
    hub_server.fail_next("/api/whoami-v2", 503)
    before = len(hub_server.request_log)
    check_write_access("alice", api=api(hub_server, ALICE_TOKEN))
    asked = [path for _, path in hub_server.request_log[before:] if path == "/api/whoami-v2"]
    assert len(asked) == 2, f"asked {len(asked)} time(s): the 503, then once more"


def test_read_only_tokens_and_read_roles_write_nowhere():
    account = {"name": "carol", "orgs": [{"name": "lab", "roleInOrg": "read"}, {"name": "team", "roleInOrg": "write"}],
               "auth": {"accessToken": {"role": "write"}}}
    assert writable_namespaces(account) == {"carol", "team"}
    assert writable_namespaces({**account, "auth": {"accessToken": {"role": "read"}}}) == set()


@pytest.mark.parametrize("publish", [{"push": "champion"}, {"push": "none", "state": "hub"}])
def test_a_run_publishing_where_it_cannot_write_stops_before_any_work(hub_server, tmp_path, publish):
    cfg = parse_config({
        "name": "nowrite", "population": {"members": ["alice/a", "alice/b"]}, "fitness": {"tasks": ["any_task"]},
        "output": {"dir": str(tmp_path / "run")}, "publish": {"namespace": "alice", **publish},
    }, root=tmp_path)
    with pytest.raises(ConfigError, match="publish.namespace 'alice'"):
        evolve(cfg, progress=False, api=api(hub_server, BOB_TOKEN))
    assert not (tmp_path / "run").exists()


def test_offline_mode_asks_whoami_once_and_says_so(hub_server, monkeypatch):
    from huggingface_hub import constants

    alice, calls = api(hub_server, ALICE_TOKEN), []
    whoami = alice.whoami
    monkeypatch.setattr(alice, "whoami", lambda *a, **kw: calls.append(a) or whoami(*a, **kw))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets when the client is imported
    with pytest.raises(ConfigError, match=r"offline mode is on \(HF_HUB_OFFLINE is set\).*unset HF_HUB_OFFLINE"):
        check_write_access("alice", api=alice)
    assert len(calls) == 1, f"whoami was asked {len(calls)} times"
