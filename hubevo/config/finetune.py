"""The run file's `mutation.finetune` section: the ranges each fine-tuning mutation's genes are drawn from.

EvoMerge's mutation by training (DPO or SFT): the learning rate, beta, loss, steps, LoRA rank and the
dataset are genes, drawn per mutation (`hubevo.finetune.recipe.sample_recipe`) from these ranges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from hubevo.config.frozen import Frozen
from hubevo.config.paths import local_path, refers_to_disk
from hubevo.registry import unknown_name

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}


# trl 1.16's DPO loss types (`DPOConfig.loss_type`).
DPO_LOSSES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)


Rate = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]  # a learning rate
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Steps = Annotated[int, Field(ge=1)]


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

    def is_local(self, root: Path | None = None) -> bool:
        """A local file or folder (a data file's suffix, written as a path, or existing relative to `root`, default
        the working folder), not a Hub dataset id."""
        return Path(self.path).suffix in LOCAL_FORMATS or refers_to_disk(self.path, root=root or Path.cwd())

    def resolved(self, root: Path, *, field: str = "mutation.finetune.datasets",
                 expand_vars: bool = True) -> "PreferenceSource":
        """This source with a local path expanded and resolved against `root` (the config file's folder)."""
        if not self.is_local(root):
            return self
        path = local_path(self.path, root=root, field=f"{field}.path", expand_vars=expand_vars)
        return self.model_copy(update={"path": str(path)})


def _ordered(name: str, low, high) -> None:
    if low > high:
        raise ValueError(f"{name} range is empty: {low} > {high}")


class FinetuneSpace(Frozen):
    """The config section of fine-tuning mutations: the ranges each mutation's genes are drawn from."""

    operator: Literal["dpo", "sft"] = "dpo"
    datasets: list[PreferenceSource] = Field(min_length=1, description="One is drawn per mutation.")
    samples: int = Field(64, gt=0, description="Rows drawn (seeded) from the dataset per mutation.")
    learning_rate: tuple[Rate, Rate] = Field((1e-4, 1e-3), description="Sampled log-uniformly from (low, high), "
                                                                        "both in (0, 1].")
    beta: tuple[Positive, Positive] = Field((0.05, 0.5), description="DPO beta, sampled log-uniformly; both > 0.")
    loss_type: list[str] = Field(default_factory=lambda: ["sigmoid"], min_length=1, description="DPO loss types.")
    nll_weight: float = Field(
        1.0, ge=0, allow_inf_nan=False,
        description="Weight of the NLL term on the chosen answer added to the DPO loss (RPO: trl's "
                    "loss_type [<loss>, sft]); 0 = the DPO loss alone. On a small model plain DPO "
                    "pulls it away from the task (bench/quality.py).")
    steps: tuple[Steps, Steps] = Field((10, 30), description="Optimizer steps, sampled uniformly (inclusive).")
    lora_rank: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [8], min_length=1,
                                                         description="LoRA ranks drawn from; 0 = full fine-tuning.")
    batch_size: int = Field(8, gt=0, description="Training batch size (rows per optimizer step).")
    trainer_kwargs: dict = Field(default_factory=dict, description="Passed through to DPOConfig / SFTConfig.")
    baseline_steps: list[Steps] | None = Field(
        None, description="Step counts of the built-in merge + fine-tune baselines (the best standard recipe "
                          "fine-tuned in one go on the same data, in generation 1); default the top of `steps` and "
                          "four times it; [] for none.")

    @model_validator(mode="after")
    def _valid_ranges(self):
        _ordered("learning_rate", *self.learning_rate)
        _ordered("beta", *self.beta)
        _ordered("steps", *self.steps)
        unknown = [unknown_name("DPO loss_type", loss, DPO_LOSSES) for loss in self.loss_type if loss not in DPO_LOSSES]
        if unknown:
            raise ValueError("; ".join(unknown))
        return self

    def resolved(self, root: Path, *, expand_vars: bool = True) -> "FinetuneSpace":
        return self.model_copy(update={"datasets": [
            d.resolved(root, field=f"mutation.finetune.datasets.{i}", expand_vars=expand_vars)
            for i, d in enumerate(self.datasets)]})
