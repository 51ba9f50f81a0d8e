"""Repos on the Hub as hubevo writes them: create, commit a set of files, tag, read tags, cards and folders.

Every call goes through `hubevo.hub.client` (`retried`, and the caller's `hub_call` for the error
that names the repo). What is pushed, and when, is decided in `hubevo.publish.hub` and
`hubevo.run.state_sync`; here are only the calls.
"""

from __future__ import annotations

from pathlib import Path

from hubevo.errors import HubError
from hubevo.hub.client import retried


def ensure_repo(api, repo_id: str, *, private: bool, repo_type: str = "model") -> None:
    """Create `repo_id` unless it exists (an existing repo keeps its visibility)."""
    retried(lambda: api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True),
            what=f"create_repo({repo_id!r})")


def tag(api, repo_id: str, *, name: str, revision: str, message: str) -> None:
    """Tag `revision` of `repo_id` as `name` (a tag already there is kept)."""
    retried(lambda: api.create_tag(repo_id, tag=name, revision=revision, tag_message=message, exist_ok=True),
            what=f"create_tag({repo_id!r}, {name!r})")


def card_data(api, repo_id: str):
    """The metadata of `repo_id`'s model card (None when it has no card)."""
    return retried(lambda: api.model_info(repo_id), what=f"model_info({repo_id!r})").card_data


def download_folder(api, repo_id: str, *, repo_type: str, patterns: list[str]) -> Path | None:
    """The files of `repo_id` matching `patterns` in the local cache; None when the repo does not exist."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        return Path(retried(lambda: api.snapshot_download(repo_id, repo_type=repo_type, allow_patterns=patterns),
                            what=f"snapshot_download({repo_id!r})"))
    except RepositoryNotFoundError:
        return None


def existing_tags(api, repo_id: str, *, repo_type: str = "model") -> set[str] | None:
    """Tags of `repo_id`, or None when the repo does not exist (or cannot be seen)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        refs = retried(lambda: api.list_repo_refs(repo_id, repo_type=repo_type), what=f"list_repo_refs({repo_id!r})")
        return {tag.name for tag in refs.tags}
    except RepositoryNotFoundError:
        return None


def folder_files(folder: Path, *, patterns: list[str] | None = None) -> dict[str, Path]:
    """Path in repo -> local file of every visible file of `folder` (only `patterns` if given)."""
    from huggingface_hub.utils import filter_repo_objects

    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}
    return {k: files[k] for k in filter_repo_objects(files, allow_patterns=patterns)} if patterns else files


def commit_files(api, repo_id: str, files: dict[str, Path | bytes], *, message: str, repo_type: str = "model",
                 delete_others: bool = False):
    """One commit holding `files` (the client drops unchanged ones; nothing changed = no commit)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    ops = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=data if isinstance(data, bytes) else str(data))
           for path, data in files.items()]
    if delete_others:
        have = retried(lambda: api.list_repo_files(repo_id, repo_type=repo_type), what=f"list_repo_files({repo_id!r})")
        stale = set(have) - set(files) - {".gitattributes"}
        ops += [CommitOperationDelete(path_in_repo=path) for path in sorted(stale)]
    return retried(lambda: api.create_commit(repo_id, operations=ops, commit_message=message, repo_type=repo_type),
                   what=f"create_commit({repo_id!r})")


def model_files(folder: Path, *, repo_id: str, patterns: list[str] | None = None) -> dict[str, Path]:
    """`folder_files` of a model folder; HubError if it holds no weights (never push an empty model)."""
    files = folder_files(folder, patterns=patterns)
    if not any(path.endswith(".safetensors") for path in files):
        raise HubError(f"cannot push {repo_id!r}: its local folder {str(folder)!r} holds no .safetensors weights")
    return files
