"""One process per run folder: an OS file lock on `<run dir>/.lock`, held for the run's life.

The lock is `filelock`'s (`flock` on an open file), so the kernel releases it when the holder exits,
however it exits (a crash or SIGKILL included); the file itself stays and only says who held it
last. Within one process the lock is re-entrant and shared by its threads: the scheduler's job
thread and the loop it calls share the process's hold.

Taking the lock takes the folder: a new or empty folder (or one that holds only its own run file)
becomes a run folder (hubevo's marker is written in it), a run folder stays one, and a folder holding
anything else is refused. A run that fails while its folder holds nothing but what taking it wrote (a
config or preflight refusal) gives the folder back as it found it: no marker, no lock file, and no
folder this call created.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from hubevo.errors import NotARunFolderError, RunLockedError
from hubevo.fsio import (
    LOCK_FILE,
    RUN_MARKER,
    check_run_folder,
    claim_run_folder,
    own_run_files,
    remove_tree,
    write_error,
)


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


def folder_lock(run_dir: Path) -> FileLock:
    """This process's lock of `run_dir` (one object per folder): non-blocking, re-entrant across threads, its file
    kept on release so that it can say who held it last."""
    return FileLock(run_dir / LOCK_FILE, blocking=False, is_singleton=True, thread_local=False,  # mode: the umask's
                    preserve_lock_file=True)


def _acquire(lock: FileLock, run_dir: Path, *, field: str) -> None:
    """Take `lock` for this process: the folder checked before it or its lock file is touched, claimed after."""
    check_run_folder(run_dir, field=field)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise RunLockedError(_busy_message(run_dir, field=field)) from None
    except OSError as err:
        if (mapped := write_error(err, path=run_dir / LOCK_FILE)) is not None:
            raise mapped from err
        raise
    try:
        claim_run_folder(run_dir, field=field)  # again, now that no other hubevo process can write there
        stamp = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        (run_dir / LOCK_FILE).write_text(stamp)
    except BaseException:
        lock.release()
        raise


@contextlib.contextmanager
def run_lock(run_dir: Path, *, field: str = "output.dir") -> Iterator[None]:
    """Hold `run_dir` for this process; a second process gets `RunLockedError` naming the holder, and a folder
    hubevo did not make gets `NotARunFolderError` (`field` names the setting that chose the folder)."""
    run_dir = Path(run_dir).resolve()
    lock = folder_lock(run_dir)
    before = None
    if lock.is_locked:  # this process holds it already: one more level
        lock.acquire()
    else:
        before = _found(run_dir)
        _acquire(lock, run_dir, field=field)
    done = False
    try:
        yield
        done = True
    finally:
        lock.release()  # the last release unlocks
        if not done and before is not None:
            _give_back(run_dir, *before)


def _found(run_dir: Path) -> tuple[Path | None, set[str]] | None:
    """What taking `run_dir` may add to: the topmost folder it creates (None: `run_dir` exists) and the names in
    `run_dir` now; None where that cannot be read."""
    missing = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    try:
        return (missing[-1], set()) if missing else (None, set(os.listdir(run_dir)))
    except OSError:
        return None


def _give_back(run_dir: Path, created: Path | None, names: set[str]) -> None:
    """After a run that failed before writing anything (a refused config, an unknown task or member): remove what
    taking `run_dir` added, its marker, lock file and the folders created for it; a folder the run wrote to stays."""
    try:
        added = set(os.listdir(run_dir)) - names
    except OSError:
        return
    if not added <= {RUN_MARKER, LOCK_FILE}:
        return
    for name in added:
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()
    for folder in (run_dir, *run_dir.parents) if created is not None else ():
        try:
            folder.rmdir()  # only an empty one
        except OSError:
            return
        if folder == created:
            return


def reset_run_folder(run_dir: Path, *, field: str = "output.dir") -> None:
    """Empty `run_dir` for a new run (the demo's, replaced on every demo run) while holding its lock: a folder
    another process holds, one hubevo did not make, or one that holds a run file of the user's, is refused and left
    as it is."""
    kept = own_run_files(run_dir)
    if kept:
        raise NotARunFolderError(f"{field} {str(Path(run_dir))!r} holds {kept[0]!r}, a run file whose output.dir is "
                                 f"that folder; {field} is replaced whole, so it never takes a folder holding a run "
                                 f"file of yours: choose another {field}")
    with run_lock(run_dir, field=field):
        for path in sorted(Path(run_dir).resolve().iterdir()):
            if path.name not in (LOCK_FILE, RUN_MARKER):  # the lock file stays: it is what is held
                remove_tree(path)
