"""Stage 1, seed: a member resolved to a local folder, and whether members can be merged.

Compatibility is decided from `config.json` and the tokenizer files alone, before any
weights are read (`check_compatible`); a Hub member is downloaded at a pinned revision, and a
recorded seed whose folder is gone is downloaded again at the revision the run pinned.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from hubevo.config import Member
from hubevo.errors import CompatibilityError, MemberNotFoundError

ARCH_FIELDS = (
    "model_type", "architectures", "hidden_size", "num_hidden_layers", "intermediate_size",
    "num_attention_heads", "num_key_value_heads", "vocab_size", "tie_word_embeddings", "head_dim",
)




@dataclass(frozen=True)
class ResolvedMember:
    label: str
    source: str  # what the user wrote: a path or org/name@revision
    path: Path  # local folder with config.json
    revision: str | None = None  # resolved commit sha for Hub members


def resolve(member: Member, *, api=None) -> ResolvedMember:
    if member.path is not None:
        path = Path(member.path)
        if not (path / "config.json").is_file():
            what = "does not exist" if not path.exists() else "has no config.json"
            raise MemberNotFoundError(f"population member {str(path)!r} {what}; give a Hugging Face model folder")
        return ResolvedMember(label=member.label, source=str(path), path=path)
    from hubevo.hub.download import snapshot

    path, sha = snapshot(member.repo, api=api)
    return ResolvedMember(label=member.label, source=member.repo, path=Path(path), revision=sha)


def arch_signature(path: Path) -> dict:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise MemberNotFoundError(f"cannot read {path / 'config.json'}: {err}; "
                                  "give a model folder whose config.json is valid JSON") from None
    text = config.get("text_config", config) if isinstance(config, dict) else None
    if not isinstance(text, dict):
        raise MemberNotFoundError(f"{path / 'config.json'} is not a JSON object (got {type(config).__name__}); "
                                  "give a Hugging Face model folder whose config.json maps field names to values")
    signature = {k: (config.get(k) if k in ("model_type", "architectures") else text.get(k)) for k in ARCH_FIELDS}
    if signature["head_dim"] is None and text.get("hidden_size") and text.get("num_attention_heads"):
        # head_dim is free in Gemma-2 (256 on a 2304-wide stream); configs omit it when it is hidden/heads
        signature["head_dim"] = text["hidden_size"] // text["num_attention_heads"]
    return signature


def vocab_digest(path: Path) -> str | None:
    tok = path / "tokenizer.json"
    if not tok.is_file():
        return None
    vocab = json.loads(tok.read_text()).get("model", {}).get("vocab")
    return hashlib.sha256(json.dumps(vocab, sort_keys=True).encode()).hexdigest() if vocab is not None else None


def check_compatible(members: list[ResolvedMember]) -> None:
    """Raise CompatibilityError naming the first member that differs from the first one, and how."""
    ref = members[0]
    ref_sig, ref_vocab = arch_signature(ref.path), vocab_digest(ref.path)
    for other in members[1:]:
        sig = arch_signature(other.path)
        diffs = [f"{k}: {ref_sig[k]!r} vs {sig[k]!r}" for k in ARCH_FIELDS if ref_sig[k] != sig[k]]
        vocab = vocab_digest(other.path)
        if ref_vocab and vocab and ref_vocab != vocab:
            diffs.append("tokenizer vocabularies differ")
        if diffs:
            raise CompatibilityError(
                f"members {ref.label!r} and {other.label!r} cannot be merged: " + "; ".join(diffs)
            )


def local_member(member: dict, *, api=None) -> ResolvedMember:
    """A recorded seed, downloaded again at its pinned revision if its folder is gone."""
    resolved = ResolvedMember(**{**member, "path": Path(member["path"])})
    if (resolved.path / "config.json").is_file() or not resolved.revision:
        return resolved
    repo = f"{member['source'].split('@')[0]}@{member['revision']}"
    return ResolvedMember(**{**member, "path": resolve(Member(repo=repo), api=api).path})


def seed_layers(paths: dict[str, str]) -> dict[str, int]:
    layers = {}
    for cid, path in paths.items():
        config = json.loads((Path(path) / "config.json").read_text())
        layers[cid] = int(config.get("text_config", config)["num_hidden_layers"])
    return layers
