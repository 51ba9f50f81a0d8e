"""Stage 2's engine: where candidate jobs run, by name (`execution.backend`).

A backend schedules `CandidateRunner`s (`hubevo.execute.runner`) and nothing else: `local` runs
one job at a time in this process on the run's own runner (`hubevo.execute.local`); `ray` spreads
jobs over runners in Ray actors (`hubevo.execute.ray_backend`, imported on first use, so `local`
runs without Ray installed). Both take plain `CandidateJob`s and yield `Evaluation`s as they
finish; the driver's run state stays the single source of truth.
"""

from __future__ import annotations

from hubevo.config import RunConfig
from hubevo.errors import ConfigError
from hubevo.execute.local import LocalBackend
from hubevo.execute.runner import CandidateRunner
from hubevo.registry import Lazy, Registry


def missing_extra(name: str, err: ModuleNotFoundError) -> ConfigError:
    return ConfigError(f"execution.backend {name!r} needs {err.name!r}, which is not installed; "
                       f"pip install 'hubevo[{name}]' (or set execution.backend: local)")


BACKENDS = Registry("execution backend", {"local": LocalBackend, "ray": Lazy("hubevo.execute.ray_backend:RayBackend")},
                    missing=missing_extra)


def make_backend(cfg: RunConfig, *, runner: CandidateRunner):
    """The configured backend; `runner` is the driver's own (the local backend runs on it)."""
    return BACKENDS[cfg.execution.backend].for_run(cfg, runner=runner)
