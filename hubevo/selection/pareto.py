"""Stage 3, select: Pareto fronts over the per-task fitness scores (pure; NSGA-II and the reports use them).

A candidate is on the front when no other candidate scores at least as well on every
fitness task and better on one. The results table flags the front and plots it
(`hubevo.publish.front`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of `points` (n x objectives, maximised) that no other row dominates.

    Rows are visited best total first, so whoever dominates a row comes before it and a dominated
    row is always beaten by a row already on the front: each row is compared with the front only
    (n x front, not n x n)."""
    points = np.asarray(points, dtype=float)
    mask = np.zeros(len(points), dtype=bool)
    kept: list[int] = []
    for i in np.argsort(-points.sum(axis=1), kind="stable"):
        ahead = points[kept]  # front x objectives
        if not ((ahead >= points[i]).all(axis=1) & (ahead > points[i]).any(axis=1)).any():
            kept.append(i)
            mask[i] = True
    return mask


def front(scores: Mapping[str, Mapping[str, float]], tasks: Sequence[str]) -> list[str]:
    """Ids on the Pareto front of `scores` (id -> task -> score) over `tasks`."""
    ids = [i for i, s in scores.items() if all(t in s for t in tasks)]
    if not ids or not tasks:
        return []
    mask = non_dominated(np.array([[scores[i][t] for t in tasks] for i in ids]))
    return [i for i, keep in zip(ids, mask, strict=True) if keep]
