"""Writing files and folders so that a reader (or a resumed run) sees the old version or the new, never half.

Every write-to-temp-then-rename of hubevo goes through here: the run state, the results
table, survivor folders, fine-tuned children and the demo zoo.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        if not replace:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(f"{str(final)!r} already exists")
        shutil.rmtree(final)
    os.replace(tmp, final)
