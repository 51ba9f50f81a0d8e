"""One process per run folder: an OS file lock on `<run dir>/.lock`, held for the run's life.

The lock is `flock` on an open file, so the kernel releases it when the holder exits,
however it exits (a crash or SIGKILL included); the file itself stays and only says who
held it last. Within one process the lock is re-entrant: the scheduler's job thread and
the loop it calls share the process's hold.

Taking the lock takes the folder: a new or empty folder becomes a run folder (hubevo's marker is
written in it), a run folder stays one, and a folder holding anything else is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from hubevo.errors import RunLockedError
from hubevo.fsio import LOCK_FILE, RUN_MARKER, check_run_folder, claim_run_folder, remove_tree, write_error

_HELD: dict[str, list] = {}  # resolved run dir -> [fd, depth]
_GUARD = threading.Lock()


def holder(run_dir: Path) -> dict:
    """Who holds (or last held) the lock of `run_dir`: pid, host, since; {} when unknown."""
    try:
        return json.loads((Path(run_dir) / LOCK_FILE).read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return {}


def _busy_message(run_dir: Path, *, field: str) -> str:
    who = holder(run_dir)
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(who["since"])) if "since" in who else "?"
    return (f"run folder {str(run_dir)!r} is in use by process {who.get('pid', '?')} on host "
            f"{who.get('host', '?')!r} (since {since}); wait for it to finish, stop that process, "
            f"or choose another {field}")


def _acquire(run_dir: Path, *, field: str) -> int:
    check_run_folder(run_dir, field=field)  # before the folder or its lock file is touched
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        if (mapped := write_error(err, path=run_dir / LOCK_FILE)) is not None:
            raise mapped from err
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunLockedError(_busy_message(run_dir, field=field)) from None
    try:
        claim_run_folder(run_dir, field=field)  # again, now that no other hubevo process can write there
        stamp = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, stamp.encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def run_lock(run_dir: Path, *, field: str = "output.dir") -> Iterator[None]:
    """Hold `run_dir` for this process; a second process gets `RunLockedError` naming the holder, and a folder
    hubevo did not make gets `NotARunFolderError` (`field` names the setting that chose the folder)."""
    key = str(Path(run_dir).resolve())
    with _GUARD:
        if key in _HELD:
            _HELD[key][1] += 1
        else:
            _HELD[key] = [_acquire(Path(key), field=field), 1]
    try:
        yield
    finally:
        with _GUARD:
            _HELD[key][1] -= 1
            if _HELD[key][1] == 0:
                os.close(_HELD.pop(key)[0])  # closing the descriptor releases the flock


def reset_run_folder(run_dir: Path, *, field: str = "output.dir") -> None:
    """Empty `run_dir` for a new run (the demo's, replaced on every demo run) while holding its lock: a folder
    another process holds, or one hubevo did not make, is refused and left as it is."""
    with run_lock(run_dir, field=field):
        for path in sorted(Path(run_dir).resolve().iterdir()):
            if path.name not in (LOCK_FILE, RUN_MARKER):  # the lock file stays: it is what is held
                remove_tree(path)
