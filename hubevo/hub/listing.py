"""Stage 1 at the Hub edge: the models a Hub query lists, and one model's metadata.

Which of them may join a population is decided in `hubevo.seed.discover` (a query) and
`hubevo.seed.immigrants` (a webhook event); here are only the Hub calls.
"""

from __future__ import annotations

from hubevo.config import HubQuery
from hubevo.hub.client import ensure_api, hub_call, retried


def list_candidates(query: HubQuery, *, api=None) -> list:
    """The `ModelInfo`s the query lists (file names included), best first by `query.sort`."""
    api = ensure_api(api)
    where = f"list_models({query.model_dump(exclude_defaults=True)})"
    with hub_call(where, action="search", api=api):
        return retried(lambda: list(api.list_models(
            author=query.author, search=query.search, filter=query.filter or None, sort=query.sort,
            limit=query.limit, full=True,
        )), what=where)


def model_info(repo_id: str, *, api=None):
    """`repo_id`'s `ModelInfo` (tags, files, commit), without per-file metadata."""
    api = ensure_api(api)
    with hub_call(repo_id, action="read", api=api):
        return api.model_info(repo_id, files_metadata=False)
