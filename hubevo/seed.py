"""Stage 1, seed: resolve the initial members to local folders and check they can be merged.

Compatibility is decided from `config.json` and the tokenizer files alone, before
any weights are read, and an incompatible population fails with the members named. The
weights are then checked cheaply: each safetensors header, and a sample of every float
tensor for NaN or Inf (a diverged checkpoint), naming the member and the tensor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubevo.config import Member, PopulationConfig
from hubevo.errors import CompatibilityError, ConfigError, MemberNotFoundError

ARCH_FIELDS = (
    "model_type", "architectures", "hidden_size", "num_hidden_layers", "intermediate_size",
    "num_attention_heads", "num_key_value_heads", "vocab_size", "tie_word_embeddings", "head_dim",
)
# safetensors float dtype -> (unsigned view, exponent mask): a value is NaN or Inf when its exponent is all ones
FLOAT_BITS = {"F64": (np.uint64, 0x7FF0000000000000), "F32": (np.uint32, 0x7F800000),
              "F16": (np.uint16, 0x7C00), "BF16": (np.uint16, 0x7F80)}
SCAN_WHOLE, SCAN_BLOCKS, SCAN_BLOCK = 1 << 20, 64, 4096  # elements: tensors up to SCAN_WHOLE are read whole


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
    """Read each safetensors header and a sample of its values: a truncated or garbage file, an embedding whose
    shape contradicts config.json, or NaN/Inf weights fail here rather than at the first merge."""
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
        if (bad := nonfinite_tensor(file)) is not None:
            raise CompatibilityError(
                f"population member {member.label!r}: {file.name} holds NaN or Inf values in {bad}; the checkpoint "
                "is broken (a diverged training run?): fix or re-download it, or remove the member")


def safetensors_shapes(file: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors header; MemberNotFoundError if the file is truncated or not one."""
    return {k: v.get("shape", []) for k, v in safetensors_header(file)[1].items()}


def nonfinite_tensor(file: Path) -> str | None:
    """The name of the first float tensor in `file` with a NaN or Inf among the values read: all of a small
    tensor, evenly spaced blocks of a large one (so the check reads a few MB of any model)."""
    start, tensors = safetensors_header(file)
    for name, info in tensors.items():
        if info.get("dtype") not in FLOAT_BITS:
            continue
        view, mask = FLOAT_BITS[info["dtype"]]
        first, last = info.get("data_offsets", [0, 0])
        count = (last - first) // np.dtype(view).itemsize
        if count == 0:
            continue
        values = np.memmap(file, dtype=view, mode="r", offset=start + first, shape=(count,))
        if count > SCAN_WHOLE:
            starts = np.linspace(0, count - SCAN_BLOCK, SCAN_BLOCKS).astype(np.int64)
            values = np.concatenate([values[i:i + SCAN_BLOCK] for i in starts])
        if np.any((values & view(mask)) == view(mask)):
            return name
    return None


def safetensors_header(file: Path) -> tuple[int, dict[str, dict]]:
    """(offset of the tensor data, tensor name -> its header entry); MemberNotFoundError if the file is truncated
    or not a safetensors file."""
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
    return 8 + length, tensors


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
