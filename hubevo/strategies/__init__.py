"""Search strategies: each speaks ask/tell and serialises its whole state into the run state.

`ga` is EvoMerge's population GA (roulette or tournament selection, elitism,
crossover by merging, mutation); `nsga2` breeds the same way but keeps a Pareto front
over the per-task scores; `cmaes` (parameter space), `dfs` (data-flow space) and
`psdfs` (one, then the other) are the CMA-ES searches of Akiba et al. (2024); `random`
samples the `cmaes` space uniformly. A strategy is registered by name; an unknown
name lists what exists.
"""

from __future__ import annotations

from hubevo.errors import UnknownNameError
from hubevo.strategies.base import Strategy
from hubevo.strategies.cmaes import CMAES
from hubevo.strategies.dfs import DFS, PSDFS
from hubevo.strategies.ga import GeneticAlgorithm
from hubevo.strategies.nsga2 import NSGA2
from hubevo.strategies.random_search import RandomSearch

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (GeneticAlgorithm, CMAES, DFS, PSDFS, NSGA2, RandomSearch)
}


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str) -> type[Strategy]:
    if name not in STRATEGIES:
        raise UnknownNameError(f"unknown search strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name]
