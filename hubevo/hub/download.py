"""Download population members from the Hub: weights, config and tokenizer only, at a revision."""

from __future__ import annotations

from pathlib import Path

from hubevo.errors import HubError, MemberNotFoundError

MODEL_FILES = ["*.safetensors", "*.json", "tokenizer.model", "*.txt", "*.tiktoken", "*.py"]


def split_revision(repo: str) -> tuple[str, str | None]:
    repo_id, _, revision = repo.partition("@")
    return repo_id, revision or None


def snapshot(repo: str, *, api=None, cache_dir: Path | None = None) -> tuple[Path, str]:
    """(local folder, resolved commit sha) of a model repo `org/name[@revision]`."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    api = api or HfApi()
    repo_id, revision = split_revision(repo)
    try:
        info = api.model_info(repo_id, revision=revision)
        path = api.snapshot_download(
            repo_id, revision=info.sha, allow_patterns=MODEL_FILES, cache_dir=cache_dir
        )
    except GatedRepoError:
        raise MemberNotFoundError(f"Hub repo {repo_id!r} is gated: accept its terms on the Hub and log in") from None
    except RevisionNotFoundError:
        raise MemberNotFoundError(f"Hub repo {repo_id!r} has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise MemberNotFoundError(
            f"Hub repo {repo_id!r} does not exist or is private; check the id or log in with a token that can read it"
        ) from None
    except OSError as err:  # connection errors, offline mode
        raise HubError(f"could not reach the Hub for {repo_id!r}: {type(err).__name__}") from None
    return Path(path), info.sha
