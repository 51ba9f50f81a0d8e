"""CMA-ES in data-flow space (Akiba et al. 2024, "DFS"), and PS followed by DFS ("PS+DFS").

The layers of the source models are laid out in sequence, model after model, and the
layout is repeated r times: T = M x r candidate layers (M = all the sources' layers).
A genome is an indicator over the T slots (a slot is on when its coordinate is above 0.5)
plus a scale of each slot's input, both searched by CMA-ES in [0, 1]^(2T). The start
is the first source's own path: its layers of the first repetition on, everything else
off, every scale 1. The decoded path is a `DataFlowGenome`: a passthrough merge that
stacks the chosen decoder layers into an ordinary model of the same architecture.

`psdfs` runs `cmaes` for `ps_generations` generations, then a DFS whose sources are the
PS champion followed by the population members, as in the paper's PS+DFS model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from hubevo.breed.genome import DataFlowGenome, Individual, LayerStep
from hubevo.config.search import DFSOptions, PSDFSOptions
from hubevo.errors import ConfigError
from hubevo.evaluation.records import Evaluation
from hubevo.search.base import Strategy
from hubevo.search.cmaes import CMAES, CMASearch
from hubevo.search.view import WeightsRequest

__all__ = ["DFS", "DFSOptions", "DataFlowSpace", "PSDFS", "PSDFSOptions"]

ON = 0.5  # a slot is in the path when its indicator coordinate exceeds this


class DataFlowSpace:
    """[0, 1]^dim <-> layer paths through `sources` (pure); `sources` are (individual id, layer count)."""

    def __init__(self, sources: Sequence[tuple[str, int]], options: DFSOptions):
        self.options = options
        self.slots = [(sid, layer) for _ in range(options.repeats) for sid, n in sources for layer in range(n)]
        self.n_first = sources[0][1]  # the first source's layers open the layout

    @property
    def dim(self) -> int:
        return len(self.slots) * (2 if self.options.scales else 1)

    def x0(self) -> list[float]:
        margin = self.options.margin
        on = [ON + margin if t < self.n_first else ON - margin for t in range(len(self.slots))]
        low, high = self.options.scale_range
        unit = math.log(1 / low) / math.log(high / low) if high > low else 0.5
        return on + ([unit] * len(self.slots) if self.options.scales else [])

    def scale(self, x: float) -> float:
        low, high = self.options.scale_range
        return float(low * (high / low) ** min(max(x, 0.0), 1.0))

    def decode(self, x: Sequence[float]) -> DataFlowGenome:
        n = len(self.slots)
        indicators = np.asarray(x[:n])
        chosen = [t for t in range(n) if indicators[t] > ON] or [int(indicators.argmax())]
        if self.options.max_layers and len(chosen) > self.options.max_layers:
            top = sorted(chosen, key=lambda t: -indicators[t])[: self.options.max_layers]
            chosen = sorted(top)
        scale = (lambda t: self.scale(x[n + t])) if self.options.scales else (lambda t: 1.0)
        path = tuple(LayerStep(parent=self.slots[t][0], layer=self.slots[t][1], scale=scale(t)) for t in chosen)
        return DataFlowGenome(path=path, residual_outputs=tuple(self.options.residual_outputs))


def member_ids(view, names: Sequence[str]) -> list[str]:
    """Population members by name (all of them when `names` is empty)."""
    by_name = {view.individuals[i].name: i for i in view.seeds}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"search.options.models {unknown} are not population members; members: {sorted(by_name)}")
    return [by_name[n] for n in names] if names else list(view.seeds)


class DFS(CMASearch):
    """CMA-ES over layer paths; `sources` (individual ids on disk) default to the configured members."""

    name = "dfs"

    def __init__(self, cfg, view, *, options: DFSOptions | None = None, sources: Sequence[str] | None = None):
        super().__init__(cfg, view, options=options)
        self.sources = list(dict.fromkeys(sources or member_ids(view, self.options.models)))
        self.space = self.build_space()

    def build_space(self) -> DataFlowSpace:
        return DataFlowSpace([(i, self.view.layers(i)) for i in self.sources], self.options)

    def start_point(self) -> list[float]:
        return self.space.x0()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "sources": self.sources}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if state.get("sources") and state["sources"] != self.sources:
            self.sources = list(state["sources"])
            self.space = self.build_space()


class PSDFS(Strategy):
    """Parameter space first, then data flow over [PS champion, *members] (the paper's PS+DFS)."""

    name = "psdfs"

    def __init__(self, cfg, view, **kwargs):
        super().__init__(cfg, view, **kwargs)
        self.ps = CMAES(cfg, view, options=self.options.ps)
        self.dfs: DFS | None = None

    def current(self) -> CMASearch:
        if self.view.generation < self.options.ps_generations:
            return self.ps
        if self.dfs is None:  # the PS champion is on disk: CMASearch keeps its best recipe
            champion = self.view.champion(merges_only=True)
            members = member_ids(self.view, self.options.dfs.models)
            self.dfs = DFS(self.cfg, self.view, options=self.options.dfs, sources=[champion, *members] if champion else members)
        return self.dfs

    def wants_weights(self) -> list[WeightsRequest]:
        return self.current().wants_weights()

    def ask(self) -> list[Individual]:
        return self.current().ask()

    def tell(self, results: Mapping[str, Evaluation]) -> None:
        self.current().tell(results)

    def survivors(self, *, final: bool) -> list[str]:
        return self.current().survivors(final=final)

    def state_dict(self) -> dict:
        return {"ps": self.ps.state_dict(), "dfs": self.dfs.state_dict() if self.dfs else None}

    def load_state_dict(self, state: dict) -> None:
        self.ps.load_state_dict(state.get("ps") or {})
        if state.get("dfs"):
            self.dfs = DFS(self.cfg, self.view, options=self.options.dfs, sources=state["dfs"]["sources"])
            self.dfs.load_state_dict(state["dfs"])
