"""Stage 3's one ordering rule: who is better, and who is the champion.

Every view that names a best model (the run state, the strategies' elites, the generation
summary, the log line, the leaderboard, the Space and the Hub push) orders candidates with
`rank_key`, so a tie in fitness is broken the same way everywhere: the candidate evaluated
in the earlier generation first, then the smaller id. Only fully evaluated candidates
(status `ok`) rank; failed and raced-out ones never become the champion.

The champion is decided in the finals when there are any (`decide`): the finalists (the top-k by
fitness, the best member, the best standard recipe and the strategy's soups) are scored on
validation examples that no fitness sample holds. The rule, `evidence`, uses every score the run has:

- The incumbents (the members and the standard recipes) were not picked as the best of many, so
  their fitness is as unbiased as their validation score: the holder is the incumbent finalist with
  the best score over both, pooled by examples.
- A bred finalist's lead over the holder is measured twice, paired example by example: on the
  validation examples, and on the fitness sample both were scored on. Its fitness lead is
  optimistic (it was picked as the best of many: the winner's curse), so it is shrunk by the
  mean amount by which the bred finalists' fitness leads exceed their validation leads (never
  less than 0), and the two measurements are averaged with weights that minimise the variance.
- The error of that estimate comes from a paired, per-task bootstrap over the examples (the
  shrink re-estimated in every resample), so it stays honest for a model near 0 or 1 on a task
  and for finalists that move together on a shared draw.
- The bred finalist with the largest estimated lead is champion when that lead is above 0
  (`CHALLENGER_MARGIN` standard errors: the better estimate wins); otherwise the holder stays.
  `Decision` records the comparison, and every report (generation summary, terminal, cards,
  Space) prints that decision: the lead, its error and how many standard errors it is.

The margin was measured, not assumed (`bench/champion_rule.py`, simulated runs with known true
scores; `bench/quality.py`, real searches): a margin of one standard error kept the holder where
bred finalists were better more often than it saved a worse one, and its regret was twice as
large.

`validation`, the previous rule (finalists ranked on validation alone, a bred one crowned by a
paired lead of one standard error over the best incumbent), stays in `RULES` so that
`bench/quality.py` measures both on the same runs: on the user regime (small tasks, validation
carved from them) it handed back unmodified members that the search had beaten. Without finals,
the best by fitness is the champion.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hubevo.errors import UnknownNameError
from hubevo.evaluation.outcomes import aligned, keys
from hubevo.registry import unknown_name

CHALLENGER_MARGIN = 0.0  # standard errors of its estimated lead a bred finalist needs over the holder
BOOTSTRAP = 400  # paired resamples of the examples behind a decision's standard error
DEFAULT_RULE = "evidence"


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


@dataclass(frozen=True)
class Decision:
    """Who is champion and why: the comparison every report prints (`lead` is challenger minus holder)."""

    champion: str | None
    rule: str
    holder: str | None = None  # the best incumbent (member or standard recipe) among the finalists
    challenger: str | None = None  # the best bred finalist by the rule's estimate of its lead
    lead: float | None = None
    stderr: float | None = None
    examples: int = 0  # examples the lead rests on (validation and fitness, per model)
    shrink: float | None = None  # how much the bred finalists' fitness leads were shrunk (winner's curse)
    margin: float = CHALLENGER_MARGIN

    @property
    def crowned(self) -> bool:
        """Whether the challenger won: its lead is above `margin` standard errors."""
        return self.challenger is not None and self.champion == self.challenger and self.holder is not None

    @property
    def z(self) -> float | None:
        """The lead in standard errors."""
        return None if self.lead is None or not self.stderr else self.lead / self.stderr

    @property
    def resolvable(self) -> float | None:
        """The smallest lead these finals tell from none: one standard error of it."""
        return self.stderr


def champion(evaluations: Iterable[Scored] | Mapping[str, Scored], *, upto: int | None = None,
             validation: Mapping[str, Scored] | None = None, incumbents: Collection[str] = (),
             rule: str = DEFAULT_RULE) -> str | None:
    """The champion: `decide(...).champion`."""
    return decide(evaluations, upto=upto, validation=validation, incumbents=incumbents, rule=rule).champion


def decide(evaluations: Iterable[Scored] | Mapping[str, Scored], *, upto: int | None = None,
           validation: Mapping[str, Scored] | None = None, incumbents: Collection[str] = (),
           rule: str = DEFAULT_RULE) -> Decision:
    """The champion and the comparison behind it: the rule over the finals if there are any, else the best
    by fitness. `validation` maps finalists to their validation scores; only finalists fully evaluated by
    fitness (in generation <= `upto`) count."""
    values = list(evaluations.values() if isinstance(evaluations, Mapping) else evaluations)
    by_fitness = ranked(values, upto=upto)
    kept = set(by_fitness)
    fitness = {v.id: v for v in values if v.id in kept}
    finals = {v.id: v for v in (validation or {}).values() if v.id in fitness}
    return judge(fitness, finals, best=by_fitness[0] if by_fitness else None, upto=upto,
                 incumbents=set(incumbents), rule=rule)


def judge(fitness: Mapping[str, Scored], finals: Mapping[str, Scored], *, best: str | None, upto: int | None,
          incumbents: Collection[str], rule: str = DEFAULT_RULE) -> Decision:
    """The rule over `finals` (validation scores of fully evaluated finalists), else `best` by fitness."""
    if rule not in (*RULES, "fitness"):
        raise UnknownNameError(unknown_name("champion rule", rule, [*RULES, "fitness"]))
    finals = {i: v for i, v in finals.items() if v.status == "ok" and v.fitness is not None
              and (upto is None or v.generation <= upto)}
    if not finals or rule == "fitness":
        return Decision(champion=best, rule="fitness")
    return RULES[rule](fitness, finals, incumbents)


def champions_upto(evaluations: Iterable[Scored], generations: Iterable[int], *,
                   validation: Mapping[str, Scored] | None = None,
                   incumbents: Collection[str] = ()) -> dict[int, str | None]:
    """`champion(upto=g)` for every g in `generations`, in one pass over the evaluations (not one per g)."""
    scores = {v.id: v for v in (validation or {}).values()}
    ok = sorted((e for e in evaluations if e.status == "ok" and e.fitness is not None), key=lambda e: e.generation)
    key = lambda e: rank_key(e.fitness, e.generation, e.id)  # noqa: E731
    out, best, fitness, finals, seen = {}, None, {}, {}, 0
    for generation in sorted(generations):
        while seen < len(ok) and ok[seen].generation <= generation:
            e, seen = ok[seen], seen + 1
            best = e if best is None or key(e) < key(best) else best
            fitness[e.id] = e
            if e.id in scores:
                finals[e.id] = scores[e.id]
        out[generation] = judge(fitness, finals, best=best.id if best else None, upto=generation,
                                incumbents=set(incumbents)).champion
    return out


# the rules ------------------------------------------------------------------------------------------
def by_validation(fitness: Mapping[str, Scored], finals: Mapping[str, Scored],
                  incumbents: Collection[str], *, margin: float = 1.0) -> Decision:
    """The previous rule: the best finalist on validation; a bred one must lead the best incumbent there by
    more than `margin` paired standard errors."""
    del fitness
    order = ranked(finals.values())
    holder = next((i for i in order if i in incumbents), None)
    challenger = next((i for i in order if i not in incumbents), None)
    if holder is None or challenger is None:
        return Decision(champion=order[0], rule="validation", holder=holder, challenger=challenger)
    a, b = finals[challenger], finals[holder]
    noise, lead = lead_stderr(a, b), a.fitness - b.fitness
    crowned = lead > margin * noise
    return Decision(champion=challenger if crowned else holder, rule="validation", holder=holder,
                    challenger=challenger, lead=lead, stderr=noise, examples=a.examples, margin=margin)


def by_evidence(fitness: Mapping[str, Scored], finals: Mapping[str, Scored], incumbents: Collection[str], *,
                margin: float = CHALLENGER_MARGIN) -> Decision:
    """Every score the run has (see the module docstring)."""
    simple = [i for i in finals if i in incumbents]
    bred = [i for i in finals if i not in incumbents]
    rule = "evidence" if margin == CHALLENGER_MARGIN else f"evidence-margin{margin:g}"
    if not simple or not bred:
        order = ranked(finals.values()) if not simple else sorted(simple, key=lambda i: pooled_key(i, fitness, finals))
        return Decision(champion=order[0], rule=rule, holder=order[0] if simple else None,
                        challenger=order[0] if not simple else None)
    holder = min(simple, key=lambda i: pooled_key(i, fitness, finals))
    val = Paired.of({i: finals[i] for i in [holder, *bred]})
    if val is None:  # older finals kept no per-example values: the validation rule on what they kept
        decision = by_validation(fitness, {i: finals[i] for i in [holder, *bred]}, incumbents)
        return Decision(**{**decision.__dict__, "rule": rule})
    bred = [i for i in bred if i in val.ids]
    if not bred:
        return Decision(champion=holder, rule=rule, holder=holder)
    searched = [i for i in fitness if i not in incumbents]  # every bred candidate: the field the finalists won
    fits = fitness_groups(fitness, holder=holder, bred=bred, searched=searched)
    leads, betas, groups = lead_estimates(val, fits, holder=holder, bred=bred)
    point = leads[0]
    k = max(range(len(bred)), key=lambda j: (point[j], -j))
    lead, stderr = float(point[k]), float(np.std(leads[1:, k], ddof=1))
    examples = val.examples + (groups[k].examples if groups[k] is not None else 0)
    crowned = lead > margin * stderr
    return Decision(champion=bred[k] if crowned else holder, rule=rule, holder=holder, challenger=bred[k],
                    lead=lead, stderr=stderr, examples=examples, shrink=betas[k], margin=margin)


def fitness_groups(fitness: Mapping[str, Scored], *, holder: str, bred: list[str], searched: list[str]) -> list[Paired]:
    """The fitness evidence of the bred finalists: the holder, the finalists and every bred candidate on the
    examples all of them scored (one group when all scored one sample); a finalist left out of it (scored on
    a cheap-fitness subset of another generation) gets its own: the holder, it, and the candidates scored on
    its examples."""
    groups: list[Paired] = []
    for i in bred:
        if any(i in g.ids for g in groups):
            continue
        order = dict.fromkeys([holder, *(bred if not groups else [i]), *searched])
        group = Paired.of({j: fitness[j] for j in order if j in fitness}) if holder in fitness else None
        if group is not None and holder in group.ids and i in group.ids:
            groups.append(group)
    return groups


RULES: dict[str, Callable[..., Decision]] = {
    "evidence": by_evidence,
    "evidence-margin1": functools.partial(by_evidence, margin=1.0),  # measured against, in the benches
    "validation": by_validation,
}


def pooled_key(cid: str, fitness: Mapping[str, Scored], finals: Mapping[str, Scored]) -> tuple:
    """Sort key of an incumbent by its fitness and validation scores pooled by examples (both unbiased)."""
    parts = [e for e in (fitness.get(cid), finals.get(cid)) if e is not None and e.fitness is not None]
    weights = [max(getattr(e, "examples", 0) or 0, 1) for e in parts]
    score = sum(w * e.fitness for w, e in zip(weights, parts, strict=True)) / sum(weights)
    return rank_key(score, fitness[cid].generation if cid in fitness else 0, cid)


@dataclass(frozen=True)
class Paired:
    """Per-example values of several models on one set of examples: `values[task]` is models x examples."""

    ids: list[str]
    weights: list[float]
    values: list[np.ndarray]

    @property
    def examples(self) -> int:
        return sum(v.shape[1] for v in self.values)

    @classmethod
    def of(cls, scores: Mapping[str, Scored]) -> Paired | None:
        """The models paired with the first one (it must have per-example values) on the examples all of them
        really scored: the second model sets them (a cheap-fitness subset is paired on its subset, never on
        estimates), and each later one joins if it keeps at least half of each task's."""
        ids = list(scores)
        first = getattr(scores[ids[0]], "outcomes", None) or {}
        if not first or any(len(o.values) < 2 for o in first.values()):
            return None
        same, common = [ids[0]], {t: set(keys(scores[ids[0]], t)) for t in first}
        for i in ids[1:]:
            if not comparable(scores[ids[0]], scores[i]):
                continue
            kept = {t: common[t] & set(keys(scores[i], t)) for t in first}
            if len(same) == 1 or all(len(kept[t]) >= max(2, len(common[t]) / 2) for t in first):
                same, common = [*same, i], kept
        table = aligned({i: scores[i] for i in same})
        tasks = sorted(first)
        return cls(ids=same, weights=[first[t].weight for t in tasks], values=[table.values[t] for t in tasks])

    def resampled(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """Scores (draws + 1) x models: the observed ones first, then `draws` per-task bootstrap resamples (the
        same resampled examples for every model: paired)."""
        total = sum(self.weights)
        out = np.zeros((draws + 1, len(self.ids)))
        for weight, values in zip(self.weights, self.values, strict=True):
            n = values.shape[1]
            counts = np.vstack([np.ones(n), np.apply_along_axis(np.bincount, 1, rng.integers(0, n, size=(draws, n)),
                                                                minlength=n)])  # draws+1 x n multiplicities
            out += weight / total * (counts @ values.T) / n
        return out

    def column(self, scores: np.ndarray, cid: str) -> np.ndarray:
        return scores[:, self.ids.index(cid)]


def comparable(a: Scored, b: Scored) -> bool:
    """Whether a and b kept per-example values on the same tasks, with at least two examples of each in common
    (values without document indices, from older runs: the same count on the same sample)."""
    first, second = getattr(a, "outcomes", None) or {}, getattr(b, "outcomes", None) or {}
    if not first or set(first) != set(second):
        return False
    if any(first[t].docs is None or second[t].docs is None for t in first):
        return getattr(a, "sample", None) == getattr(b, "sample", None) and all(
            len(first[t].values) == len(second[t].values) for t in first)
    return all(len(set(first[t].docs) & set(second[t].docs)) >= 2 for t in first)


def lead_estimates(val: Paired, fits: list[Paired], *, holder: str,
                   bred: list[str]) -> tuple[np.ndarray, list[float | None], list[Paired | None]]:
    """Leads over `holder` of the bred finalists, (draws + 1) x len(bred) with the observed ones first; for each,
    the shrink taken off its fitness lead and the group of `fits` its fitness lead was paired in (None: none).

    A finalist's lead is its validation lead, blended with its fitness lead less the shrink when that was
    paired, unless the fitness lead exceeds the validation lead by more than twice the error of their
    difference (selection can only make a fitness lead optimistic: one that validation contradicts is not
    trusted; one below its validation lead only tempers a lucky validation draw). The shrink is the
    winner's curse of the best of every bred candidate of its group on the fitness sample, picked again in
    each resample (Tibshirani & Tibshirani, 2009).
    """
    rng = np.random.default_rng(0)  # the same examples drawn every time: a decision is reproducible
    v = val.resampled(rng, BOOTSTRAP)
    lead_v = np.stack([val.column(v, i) - val.column(v, holder) for i in bred], axis=1)
    out, after_validation = lead_v.copy(), rng.bit_generator.state
    betas: list[float | None] = [None] * len(bred)
    groups: list[Paired | None] = [None] * len(bred)
    for fit in fits:
        rng.bit_generator.state = after_validation  # every group resampled as the first one is
        f = fit.resampled(rng, BOOTSTRAP)
        beta = winners_curse(f, fit, holder=holder)
        for k, i in enumerate(bred):
            if groups[k] is not None or i not in fit.ids:
                continue
            groups[k], betas[k] = fit, beta
            lead_f = fit.column(f, i) - fit.column(f, holder)
            if not overstated(lead_f - beta, lead_v[:, k]):
                out[:, k] = blend(lead_v[:, k], lead_f - beta)
    return out, betas, groups


def winners_curse(scores: np.ndarray, fit: Paired, *, holder: str) -> float:
    """How much the best bred candidate's fitness overstates it: in each resample the best is picked again,
    and its resampled score is compared with its observed one (never below 0)."""
    bred = [k for k, i in enumerate(fit.ids) if i != holder]
    if len(bred) < 2:
        return 0.0
    field = scores[:, bred]
    best = field[1:].argmax(axis=1)
    return max(float(np.mean(field[1:][np.arange(len(best)), best] - field[0, best])), 0.0)


def overstated(fitness_lead: np.ndarray, validation_lead: np.ndarray) -> bool:
    """Whether the (shrunk) fitness lead exceeds the validation lead by more than twice the error of their
    difference."""
    return fitness_lead[0] - validation_lead[0] > 2 * float(np.std(fitness_lead[1:] - validation_lead[1:], ddof=1))


def blend(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The least-variance weighted mean of two estimates of one quantity, per draw (weights from the draws)."""
    cov = np.cov(a[1:], b[1:])
    denominator = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    w = 0.5 if denominator <= 1e-15 else float(np.clip((cov[1, 1] - cov[0, 1]) / denominator, 0.0, 1.0))
    return w * a + (1 - w) * b


def lead_stderr(a: Scored, b: Scored) -> float:
    """Standard error of a - b: paired when both kept per-example values on the same examples, else the two
    standard errors combined as if independent."""
    noise = paired_stderr(a, b)
    return math.hypot(a.stderr or 0.0, b.stderr or 0.0) if noise is None else noise


def paired_stderr(a: Scored, b: Scored) -> float | None:
    """Standard error of the fitness difference a - b from the per-example differences on each task (the
    tasks weighted as in the fitness), on the examples both scored; None unless they share two of each task.

    Two models scored on one set of examples agree on most of them, so the paired error is far
    smaller than the two errors combined as if independent: leads of a point become visible."""
    if not comparable(a, b):
        return None
    table = aligned({"a": a, "b": b})
    variance = 0.0
    for task, values in table.values.items():
        diff = values[0] - values[1]
        variance += table.weights[task] ** 2 * float(np.var(diff, ddof=1)) / len(diff)
    return math.sqrt(variance)


def best_of(fitness: Mapping[str, float], generations: Mapping[str, int], *, k: int) -> list[str]:
    """The `k` best ids of a fitness map (a strategy's view), by `rank_key`."""
    order = sorted(fitness, key=lambda i: rank_key(fitness[i], generations.get(i, 0), i))
    return order[:k]
