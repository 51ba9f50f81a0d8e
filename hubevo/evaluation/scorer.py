"""Stage 2, evaluate: one loaded model scored on some lm-eval tasks, through `simple_evaluate`.

The loaded (in-memory) model is wrapped in lm-eval's `HFLM` and scored with `simple_evaluate`
inside the lm-eval fence (`hubevo.evaluation.lm_eval_fence.patched`). The materialiser overwrites
one resident model's weights for every candidate, so one `HFLM` serves them all: it is built again
only when the resident model is another object (a merge with another output config, a passthrough
stack). `fitness.batch_size`, `max_batch_size`, `dtype` and `hflm_kwargs` reach it as HFLM arguments.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence

from hubevo.config import FitnessConfig, TaskSpec
from hubevo.errors import CandidateError, ConfigError
from hubevo.evaluation import lm_eval_fence
from hubevo.evaluation.fitness import Scored, metric_key, metric_value, task_outcomes, weighted_fitness, weighted_stderr
from hubevo.evaluation.taskcheck import hflm_kwargs_problems
from hubevo.evaluation.tasks import TaskCatalog


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def forward_dtype(setting: str | None, *, device: str, weights):
    """HFLM's `mixed_precision_dtype` for `fitness.dtype`: a torch dtype to autocast to, or None (the weights' own)."""
    import torch

    if setting == "auto":
        cuda = str(device).startswith("cuda") and torch.cuda.is_available()
        setting = "bfloat16" if cuda and torch.cuda.is_bf16_supported() else None
    if setting is None or getattr(torch, setting) == weights:
        return None
    return getattr(torch, setting)


def examples_scored(out: dict, tasks: Sequence[TaskSpec]) -> int:
    """The documents lm-eval scored for `tasks` (its `n-samples`: `limit` or all of each task; 0 for a group)."""
    return sum(out.get("n-samples", {}).get(t.name, {}).get("effective", 0) for t in tasks)


class Scorer:
    """Scores loaded models on lm-eval tasks: one HFLM per resident model, one `simple_evaluate` per call."""

    def __init__(self, cfg: FitnessConfig, *, tasks: TaskCatalog, device: str | None = None):
        self.cfg, self.tasks = cfg, tasks
        self.device = device or default_device()
        self._lms = weakref.WeakKeyDictionary()  # resident model -> the HFLM over it (a Ray worker has two)

    def lm(self, model, tokenizer):
        """lm-eval's HFLM over `model`: the one that scored earlier candidates in the same model object
        (weights changed in place), else a new one. ConfigError if `fitness.hflm_kwargs` does not fit HFLM."""
        lm = self._lms.get(model)
        if lm is None or lm.tokenizer is not tokenizer:
            lm = self._lms[model] = self._new_lm(model, tokenizer)
        return lm

    def _new_lm(self, model, tokenizer):
        problems = hflm_kwargs_problems(self.cfg.hflm_kwargs)
        if problems:
            raise ConfigError("lm-eval's HFLM cannot take fitness.hflm_kwargs:\n  " + "\n  ".join(problems))
        options = {"batch_size": self.cfg.batch_size, "max_batch_size": self.cfg.max_batch_size,
                   "mixed_precision_dtype": forward_dtype(self.cfg.dtype, device=self.device, weights=model.dtype),
                   **self.cfg.hflm_kwargs}
        try:
            return lm_eval_fence.lm_class()(pretrained=model, tokenizer=tokenizer, device=self.device, **options)
        except (TypeError, ValueError, AssertionError) as err:  # HFLM checks its arguments with assert
            raise ConfigError(f"lm-eval's HFLM refused fitness.hflm_kwargs {self.cfg.hflm_kwargs}: {err}") from err

    def score(self, model, tokenizer, *, tasks: Sequence[TaskSpec], samples=None, limit=None,
              outcomes: bool = False) -> Scored:
        """`tasks` scored on `samples` (per task, document indices) or the first `limit` documents: per-task metric
        values, their standard errors as lm-eval computes them (missing where it has none), the weighted fitness,
        and with `outcomes` each task's per-example values, so that two candidates are compared example by example
        on what both saw (`hubevo.selection.ranking`). CandidateError if lm-eval fails or yields no metric."""
        import lm_eval

        lm = self.lm(model, tokenizer)
        # bootstrap_iters > 0 lets lm-eval give mean metrics (accuracy, exact match) their closed-form stderr
        kwargs = {"bootstrap_iters": 100, "log_samples": outcomes, "verbosity": "ERROR", **self.cfg.lm_eval_kwargs}
        try:
            with lm_eval_fence.patched():
                out = lm_eval.simple_evaluate(
                    model=lm, tasks=[t.name for t in tasks], task_manager=self.tasks.task_manager,
                    samples=samples, limit=None if samples else limit, **kwargs,
                )
        except (RuntimeError, ValueError) as err:  # torch OOM is a RuntimeError
            raise CandidateError(f"lm-eval failed: {type(err).__name__}: {err}") from err
        scores, stderrs = {}, {}
        for spec in tasks:
            results = out["results"].get(spec.name, {})
            value = metric_value(results, spec.metric)
            if value is None or math.isnan(value):
                raise CandidateError(f"lm-eval returned no {spec.metric!r} for task {spec.name!r}")
            scores[spec.name] = value
            stderr = metric_value(results, f"{spec.metric}_stderr")
            if stderr is not None and not math.isnan(stderr):
                stderrs[spec.name] = stderr
        per_example = self._outcomes(out, tasks, samples=samples) if outcomes else {}
        used = sum(len(v) for v in samples.values()) if samples else examples_scored(out, tasks)
        return Scored(fitness=weighted_fitness(scores, tasks), scores=scores, stderrs=stderrs,
                      stderr=weighted_stderr(stderrs, tasks), examples=used, outcomes=per_example)

    @staticmethod
    def _outcomes(out: dict, tasks: Sequence[TaskSpec], *, samples=None) -> dict:
        weights = sum(t.weight for t in tasks)
        per_example = {spec.name: task_outcomes(out["samples"][spec.name],
                                                key=metric_key(out["results"][spec.name], spec.metric),
                                                weight=spec.weight / weights,
                                                docs=samples.get(spec.name) if samples else None)
                       for spec in tasks if spec.name in out.get("samples", {})}
        return {t: v for t, v in per_example.items() if v is not None}
