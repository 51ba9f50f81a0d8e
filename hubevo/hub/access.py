"""Before a publishing run: can the token write to `publish.namespace`? Asked once, through `whoami`.

The Hub says who the token belongs to, its orgs with the role in each, and whether the token
itself is read-only. A namespace outside that list, a read-only token or a read-only org role
is a `ConfigError` naming the namespace and the fix, raised before anything is merged or
evaluated. A fine-grained token's scopes are left to the Hub: its first write says.
"""

from __future__ import annotations

from hubevo.errors import ConfigError, HubError
from hubevo.hub.client import ensure_api, hub_call, hub_exceptions, retried, translate

READ_ONLY_ROLES = frozenset({"read"})


def check_write_access(namespace: str, *, api=None) -> None:
    """ConfigError unless the token behind `api` can create and push repos under `namespace`."""
    account = whoami(namespace, api=api)
    writable = writable_namespaces(account)
    if namespace not in {account.get("name"), *(org.get("name") for org in account.get("orgs") or [])}:
        raise ConfigError(
            f"publish.namespace {namespace!r}: the token belongs to {account.get('name')!r}, who cannot write there "
            f"(writable: {', '.join(sorted(writable)) or 'none'}); set publish.namespace to one of those, "
            f"or log in with an account that can write to {namespace!r}")
    if namespace not in writable:
        raise ConfigError(
            f"publish.namespace {namespace!r}: the token can only read there (a read-only token or a read role "
            f"in the org); use a token with write access to {namespace!r} (HF_TOKEN or `hf auth login`)")


def whoami(namespace: str, *, api=None) -> dict:
    """The token's account, asked with retries; a missing or refused token is a ConfigError."""
    from huggingface_hub.errors import LocalTokenNotFoundError

    api = ensure_api(api)
    try:
        return retried(api.whoami, what="whoami")
    except LocalTokenNotFoundError:
        raise ConfigError(f"publishing to {namespace!r} needs a Hub token with write access; set HF_TOKEN or run "
                          "`hf auth login`, or set publish.push: none and publish.state: local") from None
    except hub_exceptions() as err:
        failed = translate(err, repo_id=namespace, action="check write access to", api=api, missing=HubError)
        raise ConfigError(f"publish.namespace: {failed}") from None


def writable_namespaces(account: dict) -> set[str]:
    """The user's own namespace and its orgs where its role is not read-only; none for a read-only token."""
    token = (account.get("auth") or {}).get("accessToken") or {}
    if token.get("role") in READ_ONLY_ROLES:
        return set()
    orgs = {org.get("name") for org in account.get("orgs") or [] if org.get("roleInOrg") not in READ_ONLY_ROLES}
    return {account.get("name"), *orgs} - {None}


def account_name(*, api) -> str:
    """The name of the account `api`'s token belongs to; HubError when the Hub will not say."""
    with hub_call("your account", action="identify", api=api, missing=HubError):
        return api.whoami()["name"]
