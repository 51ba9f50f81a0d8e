"""Stage 3's one ordering rule: who is better, and who is the champion.

Every view that names a best model (the run state, the strategies' elites, the generation
summary, the log line, the leaderboard, the Space and the Hub push) orders candidates with
`rank_key`, so a tie in fitness is broken the same way everywhere: the candidate evaluated
in the earlier generation first, then the smaller id. Only fully evaluated candidates
(status `ok`) rank; failed and raced-out ones never become the champion.

The champion is picked in the finals when there are any: the finalists (the top-k by
fitness, scored on validation examples that no fitness sample holds) are ranked by their
validation score with the same rule, so overfitting the fitness sample does not crown a
candidate. A bred candidate must also beat the best of the simple things (the members and the
standard recipes, `incumbents`) on validation by more than `CHALLENGER_MARGIN` standard errors
of the lead, paired example by example on the validation examples both were scored on; a lead
within noise leaves the best simple thing the champion, so a run never crowns a candidate that
is only luckier on the validation examples. Without finals, the best
by fitness is the champion.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

CHALLENGER_MARGIN = 1.0  # standard errors of the validation lead a bred candidate needs over the incumbent


class Scored(Protocol):
    id: str
    generation: int
    status: str
    fitness: float | None
    stderr: float | None


def rank_key(fitness: float, generation: int, cid: str) -> tuple:
    """Sort key, ascending = best first: higher fitness, then earlier evaluation, then smaller id."""
    return (-float(fitness), int(generation), str(cid))


def ranked(evaluations: Iterable[Scored], *, upto: int | None = None) -> list[str]:
    """Ids of the fully evaluated candidates, best first (`upto`: evaluated in generation <= upto)."""
    ok = [e for e in evaluations if e.status == "ok" and e.fitness is not None
          and (upto is None or e.generation <= upto)]
    return [e.id for e in sorted(ok, key=lambda e: rank_key(e.fitness, e.generation, e.id))]


def champion(evaluations: Iterable[Scored] | Mapping[str, Scored], *, upto: int | None = None,
             validation: Mapping[str, Scored] | None = None, incumbents: Collection[str] = ()) -> str | None:
    """The champion: the best finalist on validation if there are finals, else the first of `ranked`.

    `validation` maps finalists to their validation scores (generation = when they were scored);
    only finalists that are fully evaluated by fitness count. With `incumbents` (members and
    standard recipes), a finalist outside them wins only by a lead beyond noise (`beats`).
    """
    values = list(evaluations.values() if isinstance(evaluations, Mapping) else evaluations)
    by_fitness = ranked(values, upto=upto)
    ok = set(by_fitness)
    finals = {v.id: v for v in (validation or {}).values() if v.id in ok}
    return crowned(finals, best=by_fitness[0] if by_fitness else None, upto=upto, incumbents=incumbents)


def crowned(finals: Mapping[str, Scored], *, best: str | None, upto: int | None,
            incumbents: Collection[str]) -> str | None:
    """The champion among `finals` (validation scores of fully evaluated finalists), else `best` by fitness."""
    order = ranked(finals.values(), upto=upto)
    if not order:
        return best
    holder = next((i for i in order if i in incumbents), None)
    if holder is None or order[0] in incumbents or beats(finals[order[0]], finals[holder]):
        return order[0]
    return holder


def champions_upto(evaluations: Iterable[Scored], generations: Iterable[int], *,
                   validation: Mapping[str, Scored] | None = None,
                   incumbents: Collection[str] = ()) -> dict[int, str | None]:
    """`champion(upto=g)` for every g in `generations`, in one pass over the evaluations (not one per g)."""
    scores = {v.id: v for v in (validation or {}).values()}
    ok = sorted((e for e in evaluations if e.status == "ok" and e.fitness is not None), key=lambda e: e.generation)
    key = lambda e: rank_key(e.fitness, e.generation, e.id)  # noqa: E731
    out, best, finals, seen = {}, None, {}, 0
    for generation in sorted(generations):
        while seen < len(ok) and ok[seen].generation <= generation:
            e, seen = ok[seen], seen + 1
            best = e if best is None or key(e) < key(best) else best
            if e.id in scores:
                finals[e.id] = scores[e.id]
        out[generation] = crowned(finals, best=best.id if best else None, upto=generation, incumbents=incumbents)
    return out


def beats(challenger: Scored, incumbent: Scored, *, margin: float = CHALLENGER_MARGIN) -> bool:
    """Whether `challenger` leads `incumbent` by more than `margin` standard errors of the lead: paired over
    the same examples when both kept their per-example values, else the two standard errors combined."""
    noise = paired_stderr(challenger, incumbent)
    if noise is None:
        noise = math.hypot(challenger.stderr or 0.0, incumbent.stderr or 0.0)
    return challenger.fitness - incumbent.fitness > margin * noise


def paired_stderr(a: Scored, b: Scored) -> float | None:
    """Standard error of the fitness difference a - b from the per-example differences on each task (the
    tasks weighted as in the fitness); None unless both scored the same examples of the same tasks.

    Two models scored on one set of examples agree on most of them, so the paired error is far
    smaller than the two errors combined as if independent: leads of a point become visible."""
    first, second = getattr(a, "outcomes", None) or {}, getattr(b, "outcomes", None) or {}
    if not first or set(first) != set(second):
        return None
    variance = 0.0
    for task, mine in first.items():
        theirs = second[task]
        if len(mine.values) != len(theirs.values) or len(mine.values) < 2:
            return None
        diff = [x - y for x, y in zip(mine.values, theirs.values, strict=True)]
        mean = sum(diff) / len(diff)
        variance += mine.weight ** 2 * sum((d - mean) ** 2 for d in diff) / (len(diff) - 1) / len(diff)
    return math.sqrt(variance)


def best_of(fitness: Mapping[str, float], generations: Mapping[str, int], *, k: int) -> list[str]:
    """The `k` best ids of a fitness map (a strategy's view), by `rank_key`."""
    order = sorted(fitness, key=lambda i: rank_key(fitness[i], generations.get(i, 0), i))
    return order[:k]
