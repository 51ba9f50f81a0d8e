"""Every path of the run file read one way: `~` and environment variables expanded, relative to the file's folder.

`local_path` is the one function each path field goes through (population members and base model, output.dir,
fitness.include_path, mutation.finetune.datasets); `member_source` decides whether a bare member string is a
folder or a Hub repo id, by the same rule everywhere: an existing folder wins, else a well-formed `org/name`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hubevo.errors import ConfigError

ENV_VAR = re.compile(r"\$(?:(\w+)|\{([^}]*)\})")
PATH_MARKS = (".", "/", "~")  # a string starting with one of these, or holding a `$`, is a path, never a repo id


def expanded(text: str | Path, *, field: str, expand_vars: bool = True) -> Path:
    """`text` with `$VAR`, `${VAR}` and `~` expanded; an unset variable is a ConfigError naming `field`. Without
    `expand_vars` (a run file from someone else: the Space's uploads) a variable is refused, so that no value of
    this machine's environment can reach a message."""
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if not expand_vars:
            raise ConfigError(f"{field}: {str(text)!r} names the environment variable ${name}, which is not "
                              "expanded here; write the path out")
        if name not in os.environ:
            raise ConfigError(f"{field}: {str(text)!r} uses ${name}, which is not set in the environment; "
                              f"set it (export {name}=...) or write the path out")
        return os.environ[name]

    try:
        return Path(ENV_VAR.sub(value, str(text))).expanduser()
    except RuntimeError:  # no home folder to expand `~` to
        raise ConfigError(f"{field}: {str(text)!r} starts with ~ but this user has no home folder (HOME is not "
                          "set); write the path out") from None


def local_path(text: str | Path, *, root: Path, field: str, expand_vars: bool = True) -> Path:
    """`text` expanded (`expanded`), and read relative to `root` (the run file's folder) when relative."""
    path = expanded(text, field=field, expand_vars=expand_vars)
    return path if path.is_absolute() else (root / path).resolve()


def looks_like_path(text: str) -> bool:
    """Written as a path: `./x`, `../x`, `/x`, `~/x`, or with a `$VAR` (none of which a Hub repo id can be)."""
    return text.startswith(PATH_MARKS) or "$" in text


def refers_to_disk(text: str, *, root: Path) -> bool:
    """Whether a bare string names something on disk: written as a path, or existing relative to `root`."""
    return looks_like_path(text) or (root / text).exists()
