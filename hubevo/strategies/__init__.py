"""Search strategies: each speaks ask/tell and serialises its whole state into the run state.

`ga` is EvoMerge's population GA (roulette or tournament selection, elitism,
crossover by merging, mutation). A strategy is registered by name; an unknown
name lists what exists.
"""

from __future__ import annotations

from hubevo.errors import UnknownNameError
from hubevo.strategies.base import Strategy
from hubevo.strategies.ga import GeneticAlgorithm

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (GeneticAlgorithm,)}


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str) -> type[Strategy]:
    if name not in STRATEGIES:
        raise UnknownNameError(f"unknown search strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name]
