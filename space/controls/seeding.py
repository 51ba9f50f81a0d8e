"""The seeding form -> a validated run config, before anything is queued.

Checked here, with every problem reported at once: repo id syntax (web seeding takes Hub
repos, and local folders only under the root a self-hosting admin allows with
`HUBEVO_SPACE_LOCAL_ROOT`), a Hub query's fields, merge methods against mergekit's
registry (and whether they need a base model), fitness and held-out tasks (the deployment's
local task folders first, lm-eval's registry only for other names), the budget against the
deployment's caps, and the publish namespace. The result is `RunConfig.model_dump` of a
config that `hubevo.config` accepts, with its output folder under the runs root.
`config_from_yaml` takes an uploaded run YAML instead of the form, parsed by
`hubevo.config.parse_config` and held to the same caps, names and local root. `seed_form` is the one
place that reads the page's fields, by name, into a `SeedForm`. An unknown merge method or task is named
as everywhere in hubevo (`hubevo.registry.unknown_name`), with its close matches.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from hubevo.config import REPO_ID, HubQuery, RunConfig, format_validation_error, parse_config
from hubevo.config.methods import method_table
from hubevo.errors import ConfigError
from hubevo.registry import unknown_name

RUN_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,63}$")
NAMESPACE = re.compile(r"^[A-Za-z0-9][\w.-]*$")
PUSH_MODES = ("none", "champion", "survivors")
LOCAL_ROOT_VARIABLE = "HUBEVO_SPACE_LOCAL_ROOT"
TASK_LINE = re.compile(r"^(?:task|group|tag):[ \t]*['\"]?([\w.\-]+)", flags=re.MULTILINE)
# the page's number fields: name -> the label a problem names it by (the wall time is in hours there)
WHOLE_FIELDS = {"query_limit": "At most", "limit": "Examples per task", "generations": "Generations",
                "population_size": "Population size", "max_evaluations": "Max evaluations"}
HOURS_FIELD, HOURS_LABEL = "wall_hours", "Wall time, hours"
TEXT_FIELDS = ("candidates", "base_model", "query_author", "query_search", "query_filter", "tasks", "heldout",
               "namespace")


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


def seed_form(fields: Mapping[str, object]) -> SeedForm:
    """The page's fields by name (`SeedForm`'s, the wall time in hours as `wall_hours`) -> a `SeedForm`; SeedError
    naming each number field that holds no number. Blank texts read as "", blank numbers as not given."""
    numbers = form_numbers(whole={label: fields[name] for name, label in WHOLE_FIELDS.items()},
                           real={HOURS_LABEL: fields[HOURS_FIELD]})
    whole, hours = {name: numbers[label] for name, label in WHOLE_FIELDS.items()}, numbers[HOURS_LABEL]
    return SeedForm(
        name=str(fields["name"] or "").strip(), **{name: fields[name] or "" for name in TEXT_FIELDS},
        methods=list(fields["methods"] or []), push=fields["push"] or "none", private=bool(fields["private"]),
        query_limit=whole["query_limit"] or 8, limit=whole["limit"], generations=whole["generations"] or 0,
        population_size=whole["population_size"] or 0, max_evaluations=whole["max_evaluations"] or None,
        wall_time_s=hours * 3600 if hours else None,
    )


def split_list(text: str | None) -> list[str]:
    return [part.strip() for part in re.split(r"[\n,]+", text or "") if part.strip()]


def form_numbers(*, whole: dict[str, object], real: dict[str, object] | None = None) -> dict[str, int | float | None]:
    """The form's number fields by label (None when blank); SeedError naming each field that holds no number."""
    fields = [(label, value, True) for label, value in whole.items()]
    fields += [(label, value, False) for label, value in (real or {}).items()]
    values, problems = {}, []
    for label, value, is_whole in fields:
        values[label], problem = _form_number(label, value, whole=is_whole)
        problems += [problem] if problem else []
    if problems:
        raise SeedError("cannot queue this run:\n" + "\n".join(f"- {p}" for p in problems))
    return values


