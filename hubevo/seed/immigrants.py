"""Stage 1, seed, pushed instead of polled: which Hub webhook events bring an immigrant.

`ImmigrantWebhook.handle` turns a Hub event into an immigrant request when the model matches
the population's query and passes discovery's checks:

- a model repo, created or updated (`repo` / `repo.content` scopes);
- the query's `author` owns it, its `search` text is in its id, and it carries every
  `filter` tag (e.g. `base_model:org/base`), read from `model_info` rather than trusted
  from the payload;
- `hubevo.seed.discover.judge` keeps it: safetensors, config and tokenizer present, not
  gated, and, given a `Reference`, the same architecture and vocabulary.

A match calls `on_candidate("org/name@sha")` (pinned to the commit that was checked), once
per commit; everything else is answered with the reason it was ignored. The server that
receives the events is `hubevo.hub.webhooks`; the Space's scheduler turns each accepted model
into an immigrant of every run whose query matches.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from huggingface_hub import WebhookPayload

from hubevo.config import HubQuery
from hubevo.errors import HubevoError
from hubevo.hub.listing import model_info
from hubevo.seed.discover import Reference, judge

log = logging.getLogger("hubevo")

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
            info = model_info(repo.name, api=self.api)
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
