"""What a search strategy sees of a run: a read-only view of the population, data only.

Ids, individuals, evaluations (and the finalists' validation scores), the seeds, the base
model, the current generation and each individual's layer count; nothing to write to, no file
to read and nothing that loads a model. What a strategy needs from weights, a merge read as
per-block task arithmetic (`hubevo.breed.projection`), it asks for ahead (`Strategy.wants_weights`)
and the loop computes and hands over (`add_weights`) before the next `ask`. The view reads the live
run state, so a strategy built once sees every later evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from hubevo.breed.genome import DataFlowGenome, Individual
from hubevo.selection import ranking

if TYPE_CHECKING:
    from hubevo.evaluation.records import Evaluation
    from hubevo.state.runstate import RunState


@dataclass(frozen=True)
class WeightsRequest:
    """A merge a strategy wants read as task arithmetic of the members over the base, per gene block
    (`groups` x `modules`, module-major within a group, as `hubevo.breed.projection` lays them out)."""

    cid: str
    groups: tuple[tuple[int, int], ...]
    modules: tuple[str | None, ...]


class PopulationView:
    def __init__(self, state: "RunState", *, seed_layers: Mapping[str, int]):
        self._state = state
        self._seed_layers = dict(seed_layers)
        self._weights: dict[WeightsRequest, list[list[float]] | None] = {}

    @property
    def generation(self) -> int:
        return self._state.generation

    @property
    def seeds(self) -> tuple[str, ...]:
        """The initial members, in config order."""
        return tuple(self._state.initial)

    @property
    def base(self) -> str | None:
        return self._state.base

    @property
    def individuals(self) -> Mapping[str, Individual]:
        return MappingProxyType(self._state.individuals)

    @property
    def evaluations(self) -> Mapping[str, "Evaluation"]:
        return MappingProxyType(self._state.evaluations)

    @property
    def validation(self) -> Mapping[str, "Evaluation"]:
        """The finalists' scores on the validation examples (`hubevo.run.loop.finals`)."""
        return MappingProxyType(self._state.validation)

    @property
    def baselines(self) -> Mapping[str, str]:
        """The standard recipes scored in generation 0: id -> recipe name."""
        return MappingProxyType(self._state.baselines)

    def champion(self, *, merges_only: bool = False) -> str | None:
        """The champion by `hubevo.selection.ranking` (among bred individuals only, with `merges_only`)."""
        evs = self._state.evaluations.values()
        if merges_only:
            evs = [e for e in evs if self._state.individuals[e.id].kind != "seed"]
        return ranking.champion(list(evs))

    def add_seed_layers(self, cid: str, layers: int) -> None:
        """An immigrant joined: its layer count, read from its config by the driver."""
        self._seed_layers[cid] = layers

    def add_weights(self, request: WeightsRequest, weights: list[list[float]] | None) -> None:
        """The loop's answer to a `WeightsRequest` (None: the merge could not be built or read)."""
        self._weights[request] = weights

    def task_arithmetic_weights(self, cid: str, *, groups: Sequence[tuple[int, int]],
                                modules: Sequence[str | None]) -> list[list[float]] | None:
        """Per gene block, the members' task-arithmetic weights over the base closest to `cid`'s weights, as the
        loop computed them for a `WeightsRequest`; None when none was asked for or it could not be read."""
        return self._weights.get(WeightsRequest(cid, tuple(map(tuple, groups)), tuple(modules)))

    def layers(self, cid: str) -> int:
        """Decoder layers of individual `cid`: a seed's from its config, a child's from its recipe."""
        if cid in self._seed_layers:
            return self._seed_layers[cid]
        ind = self._state.individuals[cid]
        if ind.finetune is not None:
            return self.layers(ind.finetune.parent)
        if isinstance(ind.genome, DataFlowGenome):
            return len(ind.genome.path)
        return self.layers(ind.genome.parents[0])
