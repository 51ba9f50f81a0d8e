"""Stage 2's engine in this process: one candidate job at a time, on the run's own resident model."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from hubevo.config import RunConfig
from hubevo.evaluation.records import Evaluation
from hubevo.execute.runner import CandidateJob, CandidateRunner


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
