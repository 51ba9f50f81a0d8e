"""Reading the files a person names: the run file, a member's files, task YAML and data, preference data, a run's
state. The bottom layer, beside `fsio` (which writes).

A path that does not exist, a folder where a file belongs (or a file where a folder belongs), a file this user may
not read, or one that is not UTF-8 text is one line naming the file, the config field that named it and the fix:
raised before any work starts (`read_text`, `read_bytes`, `require_file`, `require_folder`), or returned as that
clause (`file_problem`, `folder_problem`) to checks that name every problem at once.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path
from typing import NamedTuple

from hubevo.errors import ConfigError, HubevoError

UTF8_FIX = "save it as UTF-8"
# UTF-32's little-endian mark starts with UTF-16's, so it is looked for first
BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))
SNIFFED = 4096  # bytes looked at to tell UTF-16 without a byte-order mark, or binary data, from text
BOM_CODECS = {"UTF-32": "utf-32", "UTF-16": "utf-16"}  # what YAML also reads (by the mark), as lm-eval reads tasks


class Problem(NamedTuple):
    """Why a path cannot be read, as the clause after its name ('is a folder, not a file'), and the fix that
    belongs to it (None: the caller's, which names the field to change)."""

    text: str
    fix: str | None = None


MISSING = Problem("does not exist")


def message(path: str | os.PathLike, problem: Problem, *, what: str, field: str | None = None,
            fix: str | None = None) -> str:
    """One line: the field that named the file, what the file is, where it is, what is wrong and how to fix it."""
    remedy = problem.fix or fix
    return (f"{field}: " if field else "") + f"{what} {str(path)!r} {problem.text}" + (f"; {remedy}" if remedy else "")


# problems, as clauses ------------------------------------------------------------------------------
def file_problem(path: str | os.PathLike, *, text: bool = False, limit: int | None = None,
                 boms: bool = False) -> Problem | None:
    """Why `path` cannot be read as a file (with `text`: as UTF-8 text, of which the first `limit` bytes are
    read; `boms` as in `decode`); None when it can."""
    try:
        info = os.stat(path)
    except (OSError, ValueError) as err:  # ValueError: a zero byte in the path
        return _unreachable(path, err)
    if stat.S_ISDIR(info.st_mode):
        return Problem("is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        return Problem("is not a regular file (a device, pipe or socket)")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit if limit is not None else -1) if text else b""
    except OSError as err:
        return _unreadable(path, err)
    decoded = decode(data, cut=limit is not None and len(data) == limit, boms=boms) if text else ""
    return decoded if isinstance(decoded, Problem) else None


def folder_problem(path: str | os.PathLike) -> Problem | None:
    """Why `path` cannot be read as a folder (missing, a file, or not listable by this user); None when it can."""
    try:
        info = os.stat(path)
    except (OSError, ValueError) as err:  # ValueError: a zero byte in the path
        return _unreachable(path, err)
    if not stat.S_ISDIR(info.st_mode):
        return Problem("is a file, not a folder")
    try:
        with os.scandir(path) as entries:
            first = next(entries, None)
        if first is not None:
            first.stat(follow_symlinks=False)  # a folder that may be listed but not entered
    except OSError as err:
        return _unreadable(path, err, folder=True)
    return None


def decode(data: bytes, *, cut: bool = False, boms: bool = False) -> str | Problem:
    """`data` as UTF-8 text (a UTF-8 byte-order mark dropped), or why it is not: UTF-16 or UTF-32, Latin-1,
    binary. With `cut`, `data` is a prefix, and a character it cuts short at its end is no problem. With `boms`,
    text that starts with UTF-16's or UTF-32's byte-order mark is read in that encoding, as YAML allows."""
    named = next((name for bom, name in BOMS if data.startswith(bom)), None) if boms else None
    if named is not None:
        try:
            return data.decode(BOM_CODECS[named])
        except UnicodeDecodeError:
            return Problem(f"starts with {named}'s byte-order mark but is not {named} text", UTF8_FIX)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        if cut and err.end == len(data) and "unexpected end" in err.reason:
            return decode(data[:err.start], boms=boms)
        return encoding_problem(data, at=err.start)
    if "\x00" in text:  # valid UTF-8, yet no text file holds a zero byte: UTF-16 of plain ASCII, or binary data
        return encoding_problem(data, at=data.index(0))
    return text


def encoding_problem(data: bytes, *, at: int) -> Problem:
    """Why `data`, which is not UTF-8 text from byte `at` on, is not: the encoding it is in, where that can be told."""
    for bom, name in BOMS:
        if data.startswith(bom):
            return Problem(f"is {name} text (it starts with {name}'s byte-order mark), not UTF-8", UTF8_FIX)
    head = data[:SNIFFED]
    zeros = [i for i, byte in enumerate(head) if byte == 0]
    if zeros and len(zeros) * 3 >= len(head) and len({i % 2 for i in zeros}) == 1:
        return Problem("is UTF-16 text (a zero byte beside every letter), not UTF-8", UTF8_FIX)
    if zeros:
        return Problem("is binary data, not text")
    line, byte = data.count(b"\n", 0, at) + 1, data[at]
    latin = bytes([byte]).decode("cp1252", errors="replace")  # Windows-1252: Latin-1 with letters in 0x80-0x9F
    if latin.isprintable() and latin != "\ufffd":
        return Problem(f"is not UTF-8: line {line} holds the byte 0x{byte:02X}, which is {latin!r} in Latin-1 "
                       "(ISO-8859-1 or Windows-1252), so the file was saved as Latin-1", UTF8_FIX)
    return Problem(f"is not UTF-8 text: line {line} holds the byte 0x{byte:02X}, which UTF-8 does not allow there",
                   UTF8_FIX)


def _unreachable(path, err: OSError | ValueError) -> Problem:
    """The problem of a path that cannot even be looked at (`os.stat` failed)."""
    if isinstance(err, ValueError):  # what the operating system cannot take as a path
        return Problem(f"is not a usable path ({err})")
    if isinstance(err, NotADirectoryError):
        above = next((p for p in Path(path).parents if p.exists() and not p.is_dir()), None)
        return Problem(f"cannot exist: {str(above)!r} is a file, not a folder" if above else
                       "cannot exist: a folder on its path is a file")
    if isinstance(err, FileNotFoundError):
        return MISSING
    if isinstance(err, PermissionError):
        return Problem("cannot be reached: a folder on its path may not be entered by this user (permission denied)",
                       "give this user access to that folder (chmod a+rx), or move the file")
    return Problem(f"cannot be looked at ({err.strerror or err})")


def _unreadable(path, err: OSError, *, folder: bool = False) -> Problem:
    """The problem of a path that exists but cannot be read (opening or listing it failed)."""
    if isinstance(err, PermissionError):
        mode = "a+rx" if folder else "a+r"
        return Problem("cannot be read by this user (permission denied)",
                       f"make it readable (chmod {mode} {str(path)!r}) or run as a user who may read it")
    if isinstance(err, IsADirectoryError):
        return Problem("is a folder, not a file")
    return Problem(f"cannot be read ({err.strerror or err})")


# readers that raise --------------------------------------------------------------------------------
def read_bytes(path: str | os.PathLike, *, what: str, field: str | None = None, fix: str | None = None,
               error: type[HubevoError] = ConfigError) -> bytes:
    """The bytes of the file at `path`; `error` (one line: `message`) when it is missing, a folder or unreadable."""
    require_file(path, what=what, field=field, fix=fix, error=error)
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise error(message(path, _unreadable(path, err), what=what, field=field, fix=fix)) from None


def read_text(path: str | os.PathLike, *, what: str, field: str | None = None, fix: str | None = None,
              error: type[HubevoError] = ConfigError, boms: bool = False) -> str:
    """The UTF-8 text of the file at `path` (`boms` as in `decode`); `error` (one line: `message`) when it cannot
    be read or is not UTF-8 (naming the encoding it is in, where that can be told)."""
    text = decode(read_bytes(path, what=what, field=field, fix=fix, error=error), boms=boms)
    if isinstance(text, Problem):
        raise error(message(path, text, what=what, field=field, fix=fix))
    return text


def require_file(path: str | os.PathLike, *, what: str, field: str | None = None, fix: str | None = None,
                 error: type[HubevoError] = ConfigError) -> Path:
    """`path`, once it is known to be a file this user may read; `error` (one line) otherwise."""
    if (problem := file_problem(path)) is not None:
        raise error(message(path, problem, what=what, field=field, fix=fix))
    return Path(path)


def require_folder(path: str | os.PathLike, *, what: str, field: str | None = None, fix: str | None = None,
                   error: type[HubevoError] = ConfigError) -> Path:
    """`path`, once it is known to be a folder this user may list and enter; `error` (one line) otherwise."""
    if (problem := folder_problem(path)) is not None:
        raise error(message(path, problem, what=what, field=field, fix=fix))
    return Path(path)
