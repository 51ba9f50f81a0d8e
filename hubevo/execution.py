"""Stage 2's engine: where candidate jobs run.

A backend schedules `CandidateRunner`s (hubevo/runner.py) and nothing else: `local` runs
one job at a time in this process on the run's own runner; `ray` spreads jobs over
runners in Ray actors. Both take plain `CandidateJob`s and yield `Evaluation`s as they
finish; the driver's run state stays the single source of truth.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator

from hubevo.config import RunConfig
from hubevo.errors import ConfigError, UnknownNameError
from hubevo.runner import CandidateJob, CandidateRunner
from hubevo.state import Evaluation


class LocalBackend:
    """One job at a time, in this process, on the run's resident model."""

    name = "local"

    def __init__(self, runner: CandidateRunner):
        self.runner = runner

    @classmethod
    def for_run(cls, cfg: RunConfig, *, runner: CandidateRunner) -> "LocalBackend":
        del cfg
        return cls(runner)

    def evaluate(self, jobs: Iterable[CandidateJob]) -> Iterator[Evaluation]:
        for job in jobs:
            yield self.runner.run(job)

    def close(self) -> None:
        pass


# A string entry ("module:Class") is imported on first use, so `local` runs without Ray installed.
BACKENDS = {"local": LocalBackend, "ray": "hubevo.execution_ray:RayBackend"}


def get_backend(name: str):
    if name not in BACKENDS:
        raise UnknownNameError(f"unknown execution backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    backend = BACKENDS[name]
    if isinstance(backend, str):
        module, _, attr = backend.partition(":")
        try:
            backend = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as err:
            raise ConfigError(
                f"execution.backend {name!r} needs {err.name!r}, which is not installed; "
                f"pip install 'hubevo[{name}]' (or set execution.backend: local)"
            ) from err
    return backend


def make_backend(cfg: RunConfig, *, runner: CandidateRunner):
    """The configured backend; `runner` is the driver's own (the local backend runs on it)."""
    return get_backend(cfg.execution.backend).for_run(cfg, runner=runner)
