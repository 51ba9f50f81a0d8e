"""`hubevo zoo DIR`: the demo zoo written into a folder of the user's, where run files name it by a relative path.

A built zoo lives in the user's cache under a content-hashed name (`hubevo.demo.zoo`), which no run file
can name in advance. `write_zoo` builds (or reuses) it and writes a copy into DIR: `base/`, `digits/`,
`letters/` (the members, under a megabyte each) and `tasks/` (the lm-eval tasks, rendered for DIR), so
`examples/*.yaml` and `hubevo config --example` name `./zoo/digits` and `./zoo/tasks` and run as they are.
DIR is replaced whole only when it holds another zoo (its `zoo.json` names another build); a folder of
anything else is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hubevo.demo.zoo import MARKER, Zoo, build_zoo, render_tasks
from hubevo.errors import ConfigError
from hubevo.fsio import atomic_dir


def write_zoo(dest: Path, *, recipe: str = "fast", cache_dir: Path | None = None, seed: int = 0,
              progress: bool = True) -> Zoo:
    """The `recipe` zoo copied into `dest` (built into the cache first unless it is there), tasks rendered for
    `dest`; a `dest` that already holds this build only has its tasks rendered again."""
    dest = Path(dest).absolute()
    zoo = build_zoo(cache_dir, seed=seed, progress=progress, recipe=recipe)
    marker = (zoo.root / MARKER).read_text()
    if _marker(dest) != marker:
        _refuse_foreign(dest)
        with atomic_dir(dest) as staging:
            for member in ["base", *zoo.specialists]:
                shutil.copytree(zoo.root / member, staging / member)
            (staging / MARKER).write_text(marker)
    render_tasks(dest / "tasks")  # data paths absolute, for this folder (a moved folder is rendered again)
    return zoo.model_copy(update={"root": dest, "base": dest / "base", "tasks_dir": dest / "tasks",
                                  "specialists": {skill: dest / skill for skill in zoo.specialists}})


def _marker(folder: Path) -> str | None:
    try:
        return (folder / MARKER).read_text()
    except OSError:
        return None


def _refuse_foreign(dest: Path) -> None:
    """A non-empty folder that is not a zoo (no readable zoo.json) is the user's: never replaced."""
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        return
    try:
        json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        raise ConfigError(f"{str(dest)!r} exists and is not a demo zoo folder (no {MARKER}); "
                          "name a new or empty folder for the zoo") from None
