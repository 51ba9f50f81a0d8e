"""Stage 1, seed: resolve the initial members to local folders and check they can be merged.

Compatibility is decided from `config.json` and the tokenizer files alone, before
any weights are read, and an incompatible population fails with the members named.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from hubevo.config import Member, PopulationConfig
from hubevo.errors import CompatibilityError, ConfigError, MemberNotFoundError

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


def check_weights(member: ResolvedMember) -> None:
    """Read each safetensors header (not the tensors): a truncated or garbage file, or an embedding whose
    shape contradicts config.json, fails here rather than at the first merge."""
    files = sorted(member.path.glob("*.safetensors"))
    if not files:
        raise MemberNotFoundError(f"population member {member.label!r} ({str(member.path)!r}) has no .safetensors "
                                  "weights; hubevo merges safetensors checkpoints only")
    text = arch_signature(member.path)
    for file in files:
        for name, shape in safetensors_shapes(file).items():
            if name.endswith("embed_tokens.weight") and text["vocab_size"] and text["hidden_size"] \
                    and list(shape) != [text["vocab_size"], text["hidden_size"]]:
                raise CompatibilityError(
                    f"population member {member.label!r}: {file.name} holds {name} of shape {list(shape)} but "
                    f"config.json says vocab_size {text['vocab_size']} x hidden_size {text['hidden_size']}; "
                    "the weights and config.json come from different models: fix or re-download the member")


def safetensors_shapes(file: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors header; MemberNotFoundError if the file is truncated or not one."""
    size = file.stat().st_size
    bad = f"{str(file)!r} is not a complete safetensors file"
    fix = "re-download or re-save the member"
    with open(file, "rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length <= 0 or 8 + length > size:
            raise MemberNotFoundError(f"{bad} (header says {length} bytes, file has {size}); {fix}")
        try:
            header = json.loads(handle.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise MemberNotFoundError(f"{bad} (its header is not JSON); {fix}") from None
    if not isinstance(header, dict):
        raise MemberNotFoundError(f"{bad} (its header is not a JSON object); {fix}")
    tensors = {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    end = max((v.get("data_offsets", [0, 0])[1] for v in tensors.values()), default=0)
    if 8 + length + end > size:
        raise MemberNotFoundError(f"{bad}: truncated ({size} bytes of {8 + length + end}); {fix}")
    return {k: v.get("shape", []) for k, v in tensors.items()}


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


def seed_population(cfg: PopulationConfig, *, api=None) -> tuple[list[ResolvedMember], ResolvedMember | None]:
    """Resolve members (and Hub-query candidates) to local folders; fail before any merge if incompatible."""
    base = resolve(cfg.base_model, api=api) if cfg.base_model else None
    members = [resolve(m, api=api) for m in cfg.members]
    if cfg.query is not None:
        from hubevo.hub.discover import discover_members

        reference = (members[0] if members else base)
        given = [m.source for m in members] + ([base.source] if base else [])
        found = discover_members(cfg.query, reference=reference, api=api, exclude=given)
        members += [resolve(m, api=api) for m in found]
    if not members:
        raise ConfigError("population is empty: no member given and the Hub query found no compatible model")
    labels = [m.label for m in members]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise ConfigError(f"population.members has duplicate names {duplicates}; set a distinct 'name' on each")
    check_compatible(members + ([base] if base else []))
    for member in members + ([base] if base else []):
        check_weights(member)
    return members, base
