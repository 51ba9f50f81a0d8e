"""Stage 1, seed: a member's weights checked before any merge reads them.

Each safetensors header is read (a truncated or garbage file fails here), an embedding whose shape
contradicts `config.json` is refused, and a sample of every float tensor is scanned for NaN or Inf
(a diverged checkpoint), naming the member and the tensor.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hubevo.errors import CompatibilityError, MemberNotFoundError
from hubevo.files import require_file
from hubevo.seed.members import ResolvedMember, arch_signature

# safetensors float dtype -> (unsigned view, exponent mask): a value is NaN or Inf when its exponent is all ones
FLOAT_BITS = {"F64": (np.uint64, 0x7FF0000000000000), "F32": (np.uint32, 0x7F800000),
              "F16": (np.uint16, 0x7C00), "BF16": (np.uint16, 0x7F80)}
SCAN_WHOLE, SCAN_BLOCKS, SCAN_BLOCK = 1 << 20, 64, 4096  # elements: tensors up to SCAN_WHOLE are read whole


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
    require_file(file, what="weights file", field="population.members", error=MemberNotFoundError)
    size = file.stat().st_size
    bad = f"{str(file)!r} is not a complete safetensors file"
    fix = "re-download or re-save the member"
    try:
        with open(file, "rb") as handle:
            head = handle.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            text = handle.read(length) if 0 < length and 8 + length <= size else None
    except OSError as err:
        raise MemberNotFoundError(f"weights file {str(file)!r} cannot be read ({err.strerror or err}); {fix}") from None
    if text is None:
        raise MemberNotFoundError(f"{bad} (header says {length} bytes, file has {size}); {fix}")
    try:
        header = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise MemberNotFoundError(f"{bad} (its header is not JSON); {fix}") from None
    if not isinstance(header, dict):
        raise MemberNotFoundError(f"{bad} (its header is not a JSON object); {fix}")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    odd = next((k for k, v in tensors.items() if not _tensor_entry(v)), None)
    if odd is not None:
        raise MemberNotFoundError(f"{bad} (its header's entry for {odd[:100]!r} is not a tensor: dtype, shape and "
                                  f"data_offsets); {fix}")
    end = max((v["data_offsets"][1] for v in tensors.values()), default=0)
    if 8 + length + end > size:
        raise MemberNotFoundError(f"{bad}: truncated ({size} bytes of {8 + length + end}); {fix}")
    return 8 + length, tensors


def _tensor_entry(entry) -> bool:
    """Whether a safetensors header entry reads as a tensor: a dtype name, a shape of sizes, two data offsets."""
    if not isinstance(entry, dict):
        return False
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    sizes = isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)
    span = isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int and n >= 0 for n in offsets)
    return isinstance(dtype, str) and sizes and span and offsets[0] <= offsets[1]
