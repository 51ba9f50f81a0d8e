"""The run file's `fitness` section: the lm-eval tasks, how they are sampled, racing, and HFLM's options.

Fitness, validation and held-out tasks are kept apart here (a task is one of them, never two);
`hflm_kwargs` and `batch_size` are checked against what lm-eval's HFLM takes on a resident model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from hubevo.config.frozen import Frozen

SEED_MAX = 2**32 - 1  # numpy's and lm-eval's seeds are unsigned 32-bit integers


class TaskSpec(Frozen):
    name: str
    weight: float = Field(1.0, gt=0, allow_inf_nan=False, description="The task's weight in the fitness mean.")
    metric: str = "exact_match"

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value):
        return {"name": value} if isinstance(value, str) else value


class RacingConfig(Frozen):
    """Successive halving: score everyone on a small sample, promote the best fraction to larger ones."""

    rungs: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [8, 32], min_length=1,
        description="Examples per task at each rung before the full fitness sample; increasing.")
    keep: float = Field(0.5, gt=0, lt=1, description="Fraction promoted from one rung to the next (1/eta).")
    min_keep: int = Field(1, ge=1, description="Candidates promoted at least, however few are racing.")

    @field_validator("rungs")
    @classmethod
    def _increasing(cls, rungs):
        if any(r <= 0 for r in rungs) or any(b <= a for a, b in zip(rungs, rungs[1:])):
            raise ValueError(f"racing rungs must be positive and increasing, got {rungs}")
        return rungs


class EstimatorConfig(Frozen):
    """Cheap fitness: bred candidates scored on part of the fitness sample, their fitness estimated from it."""

    kind: Literal["full", "subset", "anchors", "disagreement"] = Field(
        "full", description="full: every example of the sample; subset: a seeded random subset per task, corrected "
                            "by a regression on the candidates scored in full; anchors: the examples an item-response "
                            "fit on those candidates finds most telling; disagreement: the examples they disagree on "
                            "most. Members, standard recipes, finals and held-out always score real examples.")
    examples_per_task: int | None = Field(
        None, gt=0, description="Examples per task a bred candidate is scored on; default `fraction` of the sample.")
    fraction: float = Field(0.2, gt=0, le=1, description="Share of each task's fitness sample, without "
                                                         "`examples_per_task`.")
    refit_every: int = Field(1, ge=1, description="Generations between refits on the candidates scored in full "
                                                  "(and, for anchors and disagreement, a new choice of examples).")
    references: list[Path] = Field(
        default_factory=list, description="outcomes.parquet files of earlier runs on the same tasks: their candidates "
                                          "scored in full join this run's references (a warm start).")
    drift: float | None = Field(
        0.05, gt=0, allow_inf_nan=False,
        description="A generation's best estimated candidate whose estimate disagrees with its own audit examples by "
                    "more than this is scored in full (and becomes a reference); null: never.")


class FitnessConfig(Frozen):
    tasks: list[TaskSpec] = Field(min_length=1, description="lm-eval tasks whose weighted mean is the fitness.")
    heldout: list[TaskSpec] = Field(
        default_factory=list, description="Scored at the end of the run on the champion and the last finalists "
                                          "(and on each generation's champion when the run pushes to the Hub; others "
                                          "on request: `hubevo export --heldout`); never selects.")
    include_path: list[Path] = Field(default_factory=list, description="Folders of local lm-eval YAML tasks.")
    limit: int | None = Field(None, gt=0, description="Examples per task and generation; None = all.")
    resample: bool = Field(
        False, description="Draw a fresh seeded sample of `limit` examples every generation (elites carried into "
                           "a generation are scored again on its sample); default: one fixed sample for the run.")
    validation: list[TaskSpec] = Field(
        default_factory=list, description="Tasks the finalists are scored on to pick the champion; default: "
                                          "`validation_fraction` of each fitness task, kept out of every fitness "
                                          "sample, and (without `resample`) every example the fixed sample leaves out.")
    validation_fraction: float = Field(0.25, gt=0, lt=1, description="Share of each fitness task carved for validation.")
    validation_limit: int | None = Field(None, gt=0, description="Validation examples per task at most (the "
                                                                 "carved ones first).")
    finalists: int = Field(3, ge=0, description="The top-k by fitness scored on validation; the champion is the best "
                                                "there. 0: the champion is the best by fitness.")
    seed: int = Field(0, ge=0, le=SEED_MAX,
                      description="Seeds the split into fitness and validation examples and the fitness samples; "
                                  "in a run file it defaults to the run's `seed`, so every run seed draws "
                                  "its own split (the run folder's config.yaml records it); 0 to 2**32 - 1.")
    batch_size: int | str = Field(
        64, description="lm-eval's batch size: a positive integer, 'auto' (lm-eval finds the largest that fits, "
                        "from max_batch_size down, once per task and model shape; for GPUs) or 'auto:N' (found "
                        "again N times across a task's requests, as lm-eval does).")
    max_batch_size: int = Field(64, gt=0, description="Where the 'auto' batch size search starts.")
    dtype: Literal["auto", "bfloat16", "float16"] | None = Field(
        "auto", description="Precision of lm-eval's forward passes, an autocast over the resident weights (whose "
                            "dtype is the run's `dtype`): auto = bfloat16 on a CUDA GPU that supports it, the "
                            "weights' own dtype elsewhere; null = always the weights' own dtype.")
    heldout_limit: int | None = Field(None, gt=0, description="Held-out examples per task at most; None = all.")
    lm_eval_kwargs: dict = Field(default_factory=dict, description="Passed through to lm_eval.simple_evaluate.")
    hflm_kwargs: dict = Field(
        default_factory=dict, description="Passed through to lm-eval's HFLM, which wraps the resident model "
                                          "(max_length, truncation, softmax_dtype, add_bos_token, logits_cache...).")
    racing: RacingConfig | None = Field(None, description="Race candidates over growing samples; None = full samples.")
    estimator: EstimatorConfig = Field(default_factory=EstimatorConfig,
                                       description="Cheap fitness for bred candidates (`kind: full`: none).")
    allow_test_sets: bool = Field(
        False, description="Knowingly select on well-known benchmark test sets (refused otherwise).")

    @model_validator(mode="after")
    def _apart_from_fitness(self):
        """Held-out and validation tasks must not repeat a fitness task: selection would have seen them."""
        for field, why, empty in (
                ("heldout", "selection would see the held-out set, so its score would not be held out", ""),
                ("validation", "the finals would pick the champion on the examples selection already saw",
                 " (then examples are carved from the fitness tasks)")):
            overlap = sorted({t.name for t in self.tasks} & {t.name for t in getattr(self, field)})
            if overlap:
                raise ValueError(
                    f"fitness.{field} repeats fitness task(s) {', '.join(map(repr, overlap))}: {why}; give "
                    f"fitness.{field} a separate task (another split or data) or leave it empty{empty}")
        return self

    @model_validator(mode="after")
    def _rungs_below_limit(self):
        if self.racing and self.limit is not None and self.racing.rungs[-1] >= self.limit:
            raise ValueError(f"racing rungs {self.racing.rungs} must stay below fitness.limit ({self.limit})")
        return self

    @field_validator("include_path", mode="before")
    @classmethod
    def _listify(cls, value):
        return [value] if isinstance(value, (str, Path)) else value

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value):
        if batch_size_problem(value):
            raise ValueError(batch_size_problem(value))
        return value

    @field_validator("hflm_kwargs")
    @classmethod
    def _hflm_kwargs(cls, kwargs):
        problems = [problem for key in kwargs if (problem := hflm_key_problem(key))]
        if problems:
            raise ValueError("; ".join(problems))
        return kwargs


AUTO_BATCH = re.compile(r"^auto(:(\d+(\.\d*)?|\.\d+))?$")


# HFLM arguments hubevo sets itself, and the field that sets each
HFLM_OWN = {"pretrained": "the resident model", "tokenizer": "the template's tokenizer", "device": "the evaluator",
            "batch_size": "fitness.batch_size", "max_batch_size": "fitness.max_batch_size",
            "mixed_precision_dtype": "fitness.dtype",
            "dtype": "fitness.dtype (forward passes) and the run's dtype (resident weights)"}


# HFLM arguments that only act when lm-eval loads the model itself, never on the resident model hubevo passes
HFLM_LOADING = ("revision", "subfolder", "parallelize", "max_memory_per_gpu", "max_cpu_memory", "offload_folder",
                "tp_plan", "peft", "delta", "autogptq", "gptqmodel", "gguf_file", "trust_remote_code",
                "use_fast_tokenizer")


def batch_size_problem(value) -> str | None:
    """Why `value` is not a batch size lm-eval's HFLM takes (a positive int, 'auto', 'auto:N'), or None."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return None
    if isinstance(value, str) and AUTO_BATCH.match(value) and float(value.partition(":")[2] or 1) > 0:
        return None
    return f"fitness.batch_size must be a positive integer, 'auto' or 'auto:N' (N > 0), got {value!r}"


def hflm_key_problem(key: str) -> str | None:
    """Why `fitness.hflm_kwargs` may not hold `key` (hubevo sets it, or it only acts on loading), or None."""
    if key in HFLM_OWN:
        return f"fitness.hflm_kwargs.{key}: set by hubevo itself ({HFLM_OWN[key]}); remove it"
    if key in HFLM_LOADING:
        return (f"fitness.hflm_kwargs.{key}: only acts when lm-eval loads the model itself; hubevo evaluates "
                "its resident model, so remove it")
    return None
