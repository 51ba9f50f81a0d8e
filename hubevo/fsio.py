"""Writing files and folders so that a reader (or a resumed run) sees the old version or the new, never half,
and removing only what hubevo made.

Every write-to-temp-then-rename of hubevo goes through here: the run state, the results
table, survivor folders, fine-tuned children and the demo zoo. A run folder carries
`RUN_MARKER`, written when hubevo takes the folder; hubevo removes a path only inside a
folder that holds it, and never takes a folder of someone else's. The one file of the user's a run
folder may hold is its own run file (a YAML file whose `output.dir` is that folder): hubevo never
removes or replaces it. What hubevo writes gets the mode a plain `open(path, "w")` or `mkdir` gives (0666 or 0777
less the umask), so that a shared machine's other users read a run as they read any file of its owner's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import yaml

from hubevo.errors import DiskFullError, HubevoError, NotARunFolderError, OutputNotWritableError

RUN_MARKER = ".hubevo-run"
EXPORT_MARKER = ".hubevo-export"  # in a model folder `hubevo export` wrote: the one folder a later export may replace
LOCK_FILE = ".lock"
RUN_FILE_SUFFIXES = (".yaml", ".yml")
WRITTEN_CONFIG = "config.yaml"  # the resolved config hubevo writes into every run folder (never a user's run file)
# Files that make a folder without the marker a run of an earlier hubevo: its state, or a run the
# scheduler queued (run.yaml and control.json) before its first generation.
LEGACY_RUN_FILES = (("state.json",), ("run.yaml", "control.json"))
# `tempfile.mkstemp`'s names as `atomic_write_bytes` made them before they ended in `.tmp`: `.NAME.xxxxxxxx`
LEGACY_TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}$")
TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # what `atomic_write_bytes` writes before its rename
_OS_ERROR = re.compile(r"os error (\d+)")  # how safetensors' Rust I/O errors carry errno ...
_AT_PATH = re.compile(r'at path "([^"]*)"')  # ... and the path


def write_error(err: BaseException, *, path: Path) -> HubevoError | None:
    """hubevo's error for a failed write of `path`: a full disk, or a read-only or forbidden folder; None for
    anything else (a file the write read but may not, too). Reads `OSError`s and safetensors' `SafetensorError`
    (which is no OSError)."""
    code, failed = _os_failure(err)
    path = Path(path)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"no space left on the device while writing {str(path)!r} ({os.strerror(code)}); "
                             "the partial write was removed and nothing else changed: free some space, "
                             "then run again (with --resume)")
    folder = next((p for p in path.parents if p.is_dir()), path.parent)
    if code == errno.EROFS or (code in (errno.EACCES, errno.EPERM) and _within(failed, folder)):
        return OutputNotWritableError(f"cannot write {str(path)!r}: {str(folder)!r} is not writable "
                                      f"({os.strerror(code)}); the partial write was removed: make the folder "
                                      "writable (remount it read-write or fix its permissions), then run again "
                                      "(with --resume)")
    return None


def _os_failure(err: BaseException) -> tuple[int | None, str | None]:
    """(errno, path it failed on) behind `err` or the exceptions it was raised from; (None, None) if none."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno is not None:
            return err.errno, err.filename
        if type(err).__name__ == "SafetensorError" and (found := _OS_ERROR.search(str(err))):
            at = _AT_PATH.search(str(err))
            return int(found.group(1)), at.group(1) if at else None
        err = err.__cause__ or err.__context__
    return None, None


