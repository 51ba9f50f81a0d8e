"""Stage 3, select: elites and parents from fitness values (pure functions).

EvoMerge: roulette wheel with some randomness to keep diversity, and the top-k
carried unchanged. Failed candidates (fitness None) are never selected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from hubevo.config import SelectionConfig
from hubevo.registry import Registry

Picker = Callable[[list[str], np.ndarray, SelectionConfig, np.random.Generator], str]


def ranked(fitness: Mapping[str, float | None]) -> list[str]:
    """Ids of successful candidates, best first; ties broken by id for determinism."""
    alive = [(score, cid) for cid, score in fitness.items() if score is not None]
    return [cid for score, cid in sorted(alive, key=lambda item: (-item[0], item[1]))]


def elites(fitness: Mapping[str, float | None], *, k: int) -> list[str]:
    return ranked(fitness)[:k]


def roulette(ids: list[str], scores: np.ndarray, cfg: SelectionConfig, rng: np.random.Generator) -> str:
    shifted = scores - scores.min() + 1e-6  # fitness may be zero or negative
    return ids[rng.choice(len(ids), p=shifted / shifted.sum())]


def tournament(ids: list[str], scores: np.ndarray, cfg: SelectionConfig, rng: np.random.Generator) -> str:
    entrants = rng.choice(len(ids), size=min(cfg.tournament_size, len(ids)), replace=False)
    return ids[max(entrants, key=lambda i: (scores[i], -i))]


PICKERS = Registry("selection method", {"roulette": roulette, "tournament": tournament})


def pick_parents(
    fitness: Mapping[str, float | None], *, n: int, cfg: SelectionConfig, rng: np.random.Generator
) -> tuple[str, ...]:
    """`n` distinct parents (fewer only if fewer candidates are alive)."""
    picker = PICKERS[cfg.method]
    pool = ranked(fitness)
    chosen: list[str] = []
    while len(chosen) < min(n, len(pool)):
        ids = [cid for cid in pool if cid not in chosen]
        scores = np.array([fitness[cid] for cid in ids], dtype=float)
        if rng.random() < cfg.random_pick_prob:
            chosen.append(ids[rng.integers(len(ids))])
        else:
            chosen.append(picker(ids, scores, cfg, rng))
    return tuple(chosen)
