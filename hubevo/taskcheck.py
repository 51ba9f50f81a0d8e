"""Stage 2's checks of the lm-eval tasks, before any model is loaded: each problem names the task,
the file or the field, and what would fix it.

Local task YAML that does not parse, data files that are not there, a metric the task does
not compute, and `lm_eval_kwargs` that `lm_eval.simple_evaluate` does not take.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

OWN_KWARGS = ("model", "tasks", "task_manager", "samples", "limit")  # hubevo passes these itself
LOCAL_LOADERS = ("json", "csv", "parquet", "text", "arrow")


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
    """Local data files that a task's YAML names but that do not exist."""
    if cfg.get("dataset_path") not in LOCAL_LOADERS:
        return []
    files = (cfg.get("dataset_kwargs") or {}).get("data_files") or {}
    listed = files.values() if isinstance(files, Mapping) else [files]
    paths = [p for value in listed for p in ([value] if isinstance(value, str) else value or [])]
    return [f"task {name!r}: its data file {p!r} does not exist; fix data_files in the task's YAML "
            "(relative paths are read from the working folder: prefer absolute ones)"
            for p in paths if "://" not in p and not any(c in p for c in "*?[") and not Path(p).is_file()]


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
