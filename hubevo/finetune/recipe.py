"""Stage 5, mutate by fine-tuning: the genes of a mutation and the config ranges they are drawn from.

EvoMerge's mutation: every fine-tuning run is a chance for a child to beat its parents,
and selection throws away the runs that made things worse. The mutation's own
hyper-parameters are genes: `sample_recipe` draws them (pure) from the ranges of a
`FinetuneSpace`, including which dataset of the list to train on ("try everything"),
and the `FinetuneRecipe` is recorded with the child. Nothing here reads data or trains.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from hubevo.config.finetune import FinetuneSpace, PreferenceSource
from hubevo.config.frozen import Frozen


class FinetuneRecipe(Frozen):
    """The genes of one fine-tuning mutation, recorded with the child (results table, model card)."""

    operator: str
    parent: str = Field(description="Individual id of the model that was fine-tuned.")
    dataset: PreferenceSource
    learning_rate: float
    beta: float | None = None
    loss_type: str | None = None
    nll_weight: float = Field(0.0, description="NLL weight beside the DPO loss (recipes recorded before it: 0).")
    steps: int
    lora_rank: int
    samples: int
    seed: int
    batch_size: int
    trainer_kwargs: dict = Field(default_factory=dict, description="The space's pass-through trainer options.")


def _log_uniform(low: float, high: float, rng: np.random.Generator) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _pick(options: list, rng: np.random.Generator):
    return options[int(rng.integers(len(options)))]


def one_go_recipe(space: FinetuneSpace, *, parent: str, steps: int, seed: int) -> FinetuneRecipe:
    """The fine-tune a practitioner runs once: mid-range genes, `steps` steps over fresh rows."""
    dpo = space.operator == "dpo"
    return FinetuneRecipe(
        operator=space.operator,
        parent=parent,
        dataset=space.datasets[0],
        learning_rate=float(np.sqrt(space.learning_rate[0] * space.learning_rate[1])),
        beta=float(np.sqrt(space.beta[0] * space.beta[1])) if dpo else None,
        loss_type=space.loss_type[0] if dpo else None,
        nll_weight=space.nll_weight if dpo else 0.0,
        steps=steps,
        lora_rank=max(space.lora_rank),
        samples=max(space.samples, steps * space.batch_size),
        seed=seed,
        batch_size=space.batch_size,
        trainer_kwargs=dict(space.trainer_kwargs),
    )


def baseline_step_counts(space: FinetuneSpace) -> list[int]:
    return list(space.baseline_steps) if space.baseline_steps is not None else [space.steps[1], 4 * space.steps[1]]


def sample_recipe(space: FinetuneSpace, *, parent: str, rng: np.random.Generator) -> FinetuneRecipe:
    """Draw one mutation's genes from `space`; the same generator state gives the same recipe."""
    dpo = space.operator == "dpo"
    return FinetuneRecipe(
        operator=space.operator,
        parent=parent,
        dataset=_pick(space.datasets, rng),
        learning_rate=_log_uniform(*space.learning_rate, rng),
        beta=_log_uniform(*space.beta, rng) if dpo else None,
        loss_type=str(_pick(space.loss_type, rng)) if dpo else None,
        nll_weight=space.nll_weight if dpo else 0.0,
        steps=int(rng.integers(space.steps[0], space.steps[1] + 1)),
        lora_rank=int(_pick(space.lora_rank, rng)),
        samples=space.samples,
        seed=int(rng.integers(2**31 - 1)),
        batch_size=space.batch_size,
        trainer_kwargs=dict(space.trainer_kwargs),
    )
