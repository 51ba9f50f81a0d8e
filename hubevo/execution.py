"""Stage 2's engine: where candidates are materialised and scored.

`local` evaluates one candidate at a time in this process with one resident model.
Other backends (a Ray cluster) implement the same `evaluate` and yield evaluations
as they finish; the driver's run state stays the single source of truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from hubevo.errors import CandidateError, UnknownNameError
from hubevo.genome import Individual
from hubevo.state import Evaluation

if TYPE_CHECKING:
    from hubevo.loop import Run

log = logging.getLogger("hubevo")


def score_candidate(run: "Run", ind: Individual, *, generation: int) -> Evaluation:
    """Materialise `ind` in the resident model and score it; a failure becomes a failed Evaluation."""
    started = time.perf_counter()
    try:
        model = run.materializer.materialize(run.merge_config(ind))
        fitness, scores, used = run.evaluator.fitness(model, run.tokenizer, generation=generation)
    except CandidateError as err:
        log.warning("candidate %s failed: %s", ind.name, err)
        return Evaluation(id=ind.id, generation=generation, status="failed", reason=str(err),
                          seconds=time.perf_counter() - started)
    return Evaluation(id=ind.id, generation=generation, status="ok", fitness=fitness, scores=scores,
                      examples=used, seconds=time.perf_counter() - started)


class LocalBackend:
    """One candidate at a time, in this process."""

    name = "local"

    def __init__(self, run: "Run"):
        self.run = run

    def evaluate(self, candidates: Iterable[Individual], *, generation: int) -> Iterator[Evaluation]:
        for ind in candidates:
            yield score_candidate(self.run, ind, generation=generation)

    def close(self) -> None:
        pass


BACKENDS = {"local": LocalBackend}


def get_backend(name: str):
    if name not in BACKENDS:
        raise UnknownNameError(f"unknown execution backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]
