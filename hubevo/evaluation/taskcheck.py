"""Stage 2's checks of the lm-eval tasks, before any model is loaded: each problem names the task,
the file or the field, and what would fix it.

Local task YAML that cannot be read (`hubevo.files`) or does not parse, data files that are not there,
unreadable, not UTF-8, empty or not in their format, a metric the task does not compute, `lm_eval_kwargs`
that `lm_eval.simple_evaluate` does not take and `hflm_kwargs` that lm-eval's HFLM would not use on a
resident model. `local_task_problems` reads the task YAML files themselves, without lm-eval, so a run's
preflight names a bad task or data file before its folder is locked.
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from hubevo.config import HFLM_LOADING, HFLM_OWN, hflm_key_problem
from hubevo.files import MISSING, Problem, decode, file_problem, folder_problem, message

OWN_KWARGS = ("model", "tasks", "task_manager", "samples", "limit")  # hubevo passes these itself
LOCAL_LOADERS = ("json", "csv", "parquet", "text", "arrow")
CHECKED_LINES = 100_000  # of a JSON Lines file: a cheap check, not a second reader
WHOLE_JSON_BYTES = 64 << 20  # a JSON array file is parsed whole only up to this size


class _AnyTagLoader(yaml.SafeLoader):
    """lm-eval YAML may carry `!function module.fn`: any tag is read as a plain value here."""


_AnyTagLoader.add_multi_constructor("", lambda loader, suffix, node: None)


def yaml_problems(folders: Iterable[Path]) -> list[str]:
    """'file line N: problem' for every task YAML under `folders` that cannot be read or does not parse."""
    problems = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.yaml")):
            text = task_file_text(path)
            if isinstance(text, Problem):
                problems.append(f"{path} {text.text}")
                continue
            try:
                yaml.load(text, Loader=_AnyTagLoader)  # noqa: S506 (a SafeLoader subclass)
            except (yaml.YAMLError, ValueError, RecursionError) as err:
                mark = getattr(err, "problem_mark", None)
                where = f" line {mark.line + 1}" if mark else ""
                problems.append(f"{path}{where}: {' '.join(str(getattr(err, 'problem', None) or err).split())}")
    return problems


def task_file_text(path: Path) -> str | Problem:
    """The text of a task YAML file, read as lm-eval reads it (UTF-8, or UTF-16 or UTF-32 after their byte-order
    mark), or why it cannot be."""
    problem = file_problem(path, text=True, boms=True)
    return problem if problem is not None else decode(Path(path).read_bytes(), boms=True)


def task_folder_problems(folders: Iterable[Path]) -> list[str]:
    """The folders of `fitness.include_path` that exist but cannot be read, and the task YAML files in them that
    cannot be read (lm-eval reads every one of them): one line each, naming the file and the fix."""
    problems = []
    for folder in (Path(f) for f in folders):
        if not folder.is_dir():
            continue  # TaskCatalog.check names a missing one
        if (problem := folder_problem(folder)) is not None:
            problems.append(message(folder, problem, what="task folder", field="fitness.include_path"))
            continue
        for path in sorted(folder.rglob("*.yaml")):
            if isinstance(text := task_file_text(path), Problem):
                problems.append(message(path, text, what="task file", field="fitness.include_path",
                                        fix="fix it, or move it out of the folders of fitness.include_path"))
    return problems


def data_file_problems(name: str, cfg: Mapping, *, source: Path | None = None) -> list[str]:
    """Local data files that a task's YAML (`source`, where known) names but that do not exist, cannot be read, are
    empty or are not in its format."""
    task = f"task {name!r}" + (f" ({str(source)!r})" if source is not None else "")
    loader = cfg.get("dataset_path")
    if loader not in LOCAL_LOADERS:
        return []
    kwargs = cfg.get("dataset_kwargs") or {}
    paths = _data_paths(kwargs.get("data_files") or {}) if isinstance(kwargs, Mapping) else None
    if paths is None:
        return [f"{task}: its dataset_kwargs.data_files must be a path, a list of paths or a mapping of "
                "split names to them; fix the task's YAML"]
    problems = []
    for p in paths:
        if "://" in p or any(c in p for c in "*?["):
            continue
        problem = data_content_problem(Path(p), loader=loader)
        if problem == MISSING:
            problems.append(f"{task}: its data file {p!r} does not exist; fix data_files in the task's YAML "
                            "(relative paths are read from the working folder: prefer absolute ones)")
        elif problem is not None:
            problems.append(f"{task}: its data file {p!r} {problem.text}; "
                            f"{problem.fix or 'fix the file'}, or fix data_files in the task's YAML")
    return problems


def _data_paths(files) -> list[str] | None:
    """The paths `data_files` names (a path, a list of paths, or split name -> either); None if it is none of these."""
    listed = list(files.values()) if isinstance(files, Mapping) else [files]
    paths = [p for value in listed for p in ([value] if isinstance(value, str) else value if isinstance(value, list)
                                             else [None])]
    return paths if all(isinstance(p, str) for p in paths) else None


def local_task_problems(folders: Iterable[Path], names: Iterable[str]) -> list[str]:
    """`data_file_problems` of the tasks among `names` that YAML files under `folders` define (read without
    lm-eval: a file that does not parse is skipped here and named by `yaml_problems` when its task is unknown)."""
    names, problems = set(names), task_folder_problems(folders)
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.yaml")) if folder_problem(folder) is None else []:
            try:
                text = task_file_text(path)
                spec = None if isinstance(text, Problem) else yaml.load(text, Loader=_AnyTagLoader)  # noqa: S506
            except (yaml.YAMLError, ValueError, RecursionError):
                continue
            if isinstance(spec, Mapping) and isinstance(spec.get("task"), str) and spec["task"] in names:
                problems += data_file_problems(spec["task"], spec, source=path)
    return list(dict.fromkeys(problems))


def data_content_problem(path: Path, *, loader: str) -> Problem | None:
    """Why the local file `path` cannot give rows to `datasets`' `loader` (missing, a folder, unreadable, not
    UTF-8, 'is empty', 'line 3 is not JSON ...'), from a cheap read of it; None when it looks readable."""
    path = Path(path)
    text = loader in ("json", "csv", "text")
    if (problem := file_problem(path, text=text, limit=WHOLE_JSON_BYTES)) is not None:
        return problem
    size = path.stat().st_size
    if loader == "parquet":
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(max(size - 4, 0))
            tail = handle.read(4)
        return None if size >= 12 and head == tail == b"PAR1" else Problem("is not a Parquet file (no PAR1 magic "
                                                                            "bytes)")
    if not text:
        return None
    with open(path, encoding="utf-8-sig", errors="replace") as handle:  # past WHOLE_JSON_BYTES: unchecked
        lines = [line for _, line in zip(range(CHECKED_LINES), handle)]
    filled = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if not filled:
        return Problem("is empty: it holds no rows")
    if loader == "csv" and len(filled) < 2:
        return Problem("holds a header line and no rows")
    problem = _json_problem(path, filled, size=size) if loader == "json" else None
    return Problem(problem) if problem else None


def _json_problem(path: Path, filled: list[tuple[int, str]], *, size: int) -> str | None:
    """A JSON array of objects, one JSON object, or JSON Lines (one object per line)."""
    first = filled[0][1].lstrip()[:1]
    if first in "[{" and size <= WHOLE_JSON_BYTES:
        try:
            whole = json.loads(path.read_text(encoding="utf-8-sig"))
        except RecursionError:
            return "nests its JSON too deeply to read"
        except json.JSONDecodeError as err:
            if first == "[":
                return f"is not valid JSON (line {err.lineno}: {err.msg})"
            whole = None
        if isinstance(whole, list):
            if not whole:
                return "holds an empty JSON list: no rows"
            odd = next((i for i, row in enumerate(whole) if not isinstance(row, dict)), None)
            return None if odd is None else f"is a JSON list whose item {odd} is not an object (one object per row)"
        if isinstance(whole, dict) and len(filled) > 1:
            return None  # one JSON object (read with the task's `field`)
    for n, line in filled:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            return f"is not JSON Lines: line {n} is not JSON ({err.msg})"
        except RecursionError:
            return f"is not JSON Lines: line {n} nests its JSON too deeply to read"
        if not isinstance(row, dict):
            return f"is not JSON Lines: line {n} is a JSON {type(row).__name__}, not an object"
    return None


def metric_problem(name: str, metric: str, cfg: Mapping, *, field: str) -> str | None:
    """The task's YAML lists its metrics; a metric it does not compute can never score."""
    listed = [m.get("metric") for m in cfg.get("metric_list") or [] if isinstance(m, Mapping)]
    if listed and metric not in listed:
        return (f"{field}: task {name!r} computes {', '.join(map(str, listed))}, not {metric!r}; "
                f"set metric to one of them")
    return None


