"""Who may start, pause and stop runs: everything that spends GPU time.

Reading (leaderboard, trees, cards, status) is public. Acting needs one of:

- a Hugging Face account signed in through Gradio's OAuth (`hf_oauth: true` on a Space)
  whose username is on the allow-list;
- the admin token of a local or self-hosted deployment, typed into the page.

The check runs on the server inside every acting handler (Gradio exposes each handler as
an API endpoint, so hiding a button protects nothing). With neither an allow-list nor an
admin token configured, nobody may act.

A run launched as a Hugging Face Job spends nothing of the Space's: any signed-in user may
launch one under their own account, billed to them, with the token their sign-in granted
(`job_token`: the OAuth scope `jobs` is needed, listed in the Space's `hf_oauth_scopes`).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from hubevo.errors import HubevoError

ADMIN = "admin"
JOBS_SCOPE = "jobs"


class AccessDenied(HubevoError, PermissionError):
    """The visitor may not do what they asked; the message says how to get access."""


@dataclass(frozen=True)
class Access:
    admin_token: str | None
    allow_list: frozenset[str]

    @classmethod
    def of(cls, *, admin_token: str | None, allow_list: Iterable[str]) -> "Access":
        names = frozenset(name.strip().lower() for name in allow_list if name and name.strip())
        return cls(admin_token=admin_token or None, allow_list=names)

    @property
    def anyone_can_act(self) -> bool:
        """Whether any visitor could ever act (False: seeding and controls are switched off)."""
        return self.admin_token is not None or bool(self.allow_list)

    def user(self, *, username: str | None, token: str | None, action: str = "start runs") -> str:
        """Who is acting: the allow-listed username or `admin`; AccessDenied otherwise."""
        if token:
            if self.admin_token is None:
                raise AccessDenied("this deployment has no admin token; sign in with an allow-listed account")
            if not hmac.compare_digest(token.encode(), self.admin_token.encode()):
                raise AccessDenied("the admin token is wrong")
            return ADMIN
        if username:
            if username.lower() not in self.allow_list:
                raise AccessDenied(f"{username!r} is not on this Space's allow-list, so it may not {action}")
            return username
        if not self.anyone_can_act:
            raise AccessDenied(f"nobody may {action} here: no allow-list and no admin token are configured")
        raise AccessDenied(f"sign in to {action}: log in with an allow-listed Hugging Face account "
                           "or give the admin token")


def job_token(oauth_token, *, action: str = "launch a job under your account") -> str:
    """The signed-in user's token (a `gr.OAuthToken`'s) for a job billed to them; AccessDenied when nobody is
    signed in, or the sign-in did not grant the `jobs` scope (a token given with no scope is let through)."""
    token = getattr(oauth_token, "token", None)
    if not token:
        raise AccessDenied(f"sign in with Hugging Face to {action}: the job runs under your account and is "
                           "billed to it (the admin token does not apply here)")
    scopes = (getattr(oauth_token, "scope", "") or "").split()
    if scopes and JOBS_SCOPE not in scopes:
        raise AccessDenied(f"your Hugging Face sign-in did not grant this Space the {JOBS_SCOPE!r} scope, so it may "
                           f"not {action}; sign out and sign in again, allowing it")
    return token
