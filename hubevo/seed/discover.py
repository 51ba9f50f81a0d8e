"""Stage 1, seed: find population candidates with a Hub query and keep the compatible ones.

`HfApi.list_models` lists the top `limit` models of the query (author, search, tag
filters such as `base_model:org/name`, a sort). Each one is judged before any weights
move: no `.safetensors` in its file list, a gated repo, a missing tokenizer, or a
`config.json` / vocabulary that differs from the reference member skips it, with the
reason logged and returned. The kept ones are pinned to the commit that was checked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hubevo.config import HubQuery, Member
from hubevo.errors import MemberNotFoundError
from hubevo.hub.client import GatedMemberError, ensure_api
from hubevo.hub.download import metadata_snapshot, split_revision
from hubevo.hub.listing import list_candidates
from hubevo.seed.members import ARCH_FIELDS, ResolvedMember, arch_signature, vocab_digest

log = logging.getLogger("hubevo")


@dataclass(frozen=True)
class Skipped:
    repo_id: str
    reason: str  # starts with one of: incompatible, gated, missing safetensors, no tokenizer, unreadable, ...


@dataclass
class Discovery:
    members: list[Member] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


@dataclass(frozen=True)
class Reference:
    """What a candidate must match: the architecture fields of `config.json` and the vocabulary."""

    label: str
    signature: dict
    vocab: str | None

    @classmethod
    def of(cls, label: str, path: Path) -> "Reference":
        return cls(label=label, signature=arch_signature(path), vocab=vocab_digest(path))


def judge(info, *, reference: Reference | None, api=None) -> tuple[str | None, Path | None]:
    """(reason to skip or None, metadata folder) for one listed model; reads config and tokenizer only."""
    files = [s.rfilename for s in info.siblings or []]
    if not any(f.endswith(".safetensors") for f in files):
        return "missing safetensors: no .safetensors file in the repo", None
    if "config.json" not in files:
        return "incompatible: no config.json", None
    if not any(f.startswith("tokenizer") or f.endswith((".tiktoken", "vocab.json")) for f in files):
        return "no tokenizer: no tokenizer files in the repo", None
    try:
        path = metadata_snapshot(info.id, revision=info.sha, api=api)
    except GatedMemberError as err:
        return f"gated: {err}", None
    except MemberNotFoundError as err:  # deleted or made private since it was listed
        return f"unreadable: {err}", None
    if reference is None:
        return None, path
    sig = arch_signature(path)
    diffs = [f"{k}: {sig[k]!r} vs {reference.signature[k]!r} of {reference.label!r}"
             for k in ARCH_FIELDS if sig[k] != reference.signature[k]]
    vocab = vocab_digest(path)
    if reference.vocab and vocab and vocab != reference.vocab:
        diffs.append(f"tokenizer vocabulary differs from {reference.label!r}'s")
    return ("incompatible: " + "; ".join(diffs), None) if diffs else (None, path)


def discover(
    query: HubQuery, *, reference: ResolvedMember | None = None, exclude: Iterable[str] = (), api=None
) -> Discovery:
    """Candidates of `query` compatible with `reference` (or, without one, with the first usable candidate)."""
    api = ensure_api(api)
    excluded = {split_revision(r)[0] for r in exclude}
    if reference is not None:
        excluded.add(split_revision(reference.source)[0])
    ref = Reference.of(reference.label, reference.path) if reference is not None else None
    found = Discovery()
    for info in list_candidates(query, api=api):
        if info.id in excluded:
            continue
        reason, path = judge(info, reference=ref, api=api)
        if reason is not None:
            found.skipped.append(Skipped(info.id, reason))
            continue
        ref = ref or Reference.of(info.id, path)
        sha = info.sha or path.name  # the cache folder of a snapshot is named by its commit sha
        found.members.append(Member(repo=f"{info.id}@{sha}", name=info.id))
    return found


def discover_members(
    query: HubQuery, *, reference: ResolvedMember | None = None, exclude: Iterable[str] = (), api=None
) -> list[Member]:
    """The compatible candidates of `query` as population members; skipped ones are logged with the reason."""
    found = discover(query, reference=reference, exclude=exclude, api=api)
    for skipped in found.skipped:
        log.warning("Hub candidate %s skipped: %s", skipped.repo_id, skipped.reason)
    log.info("Hub query found %d compatible candidate(s): %s", len(found.members),
             ", ".join(m.label for m in found.members) or "none")
    return found.members
