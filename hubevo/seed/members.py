"""Stage 1, seed: a member resolved to a local folder, and whether members can be merged.

Compatibility is decided from `config.json` and the tokenizer files alone, before any
weights are read (`check_compatible`); a Hub member is downloaded at a pinned revision, and a
recorded seed whose folder is gone is downloaded again at the revision the run pinned. Every file of a
member that is read is checked first (`check_files`, through `hubevo.files`): readable, a file, UTF-8.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from hubevo.config import Member
from hubevo.errors import CompatibilityError, MemberNotFoundError
from hubevo.files import read_text, require_file, require_folder

ARCH_FIELDS = (
    "model_type", "architectures", "hidden_size", "num_hidden_layers", "intermediate_size",
    "num_attention_heads", "num_key_value_heads", "vocab_size", "tie_word_embeddings", "head_dim",
)
# a member's files that a merge, lm-eval or transformers reads; of them, the text ones must be UTF-8
MODEL_FILES = ("*.json", "*.safetensors", "tokenizer.model", "merges.txt", "vocab.txt", "*.jinja", "*.tiktoken")
TEXT_SUFFIXES = (".json", ".txt", ".jinja")
PARSED_JSON_BYTES = 1 << 20  # larger JSON (a tokenizer's vocabulary) is parsed where it is used, once




@dataclass(frozen=True)
class ResolvedMember:
    label: str
    source: str  # what the user wrote: a path or org/name@revision
    path: Path  # local folder with config.json
    revision: str | None = None  # resolved commit sha for Hub members


def resolve(member: Member, *, api=None, field: str = "population.members") -> ResolvedMember:
    """`member` as a local folder (a Hub member downloaded at a pinned revision) whose files this user can read."""
    if member.path is not None:
        path = require_folder(member.path, what="population member", field=field,
                              fix="give a Hugging Face model folder", error=MemberNotFoundError)
        if not (path / "config.json").is_file() and not (path / "config.json").is_dir():
            raise MemberNotFoundError(f"population member {str(path)!r} has no config.json; "
                                      "give a Hugging Face model folder")
        resolved = ResolvedMember(label=member.label, source=str(path), path=path)
    else:
        from hubevo.hub.download import snapshot

        path, sha = snapshot(member.repo, api=api)
        resolved = ResolvedMember(label=member.label, source=member.repo, path=Path(path), revision=sha)
    check_files(resolved, field=field)
    return resolved


def check_files(member: ResolvedMember, *, field: str = "population.members") -> None:
    """Every file of the member that a merge, lm-eval or transformers reads can be read by this user, is a file,
    and (JSON and text) is UTF-8; JSON files up to `PARSED_JSON_BYTES` parse. MemberNotFoundError naming the
    member, the file and the fix otherwise, before any of it is loaded."""
    what, fix = f"population member {member.label!r} file", "fix or re-download the member"
    for file in sorted(p for pattern in MODEL_FILES for p in member.path.glob(pattern)):
        if file.suffix in TEXT_SUFFIXES:
            text = read_text(file, what=what, field=field, fix=fix, error=MemberNotFoundError)
            if file.suffix == ".json" and len(text) <= PARSED_JSON_BYTES:
                _parse_json(text, file=file, what=what, field=field)
        else:
            require_file(file, what=what, field=field, fix=fix, error=MemberNotFoundError)


def _parse_json(text: str, *, file: Path, what: str, field: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise MemberNotFoundError(f"{field}: {what} {str(file)!r} is not valid JSON (line {err.lineno}: "
                                  f"{err.msg}); fix or re-download the member") from None
    except RecursionError:
        raise MemberNotFoundError(f"{field}: {what} {str(file)!r} nests its JSON too deeply to read; "
                                  "fix or re-download the member") from None


def _read_json(file: Path) -> object:
    """The JSON in a member's `file` (checked by `check_files`, or read here with the same one-line errors)."""
    what = "model file"
    return _parse_json(read_text(file, what=what, error=MemberNotFoundError), file=file, what=what,
                       field="population.members")


def arch_signature(path: Path) -> dict:
    config = _read_json(path / "config.json")
    text = config.get("text_config", config) if isinstance(config, dict) else None
    if not isinstance(text, dict):
        raise MemberNotFoundError(f"{path / 'config.json'} is not a JSON object (got {type(config).__name__}); "
                                  "give a Hugging Face model folder whose config.json maps field names to values")
    signature = {k: (config.get(k) if k in ("model_type", "architectures") else text.get(k)) for k in ARCH_FIELDS}
    hidden, heads = text.get("hidden_size"), text.get("num_attention_heads")
    if signature["head_dim"] is None and all(type(n) is int and n > 0 for n in (hidden, heads)):
        # head_dim is free in Gemma-2 (256 on a 2304-wide stream); configs omit it when it is hidden/heads
        signature["head_dim"] = hidden // heads
    return signature


def vocab_digest(path: Path) -> str | None:
    tok = path / "tokenizer.json"
    if not tok.is_file():
        return None
    data = _read_json(tok)
    model = data.get("model") if isinstance(data, dict) else None
    vocab = model.get("vocab") if isinstance(model, dict) else None
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
        config = _read_json(Path(path) / "config.json")
        layers[cid] = int(config.get("text_config", config)["num_hidden_layers"])
    return layers
