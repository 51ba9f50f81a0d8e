"""Stage 5, mutate by fine-tuning: the operator registry (`dpo`, `sft`).

An operator names the columns its data needs and builds its trl trainer; trl is imported
only when a trainer is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hubevo.finetune.recipe import FinetuneRecipe
from hubevo.registry import Registry


def _dpo(model, tokenizer, pairs, *, recipe: FinetuneRecipe, args: dict, peft_config):
    from trl import DPOConfig, DPOTrainer

    config = DPOConfig(**{**args, "beta": recipe.beta, **dpo_loss(recipe), **recipe.trainer_kwargs})
    return DPOTrainer(model, args=config, train_dataset=pairs, processing_class=tokenizer, peft_config=peft_config)


def dpo_loss(recipe: FinetuneRecipe) -> dict:
    """DPOConfig's loss: the recipe's DPO loss, plus trl's `sft` (NLL on the chosen answer) at `nll_weight`
    (RPO); `trainer_kwargs` naming `loss_type` replace both."""
    if "loss_type" in recipe.trainer_kwargs or not recipe.nll_weight:
        return {"loss_type": [recipe.loss_type]}
    return {"loss_type": [recipe.loss_type, "sft"], "loss_weights": [1.0, recipe.nll_weight]}


def _sft(model, tokenizer, pairs, *, recipe: FinetuneRecipe, args: dict, peft_config):
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(**{**args, **recipe.trainer_kwargs})
    return SFTTrainer(model, args=config, train_dataset=pairs, processing_class=tokenizer, peft_config=peft_config)


@dataclass(frozen=True)
class Operator:
    """A fine-tuning operator: the columns its data needs and how its trl trainer is built."""

    name: str
    columns: tuple[str, ...]
    build: Callable

    def __call__(self, model, tokenizer, pairs, **kwargs):
        return self.build(model, tokenizer, pairs, **kwargs)


OPERATORS = Registry("fine-tuning operator", [
    Operator("dpo", ("prompt", "chosen", "rejected"), _dpo),
    Operator("sft", ("prompt", "completion"), _sft),
])


def required_columns(operator: str) -> tuple[str, ...]:
    return OPERATORS[operator].columns
