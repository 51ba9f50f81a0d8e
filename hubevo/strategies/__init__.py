"""Search strategies: each speaks ask/tell over a read-only view of the population.

`ga` is EvoMerge's population GA (roulette or tournament selection, elitism,
crossover by merging, mutation); `nsga2` breeds the same way but keeps a Pareto front
over the per-task scores; `cmaes` (parameter space), `dfs` (data-flow space) and
`psdfs` (one, then the other) are the CMA-ES searches of Akiba et al. (2024); `random`
samples the `cmaes` space uniformly. A strategy is registered by name ("module:Class",
imported on first use, so validating a config imports none of them); an unknown name
lists what exists. Options are validated in `options.py`.
"""

from __future__ import annotations

import importlib

from hubevo.errors import UnknownNameError

STRATEGIES: dict[str, object] = {
    "ga": "hubevo.strategies.ga:GeneticAlgorithm",
    "cmaes": "hubevo.strategies.cmaes:CMAES",
    "dfs": "hubevo.strategies.dfs:DFS",
    "psdfs": "hubevo.strategies.dfs:PSDFS",
    "nsga2": "hubevo.strategies.nsga2:NSGA2",
    "random": "hubevo.strategies.random_search:RandomSearch",
}


def register(cls):
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str):
    if name not in STRATEGIES:
        raise UnknownNameError(f"unknown search strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
    entry = STRATEGIES[name]
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = STRATEGIES[name] = getattr(importlib.import_module(module), attr)
    return entry
