"""Writing files and folders so that a reader (or a resumed run) sees the old version or the new, never half.

Every write-to-temp-then-rename of hubevo goes through here: the run state, the results
table, survivor folders, fine-tuned children and the demo zoo.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hubevo.errors import DiskFullError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def temp_sibling(final: Path) -> Path:
    """Where a folder is built before it becomes `final` (a hidden sibling, so listings skip it)."""
    final = Path(final)
    return final.with_name(f".{final.name}.tmp")


@contextlib.contextmanager
def atomic_dir(final: Path, *, replace: bool = True) -> Iterator[Path]:
    """Build a folder in a temporary sibling and rename it to `final` when the block succeeds.

    A stale temporary folder from a killed process is removed first; on an error the
    temporary folder is removed and `final` is left as it was. With `replace`, an existing
    `final` is replaced; otherwise it is an error for it to exist.
    """
    final = Path(final)
    tmp = temp_sibling(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.mkdir()
        yield tmp
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"no space left on the device while writing {str(final)!r} ({err.strerror}); "
                                "the partial folder was removed and nothing else changed: free some space, "
                                "then run again (with --resume)") from err
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        if not replace:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(f"{str(final)!r} already exists")
        shutil.rmtree(final)
    os.replace(tmp, final)


WEIGHTS_INDEX = "model.safetensors.index.json"


def has_weights(folder: Path) -> bool:
    """Whether `folder` is a complete model folder: a config and safetensors weights (not a card-only folder);
    a sharded folder needs every shard its index names."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        return False
    index = folder / WEIGHTS_INDEX
    if index.is_file():
        shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        return bool(shards) and all((folder / s).is_file() for s in shards)
    return any(folder.glob("*.safetensors"))


def clean_temp_dirs(root: Path) -> list[Path]:
    """Remove the temporary folders (`.NAME.tmp`) a killed or failed process left under `root`; returns them.

    Only for the holder of the run folder's lock: another process's folder in progress would go too.
    """
    stale = sorted(p for p in Path(root).rglob(".*.tmp") if p.is_dir()) if Path(root).is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale
