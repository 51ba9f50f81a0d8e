"""Checks of a run's surroundings before its folder is locked or anything expensive is loaded.

The config itself is validated by `hubevo.config`; what is checked here is the machine:
whether `output.dir` can hold a run (new, empty, or a run folder hubevo made: never a folder
of the user's), whether the execution backend can be reached with what is installed, whether
the trackers `tracking` names are installed, whether the local data files of the tasks and of
the fine-tuning read as rows, whether the local members' files can be read, and whether a publishing
run's token can write to its namespace (one `whoami`). Each failure is one line (a `ConfigError`, or a
`MemberNotFoundError` for a member) naming the field or file and the fix.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from hubevo.config import RunConfig
from hubevo.errors import ConfigError
from hubevo.fsio import check_run_folder
from hubevo.run.tracking import check_tracking


def check_output_dir(folder: Path) -> None:
    """`output.dir` must be a folder (or creatable as one) that this process can write to, and new, empty or
    a run folder hubevo made."""
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"output.dir {str(folder)!r}: {str(existing)!r} is a file, not a folder; "
                          "move the file away or choose another output.dir")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        if os.statvfs(existing).f_flag & os.ST_RDONLY:
            raise ConfigError(f"output.dir {str(folder)!r}: {str(existing)!r} is not writable (a read-only file "
                              "system); remount it read-write or choose another output.dir")
        raise ConfigError(f"output.dir {str(folder)!r}: {str(existing)!r} is not writable by this user; "
                          "fix its permissions or choose another output.dir")
    check_run_folder(folder, field="output.dir")


def check_backend(cfg: RunConfig) -> None:
    """A `ray://` address needs Ray's client extra (grpcio) installed."""
    execution = cfg.execution
    if execution.backend == "ray" and execution.address.startswith("ray://"):
        missing = [name for name in ("ray", "grpc") if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(f"execution.address {execution.address!r} uses the Ray client, which needs "
                              f"{', '.join(missing)} (not installed); pip install 'ray[client]', or use "
                              "execution.address: auto or local")


def check_data_files(cfg: RunConfig) -> None:
    """Local task data and preference files must hold rows in their format (a cheap read, no lm-eval or
    datasets): an empty or garbage file is named here, not by a traceback at the first evaluation."""
    from hubevo.evaluation import taskcheck

    fitness = cfg.fitness
    names = [t.name for t in (*fitness.tasks, *fitness.heldout, *fitness.validation)]
    problems = taskcheck.local_task_problems(fitness.include_path, names)
    if cfg.mutation.finetune is not None and cfg.fine_tunes:
        from hubevo.finetune.data import file_problems

        problems += file_problems(cfg.mutation.finetune)
    problems += reference_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))


def reference_problems(cfg: RunConfig) -> list[str]:
    """`fitness.estimator.references` must be outcomes tables of runs on at least one of this run's fitness tasks."""
    from hubevo.run.estimation import read_references

    problems = []
    for i, path in enumerate(cfg.fitness.estimator.references):
        try:
            read_references(path, tasks={t.name for t in cfg.fitness.tasks})
        except ConfigError as err:
            problems.append(f"fitness.estimator.references.{i}: {err}")
    return problems


def check_member_files(cfg: RunConfig) -> None:
    """Local members' folders and the files in them that are read must be readable and UTF-8 where text
    (`hubevo.seed.members.resolve`): named here, in a blink, not after lm-eval is imported. A member that is not
    there at all is named by the seed stage, after the run folder's lock (a folder in use is named first)."""
    from hubevo.seed.members import resolve

    population = cfg.population
    fields = [(f"population.members.{i}", m) for i, m in enumerate(population.members)]
    fields += [("population.base_model", population.base_model)] if population.base_model is not None else []
    for field, member in fields:
        if member.path is not None and os.path.lexists(member.path):
            resolve(member, field=field)


def check_run(cfg: RunConfig, *, api=None) -> None:
    check_output_dir(cfg.output.dir)
    check_backend(cfg)
    check_tracking(cfg)
    check_data_files(cfg)
    check_member_files(cfg)
    check_publishing(cfg, api=api)


def check_publishing(cfg: RunConfig, *, api=None) -> None:
    """A run that pushes repos or its state must hold a token that can write to `publish.namespace`."""
    publish = cfg.publish
    if publish.push != "none" or publish.state == "hub":
        from hubevo.hub.access import check_write_access

        check_write_access(publish.namespace, api=api)
