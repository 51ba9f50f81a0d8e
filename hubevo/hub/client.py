"""The Hub client and its errors: one `HfApi`, injected everywhere, and one translation of failures.

Every function of `hubevo.hub` takes `api=`; None builds a client from the environment
(`HF_ENDPOINT`, and the token from `HF_TOKEN` or the stored `hf auth login`). Idempotent reads
and commits (made idempotent by content: unchanged files are dropped) go through `retried`,
which tries again after a 408, 429, 5xx or dropped connection (not offline mode) with exponential backoff,
honouring `Retry-After`. What is left when it gives up becomes a `HubError` (or
`MemberNotFoundError` for a repo that cannot be read) naming the repo, how many attempts were
made and what would fix it. No message ever carries a token: server text is redacted.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from hubevo.errors import HubError, HubevoError, MemberNotFoundError

TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{20,}")
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
log = logging.getLogger("hubevo")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How `retried` tries again: `attempts` in all, waits of `base_s`, 2x, 4x... capped at `max_s`
    (a longer `Retry-After` is capped too). `HUBEVO_HUB_ATTEMPTS` and `HUBEVO_HUB_BACKOFF_S` override."""

    attempts: int = 5
    base_s: float = 1.0
    max_s: float = 60.0

    @classmethod
    def from_env(cls) -> "RetryPolicy":
        return cls(attempts=max(1, int(os.environ.get("HUBEVO_HUB_ATTEMPTS", cls.attempts))),
                   base_s=float(os.environ.get("HUBEVO_HUB_BACKOFF_S", cls.base_s)))

    def wait(self, attempt: int, err: Exception) -> float:
        after = retry_after(err)
        return min(self.max_s, after if after is not None else self.base_s * 2 ** (attempt - 1))


def retry_after(err: Exception) -> float | None:
    """Seconds the server asked to wait (a numeric `Retry-After` header), if it did."""
    response = getattr(err, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def is_retryable(err: Exception) -> bool:
    """A rate limit, a server failure or a dropped connection: the same call may succeed later."""
    import httpx2
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):  # a ConnectionError, but the client refuses every call while it is set
        return False
    response = getattr(err, "response", None)
    if response is not None:
        return response.status_code in RETRY_STATUSES
    return isinstance(err, (httpx2.TransportError, ConnectionError, TimeoutError))


