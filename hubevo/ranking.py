"""Stage 3's one ordering rule: who is better, and who is the champion.

Every view that names a best model (the run state, the strategies' elites, the generation
summary, the log line, the leaderboard, the Space and the Hub push) orders candidates with
`rank_key`, so a tie in fitness is broken the same way everywhere: the candidate evaluated
in the earlier generation first, then the smaller id. Only fully evaluated candidates
(status `ok`) rank; failed and raced-out ones never become the champion.

The champion is picked in the finals when there are any: the finalists (the top-k by
fitness, scored on validation examples that no fitness sample holds) are ranked by their
validation score with the same rule, so overfitting the fitness sample does not crown a
candidate. Without finals, the best by fitness is the champion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol


class Scored(Protocol):
    id: str
    generation: int
    status: str
    fitness: float | None


def rank_key(fitness: float, generation: int, cid: str) -> tuple:
    """Sort key, ascending = best first: higher fitness, then earlier evaluation, then smaller id."""
    return (-float(fitness), int(generation), str(cid))


def ranked(evaluations: Iterable[Scored], *, upto: int | None = None) -> list[str]:
    """Ids of the fully evaluated candidates, best first (`upto`: evaluated in generation <= upto)."""
    ok = [e for e in evaluations if e.status == "ok" and e.fitness is not None
          and (upto is None or e.generation <= upto)]
    return [e.id for e in sorted(ok, key=lambda e: rank_key(e.fitness, e.generation, e.id))]


def champion(evaluations: Iterable[Scored] | Mapping[str, Scored], *, upto: int | None = None,
             validation: Mapping[str, Scored] | None = None) -> str | None:
    """The champion: the best finalist on validation if there are finals, else the first of `ranked`.

    `validation` maps finalists to their validation scores (generation = when they were scored);
    only finalists that are fully evaluated by fitness count.
    """
    values = list(evaluations.values() if isinstance(evaluations, Mapping) else evaluations)
    ok = set(ranked(values, upto=upto))
    finals = [v for v in (validation or {}).values() if v.id in ok]
    order = ranked(finals, upto=upto) or [i for i in ranked(values, upto=upto)]
    return order[0] if order else None


def best_of(fitness: Mapping[str, float], generations: Mapping[str, int], *, k: int) -> list[str]:
    """The `k` best ids of a fitness map (a strategy's view), by `rank_key`."""
    order = sorted(fitness, key=lambda i: rank_key(fitness[i], generations.get(i, 0), i))
    return order[:k]
