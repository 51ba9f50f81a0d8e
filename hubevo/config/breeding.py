"""The run file's `selection`, `crossover` and `mutation` sections: how parents are picked and children made.

Merge methods are checked by name against mergekit's (`hubevo.config.methods`) without importing
it, gene ranges against each gene's domain, and mutation operators against the gene operators
(`perturb`) and the trainers (`dpo`, `sft`, whose ranges are `hubevo.config.finetune`).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hubevo.config.finetune import FinetuneSpace
from hubevo.config.frozen import Frozen
from hubevo.config.methods import unknown_method_message
from hubevo.registry import unknown_name

FINETUNE_OPERATORS = ("dpo", "sft")  # mutations that train the model (hubevo.finetune's trainers)


MUTATION_OPERATORS = ("perturb", *FINETUNE_OPERATORS)  # hubevo.breed.mutation's gene operators and the trainers


class SelectionConfig(Frozen):
    method: Literal["roulette", "tournament"] = "roulette"
    keep_top_k: int = Field(1, ge=0, description="Elites carried unchanged into the next generation.")
    random_pick_prob: float = Field(0.1, ge=0, le=1, description="Chance that a parent is picked uniformly.")
    tournament_size: int = Field(3, ge=2, description="Candidates drawn per tournament.")
    parents_per_child: int = Field(2, ge=2, description="Parents merged into each child.")


DEFAULT_METHODS = (
    "linear", "slerp", "nuslerp", "ties", "dare_ties", "dare_linear",
    "task_arithmetic", "breadcrumbs", "della", "model_stock",
)


DEFAULT_RANGES = {
    "weight": (0.0, 1.0),
    "density": (0.2, 1.0),
    "t": (0.0, 1.0),
    "lambda": (0.5, 1.5),
    "epsilon": (0.05, 0.2),
    "gamma": (0.0, 0.05),
}


GENE_BOUNDS = {"density": (0.0, 1.0), "t": (0.0, 1.0), "epsilon": (0.0, 1.0), "gamma": (0.0, 1.0),
               "weight": (-math.inf, math.inf), "lambda": (-math.inf, math.inf)}


def range_problem(name: str, low: float, high: float, *, field: str = "crossover.ranges") -> str | None:
    """Why `crossover.ranges[name]` (or the ranges at `field`) cannot be sampled (not finite, empty, outside the
    gene's domain), or None."""
    where = f"{field}.{name}"
    if name not in GENE_BOUNDS:
        return f"{where}: unknown gene; known: {', '.join(GENE_BOUNDS)}"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{where}: bounds must be finite numbers, got [{low}, {high}]"
    if low > high:
        return f"range for {name!r} is empty: {low} > {high}; give [low, high] with low <= high"
    lo, hi = GENE_BOUNDS[name]
    if low < lo or high > hi:
        return f"{where}: [{low}, {high}] leaves the gene's domain [{lo:g}, {hi:g}]; keep both bounds inside it"
    return None


class CrossoverConfig(Frozen):
    methods: list[str] = Field(default_factory=lambda: list(DEFAULT_METHODS), min_length=1)
    ranges: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: dict(DEFAULT_RANGES),
        description="Range of each merge gene: weight, density, t, lambda, epsilon, gamma (finite, low <= high, "
                    "inside the gene's domain: [0, 1] for density, t, epsilon and gamma).")
    inherit_prob: float = Field(0.7, ge=0, le=1, description="Chance a child inherits its method and genes.")

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods):
        problems = [p for p in map(unknown_method_message, methods) if p]
        if problems:
            raise ValueError("; ".join(problems))
        return methods

    @field_validator("ranges")
    @classmethod
    def _ordered(cls, ranges):
        problems = [p for name, bounds in ranges.items() if (p := range_problem(name, *bounds))]
        if problems:
            raise ValueError("; ".join(problems))
        return {**DEFAULT_RANGES, **ranges}


class MutationConfig(Frozen):
    probability: float = Field(0.8, ge=0, le=1, description="Chance that a child is mutated.")
    operators: list[str] = Field(
        default_factory=lambda: ["perturb"], min_length=1,
        description="Drawn per mutated child: perturb (merge genes), dpo or sft (fine-tune a selected parent).",
    )
    strength: float = Field(0.15, ge=0, allow_inf_nan=False,
                            description="Gaussian sigma as a fraction of each gene's range.")
    method_flip_prob: float = Field(0.1, ge=0, le=1, description="Chance to switch to another merge method.")
    finetune: FinetuneSpace | None = Field(None, description="Ranges of the fine-tuning genes (dpo, sft).")

    @field_validator("operators")
    @classmethod
    def _known_operators(cls, operators):
        unknown = [unknown_name("mutation operator", op, MUTATION_OPERATORS) for op in operators
                   if op not in MUTATION_OPERATORS]
        if unknown:
            raise ValueError("; ".join(unknown))
        return operators

    @property
    def trained(self) -> list[str]:
        """The operators that fine-tune (dpo, sft)."""
        return [op for op in self.operators if op in FINETUNE_OPERATORS]

    @model_validator(mode="after")
    def _finetune_space(self):
        if (trained := self.trained) and self.finetune is None:
            raise ValueError(f"mutation.operators names {trained} but mutation.finetune (datasets, ranges) is not set")
        return self
