"""Hub webhook events, as the Hub sends them, and a client that posts them to a webhooks server."""

from __future__ import annotations

import httpx

SECRET = "webhook-secret-1"


def event(repo: str, *, kind: str = "model", scope: str = "repo", action: str = "create") -> dict:
    """A webhook payload as the Hub sends it (version 3)."""
    return {
        "event": {"action": action, "scope": scope},
        "repo": {"type": kind, "name": repo, "id": "0" * 24, "private": False, "owner": {"id": "1" * 24},
                 "url": {"web": f"https://huggingface.co/{repo}", "api": f"https://huggingface.co/api/models/{repo}"}},
        "webhook": {"id": "2" * 24, "version": 3},
    }


def post(url: str, payload: dict, secret: str | None = SECRET) -> httpx.Response:
    headers = {"X-Webhook-Secret": secret} if secret is not None else {}
    return httpx.post(url, json=payload, headers=headers, timeout=30)
