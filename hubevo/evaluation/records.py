"""Stage 2, evaluate: what an evaluation records, for the run state, selection and every report.

An `Evaluation` holds a candidate's fitness, per-task scores and standard errors on the examples it
was scored on, and the per-example outcomes that let two candidates be compared pairwise
(`hubevo.selection.ranking`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class TaskOutcomes(BaseModel):
    """One task's per-example metric values on the examples scored, in document order, and its share of the
    fitness (or of the validation score)."""

    weight: float
    values: list[float]
    docs: list[int] | None = Field(None, description="The task's document index of each value; None: the run's "
                                                      "fixed fitness sample, in document order.")


class Evaluation(BaseModel):
    id: str
    generation: int
    status: Literal["ok", "failed", "raced_out"] = Field(
        description="ok: fully scored; failed: broke (reason says why); raced_out: stopped early by racing.")
    reason: str | None = None
    fitness: float | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    stderr: float | None = Field(None, description="Standard error of `fitness` (lm-eval's per-task stderrs, combined).")
    stderrs: dict[str, float] = Field(default_factory=dict)
    sample: int | None = Field(None, description="The generation whose resampled examples it was scored on; "
                                                 "None: the run's fixed sample.")
    examples: int = 0
    seconds: float = 0.0
    estimate: str | None = Field(None, description="The `fitness.estimator` kind whose estimate `fitness`, `scores` "
                                                   "and their errors are (from `outcomes`' examples); None: measured.")
    drift: float | None = Field(None, description="A model-based estimate's error on its audit examples.")
    outcomes: dict[str, TaskOutcomes] = Field(
        default_factory=dict, description="Per-example values on the examples scored (the fitness sample, or the "
                                          "validation examples), for paired comparisons.")
