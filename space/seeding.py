"""The seeding form -> a validated run config, before anything is queued.

Checked here, with every problem reported at once: repo id syntax (web seeding takes Hub
repos only, never server paths), a Hub query's fields, merge methods against mergekit's
registry (and whether they need a base model), fitness and held-out tasks (the deployment's
local task folders first, lm-eval's registry only for other names), the budget against the
deployment's caps, and the publish namespace. The result is `RunConfig.model_dump` of a
config that `hubevo.config` accepts, with its output folder under the runs root.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import ValidationError

from hubevo.config import REPO_ID, HubQuery, RunConfig, format_validation_error
from hubevo.errors import ConfigError, UnknownNameError
from hubevo.methods import get_method, method_table

RUN_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,63}$")
NAMESPACE = re.compile(r"^[A-Za-z0-9][\w.-]*$")
PUSH_MODES = ("none", "champion", "survivors")
TASK_LINE = re.compile(r"^(?:task|group|tag):[ \t]*['\"]?([\w.\-]+)", flags=re.MULTILINE)


class SeedError(ConfigError):
    """The form has problems; the message lists each one, naming the field and the value."""


@dataclass(frozen=True)
class BudgetCaps:
    """The most one web-seeded run may ask for; every queued run gets a hard evaluation and time cap."""

    generations: int = 20
    population_size: int = 16
    max_evaluations: int = 200
    wall_time_s: float = 6 * 3600
    candidates: int = 16
    limit: int = 1000


@dataclass(frozen=True)
class SeedForm:
    """What the seeding page collects (texts as typed; lists are comma or newline separated)."""

    name: str
    candidates: str = ""
    base_model: str = ""
    query_author: str = ""
    query_search: str = ""
    query_filter: str = ""
    query_limit: int = 8
    methods: Sequence[str] = ()
    tasks: str = ""
    heldout: str = ""
    limit: int | None = None
    generations: int = 3
    population_size: int = 6
    max_evaluations: int | None = None
    wall_time_s: float | None = None
    namespace: str = ""
    push: str = "none"
    private: bool = True


def split_list(text: str | None) -> list[str]:
    return [part.strip() for part in re.split(r"[\n,]+", text or "") if part.strip()]


# tasks -------------------------------------------------------------------------------------------------
def local_task_names(folders: Iterable[Path]) -> set[str]:
    """Task, group and tag names declared by the lm-eval YAML files under `folders` (read as text)."""
    names: set[str] = set()
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.y*ml")):
            names.update(TASK_LINE.findall(path.read_text(errors="replace")))
    return names


@cache
def lm_eval_task_names(folders: tuple[str, ...] = ()) -> frozenset[str]:
    """Every name lm-eval knows (its registry plus `folders`); indexing takes seconds, so it is cached."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=list(folders) or None, verbosity="ERROR")
    return frozenset(manager.all_tasks) | frozenset(manager.all_groups) | frozenset(manager.all_tags)


@dataclass(frozen=True)
class TaskCatalog:
    """Which task names a seeded run may use: the local folders' names, then (optionally) lm-eval's."""

    folders: tuple[Path, ...] = ()
    registry: Callable[[tuple[str, ...]], frozenset[str]] | None = lm_eval_task_names

    def unknown(self, names: Iterable[str]) -> list[str]:
        """A message for every name that is not a known task, with close matches."""
        names = list(dict.fromkeys(names))
        local = local_task_names(self.folders)
        rest = [n for n in names if n not in local]
        known = local | (self.registry(tuple(str(f) for f in self.folders)) if rest and self.registry else set())
        return [_unknown_task(n, known) for n in rest if n not in known]


