"""Immigrants by webhook: huggingface_hub's WebhooksServer (Gradio + FastAPI) on 127.0.0.1 receives
Hub events, checks the secret, and queues a model matching the population's query.

Models live on the Hub-protocol test server; the events are POSTed as the Hub sends them
(JSON payload, `X-Webhook-Secret` header) through an HTTP client.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import HfApi
from safetensors.numpy import save_file

from hubevo.config import HubQuery
from hubevo.errors import ConfigError
from hubevo.hub.webhooks import launch, webhooks_server
from hubevo.seed.immigrants import ImmigrantWebhook
from tests.helpers.webhooks import SECRET, event, post

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the Gradio app

BASE = "alice/wh-base"
QUERY = HubQuery(author="alice-org", filter=[f"base_model:{BASE}"])


def model_folder(folder: Path, *, card: str) -> Path:
    folder.mkdir(parents=True)
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 2}))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "README.md").write_text(card)
    return folder


@pytest.fixture(scope="module")
def models(hub_server, tmp_path_factory) -> dict[str, str]:
    """A matching model, one without the base_model tag and one by another author."""
    api = HfApi(endpoint=hub_server.url, token="token-alice")
    root = tmp_path_factory.mktemp("webhook-models")
    child = f"---\nbase_model: {BASE}\nlibrary_name: transformers\n---\n# child\n"
    repos = {"match": ("alice-org/wh-child", child), "untagged": ("alice-org/wh-plain", "# plain\n"),
             "stranger": ("alice/wh-child", child)}
    for key, (repo, card) in repos.items():
        api.create_repo(repo, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=model_folder(root / key, card=card))
    return {key: repo for key, (repo, _) in repos.items()}


@pytest.fixture(scope="module")
def webhook(hub_server, models):
    """The server, launched once; yields (url, queued repos, the hook)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    queued: list[str] = []
    hook = ImmigrantWebhook(QUERY, on_candidate=queued.append, api=HfApi(endpoint=hub_server.url, token="token-alice"))
    server = webhooks_server(hook, webhook_secret=SECRET)
    url = launch(server, port=port)
    yield url, queued, hook
    import gradio as gr

    gr.close_all()


def test_a_signed_event_for_a_matching_model_queues_it_pinned(webhook, models, hub_server):
    url, queued, _ = webhook
    answer = post(url, event(models["match"]))
    sha = HfApi(endpoint=hub_server.url, token="token-alice").model_info(models["match"]).sha
    assert answer.status_code == 200 and answer.json() == {"status": "queued", "repo": f"{models['match']}@{sha}"}
    assert queued[-1] == f"{models['match']}@{sha}"
    again = post(url, event(models["match"], scope="repo.content", action="update"))
    assert again.json()["reason"] == "already queued at this commit" and queued.count(queued[-1]) == 1


@pytest.mark.parametrize("secret, status", [(None, 401), ("wrong-secret", 403)])
def test_a_badly_signed_event_is_refused(webhook, models, secret, status):
    url, queued, _ = webhook
    before = list(queued)
    answer = post(url, event(models["match"], action="update", scope="repo.content"), secret=secret)
    assert answer.status_code == status and queued == before


@pytest.mark.parametrize("key, kind, scope, action, reason", [
    ("untagged", "model", "repo", "create", f"lacks tag(s) base_model:{BASE}"),
    ("stranger", "model", "repo", "create", "author 'alice' is not 'alice-org'"),
    ("match", "dataset", "repo", "create", "a dataset repo, not a model"),
    ("match", "model", "repo", "delete", "event repo/delete adds no model"),
])
def test_events_that_do_not_match_are_ignored(webhook, models, key, kind, scope, action, reason):
    url, queued, _ = webhook
    before = list(queued)
    answer = post(url, event(models[key], kind=kind, scope=scope, action=action))
    assert answer.status_code == 200 and answer.json()["status"] == "ignored" and reason in answer.json()["reason"]
    assert queued == before


def test_a_deleted_or_private_model_is_ignored_not_an_error(webhook):
    url, queued, _ = webhook
    answer = post(url, event("alice-org/never-existed"))
    assert answer.status_code == 200 and answer.json()["reason"].startswith("unreadable")


def test_an_open_endpoint_is_refused():
    with pytest.raises(ConfigError, match="webhook secret is required"):
        webhooks_server(ImmigrantWebhook(QUERY, on_candidate=print), webhook_secret="")
