"""Stage 2, evaluate: which examples each candidate is scored on (pure, seeded).

Each fitness task's documents are split once, by a seeded permutation, into a fitness pool and
validation examples (carved from the task only when `fitness.validation` names no tasks of its
own; they never appear in a fitness sample). Every candidate of a generation is scored on the same
sample of the pool, a fixed one by default and a fresh one each generation with `resample`, so a
selection compares scores on the same examples; racing reads prefixes of the sample in a seeded
order. A group task (its documents are not known one by one) falls back to lm-eval's `limit`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from functools import cached_property

import numpy as np

from hubevo.config import FitnessConfig
from hubevo.errors import ConfigError

Sample = dict[str, list[int]]  # task -> document indices


class SamplingPlan:
    """The examples of every scoring of a run, from the fitness config and each task's document count."""

    def __init__(self, cfg: FitnessConfig, *, doc_counts: Mapping[str, int]):
        self.cfg, self.doc_counts = cfg, dict(doc_counts)

    @cached_property
    def split(self) -> dict[str, tuple[list[int], list[int]]] | None:
        """Per fitness task: (fitness pool, validation examples), a fixed seeded split of its documents.

        The validation examples are carved from the fitness task only when `fitness.validation`
        names no tasks of its own; they never appear in a fitness sample. None for a group task
        (its documents are not known one by one): then lm-eval's `limit` applies.
        """
        if 0 in self.doc_counts.values():
            return None
        carve = self.cfg.finalists > 0 and not self.cfg.validation
        out = {}
        for name, count in self.doc_counts.items():
            order = [int(i) for i in np.random.default_rng([self.cfg.seed, 7919, zlib.crc32(name.encode())])
                     .permutation(count)]
            held = min(count - 1, round(self.cfg.validation_fraction * count)) if carve else 0
            if self.cfg.validation_limit:
                held = min(held, self.cfg.validation_limit)
            out[name] = (order[held:], sorted(order[:held]))
        return out

    def sample_indices(self, generation: int) -> Sample | None:
        """The examples every candidate of `generation` is scored on (None = lm-eval's `limit`).

        A fixed seeded sample of each task's fitness pool by default, so every score a selection
        compares is on the same examples; with `resample`, a fresh one every generation.
        """
        if self.split is None:
            return None
        rng = np.random.default_rng([self.cfg.seed, generation])
        samples = {}
        for name, (pool, _) in self.split.items():
            size = min(self.cfg.limit or len(pool), len(pool))
            chosen = rng.choice(pool, size=size, replace=False) if self.cfg.resample else pool[:size]
            samples[name] = sorted(int(i) for i in chosen)
        return samples

    def sample_key(self, generation: int) -> int | None:
        """Which sample a score of `generation` is on: the generation when resampling, else None (the fixed one)."""
        return generation if self.cfg.resample and self.split is not None else None

    def validation_samples(self) -> Sample | None:
        """The validation examples per fitness task (None when `fitness.validation` names tasks): the carved
        ones and, with one fixed fitness sample (no `resample`), every pool example that sample leaves out;
        no fitness score ever saw them, and the more there are, the smaller a lead the finals can resolve.
        `validation_limit` caps them per task, carved ones first."""
        if self.cfg.validation or self.split is None:
            return None
        fixed = self.sample_indices(0) if not self.cfg.resample else None
        out = {}
        for name, (pool, carved) in self.split.items():
            sampled = set(fixed[name]) if fixed else set(pool)
            unseen = [i for i in pool if i not in sampled]
            chosen = [*carved, *unseen][:self.cfg.validation_limit] if carved else []
            if chosen:
                out[name] = sorted(chosen)
        return out

    def can_validate(self) -> bool:
        return self.cfg.finalists > 0 and bool(self.cfg.validation or self.validation_samples())

    def racing_order(self, generation: int) -> Sample:
        """This generation's whole fitness sample, per task, in a seeded order; racing rungs read prefixes."""
        samples = self.sample_indices(generation)
        if samples is None:  # lm-eval's `limit`: the first documents of each task
            if 0 in self.doc_counts.values():
                raise ConfigError("fitness.racing needs tasks, not groups: name the group's tasks in fitness.tasks")
            samples = {t: list(range(min(self.cfg.limit or c, c))) for t, c in self.doc_counts.items()}
        rng = np.random.default_rng([self.cfg.seed, generation, 1])
        return {t: [idx[i] for i in rng.permutation(len(idx))] for t, idx in samples.items()}
