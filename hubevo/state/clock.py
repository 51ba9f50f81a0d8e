"""The run's one clock and what it predicts: elapsed time, per-generation times, and the time left as a range.

The run state's `elapsed_s` is the run's only clock: the time its processes spent on it (seeding,
generations, finals, held-out scoring), summed over every start and resume, never a wall clock
across pauses. Every report prints it, in the same words (`duration_text`). `generation_ends` keeps
its value when each generation ended, so each generation's measured time is known, fine-tunes,
finals and survivors included.

The time left is a range from those measured times: the generations still in the budget (its
generations, or its evaluations at the pace of evaluations per generation so far), each as fast as
the fastest and as slow as the slowest bred generation so far (widened to two thirds and one and a
half while fewer than three are measured; generation 0, the members and the standard recipes,
stands in until there is one, at half to twice itself),
plus the end of the run (held-out scoring of the finalists) at the measured time per scored
example. Pure functions: the loop's summaries, the Space's status page and the tests read the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from hubevo.config import BudgetConfig


def duration_text(seconds: float | None) -> str:
    """`42 s`, `3 m 07 s`, `1 h 05 m`; `-` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} m"
    return f"{minutes} m {secs:02d} s" if minutes else f"{secs} s"


def range_text(low: float, high: float) -> str:
    """`40-70 s`, `2 m 10 s - 4 m 05 s`: a range of durations, in seconds alone below 100 s."""
    if round(high) < 100:
        return f"{round(low)}-{round(high)} s" if round(low) != round(high) else f"{round(low)} s"
    return f"{duration_text(low)} - {duration_text(high)}"


def generation_seconds(ends: Mapping[int, float]) -> dict[int, float]:
    """Each generation's measured time, from the clock's value at the end of each (the first from 0)."""
    ordered = sorted(ends.items())
    return {g: end - (ordered[k - 1][1] if k else 0.0) for k, (g, end) in enumerate(ordered)}


def generations_left(*, generation: int, generations: int, evaluated: int, max_evaluations: int | None,
                     done: int) -> float:
    """Generations still in the budget after `generation` ended: by its generations, and by its evaluations at the
    pace so far (`evaluated` over `done` generations)."""
    left = float(max(generations - generation, 0))
    if max_evaluations is not None and done:
        per_generation = evaluated / done
        left = min(left, math.ceil(max(max_evaluations - evaluated, 0) / per_generation) if per_generation else left)
    return left


def time_left(ends: Mapping[int, float], *, generations_left: float, end_s: float = 0.0) -> tuple[float, float] | None:
    """(low, high) seconds left: `generations_left` generations at the measured times, then `end_s` for the end of
    the run; None before any generation ended, 0 work left gives (end_s, end_s)."""
    measured = generation_seconds(ends)
    if not measured:
        return None
    bred = [s for g, s in measured.items() if g > 0]
    sample = bred if bred else list(measured.values())
    low, high = min(sample), max(sample)
    if not bred:  # generation 0 alone (the members and the standard recipes): half to twice itself
        low, high = low / 2, high * 2
    elif len(bred) < 3:  # too few to know the spread: two thirds of the fastest to one and a half the slowest
        low, high = low * 2 / 3, high * 3 / 2
    return generations_left * low + end_s, generations_left * high + end_s


def budget_time_left(budget: BudgetConfig, *, generation: int, evaluated: int, ends: Mapping[int, float],
                     end_s: float = 0.0) -> tuple[float, float] | None:
    """`time_left` after `generation` ended, for the generations `budget` still holds (`generations_left`): what the
    loop's lines and the Space's status page both print."""
    left = generations_left(generation=generation, generations=budget.generations, evaluated=evaluated,
                            max_evaluations=budget.max_evaluations, done=len(ends))
    return time_left(ends, generations_left=left, end_s=end_s)
