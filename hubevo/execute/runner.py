"""Stage 2's unit of work, shared by every backend: one candidate, from recipe to scores.

A `CandidateJob` is plain data (picklable, so Ray ships it as it is): the mergekit config
that builds the candidate from local folders, the fine-tuning recipe if it is a trained
child, and the examples to score it on. A `CandidateRunner` owns one resident model, a
tokenizer and an lm-eval `Evaluator`, and runs a job in three stages: fine-tune (once:
a finished adapter is reused), materialise (mergekit, in memory, plus the LoRA adapter of a
fine-tuned child), score. Backends only
decide where and when runners run; racing asks them for scores on growing samples.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hubevo.config import FitnessConfig, RunConfig
from hubevo.errors import CandidateError
from hubevo.evaluation.plan import Sample
from hubevo.evaluation.records import Evaluation
from hubevo.fsio import atomic_dir

if TYPE_CHECKING:
    from hubevo.finetune.recipe import FinetuneRecipe

log = logging.getLogger("hubevo")

TRAINING_FILE = "training.json"


@dataclass(frozen=True)
class CandidateJob:
    id: str
    name: str
    generation: int
    merge: dict  # mergekit config over local folders (a fine-tuned child: the identity of its parent)
    finetune: FinetuneRecipe | None = None
    parent_path: str | None = None  # fine-tuned children: the folder trained from
    train_dir: str | None = None  # fine-tuned children: where the adapter (full fine-tuning: the model) goes
    adapter: str | None = None  # LoRA children: the adapter folder merged over `merge`
    sample: Sample | None = None  # None: the generation's whole fitness sample
    attempt: int = 1
    avoid: int | None = None  # Ray: the worker slot whose actor died running it
    report: dict | None = None  # fine-tuned children: trl's report_to, project, run_name (None: report nowhere)

    @property
    def key(self) -> str:
        """The candidate and the sample it is scored on: racing asks for the same candidate on several samples."""
        if self.sample is None:
            return self.id
        digest = hashlib.sha256(json.dumps(self.sample, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.id}:{digest}"


@dataclass(frozen=True)
class RunnerSpec:
    """What a runner needs to build its resident model and evaluator: paths and configs, no weights."""

    template: str
    fitness: FitnessConfig
    dtype: str = "float32"
    device: str | None = None
    threads: int = 1
    shard: bool = False  # Ray: spread the resident model over every GPU of the actor

    @classmethod
    def of(cls, cfg: RunConfig, *, template: str) -> RunnerSpec:
        """The spec of a run's own runner: its fitness config and weights dtype over the `template` folder."""
        return cls(template=template, fitness=cfg.fitness, dtype=cfg.dtype)


def training_done(train_dir: str | Path) -> bool:
    """Whether a fine-tune finished into `train_dir` (written whole, metrics included, by `train`)."""
    return (Path(train_dir) / TRAINING_FILE).is_file()


def trained(job: CandidateJob) -> bool:
    return job.finetune is None or training_done(job.train_dir)


def train(job: CandidateJob, *, device: str) -> dict | None:
    """Fine-tune `job`'s parent into `job.train_dir` unless that is done; returns the training metrics."""
    if job.finetune is None:
        return None
    folder = Path(job.train_dir)
    if not trained(job):
        from hubevo.finetune.training import finetune

        with atomic_dir(folder) as tmp:
            metrics = finetune(Path(job.parent_path), job.finetune, out_dir=tmp, device=device, adapter_only=True,
                               report=job.report)
            (tmp / TRAINING_FILE).write_text(json.dumps(metrics, indent=1))
    return json.loads((folder / TRAINING_FILE).read_text())


def scored_evaluation(job: CandidateJob, scored, *, seconds: float) -> Evaluation:
    return Evaluation(id=job.id, generation=job.generation, status="ok", fitness=scored.fitness,
                      scores=scored.scores, stderr=scored.stderr, stderrs=scored.stderrs, examples=scored.examples,
                      outcomes=scored.outcomes, seconds=seconds)


def failed(job: CandidateJob, *, reason: str, seconds: float = 0.0) -> Evaluation:
    return Evaluation(id=job.id, generation=job.generation, status="failed", reason=reason, seconds=seconds)


@dataclass
class CandidateRunner:
    """One resident model, a tokenizer and an Evaluator: runs jobs one at a time in this process."""

    spec: RunnerSpec
    evaluator: object = None
    _materializer: object = field(default=None, repr=False)
    _tokenizer: object = field(default=None, repr=False)

    def __post_init__(self):
        if self.evaluator is None:
            from hubevo.evaluation.evaluator import Evaluator

            self.evaluator = Evaluator(self.spec.fitness, device=self.spec.device)

    @property
    def device(self) -> str:
        return self.evaluator.device

    @property
    def materializer(self):
        if self._materializer is None:
            import torch

            from hubevo.breed.materialize import Materializer

            self._materializer = Materializer(self.spec.template, device=self.device,
                                              dtype=getattr(torch, self.spec.dtype))
        return self._materializer

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.spec.template)
        return self._tokenizer

    def materialize(self, merge: dict, *, adapter: str | None = None):
        return self.materializer.materialize(merge, adapter=adapter)

    def run(self, job: CandidateJob) -> Evaluation:
        """Fine-tune if the recipe says so, materialise, score; a CandidateError becomes a failed Evaluation."""
        started = time.perf_counter()
        try:
            train(job, device=self.device)
            model = self.materialize(job.merge, adapter=job.adapter)
            scored = self.evaluator.fitness(model, self.tokenizer, generation=job.generation, sample=job.sample)
        except CandidateError as err:
            log.warning("candidate %s failed: %s", job.name, err)
            return failed(job, reason=str(err), seconds=time.perf_counter() - started)
        return scored_evaluation(job, scored, seconds=time.perf_counter() - started)

    def validate(self, merge: dict, *, adapter: str | None = None):
        """The `Scored` of the candidate `merge` (and `adapter`) builds on the validation examples (the finals)."""
        return self.evaluator.validate(self.materialize(merge, adapter=adapter), self.tokenizer)

    def heldout(self, merge: dict, *, adapter: str | None = None) -> dict[str, float]:
        """Held-out scores of the candidate `merge` (and `adapter`) builds (it stays materialised, e.g. to be saved)."""
        return self.evaluator.heldout(self.materialize(merge, adapter=adapter), self.tokenizer)
