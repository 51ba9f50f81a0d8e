"""The ask/tell interface every search strategy implements (after pycma's `ask`/`tell`).

`ask` names the candidates of the current generation; `tell` receives their
evaluations (once per generation); `survivors` names the individuals to write to disk,
which may then be parents of the next `ask`. `state_dict`/`load_state_dict` carry everything a resumed run needs, so the
next `ask` after a restore returns what it would have returned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from hubevo.genome import Individual
from hubevo.state import Evaluation

if TYPE_CHECKING:
    from hubevo.loop import Run


class Strategy(ABC):
    name: ClassVar[str]

    def __init__(self, run: "Run"):
        self.run = run

    @abstractmethod
    def ask(self) -> list[Individual]:
        """The candidates of generation `run.state.generation` (already-evaluated ones are not paid twice)."""

    @abstractmethod
    def tell(self, results: Mapping[str, Evaluation]) -> None:
        """Learn from this generation's evaluations (called once per generation)."""

    @abstractmethod
    def survivors(self, *, final: bool) -> list[str]:
        """Ids to keep on disk after the last `tell`; `final` when no generation follows."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        del state