def _within(failed: str | None, folder: Path) -> bool:
    """Whether the path a write failed on lies in `folder` (unknown: assumed so)."""
    if failed is None:
        return True
    failed_path, folder = Path(os.path.abspath(failed)), Path(os.path.abspath(folder))
    return failed_path == folder or folder in failed_path.parents


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _new_temp_file(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if (mapped := write_error(err, path=path)) is not None:
            raise mapped from err
        raise


_TEMP_NAMES, _TEMP_LETTERS = random.SystemRandom(), "abcdefghijklmnopqrstuvwxyz0123456789_"  # as mkstemp's


def _new_temp_file(path: Path) -> tuple[int, str]:
    """(descriptor, name) of a new temporary file beside `path` (`TEMP_FILE`), created as `open(path, "w")` would
    create `path`: mode 0666 less the umask (`tempfile.mkstemp` makes 0600, which the rename would keep)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{''.join(_TEMP_NAMES.choices(_TEMP_LETTERS, k=8))}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path.parent))



def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def temp_sibling(final: Path) -> Path:
    """Where a folder is built before it becomes `final` (a hidden sibling, so listings skip it)."""
    final = Path(final)
    return final.with_name(f".{final.name}.tmp")


def aside_sibling(final: Path) -> Path:
    """Where the old `final` waits while its replacement is renamed in."""
    final = Path(final)
    return final.with_name(f".{final.name}.aside")


@contextlib.contextmanager
def atomic_dir(final: Path, *, replace: bool = True) -> Iterator[Path]:
    """Build a folder in a temporary sibling and rename it to `final` when the block succeeds.

    What a killed process left of an earlier call is settled first (`settle`); on an error the
    temporary folder is removed and `final` is left as it was. With `replace`, an existing
    `final` is moved aside, the new folder renamed in, and the old one deleted: at every instant
    `final` or its aside copy is complete, and `settle` tells which. Without `replace` it is an
    error for `final` to exist.
    """
    final = Path(final)
    tmp = temp_sibling(final)
    settle(final)
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        yield tmp
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if (mapped := write_error(err, path=final)) is not None:
            raise mapped from err
        raise
    plain_modes(tmp)
    if not final.exists():
        os.replace(tmp, final)
        return
    if not replace:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FileExistsError(f"{str(final)!r} already exists")
    aside = aside_sibling(final)
    os.replace(final, aside)  # killed after this: `final` is missing and settle() puts the aside copy back
    os.replace(tmp, final)    # killed after this: settle() deletes the aside copy
    shutil.rmtree(aside)


def plain_modes(root: Path) -> None:
    """Every folder and file under `root` gets the mode `mkdir` and `open` give (0777 and 0666 less the umask):
    libraries that write into a folder hubevo builds may make files 0600 (safetensors' writer) or copy another
    file's mode (mergekit's copy of the tokenizer files). The owner's own bits are never taken away."""
    mask = umask() & 0o077
    for folder, _, names in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in names:
            if not os.path.islink(path := os.path.join(folder, name)):
                os.chmod(path, 0o666 & ~mask)


def umask() -> int:
    """The process's umask: from /proc/self/status where Linux tells it, elsewhere by setting it and back (a file
    another thread creates in between would get 022)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def settle(final: Path) -> None:
    """Finish what a killed `atomic_dir(final)` left: the aside copy goes back when `final` is missing (a
    replacement that never got renamed in) and is deleted otherwise; the temporary folder is deleted."""
    final = Path(final)
    aside = aside_sibling(final)
    if aside.is_dir():
        if final.exists():
            shutil.rmtree(aside)
        else:
            os.replace(aside, final)
    shutil.rmtree(temp_sibling(final), ignore_errors=True)


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
    """Settle what a killed or failed process left under the run folder `root`; returns those leftovers.

    Temporary folders (`.NAME.tmp`) and files (`.NAME.xxxxxxxx.tmp`, and from earlier versions
    `.NAME.xxxxxxxx` beside a `NAME`) are removed; an aside copy (`.NAME.aside`) is put back where `NAME`
    is missing and removed otherwise. Only in a folder hubevo made, and only for the holder of its lock:
    another process's write in progress would go too.
    """
    root = Path(root)
    if not root.is_dir() or owner(root) is None:
        return []
    leftovers = sorted({*(p for p in root.rglob(".*.aside") if p.is_dir()),
                        *(p for p in root.rglob(".*.tmp") if p.is_dir() or TEMP_FILE.match(p.name)),
                        *(p for p in root.rglob(".*") if _legacy_temp_file(p))})
    for path in leftovers:
        if path.is_dir() and path.name.endswith(".aside"):
            settle(path.with_name(path.name[1:-len(".aside")]))
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    return leftovers


def _legacy_temp_file(path: Path) -> bool:
    found = LEGACY_TEMP_FILE.match(path.name)
    return bool(found) and path.is_file() and path.with_name(found.group("name")).exists()


# what hubevo made ---------------------------------------------------------------------------------
def owner(path: Path) -> Path | None:
    """The nearest folder at or above `path` that holds hubevo's marker (None: nothing there is hubevo's)."""
    path = Path(path).absolute()
    return next((p for p in (path, *path.parents) if (p / RUN_MARKER).is_file()), None)


def is_run_folder(folder: Path) -> bool:
    """Whether hubevo made `folder` for a run: its marker, or the files an earlier version left there."""
    folder = Path(folder)
    return (folder / RUN_MARKER).is_file() or any(all((folder / n).is_file() for n in files)
                                                  for files in LEGACY_RUN_FILES)


def check_run_folder(folder: Path, *, field: str = "output.dir", fix: str | None = None) -> None:
    """NotARunFolderError when `folder` holds anything but its own run files (`own_run_files`) and hubevo did not
    make it; `field` is what named it, `fix` what to change instead (default: choose another folder for `field`)."""
    folder = Path(folder)
    if not folder.is_dir() or is_run_folder(folder):
        return
    if names_as_output(folder / WRITTEN_CONFIG, folder=folder):
        raise NotARunFolderError(
            f"{field} {str(folder)!r} holds the run file {WRITTEN_CONFIG!r}, the name of the resolved config hubevo "
            f"writes into every run folder: rename the run file (e.g. run.yaml), or {fix or f'choose another {field}'}")
    kept = {LOCK_FILE, *own_run_files(folder)}
    found = sorted(p.name for p in folder.iterdir() if p.name not in kept)
    if found:
        raise NotARunFolderError(
            f"{field} {str(folder)!r} is not empty ({_some(found)}) and is not a hubevo run folder (no {RUN_MARKER} "
            f"there); hubevo writes and deletes only in folders it made: "
            f"{fix or f'choose a new or empty folder for {field}'}, or move those files away")


def own_run_files(folder: Path) -> list[str]:
    """The user's run files in `folder`: YAML files there whose `output.dir` is `folder` itself (hubevo's own
    `config.yaml` aside). A run folder may hold them beside the run; hubevo never removes or replaces them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.suffix in RUN_FILE_SUFFIXES and p.name != WRITTEN_CONFIG and names_as_output(p, folder=folder))


