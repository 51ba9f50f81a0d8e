"""Stage 2, evaluate: a run's three scorings of a candidate, on the examples the sampling plan gives.

`Evaluator` composes the evaluation stage's jobs: the task catalog (`tasks`: lm-eval's task
manager, the checks before any model is loaded, document counts), the sampling plan (`plan`:
which examples each scoring reads) and the scorer (`scorer`: one `simple_evaluate` on a loaded
model, inside the lm-eval fence). A candidate is scored for `fitness` on its generation's sample
(or a racing rung's slice of it), for `validate` on the finals' examples, and for `heldout` on
the held-out tasks, which never take part in selection.
"""

from __future__ import annotations

from functools import cached_property

from hubevo.config import FitnessConfig
from hubevo.evaluation.fitness import Scored
from hubevo.evaluation.plan import Sample, SamplingPlan
from hubevo.evaluation.scorer import Scorer
from hubevo.evaluation.tasks import TaskCatalog


class Evaluator:
    """Scores loaded models on the configured lm-eval tasks: fitness, validation and held-out."""

    def __init__(self, cfg: FitnessConfig, *, device: str | None = None):
        self.cfg = cfg
        self.tasks = TaskCatalog(cfg)
        self.scorer = Scorer(cfg, tasks=self.tasks, device=device)

    @property
    def device(self) -> str:
        return self.scorer.device

    @cached_property
    def plan(self) -> SamplingPlan:
        """The run's sampling plan (it counts every fitness task's documents through lm-eval, once)."""
        return SamplingPlan(self.cfg, doc_counts=self.tasks.doc_counts)

    def fitness(self, model, tokenizer, *, generation: int, sample: Sample | None = None) -> Scored:
        """Fitness on `generation`'s sample, with per-example outcomes; or on `sample`, part of it (a racing rung's
        slice, a cheap-fitness subset: its tasks only)."""
        if sample is not None:
            tasks = [t for t in self.cfg.tasks if t.name in sample]
            return self.scorer.score(model, tokenizer, tasks=tasks, samples=sample, outcomes=True)
        return self.scorer.score(model, tokenizer, tasks=self.cfg.tasks, samples=self.plan.sample_indices(generation),
                                 limit=self.cfg.limit, outcomes=True)

    def validate(self, model, tokenizer) -> Scored:
        """The finals' score: the validation tasks, or the examples carved from the fitness tasks."""
        if self.cfg.validation:
            return self.scorer.score(model, tokenizer, tasks=self.cfg.validation, limit=self.cfg.validation_limit,
                                     outcomes=True)
        samples = self.plan.validation_samples()
        tasks = [t for t in self.cfg.tasks if t.name in samples]
        return self.scorer.score(model, tokenizer, tasks=tasks, samples=samples, outcomes=True)

    def heldout(self, model, tokenizer) -> dict[str, float]:
        """Per held-out task, its score ({} when the run names none)."""
        if not self.cfg.heldout:
            return {}
        return self.scorer.score(model, tokenizer, tasks=self.cfg.heldout, limit=self.cfg.heldout_limit).scores
