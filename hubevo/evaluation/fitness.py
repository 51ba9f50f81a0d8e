"""Stage 2, evaluate: a candidate's scores read from lm-eval's results, and combined into one fitness (pure).

`Scored` is what a scoring call returns and an `Evaluation` records: per-task metric values and
their standard errors as lm-eval computes them, the weighted fitness, and each task's per-example
values on the examples scored (for paired comparisons, `hubevo.selection.ranking`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from hubevo.config import TaskSpec
from hubevo.evaluation.records import TaskOutcomes


def weighted_fitness(scores: dict[str, float], tasks: Sequence[TaskSpec]) -> float:
    total = sum(t.weight for t in tasks)
    return sum(t.weight * scores[t.name] for t in tasks) / total


def weighted_stderr(stderrs: dict[str, float], tasks: Sequence[TaskSpec]) -> float | None:
    """Standard error of the weighted mean of independent task scores (None if a task has none)."""
    if any(t.name not in stderrs for t in tasks):
        return None
    total = sum(t.weight for t in tasks)
    return math.sqrt(sum((t.weight / total * stderrs[t.name]) ** 2 for t in tasks))


@dataclass(frozen=True)
class Scored:
    """A candidate's score on one sample: what an Evaluation records."""

    fitness: float
    scores: dict[str, float]
    stderrs: dict[str, float]
    stderr: float | None
    examples: int
    outcomes: dict[str, TaskOutcomes] = field(default_factory=dict)


def metric_value(task_results: dict, metric: str) -> float | None:
    key = metric_key(task_results, metric)
    value = task_results.get(key) if key else None
    return None if value in (None, "N/A") else float(value)


def metric_key(task_results: dict, metric: str) -> str | None:
    """The key of `metric` in lm-eval's results of a task ('exact_match' -> 'exact_match,none')."""
    return next((k for k in task_results if k == metric or k.startswith(f"{metric},")), None)


def task_outcomes(samples: list[dict], *, key: str, weight: float,
                  docs: Sequence[int] | None = None) -> TaskOutcomes | None:
    """Per-example values of the metric `key` ('name,filter') from lm-eval's logged samples, in document
    order; None when the samples do not carry it. `docs`: the document indices scored (lm-eval numbers the
    documents of a `samples` selection 0..n-1 in document order)."""
    name, _, filter_key = key.partition(",")
    rows = sorted((s["doc_id"], s[name]) for s in samples if name in s and (not filter_key or s.get("filter") == filter_key))
    values = [float(v) for _, v in rows]
    if not values:
        return None
    indices = sorted(docs)[:len(values)] if docs is not None else [int(i) for i, _ in rows]
    return TaskOutcomes(weight=weight, values=values, docs=indices)
