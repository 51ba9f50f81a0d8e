"""Stage 1 at the Hub edge, pushed instead of polled: the server that receives Hub webhooks.

A Hub webhook (https://huggingface.co/settings/webhooks) watching the authors of a
population's query POSTs an event whenever one of their repos is created or updated.
`webhooks_server` mounts a handler (`hubevo.seed.immigrants.ImmigrantWebhook` for one
population, the scheduler for all of a Space's runs) on huggingface_hub's `WebhooksServer` at
`/webhooks/immigrants`, which refuses a request without the `X-Webhook-Secret` header (401) or
with a wrong one (403). The Space (`hubevo space` with `WEBHOOK_SECRET` set) serves its UI and
this endpoint together.
"""

import asyncio
from typing import Protocol

from huggingface_hub import WebhookPayload, WebhooksServer

from hubevo.errors import ConfigError

WEBHOOK_PATH = "immigrants"


class EventHandler(Protocol):
    def handle(self, payload: WebhookPayload) -> dict: ...


def webhooks_server(hook: EventHandler, *, webhook_secret: str, ui=None) -> WebhooksServer:
    """A `WebhooksServer` with `hook` at /webhooks/immigrants (one population's `ImmigrantWebhook`, or the
    Space's `hubevo.run.scheduler.Scheduler` for all of its runs); a secret is required (open endpoints are refused)."""
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