def _unknown_task(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"task {name!r} is unknown{hint}"


# the form ----------------------------------------------------------------------------------------------
def build_run_config(
    form: SeedForm, *, runs_root: Path, tasks: TaskCatalog, caps: BudgetCaps = BudgetCaps(),
    taken: Iterable[str] = (),
) -> dict:
    """The run config dict for `form`; SeedError listing every problem if it cannot be queued."""
    problems = [
        *check_name(form.name, taken=set(taken), runs_root=runs_root),
        *check_population(form, caps=caps),
        *check_methods(form),
        *check_tasks(form, tasks=tasks),
        *check_budget(form, caps=caps),
        *check_publish(form),
    ]
    if problems:
        raise SeedError("cannot queue this run:\n" + "\n".join(f"- {p}" for p in problems))
    data = config_data(form, runs_root=runs_root, tasks=tasks, caps=caps)
    try:
        return RunConfig.model_validate(data).model_dump(mode="json")
    except ValidationError as err:
        raise SeedError(format_validation_error(err, source="from the seeding form")) from None


def check_name(name: str, *, taken: set[str], runs_root: Path) -> list[str]:
    if not RUN_NAME.match(name or ""):
        return [f"run name {name!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"]
    if name in taken or (Path(runs_root) / name).exists():
        return [f"a run named {name!r} already exists; choose another name"]
    return []


def check_population(form: SeedForm, *, caps: BudgetCaps) -> list[str]:
    members = split_list(form.candidates)
    problems = [f"candidate {m!r} is not a Hub repo id; expected 'org/name' or 'org/name@revision'"
                for m in members if not REPO_ID.match(m)]
    if form.base_model.strip() and not REPO_ID.match(form.base_model.strip()):
        problems.append(f"base model {form.base_model.strip()!r} is not a Hub repo id")
    query = hub_query(form)
    if not members and query is None:
        problems.append("give candidate repo ids, a Hub query (author, search or tags), or both")
    if len(members) + (query.limit if query else 0) > caps.candidates:
        problems.append(f"{len(members)} candidates plus a query limit of {query.limit if query else 0} exceed "
                        f"the cap of {caps.candidates} candidates")
    return problems


def hub_query(form: SeedForm) -> HubQuery | None:
    author, search, tags = form.query_author.strip(), form.query_search.strip(), split_list(form.query_filter)
    if not (author or search or tags):
        return None
    return HubQuery.model_construct(author=author or None, search=search or None, filter=tags,
                                    sort="downloads", limit=int(form.query_limit))


def check_methods(form: SeedForm) -> list[str]:
    if not form.methods:
        return [f"choose at least one merge method ({', '.join(sorted(method_table()))})"]
    problems = []
    for name in form.methods:
        try:
            get_method(name)
        except UnknownNameError as err:
            problems.append(str(err))
    needing = [m for m in form.methods if m in method_table() and method_table()[m].needs_base]
    if needing and not form.base_model.strip():
        problems.append(f"methods {', '.join(needing)} need a base model; give one or drop them")
    return problems


def check_tasks(form: SeedForm, *, tasks: TaskCatalog) -> list[str]:
    fitness, heldout = split_list(form.tasks), split_list(form.heldout)
    problems = [] if fitness else ["give at least one fitness task"]
    return problems + tasks.unknown([*fitness, *heldout])


def check_budget(form: SeedForm, *, caps: BudgetCaps) -> list[str]:
    limits = [
        ("generations", form.generations, 1, caps.generations),
        ("population size", form.population_size, 2, caps.population_size),
        ("max evaluations", form.max_evaluations, 1, caps.max_evaluations),
        ("wall time (s)", form.wall_time_s, 1, caps.wall_time_s),
        ("examples per task", form.limit, 1, caps.limit),
    ]
    problems = []
    for label, value, low, high in limits:
        if value is not None and not low <= value <= high:
            problems.append(f"{label} {value:g} is outside {low:g}..{high:g}")
    if form.query_limit is not None and not 1 <= form.query_limit <= caps.candidates:
        problems.append(f"query limit {form.query_limit} is outside 1..{caps.candidates}")
    return problems


def check_publish(form: SeedForm) -> list[str]:
    namespace = form.namespace.strip()
    if form.push not in PUSH_MODES:
        return [f"publish mode {form.push!r} is not one of {', '.join(PUSH_MODES)}"]
    if namespace and not NAMESPACE.match(namespace):
        return [f"publish namespace {namespace!r} is not a Hub user or organisation name"]
    if form.push != "none" and not namespace:
        return [f"publishing {form.push} needs a namespace (a user or organisation you can write to)"]
    return []


def config_data(form: SeedForm, *, runs_root: Path, tasks: TaskCatalog, caps: BudgetCaps) -> dict:
    """The run config as YAML would hold it; the caps fill any open evaluation or time budget."""
    query = hub_query(form)
    population: dict = {"members": split_list(form.candidates)}
    if query is not None:
        population["query"] = query.model_dump(exclude_none=True)
    if form.base_model.strip():
        population["base_model"] = form.base_model.strip()
    fitness: dict = {"tasks": split_list(form.tasks), "heldout": split_list(form.heldout),
                     "include_path": [str(f) for f in tasks.folders]}
    if form.limit:
        fitness["limit"] = int(form.limit)
    return {
        "name": form.name,
        "population": population,
        "fitness": fitness,
        "crossover": {"methods": list(form.methods)},
        "budget": {
            "generations": int(form.generations), "population_size": int(form.population_size),
            "max_evaluations": int(form.max_evaluations or caps.max_evaluations),
            "wall_time_s": float(form.wall_time_s or caps.wall_time_s),
        },
        "output": {"dir": str(Path(runs_root).resolve() / form.name)},
        "publish": {"namespace": form.namespace.strip() or None, "push": form.push, "private": bool(form.private)},
    }
