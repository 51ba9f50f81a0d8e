"""Download from the Hub: population members at a pinned revision (weights, config and tokenizer only), the
commit a preference dataset is read at, and the files the Space shows (results datasets, cards).

A revision (branch, tag or commit) is resolved to its commit sha first, and the files
are then fetched at that sha, so the sha recorded in the lineage is the one whose bytes
were merged. `metadata_snapshot` fetches the config and tokenizer files alone: discovery
checks compatibility with them before any weights are downloaded.
"""

from __future__ import annotations

from pathlib import Path

from hubevo.errors import HubError, MemberNotFoundError
from hubevo.hub.client import ensure_api, hub_call, retried

TOKENIZER_FILES = [
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt", "*.tiktoken", "chat_template.jinja",
    "chat_template.json",
]
METADATA_FILES = ["config.json", "generation_config.json", *TOKENIZER_FILES]
MODEL_FILES = ["*.safetensors", "*.safetensors.index.json", *METADATA_FILES]


def split_revision(repo: str) -> tuple[str, str | None]:
    repo_id, _, revision = repo.partition("@")
    return repo_id, revision or None


def snapshot(repo: str, *, api=None, cache_dir: Path | None = None) -> tuple[Path, str]:
    """(local folder, resolved commit sha) of a model repo `org/name[@revision]`, weights included."""
    api = ensure_api(api)
    repo_id, revision = split_revision(repo)
    with hub_call(repo_id, action="download", api=api):
        info = retried(lambda: api.model_info(repo_id, revision=revision), what=f"model_info({repo_id!r})")
        files = [s.rfilename for s in info.siblings or []]
        if not any(f.endswith(".safetensors") for f in files):
            raise MemberNotFoundError(
                f"Hub repo {repo!r} has no .safetensors weights (files: {', '.join(files[:8]) or 'none'}); "
                "hubevo merges safetensors checkpoints only"
            )
        path = api.snapshot_download(repo_id, revision=info.sha, allow_patterns=MODEL_FILES, cache_dir=cache_dir)
    return Path(path), info.sha


def metadata_snapshot(repo_id: str, *, revision: str, api=None, cache_dir: Path | None = None) -> Path:
    """A local folder holding only `config.json` and the tokenizer files of `repo_id` at `revision`."""
    api = ensure_api(api)
    with hub_call(repo_id, action="read the config of", api=api):
        path = api.snapshot_download(repo_id, revision=revision, allow_patterns=METADATA_FILES, cache_dir=cache_dir)
    return Path(path)


def dataset_sha(repo_id: str, *, revision: str | None, api=None, missing=MemberNotFoundError) -> str:
    """The commit sha of the Hub dataset `repo_id` at `revision` (its default branch for None); a missing or
    unreadable dataset raises `missing`, naming it."""
    api = ensure_api(api)
    with hub_call(repo_id, action="read the dataset", api=api, missing=missing):
        return api.dataset_info(repo_id, revision=revision).sha


def dataset_snapshot(repo_id: str, *, patterns: list[str], action: str = "download", api=None,
                     cache_dir: Path | None = None) -> Path:
    """The files of the Hub dataset `repo_id` matching `patterns`, in the local cache; HubError naming it."""
    api = ensure_api(api)
    with hub_call(repo_id, action=action, api=api, missing=HubError):
        return Path(api.snapshot_download(repo_id, repo_type="dataset", allow_patterns=patterns, cache_dir=cache_dir))


def model_file(repo_id: str, filename: str, *, action: str = "download", api=None) -> Path:
    """One file of the model repo `repo_id` (its card, say), in the local cache; HubError naming the repo."""
    api = ensure_api(api)
    with hub_call(repo_id, action=action, api=api, missing=HubError):
        return Path(api.hf_hub_download(repo_id, filename))
