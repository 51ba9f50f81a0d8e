"""Stage 1 at the Hub edge, pushed instead of polled: Hub webhooks that bring immigrants.

A Hub webhook (https://huggingface.co/settings/webhooks) watching the authors of a
population's query POSTs an event whenever one of their repos is created or updated.
`ImmigrantWebhook.handle` turns such an event into an immigrant request when the model
matches the query and passes discovery's checks:

- a model repo, created or updated (`repo` / `repo.content` scopes);
- the query's `author` owns it, its `search` text is in its id, and it carries every
  `filter` tag (e.g. `base_model:org/base`), read from `model_info` rather than trusted
  from the payload;
- `hubevo.hub.discover.judge` keeps it: safetensors, config and tokenizer present, not
  gated, and, given a `Reference`, the same architecture and vocabulary.

A match calls `on_candidate("org/name@sha")` (pinned to the commit that was checked), once
per commit; everything else is answered with the reason it was ignored. `webhooks_server`
mounts the handler on huggingface_hub's `WebhooksServer` at `/webhooks/immigrants`, which
refuses a request without the `X-Webhook-Secret` header (401) or with a wrong one (403). The
Space (`hubevo space` with `WEBHOOK_SECRET` set) serves its UI and this endpoint together, and
its scheduler turns each accepted model into an immigrant of every run whose query matches.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from huggingface_hub import WebhookPayload, WebhooksServer

from hubevo.config import HubQuery
from hubevo.errors import ConfigError, HubevoError
from hubevo.hub.client import ensure_api, hub_call
from hubevo.hub.discover import Reference, judge

log = logging.getLogger("hubevo")

WEBHOOK_PATH = "immigrants"
EVENTS = {("repo", "create"), ("repo", "update"), ("repo.content", "update")}


@dataclass
class ImmigrantWebhook:
    """Decides on webhook events for one population; `on_candidate` receives each accepted `org/name@sha`."""

    query: HubQuery
    on_candidate: Callable[[str], object]
    reference: Reference | None = None
    api: object = None
    accepted: set[str] = field(default_factory=set)

    def handle(self, payload: WebhookPayload) -> dict:
        """The answer to one event: {"status": "queued", "repo": ...} or {"status": "ignored", "reason": ...}."""
        reason, repo = self.decide(payload)
        if reason is not None:
            log.info("webhook: %s ignored: %s", payload.repo.name, reason)
            return {"status": "ignored", "repo": payload.repo.name, "reason": reason}
        self.accepted.add(repo)
        self.on_candidate(repo)
        log.info("webhook: %s queued as an immigrant", repo)
        return {"status": "queued", "repo": repo}

    def decide(self, payload: WebhookPayload) -> tuple[str | None, str | None]:
        """(reason to ignore, None) or (None, pinned repo)."""
        repo, event = payload.repo, payload.event
        if repo.type != "model":
            return f"a {repo.type} repo, not a model", None
        if (event.scope, event.action) not in EVENTS:
            return f"event {event.scope}/{event.action} adds no model", None
        if reason := self.query_mismatch(repo.name):
            return reason, None
        try:
            info = self.model_info(repo.name)
        except HubevoError as err:
            return f"unreadable: {err}", None
        missing = [tag for tag in self.query.filter if tag not in (info.tags or [])]
        if missing:
            return f"does not match the query: lacks tag(s) {', '.join(missing)}", None
        reason, _ = judge(info, reference=self.reference, api=self.api)
        pinned = f"{info.id}@{info.sha}"
        if reason is None and pinned in self.accepted:
            reason = "already queued at this commit"
        return (reason, None) if reason else (None, pinned)

    def query_mismatch(self, repo_id: str) -> str | None:
        author = repo_id.split("/")[0]
        if self.query.author and author != self.query.author:
            return f"does not match the query: author {author!r} is not {self.query.author!r}"
        if self.query.search and self.query.search.lower() not in repo_id.lower():
            return f"does not match the query: {self.query.search!r} is not in its name"
        return None

    def model_info(self, repo_id: str):
        api = ensure_api(self.api)
        with hub_call(repo_id, action="read", api=api):
            return api.model_info(repo_id, files_metadata=False)


class EventHandler(Protocol):
    def handle(self, payload: WebhookPayload) -> dict: ...


def webhooks_server(hook: EventHandler, *, webhook_secret: str, ui=None) -> WebhooksServer:
    """A `WebhooksServer` with `hook` at /webhooks/immigrants (one population's `ImmigrantWebhook`, or the
    Space's `hubevo.scheduler.Scheduler` for all of its runs); a secret is required (open endpoints are refused)."""
    if not webhook_secret:
        raise ConfigError("a webhook secret is required: set WEBHOOK_SECRET to the secret of the Hub webhook")
    server = WebhooksServer(ui=ui, webhook_secret=webhook_secret)

    async def immigrants(payload: WebhookPayload):
        return await asyncio.to_thread(hook.handle, payload)  # Hub calls block: keep them off the event loop

    server.add_webhook(WEBHOOK_PATH)(immigrants)
    return server


def launch(server: WebhooksServer, *, host: str = "127.0.0.1", port: int = 7860) -> str:
    """Start the server in the background (no share link); returns the webhook's URL."""
    server.launch(prevent_thread_lock=True, share=False, server_name=host, server_port=port, quiet=True)
    return f"http://{host}:{port}/webhooks/{WEBHOOK_PATH}"
