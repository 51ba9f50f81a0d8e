"""The ask/tell interface every search strategy implements (after pycma's `ask`/`tell`/`stop`).

A strategy is built from the run config (frozen data; its own section is `search.options`)
and a read-only `PopulationView`. `ask` names the candidates of the current generation;
`tell` receives their evaluations (once per generation); `wants_weights` names merges to read
as task arithmetic before the next `ask` (the loop reads them); `stop` says why the search is
over, if it is; `finalists` names candidates to score on validation besides the top-k by
fitness; `survivors` names the individuals to keep with weights on disk, which may
then be parents of the next `ask`. `state_dict`/`load_state_dict` carry plain data, so the
next `ask` after a restore returns what it would have returned. No strategy reads files
or touches the run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from hubevo.breed.genome import Individual
from hubevo.config import RunConfig
from hubevo.config.frozen import Frozen
from hubevo.config.search import STRATEGY_OPTIONS
from hubevo.evaluation.records import Evaluation
from hubevo.search.view import PopulationView, WeightsRequest


class Strategy(ABC):
    name: ClassVar[str]

    def __init__(self, cfg: RunConfig, view: PopulationView, *, options: Frozen | None = None):
        self.cfg, self.view = cfg, view
        self.options = options if options is not None else STRATEGY_OPTIONS[self.name].model_validate(cfg.search.options)

    @abstractmethod
    def ask(self) -> list[Individual]:
        """The candidates of generation `view.generation` (already-evaluated ones are not paid twice)."""

    @abstractmethod
    def tell(self, results: Mapping[str, Evaluation]) -> None:
        """Learn from this generation's evaluations (called once per generation)."""

    @abstractmethod
    def survivors(self, *, final: bool) -> list[str]:
        """Ids to keep on disk after the last `tell`; `final` when no generation follows."""

    def wants_weights(self) -> list[WeightsRequest]:
        """Merges the next `ask` reads as per-block task arithmetic (`PopulationView.task_arithmetic_weights`):
        the loop materialises and reads them before it asks, so a strategy never loads a model."""
        return []

    def finalists(self) -> list[str]:
        """Evaluated ids to score on validation besides the top-k by fitness (they can then be champion)."""
        return []

    def stop(self) -> str | None:
        """Why the search cannot go on (after the last `tell`), or None."""
        return None

    def seeds(self) -> list[Individual]:
        return [self.view.individuals[i] for i in self.view.seeds]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        del state