def kwargs_problems(kwargs: Mapping) -> list[str]:
    """`fitness.lm_eval_kwargs` keys that `lm_eval.simple_evaluate` does not take, or that hubevo sets."""
    import lm_eval

    accepted = set(inspect.signature(lm_eval.simple_evaluate).parameters) - set(OWN_KWARGS)
    problems = [f"fitness.lm_eval_kwargs.{key}: set by hubevo itself; remove it" for key in kwargs if key in OWN_KWARGS]
    unknown = sorted(set(kwargs) - accepted - set(OWN_KWARGS))
    if unknown:
        problems.append(f"fitness.lm_eval_kwargs {unknown} are not arguments of lm_eval.simple_evaluate; "
                        f"known: {', '.join(sorted(accepted))}")
    return problems


def hflm_kwargs_problems(kwargs: Mapping) -> list[str]:
    """`fitness.hflm_kwargs` keys that HFLM would not use on the resident model.

    HFLM hands keys it does not name to `from_pretrained`, which never runs for a model
    passed in, so a misspelt option would be dropped without a word.
    """
    from lm_eval.models.huggingface import HFLM

    named = inspect.signature(HFLM.__init__).parameters.values()
    accepted = {p.name for p in named if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD}
    accepted -= {"self", *HFLM_OWN, *HFLM_LOADING}
    problems = [problem for key in kwargs if (problem := hflm_key_problem(key))]
    for key in sorted(set(kwargs) - accepted - set(HFLM_OWN) - set(HFLM_LOADING)):
        close = difflib.get_close_matches(key, accepted, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(accepted))}"
        problems.append(f"fitness.hflm_kwargs.{key}: not an argument of lm-eval's HFLM; {hint}")
    return problems