def names_as_output(path: Path, *, folder: Path) -> bool:
    """Whether the YAML file `path` is a run config whose `output.dir` (relative: to the file's folder, as
    `hubevo evolve` reads it) is `folder`."""
    try:
        data = yaml.safe_load(Path(path).read_text()) if Path(path).is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    out = data.get("output") if isinstance(data, dict) else None
    target = out.get("dir") if isinstance(out, dict) else None
    if not isinstance(target, str) or not target:
        return False
    target = Path(target) if Path(target).is_absolute() else Path(path).resolve().parent / target
    return target.resolve() == Path(folder).resolve()


def _some(names: list[str]) -> str:
    return ", ".join(map(repr, names[:3])) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def claim_run_folder(folder: Path, *, field: str = "output.dir", fix: str | None = None) -> None:
    """Make `folder` (new, empty, or a run folder) hubevo's: create it and write the marker if missing."""
    folder = Path(folder)
    check_run_folder(folder, field=field, fix=fix)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / RUN_MARKER).is_file():
        atomic_write_text(folder / RUN_MARKER, "hubevo made this folder; it deletes and rebuilds paths only in "
                                               "folders that hold this file\n")


def claim_dir(folder: Path) -> None:
    """A scratch folder hubevo fills and later removes (the rebuild cache): created with the marker unless a
    folder above it is hubevo's already; NotARunFolderError if it holds files of someone else's."""
    folder = Path(folder)
    if owner(folder) is not None:
        return
    if folder.is_dir() and any(folder.iterdir()):
        raise NotARunFolderError(f"{str(folder)!r} holds files hubevo did not make (no {RUN_MARKER} in it or above "
                                 "it), and hubevo would fill and later delete this folder: move those files away")
    claim_run_folder(folder)


def check_export_folder(folder: Path, *, field: str = "export folder") -> None:
    """NotARunFolderError unless `folder` is new, empty or a model folder hubevo exported (`EXPORT_MARKER`): an
    export replaces its folder whole, so anything else in it would be lost."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotARunFolderError(f"{field} {str(folder)!r} is a file, not a folder; name a new or empty folder")
    if not folder.is_dir() or (folder / EXPORT_MARKER).is_file():
        return
    found = sorted(p.name for p in folder.iterdir())
    if found:
        raise NotARunFolderError(
            f"{field} {str(folder)!r} is not empty ({_some(found)}) and is not a model folder hubevo exported (no "
            f"{EXPORT_MARKER} there); an export replaces only an earlier export: name a new or empty folder, or "
            "move those files away")


def mark_export(folder: Path) -> None:
    """Mark `folder` as a model folder hubevo exported, so that a later export to it may replace it."""
    atomic_write_text(Path(folder) / EXPORT_MARKER, "hubevo exported this model folder; an export to this folder "
                                                    "replaces it whole\n")


def remove_tree(path: Path) -> None:
    """Remove `path` if it lies in a folder hubevo made (marker at or above it); NotARunFolderError otherwise."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if owner(path) is None:
        raise NotARunFolderError(f"refusing to remove {str(path)!r}: no folder at or above it holds {RUN_MARKER}, "
                                 "so hubevo did not make it; remove it yourself if it is no longer needed")
    inside = own_run_files(path) if path.is_dir() and not path.is_symlink() else []
    kept = [path] if path.name in own_run_files(path.parent) else [path / n for n in inside]
    if kept:
        raise NotARunFolderError(f"refusing to remove {str(path)!r}: {str(kept[0])!r} is a run file of yours (its "
                                 "output.dir is its folder); move it away first if that folder should go")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink()
