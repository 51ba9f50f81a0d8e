"""Stage 2 with racing: successive halving over a generation's candidates.

Every candidate is scored on a small first slice of the generation's fitness sample; the
best `keep` fraction is promoted to the next slice, and so on; only the finalists see the
whole sample, so their fitness is exactly what a full evaluation gives (rung scores are
combined as example-weighted means, which is exact for per-example metrics such as
accuracy or exact match). Candidates raced out keep their estimate and the examples they
consumed: they are recorded as `failed`, with no fitness, their partial per-task scores and a
reason starting "raced out", so they are never champions or GA parents, while search
strategies still rank them below every finalist (`order_key`).

A race is atomic per generation: its evaluations are recorded when it ends, so a run killed
mid-race runs the race again on resume and gets the same outcome.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hubevo.errors import CandidateError
from hubevo.state import Evaluation

if TYPE_CHECKING:
    from hubevo.genome import Individual
    from hubevo.loop import Run

log = logging.getLogger("hubevo")

RACED_OUT = "raced out"
Sample = dict[str, list[int]]  # task -> document indices


def raced_out(ev: Evaluation) -> bool:
    return ev.status == "failed" and (ev.reason or "").startswith(RACED_OUT)


def order_key(ev: Evaluation | None) -> tuple:
    """Sort key, higher is better: full evaluations by fitness, then raced-out ones by how far they got."""
    if ev is None:
        return (0, 0, 0.0)
    if ev.status == "ok":
        return (3, 0, ev.fitness)
    if raced_out(ev):  # its fitness is unknown; its scores are estimates on `examples` examples
        return (2, ev.examples, sum(ev.scores.values()) / max(len(ev.scores), 1))
    return (1, 0, 0.0)


def ranked_losses(evaluations: Sequence[Evaluation | None]) -> list[float]:
    """Losses to minimise: -fitness for full evaluations; everyone else ranked after the worst of them."""
    ok = [-ev.fitness for ev in evaluations if ev is not None and ev.status == "ok"]
    floor = max(ok, default=0.0) + 1.0
    others = sorted({order_key(ev) for ev in evaluations if ev is None or ev.status != "ok"}, reverse=True)
    return [-ev.fitness if ev is not None and ev.status == "ok" else floor + others.index(order_key(ev))
            for ev in evaluations]


def rung_slices(order: Mapping[str, Sequence[int]], rungs: Sequence[int]) -> list[Sample]:
    """The new examples each rung adds, per task: rung k scores order[n(k-1):n(k)]; the last completes it."""
    slices, done = [], dict.fromkeys(order, 0)
    for size in [*rungs, math.inf]:
        part = {t: sorted(idx[done[t]:min(size, len(idx))]) for t, idx in order.items()}
        part = {t: idx for t, idx in part.items() if idx}
        if part:
            slices.append(part)
        done = {t: done[t] + len(part.get(t, [])) for t in order}
    return slices


@dataclass
class Tally:
    """Example-weighted running scores of one candidate across rungs."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    rung: int = 0
    error: str | None = None
    seconds: float = 0.0

    def add(self, scores: Mapping[str, float], part: Sample) -> None:
        for task, value in scores.items():
            n = len(part[task])
            self.sums[task] = self.sums.get(task, 0.0) + value * n
            self.counts[task] = self.counts.get(task, 0) + n

    @property
    def scores(self) -> dict[str, float]:
        return {t: self.sums[t] / n for t, n in self.counts.items() if n}

    @property
    def examples(self) -> int:
        return sum(self.counts.values())


def successive_halving(
    ids: Sequence[str],
    *,
    score: Callable[[str, Sample], Mapping[str, float]],
    slices: Sequence[Sample],
    fitness: Callable[[Mapping[str, float]], float],
    keep: float,
    min_keep: int = 1,
) -> dict[str, Tally]:
    """Race `ids` over `slices`; `score(id, part)` raises CandidateError for a broken candidate."""
    tallies = {i: Tally() for i in ids}
    alive = list(ids)
    for rung, part in enumerate(slices):
        for cid in alive:
            started = time.perf_counter()
            try:
                tallies[cid].add(score(cid, part), part)
            except CandidateError as err:
                tallies[cid].error = str(err)
            tallies[cid].rung, tallies[cid].seconds = rung, tallies[cid].seconds + time.perf_counter() - started
        alive = [c for c in alive if tallies[c].error is None]
        if rung < len(slices) - 1:
            alive.sort(key=lambda c: fitness(tallies[c].scores), reverse=True)  # stable: ties keep ask order
            alive = alive[: max(min_keep, math.ceil(keep * len(alive)))]
    return tallies


def to_evaluation(cid: str, tally: Tally, *, generation: int, finalist: bool, rungs: int, fitness) -> Evaluation:
    common = {"id": cid, "generation": generation, "examples": tally.examples, "seconds": tally.seconds}
    if tally.error is not None:
        return Evaluation(status="failed", reason=tally.error, **common)
    value = fitness(tally.scores)
    if finalist:
        return Evaluation(status="ok", fitness=value, scores=tally.scores, **common)
    reason = (f"{RACED_OUT} at rung {tally.rung + 1} of {rungs}: "
              f"fitness estimate {value:.4f} on {tally.examples} examples")
    return Evaluation(status="failed", reason=reason, scores=tally.scores, **common)


def race_generation(run: "Run", candidates: Sequence["Individual"], *, generation: int) -> Iterator[Evaluation]:
    """Race this generation's unevaluated candidates (within the evaluation budget); yield every evaluation."""
    from hubevo.evaluation import weighted_fitness

    cfg, evaluator = run.cfg, run.evaluator
    budget = cfg.budget.max_evaluations
    if budget is not None:
        candidates = candidates[: max(0, budget - len(run.state.evaluations))]
    by_id = {ind.id: ind for ind in candidates}
    slices = rung_slices(evaluator.racing_order(generation), cfg.fitness.racing.rungs)
    fitness = lambda scores: weighted_fitness(scores, cfg.fitness.tasks)  # noqa: E731

    def score(cid: str, part: Sample) -> Mapping[str, float]:
        model = run.materializer.materialize(run.merge_config(by_id[cid]))
        tasks = [t for t in cfg.fitness.tasks if t.name in part]
        return evaluator.score(model, run.tokenizer, tasks=tasks, samples=part)

    racing = cfg.fitness.racing
    tallies = successive_halving(list(by_id), score=score, slices=slices, fitness=fitness,
                                 keep=racing.keep, min_keep=racing.min_keep)
    last = len(slices) - 1
    for cid, tally in tallies.items():
        ev = to_evaluation(cid, tally, generation=generation, finalist=tally.rung == last, rungs=len(slices),
                           fitness=fitness)
        log.debug("raced %s: %s", by_id[cid].name, ev.reason or f"finalist, fitness {ev.fitness:.4f}")
        yield ev
