"""Stage 1, seed: every member complete (a tokenizer beside its config and weights) and every one distinct.

A member without tokenizer files cannot be scored or published; the same model listed twice (the same folder, a
link to it, or a copy with the same weights) only makes merges of a model with itself, and a base model that is
also a member makes the task-vector methods subtract it from itself. Each is one `ConfigError` naming the fields
and the fix, before any merge. Copies are found cheaply: a fingerprint of each member's weight files (names, sizes
and evenly spaced blocks) first, then the whole files' sha256, streamed once, only where two fingerprints agree.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hubevo.errors import ConfigError, MemberNotFoundError
from hubevo.seed.members import ResolvedMember

# a tokenizer transformers can load offline: its fast file, a sentencepiece model, a BPE or WordPiece vocabulary
TOKENIZERS = (("tokenizer.json",), ("tokenizer.model",), ("vocab.json", "merges.txt"), ("vocab.txt",), ("*.tiktoken",))
BASE_FIELD = "population.base_model"
BLOCKS, BLOCK = 64, 4096  # the fingerprint reads 64 blocks of 4 KiB of each weights file
CHUNK = 1 << 20  # bytes per read of the full sha256


def check_tokenizer(member: ResolvedMember, *, field: str) -> None:
    """MemberNotFoundError naming `member` when its folder holds no tokenizer files."""
    if any(all(next(member.path.glob(name), None) for name in files) for files in TOKENIZERS):
        return
    wanted = ", ".join(" + ".join(files) for files in TOKENIZERS)
    raise MemberNotFoundError(
        f"{field}: population member {member.label!r} ({member.source}) has config.json and weights but no "
        f"tokenizer (none of {wanted}); copy the tokenizer files of the model it was trained from into "
        f"{str(member.path)!r}, or re-download it")


def check_distinct_folders(seeds: list[tuple[str, ResolvedMember]]) -> None:
    """ConfigError when two of `seeds` (config field, member) are the same folder (through a link too)."""
    folders: dict[Path, tuple[str, ResolvedMember]] = {}
    for seed in seeds:
        folder = seed[1].path.resolve()
        if folder in folders:
            raise ConfigError(_one_model(folders[folder], seed, why=f"both are the folder {str(folder)!r}"))
        folders[folder] = seed


def check_distinct_weights(seeds: list[tuple[str, ResolvedMember]]) -> None:
    """ConfigError when two of `seeds` (config field, member) hold weight files with the same sha256."""
    prints: dict[str, list[tuple[str, ResolvedMember]]] = {}
    for seed in seeds:
        prints.setdefault(weights_fingerprint(seed[1].path), []).append(seed)
    for alike in (group for group in prints.values() if len(group) > 1):
        digests: dict[str, tuple[str, ResolvedMember]] = {}
        for seed in alike:
            digest = weights_sha256(seed[1].path)
            if digest in digests:
                raise ConfigError(_one_model(digests[digest], seed, why=f"their weights are identical (sha256 "
                                                                        f"{digest[:12]}...)"))
            digests[digest] = seed


def _one_model(first: tuple[str, ResolvedMember], second: tuple[str, ResolvedMember], *, why: str) -> str:
    (field, member), (other_field, other) = sorted((first, second), key=lambda seed: seed[0] == BASE_FIELD)
    if other_field == BASE_FIELD:
        return (f"{BASE_FIELD} {other.label!r} is also {field} ({member.label!r}): {why}; the base model is the "
                "shared ancestor the members are merged against, not one of them: remove it from "
                "population.members or set another population.base_model")
    return (f"{field} ({member.label!r}) and {other_field} ({other.label!r}) are the same model: {why}; "
            "remove one of them")


def weight_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def weights_fingerprint(folder: Path) -> str:
    """A cheap digest of a member's weights: each file's name and size and `BLOCKS` evenly spaced blocks of it
    (the header among them). Equal for copies; different models differ in almost every block."""
    digest = hashlib.sha256()
    for file in weight_files(folder):
        size = file.stat().st_size
        digest.update(f"{file.name}:{size};".encode())
        with open(file, "rb") as handle:
            for offset in sorted({i * max(size - BLOCK, 0) // (BLOCKS - 1) for i in range(BLOCKS)}):
                handle.seek(offset)
                digest.update(handle.read(BLOCK))
    return digest.hexdigest()


def weights_sha256(folder: Path) -> str:
    """sha256 over a member's weight files (name, then content, in name order), streamed once."""
    digest = hashlib.sha256()
    for file in weight_files(folder):
        digest.update(f"{file.name};".encode())
        with open(file, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()