def retried(call: Callable[[], T], *, what: str, policy: RetryPolicy | None = None) -> T:
    """`call()`, tried again after a retryable failure; the error that ends it carries `attempts`.

    Only for idempotent calls: reads, `create_repo(exist_ok=True)`, tags with `exist_ok`, and
    commits (the client drops files the Hub already has, so a repeated commit changes nothing).
    """
    policy = policy or RetryPolicy.from_env()
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except hub_exceptions() as err:
            if attempt == policy.attempts or not is_retryable(err):
                err.attempts = attempt
                raise
            wait = policy.wait(attempt, err)
            log.warning("Hub call %s failed (%s); attempt %d of %d in %.1f s", what, _short(err), attempt + 1,
                        policy.attempts, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def _short(err: Exception) -> str:
    response = getattr(err, "response", None)
    return f"HTTP {response.status_code}" if response is not None else type(err).__name__


class GatedMemberError(MemberNotFoundError):
    """A gated Hub repo whose terms the token's account has not accepted."""


def make_api(*, endpoint: str | None = None, token: str | None = None):
    """An `HfApi`; without `token` the client reads `HF_TOKEN` or the stored login on every call."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token)


def ensure_api(api=None):
    return api if api is not None else make_api()


def current_token(api=None) -> str | None:
    """The token a call through `api` would send (None when anonymous); only for redaction."""
    from huggingface_hub import get_token

    token = getattr(api, "token", None)
    return token if isinstance(token, str) else get_token()


def redact(text: str, *, api=None) -> str:
    token = current_token(api)
    if token:
        text = text.replace(token, "***")
    return TOKEN_PATTERN.sub("***", text)


def translate(
    err: Exception, *, repo_id: str, action: str, api=None, missing: type[HubevoError] = MemberNotFoundError
) -> HubevoError:
    """The hubevo error for a failed Hub call `action` ("read", "push to", ...) on `repo_id`.

    `missing` is the class for a repo, revision or file that cannot be read: a population
    member missing is `MemberNotFoundError`; a repo missing while publishing is a `HubError`.
    """
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(err, GatedRepoError):
        gated = GatedMemberError if missing is MemberNotFoundError else missing
        return gated(f"Hub repo {repo_id!r} is gated: accept its terms on the Hub, then log in with that account")
    if isinstance(err, RepositoryNotFoundError):
        return missing(
            f"Hub repo {repo_id!r} does not exist or is private; check the id, or log in "
            "(HF_TOKEN or `hf auth login`) with a token that can read it"
        )
    if isinstance(err, RevisionNotFoundError):
        return missing(f"Hub repo {repo_id!r} has no such revision (branch, tag or commit): {_server(err, api)}")
    if isinstance(err, LocalEntryNotFoundError):  # the client could not connect and nothing was cached
        return HubError(f"could not reach the Hub to {action} {repo_id!r} and no cached copy exists; "
                        "check the network or HF_ENDPOINT and run again")
    if isinstance(err, EntryNotFoundError):
        return missing(f"Hub repo {repo_id!r} lacks a file that was asked for: {_server(err, api)}")
    if isinstance(err, OfflineModeIsEnabled):
        offline = HubError(f"cannot {action} Hub repo {repo_id!r}: offline mode is on (HF_HUB_OFFLINE is set), so "
                           "the Hub client makes no call; unset HF_HUB_OFFLINE to reach the Hub, or stay offline "
                           "with local member folders, publish.push: none and publish.state: local")
        offline.transient = False  # the same call fails the same way until the environment changes
        return offline
    tries = _tries(err)
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        failed = HubError(_http_message(status, repo_id=repo_id, action=action, detail=_server(err, api), tries=tries))
        failed.transient = status in RETRY_STATUSES
        return failed
    return HubError(
        f"could not reach the Hub to {action} {repo_id!r} ({type(err).__name__}{tries}: "
        f"{redact(str(err), api=api)[:200]}); check the network or HF_ENDPOINT and run again"
    )


def _tries(err: Exception) -> str:
    """', after 5 attempts' when `retried` made them; nothing when the call was made once."""
    attempts = getattr(err, "attempts", 1)
    return f", after {attempts} attempts" if attempts > 1 else ""


def _http_message(status: int, *, repo_id: str, action: str, detail: str, tries: str = "") -> str:
    if status == 401:
        return (f"the Hub refused the token when trying to {action} {repo_id!r} (HTTP 401): "
                "it is invalid or expired; set HF_TOKEN or run `hf auth login`")
    if status == 403:
        namespace = repo_id.split("/")[0]
        return (f"no permission to {action} {repo_id!r} (HTTP 403): the token needs write access to "
                f"{namespace!r} (your user or one of your orgs); {detail}")
    if status == 429:
        return (f"rate-limited by the Hub while trying to {action} {repo_id!r} "
                f"(HTTP 429{tries}); wait a few minutes and run again with --resume")
    if status >= 500:
        return f"the Hub failed (HTTP {status}{tries}) while trying to {action} {repo_id!r}; run again later"
    return f"the Hub answered HTTP {status} when trying to {action} {repo_id!r}: {detail}"


def _server(err: Exception, api) -> str:
    text = getattr(err, "server_message", None) or str(err).splitlines()[0]
    return redact(str(text), api=api)[:300]


def hub_exceptions() -> tuple[type[Exception], ...]:
    """What a Hub call can raise besides hubevo's own errors: HTTP errors and dropped connections."""
    import httpx2
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    return (HfHubHTTPError, EntryNotFoundError, httpx2.HTTPError, ConnectionError, TimeoutError)


@contextmanager
def hub_call(
    repo_id: str, *, action: str = "read", api=None, missing: type[HubevoError] = MemberNotFoundError
) -> Iterator[None]:
    """Run Hub calls on `repo_id`, turning any client failure into a hubevo error (see `translate`)."""
    try:
        yield
    except hub_exceptions() as err:
        raise translate(err, repo_id=repo_id, action=action, api=api, missing=missing) from None