def _form_number(label: str, value, *, whole: bool) -> tuple[int | float | None, str | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    kind = "a whole number" if whole else "a number"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, f"{label} {value!r} is not a number; enter {kind}"
    if not math.isfinite(number) or (whole and not number.is_integer()):
        return None, f"{label} {value!r} is not {kind}; enter {kind}"
    return (int(number) if whole else number), None


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
        registry = self.registry(tuple(str(f) for f in self.folders)) if rest and self.registry else frozenset()
        return [unknown_task(n, local=local, registry=registry) for n in rest if n not in registry]


def unknown_task(name: str, *, local: set[str], registry: frozenset[str]) -> str:
    """`unknown_name`'s message for a task. lm-eval's registry holds thousands of names, so of those the message
    lists only the close matches, beside the deployment's own tasks."""
    if not registry:
        return unknown_name("task", name, local)
    nearby = difflib.get_close_matches(name, registry, n=3)
    return unknown_name("task", name, {*local, *nearby},
                        plural=f"tasks (this deployment's, and the closest of lm-eval's {len(registry)})")


# the form ----------------------------------------------------------------------------------------------
def build_run_config(
    form: SeedForm, *, runs_root: Path, tasks: TaskCatalog, caps: BudgetCaps = BudgetCaps(),
    taken: Iterable[str] = (), local_root: Path | None = None,
) -> dict:
    """The run config dict for `form`; SeedError listing every problem if it cannot be queued.

    `local_root`: the folder under which candidates may be local model folders (None = Hub repos only).
    """
    problems = [
        *check_name(form.name, taken=set(taken), runs_root=runs_root),
        *check_population(form, caps=caps, local_root=local_root),
        *check_methods(form),
        *check_tasks(form, tasks=tasks),
        *check_budget(form, caps=caps),
        *check_publish(form),
    ]
    if problems:
        raise SeedError("cannot queue this run:\n" + "\n".join(f"- {p}" for p in problems))
    data = config_data(form, runs_root=runs_root, tasks=tasks, caps=caps, local_root=local_root)
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


def check_population(form: SeedForm, *, caps: BudgetCaps, local_root: Path | None = None) -> list[str]:
    members = split_list(form.candidates)
    problems = [problem for m in members if (problem := member_problem(m, local_root=local_root))]
    base = form.base_model.strip()
    if base and (problem := member_problem(base, local_root=local_root, role="base model")):
        problems.append(problem)
    query = hub_query(form)
    if not members and query is None:
        problems.append("give candidate repo ids, a Hub query (author, search or tags), or both")
    if len(members) + (query.limit if query else 0) > caps.candidates:
        problems.append(f"{len(members)} candidates plus a query limit of {query.limit if query else 0} exceed "
                        f"the cap of {caps.candidates} candidates")
    return problems


def looks_local(text: str, *, local_root: Path | None) -> bool:
    """A path rather than a repo id: written as one (./, /, ~), or naming a folder under the allowed root.
    The server's working folder never counts: `org/name` is a repo id whatever folders lie there."""
    relative = local_root is not None and not Path(text).is_absolute() and (Path(local_root) / text).is_dir()
    return text.startswith((".", "/", "~")) or relative


def local_path(text: str, *, local_root: Path) -> Path:
    path = Path(text).expanduser()
    return (path if path.is_absolute() else Path(local_root) / path).resolve()


def member_problem(text: str, *, local_root: Path | None, role: str = "candidate") -> str | None:
    """Why `text` cannot seed a run here (a malformed repo id, or a local folder outside the root), or None."""
    if not looks_local(text, local_root=local_root):
        return None if REPO_ID.match(text) else (
            f"{role} {text!r} is not a Hub repo id; expected 'org/name' or 'org/name@revision'")
    if local_root is None:
        return (f"{role} {text!r} is a local path, and this deployment seeds from Hub repos only; an admin can "
                f"allow local folders under a root folder by setting {LOCAL_ROOT_VARIABLE}")
    root, path = Path(local_root).resolve(), local_path(text, local_root=local_root)
    if not path.is_relative_to(root):
        return (f"{role} {text!r} is outside the allowed local root {str(root)!r}; only folders under it may be "
                f"seeded (an admin sets the root with {LOCAL_ROOT_VARIABLE})")
    return None if path.is_dir() else f"{role} {text!r} is not a folder under the allowed local root {str(root)!r}"


def member_entry(text: str, *, local_root: Path | None) -> dict:
    """The config's spelling of a checked member, explicit so no reader takes a repo id for a folder under its
    working directory: `{"path": absolute folder}` for a local one, else `{"repo": id}`."""
    if not looks_local(text, local_root=local_root):
        return {"repo": text}
    return {"path": str(local_path(text, local_root=local_root)) if local_root else text}


def explicit_members(data: dict, *, local_root: Path | None) -> dict:
    """An uploaded config with its members written as strings spelled out by `member_entry`."""
    population = dict(data.get("population") or {})
    if isinstance(population.get("members"), list):
        population["members"] = [member_entry(m, local_root=local_root) if isinstance(m, str) else m
                                 for m in population["members"]]
    if isinstance(population.get("base_model"), str):
        population["base_model"] = member_entry(population["base_model"], local_root=local_root)
    return {**data, "population": population} if population else data


def hub_query(form: SeedForm) -> HubQuery | None:
    author, search, tags = form.query_author.strip(), form.query_search.strip(), split_list(form.query_filter)
    if not (author or search or tags):
        return None
    return HubQuery.model_construct(author=author or None, search=search or None, filter=tags,
                                    sort="downloads", limit=int(form.query_limit))


def check_methods(form: SeedForm) -> list[str]:
    table = method_table()
    if not form.methods:
        return [f"choose at least one merge method ({', '.join(sorted(table))})"]
    problems = [unknown_name("merge method", name, table) for name in form.methods if name not in table]
    needing = [m for m in form.methods if m in table and table[m].needs_base]
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


def config_data(
    form: SeedForm, *, runs_root: Path, tasks: TaskCatalog, caps: BudgetCaps, local_root: Path | None = None,
) -> dict:
    """The run config as YAML would hold it; the caps fill any open evaluation or time budget."""
    query = hub_query(form)
    population: dict = {"members": [member_entry(m, local_root=local_root) for m in split_list(form.candidates)]}
    if query is not None:
        population["query"] = query.model_dump(exclude_none=True)
    if form.base_model.strip():
        population["base_model"] = member_entry(form.base_model.strip(), local_root=local_root)
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


# an uploaded run YAML ----------------------------------------------------------------------------------
def config_from_yaml(
    text: str, *, runs_root: Path, tasks: TaskCatalog, caps: BudgetCaps = BudgetCaps(),
    taken: Iterable[str] = (), local_root: Path | None = None,
) -> dict:
    """The run config dict of an uploaded run YAML, held to the form's rules; SeedError naming each problem.

    Its output folder is always the runs root's; relative local paths are read against `local_root`.
    """
    data = explicit_members(yaml_mapping(text), local_root=local_root)
    data["output"] = {**(data.get("output") or {}), "dir": str(Path(runs_root).resolve() / str(data.get("name", "")))}
    try:
        config = parse_config(data, root=Path(local_root or runs_root).resolve(), source="in the uploaded YAML",
                              expand_vars=False)  # an upload must not read this server's environment
    except ConfigError as err:
        raise SeedError(str(err)) from None
    problems = [
        *check_name(config.name, taken=set(taken), runs_root=runs_root),
        *uploaded_member_problems(config, local_root=local_root),
        *uploaded_budget_problems(config, caps=caps),
        *tasks.unknown(t.name for t in [*config.fitness.tasks, *config.fitness.heldout]),
        *[f"fitness.include_path {str(p)!r} is not one of this deployment's task folders"
          for p in config.fitness.include_path if Path(p).resolve() not in {Path(f).resolve() for f in tasks.folders}],
    ]
    if problems:
        raise SeedError("cannot queue this run:\n" + "\n".join(f"- {p}" for p in problems))
    data = with_caps(config, caps=caps, tasks=tasks).model_dump(mode="json")
    try:  # the dump is what gets queued: it must validate as it will be read back
        return RunConfig.model_validate(data).model_dump(mode="json")
    except ValidationError as err:
        raise SeedError(format_validation_error(err, source="in the uploaded YAML")) from None


def yaml_mapping(text: str) -> dict:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise SeedError(f"the uploaded run config is not valid YAML: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(data, dict):
        raise SeedError(f"the uploaded run config must be a YAML mapping, got {type(data).__name__}")
    return data


def uploaded_member_problems(config: RunConfig, *, local_root: Path | None) -> list[str]:
    population = config.population
    members = [("population.members", m) for m in population.members]
    members += [("population.base_model", population.base_model)] if population.base_model else []
    return [problem for role, m in members if m.path is not None
            and (problem := member_problem(str(m.path), local_root=local_root, role=role))]


def uploaded_budget_problems(config: RunConfig, *, caps: BudgetCaps) -> list[str]:
    budget = config.budget
    limits = [("budget.generations", budget.generations, caps.generations),
              ("budget.population_size", budget.population_size, caps.population_size),
              ("budget.max_evaluations", budget.max_evaluations, caps.max_evaluations),
              ("budget.wall_time_s", budget.wall_time_s, caps.wall_time_s),
              ("fitness.limit", config.fitness.limit, caps.limit)]
    return [f"{label} {value:g} is over this deployment's cap of {high:g}"
            for label, value, high in limits if value is not None and value > high]


def with_caps(config: RunConfig, *, caps: BudgetCaps, tasks: TaskCatalog) -> RunConfig:
    """Open evaluation and time budgets filled with the caps; the deployment's task folders included."""
    budget = config.budget.model_copy(update={"max_evaluations": config.budget.max_evaluations or caps.max_evaluations,
                                              "wall_time_s": config.budget.wall_time_s or caps.wall_time_s})
    fitness = config.fitness.model_copy(update={"include_path": [Path(f).resolve() for f in tasks.folders]})
    return config.model_copy(update={"budget": budget, "fitness": fitness})
