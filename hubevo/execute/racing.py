"""Stage 2 with racing: successive halving over a generation's candidates, on any backend.

Racing is a policy over a backend: every candidate job is first scored on a small first
slice of the generation's fitness sample; the best `keep` fraction is promoted to the next
slice, and so on; only the finalists see the whole sample, so their fitness is exactly what
a full evaluation gives (rung scores are combined as example-weighted means, which is exact
for per-example metrics such as accuracy or exact match). Each rung is one call of the
backend's `evaluate` with the jobs' `sample` set to the rung's slice, so racing works with
Ray and with fine-tuned children (trained once, in the first rung). Candidates raced out
keep their estimate and the examples they consumed, with status `raced_out`, no fitness,
their partial per-task scores and a reason; they are never champions or GA parents, while
search strategies still rank them below every finalist (`order_key`). Protected candidates
(the seeds) are always promoted.

A race is atomic per generation: its evaluations are recorded when it ends, so a run killed
mid-race runs the race again on resume and gets the same outcome.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from hubevo.evaluation.outcomes import merged
from hubevo.evaluation.plan import Sample
from hubevo.evaluation.records import Evaluation, TaskOutcomes
from hubevo.execute.runner import CandidateJob

log = logging.getLogger("hubevo")


RACED_OUT = "raced out"


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
    variances: dict[str, float] = field(default_factory=dict)  # sum over rungs of (n * stderr)^2
    rung: int = 0
    error: str | None = None
    seconds: float = 0.0
    outcomes: dict[str, TaskOutcomes] = field(default_factory=dict)  # every rung's per-example values, merged

    def keep(self, outcomes: Mapping[str, TaskOutcomes]) -> None:
        for task, part in outcomes.items():
            self.outcomes[task] = merged(self.outcomes.get(task), part)

    def add(self, scores: Mapping[str, float], part: Sample, stderrs: Mapping[str, float] | None = None) -> None:
        for task, value in scores.items():
            n = len(part[task])
            self.sums[task] = self.sums.get(task, 0.0) + value * n
            self.counts[task] = self.counts.get(task, 0) + n
            if stderrs and task in stderrs:
                self.variances[task] = self.variances.get(task, 0.0) + (n * stderrs[task]) ** 2

    @property
    def scores(self) -> dict[str, float]:
        return {t: self.sums[t] / n for t, n in self.counts.items() if n}

    @property
    def stderrs(self) -> dict[str, float]:
        """Each task's stderr over every rung (the rung means combined as independent parts)."""
        return {t: math.sqrt(v) / self.counts[t] for t, v in self.variances.items() if self.counts.get(t)}

    @property
    def examples(self) -> int:
        return sum(self.counts.values())


Scorer = Callable[[Sequence[CandidateJob]], Iterable[Evaluation]]  # a backend's `evaluate`


def successive_halving(
    jobs: Sequence[CandidateJob],
    *,
    evaluate: Scorer,
    slices: Sequence[Sample],
    fitness: Callable[[Mapping[str, float]], float],
    keep: float,
    min_keep: int = 1,
    protect: frozenset[str] = frozenset(),
) -> dict[str, Tally]:
    """Race `jobs` over `slices`; `evaluate` scores jobs on their `sample` (a failed Evaluation = broken)."""
    tallies = {job.id: Tally() for job in jobs}
    alive = list(jobs)
    for rung, part in enumerate(slices):
        for ev in evaluate([replace(job, sample=part) for job in alive]):
            tally = tallies[ev.id]
            tally.rung, tally.seconds = rung, tally.seconds + ev.seconds
            if ev.status == "ok":
                tally.add(ev.scores, part, ev.stderrs)
                tally.keep(ev.outcomes)
            else:
                tally.error = ev.reason or "failed"
        alive = [job for job in alive if tallies[job.id].error is None]
        if rung < len(slices) - 1:
            alive = promoted(alive, tallies, fitness=fitness, keep=keep, min_keep=min_keep, protect=protect)
    return tallies


def promoted(alive: list[CandidateJob], tallies: Mapping[str, Tally], *, fitness, keep: float, min_keep: int,
             protect: frozenset[str]) -> list[CandidateJob]:
    """The best `keep` fraction (at least `min_keep`) and every protected job; stable, so ties keep ask order."""
    ranked_jobs = sorted(alive, key=lambda job: fitness(tallies[job.id].scores), reverse=True)
    kept = {job.id for job in ranked_jobs[: max(min_keep, math.ceil(keep * len(alive)))]} | set(protect)
    return [job for job in alive if job.id in kept]


def to_evaluation(cid: str, tally: Tally, *, generation: int, finalist: bool, rungs: int, fitness) -> Evaluation:
    common = {"id": cid, "generation": generation, "examples": tally.examples, "seconds": tally.seconds}
    if tally.error is not None:
        return Evaluation(status="failed", reason=tally.error, **common)
    value = fitness(tally.scores)
    if finalist:
        return Evaluation(status="ok", fitness=value, scores=tally.scores, stderrs=tally.stderrs,
                          outcomes=tally.outcomes, **common)
    reason = (f"{RACED_OUT} at rung {tally.rung + 1} of {rungs}: "
              f"fitness estimate {value:.4f} on {tally.examples} examples")
    return Evaluation(status="raced_out", reason=reason, scores=tally.scores, **common)


def race(jobs: Sequence[CandidateJob], *, evaluate: Scorer, order: Mapping[str, Sequence[int]], rungs: Sequence[int],
         keep: float, min_keep: int, fitness, protect: frozenset[str] = frozenset()) -> Iterator[Evaluation]:
    """Race one generation's jobs over the rungs of `order` (its whole fitness sample); yield every evaluation."""
    slices = rung_slices(order, rungs)
    tallies = successive_halving(jobs, evaluate=evaluate, slices=slices, fitness=fitness, keep=keep,
                                 min_keep=min_keep, protect=protect)
    generation = jobs[0].generation if jobs else 0
    for job in jobs:
        tally = tallies[job.id]
        ev = to_evaluation(job.id, tally, generation=generation, finalist=tally.rung == len(slices) - 1,
                           rungs=len(slices), fitness=fitness)
        log.debug("raced %s: %s", job.name, ev.reason or f"finalist, fitness {ev.fitness:.4f}")
        yield ev
