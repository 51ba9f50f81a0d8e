"""What the Space asks of the scheduler that runs evolutions (`hubevo.run.scheduler` implements it).

The UI only ever calls these five methods, after `space.controls.auth` has said who is acting;
the scheduler owns queues, processes and GPUs.
"""

from __future__ import annotations

from typing import Literal, Protocol, TypedDict

RunPhase = Literal["queued", "running", "paused", "finished", "failed"]


class RunStatus(TypedDict, total=False):
    """One run as `Controller.status` reports it; unknown numbers are None."""

    name: str
    state: RunPhase
    generation: int | None
    generations: int | None
    candidate: int | None  # candidates evaluated in the current generation
    candidates: int | None  # candidates in the current generation
    elapsed_s: float | None
    eta_s: float | None  # estimated seconds left
    best_fitness: float | None
    message: str


class Controller(Protocol):
    def submit(self, run_config: dict, *, user: str) -> str:
        """Queue a validated run config (`RunConfig.model_dump(mode="json")`); returns the run's name."""

    def status(self) -> list[RunStatus]:
        """Every run the scheduler knows, newest last."""

    def pause(self, name: str) -> None: ...

    def resume(self, name: str) -> None: ...

    def stop(self, name: str) -> None: ...
