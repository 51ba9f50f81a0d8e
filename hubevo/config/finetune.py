"""The run file's `mutation.finetune` section: the ranges each fine-tuning mutation's genes are drawn from.

EvoMerge's mutation by training (DPO or SFT): the learning rate, beta, loss, steps, LoRA rank and the
dataset are genes, drawn per mutation (`hubevo.finetune.recipe.sample_recipe`) from these ranges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hubevo.config.frozen import Frozen
from hubevo.registry import unknown_name

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}


# trl 1.16's DPO loss types (`DPOConfig.loss_type`).
DPO_LOSSES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)


class PreferenceSource(Frozen):
    """One dataset of the list the `dataset` gene picks from."""

    path: str = Field(description="A local .json/.jsonl/.parquet file (or data folder), or a Hub dataset id.")
    revision: str | None = Field(None, description="Hub branch, tag or commit; resolved to a commit sha when read.")
    split: str = Field("train", description="Split to sample from; slicing syntax such as 'train[:1000]' works.")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Our column name (prompt/chosen/rejected, or prompt/completion for sft) -> the dataset's column.",
    )

    @field_validator("columns")
    @classmethod
    def _known_names(cls, columns):
        unknown = sorted(set(columns) - {"prompt", "chosen", "rejected", "completion"})
        if unknown:
            raise ValueError(f"columns maps unknown name(s) {unknown}; map prompt, chosen, rejected or completion")
        return columns

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value):
        return {"path": value} if isinstance(value, str) else value

    def is_local(self) -> bool:
        return Path(self.path).suffix in LOCAL_FORMATS or Path(self.path).expanduser().exists()

    def resolved(self, root: Path) -> "PreferenceSource":
        """This source with a relative local path resolved against `root` (the config file's folder)."""
        if not self.is_local() and not (root / self.path).exists():
            return self
        path = Path(self.path).expanduser()
        return self if path.is_absolute() else self.model_copy(update={"path": str((root / path).resolve())})


def _ordered(name: str, low, high, *, positive: bool = False) -> None:
    if low > high:
        raise ValueError(f"{name} range is empty: {low} > {high}")
    if positive and low <= 0:
        raise ValueError(f"{name} range must be positive (it is sampled log-uniformly), got {low}")


class FinetuneSpace(Frozen):
    """The config section of fine-tuning mutations: the ranges each mutation's genes are drawn from."""

    operator: Literal["dpo", "sft"] = "dpo"
    datasets: list[PreferenceSource] = Field(min_length=1, description="One is drawn per mutation.")
    samples: int = Field(64, gt=0, description="Rows drawn (seeded) from the dataset per mutation.")
    learning_rate: tuple[float, float] = Field((1e-4, 1e-3), description="Sampled log-uniformly.")
    beta: tuple[float, float] = Field((0.05, 0.5), description="DPO beta, sampled log-uniformly.")
    loss_type: list[str] = Field(default_factory=lambda: ["sigmoid"], min_length=1, description="DPO loss types.")
    nll_weight: float = Field(
        1.0, ge=0, description="Weight of the NLL term on the chosen answer added to the DPO loss (RPO: trl's "
                               "loss_type [<loss>, sft]); 0 = the DPO loss alone. On a small model plain DPO "
                               "pulls it away from the task (bench/quality.py).")
    steps: tuple[int, int] = Field((10, 30), description="Optimizer steps, sampled uniformly (inclusive).")
    lora_rank: list[int] = Field(default_factory=lambda: [8], min_length=1, description="0 = full fine-tuning.")
    batch_size: int = Field(8, gt=0)
    trainer_kwargs: dict = Field(default_factory=dict, description="Passed through to DPOConfig / SFTConfig.")
    baseline_steps: list[int] | None = Field(
        None, description="Step counts of the built-in merge + fine-tune baselines (the best standard recipe "
                          "fine-tuned in one go on the same data, in generation 1); default the top of `steps` and "
                          "four times it; [] for none.")

    @model_validator(mode="after")
    def _valid_ranges(self):
        _ordered("learning_rate", *self.learning_rate, positive=True)
        _ordered("beta", *self.beta, positive=True)
        _ordered("steps", *self.steps)
        if self.steps[0] < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps[0]}")
        if any(step < 1 for step in self.baseline_steps or []):
            raise ValueError(f"baseline_steps must be at least 1 each, got {self.baseline_steps}")
        if any(rank < 0 for rank in self.lora_rank):
            raise ValueError(f"lora_rank values must be >= 0 (0 = full fine-tuning), got {self.lora_rank}")
        unknown = [unknown_name("DPO loss_type", loss, DPO_LOSSES) for loss in self.loss_type if loss not in DPO_LOSSES]
        if unknown:
            raise ValueError("; ".join(unknown))
        return self

    def resolved(self, root: Path) -> "FinetuneSpace":
        return self.model_copy(update={"datasets": [d.resolved(root) for d in self.datasets]})
