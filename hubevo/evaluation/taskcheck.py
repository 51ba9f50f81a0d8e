"""Stage 2's checks of the lm-eval tasks, before any model is loaded: each problem names the task,
the file or the field, and what would fix it.

Local task YAML that does not parse, data files that are not there, empty or not in their
format, a metric the task does not compute, `lm_eval_kwargs` that `lm_eval.simple_evaluate`
does not take and `hflm_kwargs` that lm-eval's HFLM would not use on a resident model. `local_task_problems` reads the task YAML files themselves, without lm-eval, so a
run's preflight names a bad data file before its folder is locked.
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from hubevo.config import HFLM_LOADING, HFLM_OWN, hflm_key_problem

OWN_KWARGS = ("model", "tasks", "task_manager", "samples", "limit")  # hubevo passes these itself
LOCAL_LOADERS = ("json", "csv", "parquet", "text", "arrow")
CHECKED_LINES = 100_000  # of a JSON Lines file: a cheap check, not a second reader
WHOLE_JSON_BYTES = 64 << 20  # a JSON array file is parsed whole only up to this size


class _AnyTagLoader(yaml.SafeLoader):
    """lm-eval YAML may carry `!function module.fn`: any tag is read as a plain value here."""


_AnyTagLoader.add_multi_constructor("", lambda loader, suffix, node: None)


def yaml_problems(folders: Iterable[Path]) -> list[str]:
    """'file line N: problem' for every task YAML under `folders` that does not parse."""
    problems = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.yaml")):
            try:
                yaml.load(path.read_text(), Loader=_AnyTagLoader)  # noqa: S506 (a SafeLoader subclass)
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f" line {mark.line + 1}" if mark else ""
                problems.append(f"{path}{where}: {getattr(err, 'problem', None) or err}")
    return problems


def data_file_problems(name: str, cfg: Mapping) -> list[str]:
    """Local data files that a task's YAML names but that do not exist, are empty or are not in its format."""
    loader = cfg.get("dataset_path")
    if loader not in LOCAL_LOADERS:
        return []
    files = (cfg.get("dataset_kwargs") or {}).get("data_files") or {}
    listed = files.values() if isinstance(files, Mapping) else [files]
    paths = [p for value in listed for p in ([value] if isinstance(value, str) else value or [])]
    problems = []
    for p in paths:
        if "://" in p or any(c in p for c in "*?["):
            continue
        if not Path(p).is_file():
            problems.append(f"task {name!r}: its data file {p!r} does not exist; fix data_files in the task's YAML "
                            "(relative paths are read from the working folder: prefer absolute ones)")
        elif problem := data_content_problem(Path(p), loader=loader):
            problems.append(f"task {name!r}: its data file {p!r} {problem}; fix the file or data_files in the "
                            "task's YAML")
    return problems


def local_task_problems(folders: Iterable[Path], names: Iterable[str]) -> list[str]:
    """`data_file_problems` of the tasks among `names` that YAML files under `folders` define (read without
    lm-eval: a file that does not parse is skipped here and named by `yaml_problems` when its task is unknown)."""
    names, problems = set(names), []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.yaml")) if Path(folder).is_dir() else []:
            try:
                spec = yaml.load(path.read_text(), Loader=_AnyTagLoader)  # noqa: S506 (a SafeLoader subclass)
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            if isinstance(spec, Mapping) and isinstance(spec.get("task"), str) and spec["task"] in names:
                problems += data_file_problems(spec["task"], spec)
    return list(dict.fromkeys(problems))


def data_content_problem(path: Path, *, loader: str) -> str | None:
    """Why the local file `path` cannot give rows to `datasets`' `loader` ('is empty', 'line 3 is not JSON
    ...'), from a cheap read of it; None when it looks readable."""
    path = Path(path)
    size = path.stat().st_size
    if loader == "parquet":
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(max(size - 4, 0))
            tail = handle.read(4)
        return None if size >= 12 and head == tail == b"PAR1" else "is not a Parquet file (no PAR1 magic bytes)"
    if loader not in ("json", "csv", "text"):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line for _, line in zip(range(CHECKED_LINES), handle)]
    except UnicodeDecodeError as err:
        return f"is not UTF-8 text (byte {err.start} of a chunk: {err.reason})"
    filled = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if not filled:
        return "is empty: it holds no rows"
    if loader == "csv" and len(filled) < 2:
        return "holds a header line and no rows"
    return _json_problem(path, filled, size=size) if loader == "json" else None


def _json_problem(path: Path, filled: list[tuple[int, str]], *, size: int) -> str | None:
    """A JSON array of objects, one JSON object, or JSON Lines (one object per line)."""
    first = filled[0][1].lstrip()[:1]
    if first in "[{" and size <= WHOLE_JSON_BYTES:
        try:
            whole = json.loads(path.read_text(encoding="utf-8"))
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
