"""Stage 2, evaluate: per-example outcomes of several candidates, aligned on the examples all of them scored (pure).

Every fitness and validation score keeps its per-example values (`TaskOutcomes`) and, since they may
be on different examples (a cheap-fitness subset, a resampled generation), the document index of each.
`aligned` lays them out as one models x examples matrix per task over the examples every one of
them really scored: what paired comparisons, estimators and niches read. Older records without
document indices are on the run's fixed sample, keyed by their position within their sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hubevo.evaluation.records import Evaluation, TaskOutcomes


@dataclass(frozen=True)
class Aligned:
    """`values[task]` is len(ids) x len(docs[task]), on the examples every model in `ids` scored."""

    ids: list[str]
    weights: dict[str, float]
    docs: dict[str, list]
    values: dict[str, np.ndarray]

    @property
    def examples(self) -> int:
        return sum(len(d) for d in self.docs.values())

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """All tasks side by side: models x examples, and each column's share of the fitness (weight / count)."""
        tasks = sorted(self.values)
        columns = np.hstack([self.values[t] for t in tasks]) if tasks else np.zeros((len(self.ids), 0))
        share = np.concatenate([np.full(len(self.docs[t]), self.weights[t] / max(len(self.docs[t]), 1))
                                for t in tasks]) if tasks else np.zeros(0)
        return columns, share / share.sum() if share.size else share


def merged(first: TaskOutcomes | None, second: TaskOutcomes) -> TaskOutcomes:
    """Two parts of one task's outcomes (each with document indices) as one, in document order; `first`'s weight."""
    pairs = sorted(zip([*(first.docs if first else []), *(second.docs or [])],
                       [*(first.values if first else []), *second.values], strict=True))
    return TaskOutcomes(weight=first.weight if first else second.weight, values=[v for _, v in pairs],
                        docs=[d for d, _ in pairs])


def keys(evaluation: Evaluation, task: str) -> list:
    """The example keys of `evaluation`'s values on `task`: document indices, or (sample, position) for old records."""
    outcome: TaskOutcomes = evaluation.outcomes[task]
    if outcome.docs is not None:
        return list(outcome.docs)
    return [(evaluation.sample, k) for k in range(len(outcome.values))]


def aligned(evaluations: Mapping[str, Evaluation], *, ids: Sequence[str] | None = None) -> Aligned | None:
    """The per-example values of `ids` (default all; only those with outcomes on every task of the first such)
    on the examples all of them scored; None when no evaluation kept outcomes or they share no example."""
    chosen = [i for i in (ids if ids is not None else list(evaluations)) if evaluations[i].outcomes]
    if not chosen:
        return None
    tasks = sorted(evaluations[chosen[0]].outcomes)
    chosen = [i for i in chosen if set(evaluations[i].outcomes) >= set(tasks)]
    docs, values = {}, {}
    for task in tasks:
        common = set(keys(evaluations[chosen[0]], task))
        for i in chosen[1:]:
            common &= set(keys(evaluations[i], task))
        order = [k for k in keys(evaluations[chosen[0]], task) if k in common]
        if not order:
            return None
        docs[task] = order
        rows = []
        for i in chosen:
            by_key = dict(zip(keys(evaluations[i], task), evaluations[i].outcomes[task].values, strict=True))
            rows.append([by_key[k] for k in order])
        values[task] = np.asarray(rows, dtype=float)
    weights = {t: evaluations[chosen[0]].outcomes[t].weight for t in tasks}
    return Aligned(ids=chosen, weights=weights, docs=docs, values=values)
