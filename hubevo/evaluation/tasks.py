"""Stage 2, evaluate: the run's lm-eval tasks, found and checked before any model is loaded.

`TaskCatalog` builds lm-eval's `TaskManager` over `fitness.include_path` (only the local tasks
when they hold every name the run uses: indexing lm-eval's built-in tasks takes seconds), then
checks every fitness, validation and held-out task: known to lm-eval (with close matches when
not), not a well-known test set (`hubevo.evaluation.guard`), its data files, metric and lm-eval
arguments usable (`hubevo.evaluation.taskcheck`). Every problem is one `ConfigError` naming the
field and the fix. It also counts each task's documents, which the sampling plan splits.
"""

from __future__ import annotations

import difflib
from functools import cached_property

from hubevo.config import FitnessConfig
from hubevo.errors import ConfigError
from hubevo.evaluation import guard, taskcheck

KINDS = {"tasks": "fitness task", "heldout": "held-out task", "validation": "validation task"}


class TaskCatalog:
    """The lm-eval tasks a run names: where lm-eval finds them, whether they can run, how many documents each has."""

    def __init__(self, cfg: FitnessConfig):
        self.cfg = cfg
        self._doc_count: dict[str, int] = {}  # task name -> its documents, loaded once

    @cached_property
    def task_manager(self):
        from lm_eval.tasks import TaskManager

        include = [str(p) for p in self.cfg.include_path] or None
        names = {t.name for t in (*self.cfg.tasks, *self.cfg.heldout, *self.cfg.validation)}
        if include:
            local = TaskManager(include_path=include, include_defaults=False)
            if names <= set(local.all_tasks) | set(local.all_groups):
                return local
        return TaskManager(include_path=include)

    def check(self) -> None:
        """Raise ConfigError naming any task lm-eval does not know (with close matches), a test set selected on,
        or a task whose files, metric or arguments cannot run."""
        for path in self.cfg.include_path:
            if not path.is_dir():
                raise ConfigError(f"fitness.include_path {str(path)!r} is not a folder of lm-eval task YAML files")
        if unreadable := taskcheck.task_folder_problems(self.cfg.include_path):  # lm-eval would skip or choke
            raise ConfigError("; ".join(unreadable))
        known = set(self.task_manager.all_tasks) | set(self.task_manager.all_groups) | set(self.task_manager.all_tags)
        for field, spec in ((f, s) for f in KINDS for s in getattr(self.cfg, f)):
            if spec.name not in known:
                close = difflib.get_close_matches(spec.name, known, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                broken = taskcheck.yaml_problems(self.cfg.include_path)
                unparsed = f"; these task files do not parse: {'; '.join(broken)}" if broken else ""
                raise ConfigError(
                    f"{KINDS[field]} {spec.name!r} is unknown to lm-eval{hint} "
                    f"(fix fitness.{field}, or add its YAML folder to fitness.include_path){unparsed}"
                )
        index = self.task_manager.task_index
        guard.check_apart(self.cfg, index=index)  # groups and tags expanded to their tasks
        leaves = {t.name: guard.leaf_tasks(t.name, index) for t in self.cfg.tasks}
        configs = {name: index[name].cfg for name in set().union(*leaves.values()) if name in index and index[name].cfg}
        guard.check_fitness_tasks(self.cfg, task_configs=configs, leaves=leaves)
        self.check_task_files(index)

    def check_task_files(self, index) -> None:
        """Data files, metrics and lm-eval arguments, all problems at once."""
        problems = taskcheck.kwargs_problems(self.cfg.lm_eval_kwargs) + taskcheck.hflm_kwargs_problems(self.cfg.hflm_kwargs)
        for field in KINDS:
            for i, spec in enumerate(getattr(self.cfg, field)):
                cfg = index[spec.name].cfg if spec.name in index and index[spec.name].cfg else {}
                problems += taskcheck.data_file_problems(spec.name, cfg)
                problems.append(taskcheck.metric_problem(spec.name, spec.metric, cfg, field=f"fitness.{field}.{i}"))
        problems = list(dict.fromkeys(p for p in problems if p))
        if problems:
            raise ConfigError("lm-eval tasks cannot run as configured:\n  " + "\n  ".join(problems))

    def check_racing(self) -> None:
        """Racing reads example prefixes per task: a group has none (ConfigError, before any state is written)."""
        groups = [name for name, count in self.doc_counts.items() if count == 0]
        if groups:
            raise ConfigError(f"fitness.racing needs tasks, not groups ({', '.join(groups)}): "
                              "name the group's tasks in fitness.tasks")
        top = self.cfg.racing.rungs[-1]
        small = {name: count for name, count in self.doc_counts.items() if top >= count}
        if small:
            sizes = ", ".join(f"{name!r} has {count}" for name, count in small.items())
            raise ConfigError(f"fitness.racing.rungs {self.cfg.racing.rungs} reach {top} examples but {sizes}: "
                              "every rung must be smaller than each task; lower the rungs or drop racing")

    @cached_property
    def doc_counts(self) -> dict[str, int]:
        """Documents per fitness task (0 for a group)."""
        return {spec.name: self.doc_count(spec.name) for spec in self.cfg.tasks}

    def doc_count(self, name: str) -> int:
        """Documents of one task (0 for a group: its documents are not known one by one), loaded once."""
        if name not in self._doc_count:
            task = self.task_manager.load([name])["tasks"].get(name)  # None for a group
            self._doc_count[name] = len(task.eval_docs) if task is not None else 0
        return self._doc_count[name]

    @cached_property
    def example_prompt(self) -> tuple[str | None, str]:
        """(task, prompt), loaded once: the first document of the first fitness task that is a task, as lm-eval's
        `doc_to_text` renders it; (None, "Hello") when none can be rendered (groups only, or a task that fails to
        load)."""
        for spec in self.cfg.tasks:
            try:
                task = self.task_manager.load([spec.name])["tasks"].get(spec.name)
                docs = task.eval_docs if task is not None else []
                if len(docs):
                    return spec.name, str(task.doc_to_text(docs[0]))
            except Exception:  # noqa: BLE001 - a usage example must never stop a card
                continue
        return None, "Hello"

