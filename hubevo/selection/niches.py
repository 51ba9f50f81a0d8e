"""Stage 3, select: natural niches (Abrantes, Lange & Tang 2025, M2N2): resource competition and attraction.

Every fitness example is a resource shared by the models that solve it. Over a models x examples
matrix `s` (per-example scores, clipped at 0) and each example's share of the fitness `share`:
- `z_j = (sum_i s_ij)^alpha` is how crowded example j is;
- `f_ij = share_j * s_ij / z_j` is what model i draws from it, and `sum_j f_ij` its competition fitness,
  so a model that alone solves rare examples is worth keeping even with a lower mean;
- a second parent k is attracted to the first, p, by `sum_j max(0, f_kj - f_pj)`: it is strong exactly
  where p is weak.
`niches` names, for each model, the examples it alone solves among the others. The matrices come from
`hubevo.evaluation.outcomes.aligned` (the examples every model really scored). Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hubevo.evaluation.outcomes import Aligned, aligned
from hubevo.evaluation.records import Evaluation


def resources(scores: np.ndarray, share: np.ndarray, *, alpha: float) -> np.ndarray:
    """f: models x examples, each model's draw on each example (0 where nobody solves it)."""
    s = np.clip(np.asarray(scores, dtype=float), 0.0, None)
    totals = s.sum(axis=0)
    z = np.where(totals > 0, totals, 1.0) ** alpha
    return s * (np.asarray(share, dtype=float) / z)


def competition_fitness(scores: np.ndarray, share: np.ndarray, *, alpha: float) -> np.ndarray:
    """Each model's `sum_j s_ij / z_j`, examples weighted by their share of the fitness."""
    return resources(scores, share, alpha=alpha).sum(axis=1)


def attraction(scores: np.ndarray, share: np.ndarray, *, first: int, alpha: float) -> np.ndarray:
    """How much each model is stronger than model `first` where `first` is weak (0 for `first` itself)."""
    f = resources(scores, share, alpha=alpha)
    pull = np.clip(f - f[first], 0.0, None).sum(axis=1)
    pull[first] = 0.0
    return pull


def drawn(weights: np.ndarray, rng: np.random.Generator, *, allowed: np.ndarray | None = None) -> int:
    """An index drawn in proportion to `weights` among `allowed` (uniformly when they are all 0)."""
    mask = np.ones(len(weights), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    w = np.where(mask, np.clip(weights, 0.0, None), 0.0)
    p = w / w.sum() if w.sum() > 0 else mask / mask.sum()
    return int(rng.choice(len(weights), p=p))


def weakest(scores: np.ndarray, share: np.ndarray, *, alpha: float, ids: Sequence[str]) -> int:
    """The index of the model with the least competition fitness (ties: the smallest id)."""
    fitness = competition_fitness(scores, share, alpha=alpha)
    return min(range(len(ids)), key=lambda i: (round(float(fitness[i]), 12), ids[i]))


def outcome_matrix(evaluations: Mapping[str, Evaluation], ids: Sequence[str]) -> tuple[list[str], np.ndarray,
                                                                                      np.ndarray, Aligned | None]:
    """(ids that kept outcomes, their models x examples scores, each column's share, the alignment) on the
    examples all of them scored; without common outcomes, one column of mean fitness per model."""
    table = aligned(evaluations, ids=list(ids))
    if table is None or len(table.ids) < len(ids):
        kept = [i for i in ids if evaluations[i].fitness is not None]
        return kept, np.array([[evaluations[i].fitness] for i in kept], dtype=float), np.ones(1), None
    scores, share = table.matrix()
    return table.ids, scores, share, table


def niches(evaluations: Mapping[str, Evaluation], ids: Sequence[str], *, shown: int = 5) -> dict[str, dict]:
    """For each of `ids`: how many fitness examples it alone solves among `ids`, and the first `shown` of them
    as `task:doc` (document index, or the position within its sample for older records)."""
    kept, scores, _share, table = outcome_matrix(evaluations, ids)
    if table is None:
        return {}
    names = [f"{task}:{doc[-1] if isinstance(doc, tuple) else doc}" for task in sorted(table.values)
             for doc in table.docs[task]]
    solved = scores > 0
    alone = solved & (solved.sum(axis=0) == 1)
    return {cid: {"alone": int(alone[row].sum()), "examples": [names[j] for j in np.flatnonzero(alone[row])[:shown]]}
            for row, cid in enumerate(kept)}
