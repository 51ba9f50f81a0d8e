"""Stage 5, mutate by fine-tuning: one child trained from one parent with trl (`dpo` or `sft`).

EvoMerge's mutation: every fine-tuning run is a chance for a child to beat its parents,
and selection throws away the runs that made things worse. The mutation's own
hyper-parameters are genes: `sample_recipe` draws them (pure) from the ranges of a
`FinetuneSpace`, including which dataset of the list to train on ("try everything"),
and the `FinetuneRecipe` is recorded with the child. `load_pairs` reads a seeded sample
of a preference (or instruction) dataset; `finetune` is the edge that builds the trl
trainer, trains, merges a LoRA adapter back (`merge_and_unload`) and writes a plain model
folder that mergekit can merge again. A run that diverges, an empty sample or a missing
chat template raises `CandidateError`: that child fails and the run goes on.

Memory on one GPU, for a 7B Llama (32 layers, hidden 4096, MLP 11008), DPO at batch 8 of
512-token pairs. LoRA (the default): with peft, `DPOTrainer` computes the reference
log-probabilities with the adapter disabled, so there is one copy of the model, loaded in
bf16 when the GPU supports it: 14 GB. Rank 8 on every linear layer is 20M adapter
parameters; fp32 weights, gradients and AdamW's two moments take 16 bytes each: 0.3 GB.
Activations, with activation checkpointing (on under CUDA) and trl's fused LM head (no
full logits): about 2 GB of checkpoints (16 sequences x 512 x 4096 x 2 bytes x 32 layers)
plus about 1 GB for the layer being recomputed. About 18 GB in all plus the CUDA context:
a 24 GB GPU is tight, 40 GB comfortable. Full fine-tuning (lora_rank 0) trains fp32 master
weights (28 GB) with fp32 gradients (28 GB) and AdamW moments (56 GB), and trl loads the
reference model in the policy's dtype (another 28 GB): about 140 GB, more than an 80 GB
GPU. `trainer_kwargs: {precompute_ref_log_probs: true}` drops the reference during
training (112 GB, which an H200 holds), and an 8-bit AdamW (`optim: adamw_bnb_8bit`,
bitsandbytes) cuts the moments to 14 GB (70 GB with both); otherwise shard with FSDP/DeepSpeed.
"""

from __future__ import annotations

import gc
import hashlib
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hubevo.errors import CandidateError, ConfigError, UnknownNameError

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
# trl 1.16's DPO loss types (`DPOConfig.loss_type`).
DPO_LOSSES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)
MAX_LENGTH = 1024  # tokens per prompt + completion, unless the model or tokenizer allows fewer


class _Frozen(BaseModel):
    # Not hubevo.config's: config.py embeds FinetuneSpace, so importing it here would be circular.
    model_config = ConfigDict(frozen=True, extra="forbid")


class PreferenceSource(_Frozen):
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


class FinetuneSpace(_Frozen):
    """The config section of fine-tuning mutations: the ranges each mutation's genes are drawn from."""

    operator: Literal["dpo", "sft"] = "dpo"
    datasets: list[PreferenceSource] = Field(min_length=1, description="One is drawn per mutation.")
    samples: int = Field(64, gt=0, description="Rows drawn (seeded) from the dataset per mutation.")
    learning_rate: tuple[float, float] = Field((1e-4, 1e-3), description="Sampled log-uniformly.")
    beta: tuple[float, float] = Field((0.05, 0.5), description="DPO beta, sampled log-uniformly.")
    loss_type: list[str] = Field(default_factory=lambda: ["sigmoid"], min_length=1, description="DPO loss types.")
    steps: tuple[int, int] = Field((10, 30), description="Optimizer steps, sampled uniformly (inclusive).")
    lora_rank: list[int] = Field(default_factory=lambda: [8], min_length=1, description="0 = full fine-tuning.")
    batch_size: int = Field(8, gt=0)
    trainer_kwargs: dict = Field(default_factory=dict, description="Passed through to DPOConfig / SFTConfig.")

    @model_validator(mode="after")
    def _valid_ranges(self):
        _ordered("learning_rate", *self.learning_rate, positive=True)
        _ordered("beta", *self.beta, positive=True)
        _ordered("steps", *self.steps)
        if self.steps[0] < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps[0]}")
        if any(rank < 0 for rank in self.lora_rank):
            raise ValueError(f"lora_rank values must be >= 0 (0 = full fine-tuning), got {self.lora_rank}")
        unknown = [loss for loss in self.loss_type if loss not in DPO_LOSSES]
        if unknown:
            raise ValueError(f"unknown DPO loss_type {unknown}; known: {', '.join(DPO_LOSSES)}")
        return self

    def resolved(self, root: Path) -> "FinetuneSpace":
        return self.model_copy(update={"datasets": [d.resolved(root) for d in self.datasets]})


class FinetuneRecipe(_Frozen):
    """The genes of one fine-tuning mutation, recorded with the child (results table, model card)."""

    operator: str
    parent: str = Field(description="Individual id of the model that was fine-tuned.")
    dataset: PreferenceSource
    learning_rate: float
    beta: float | None = None
    loss_type: str | None = None
    steps: int
    lora_rank: int
    samples: int
    seed: int
    batch_size: int
    trainer_kwargs: dict = Field(default_factory=dict, description="The space's pass-through trainer options.")


# --- genes (pure) -------------------------------------------------------------------------------


def _log_uniform(low: float, high: float, rng: np.random.Generator) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def sample_recipe(space: FinetuneSpace, *, parent: str, rng: np.random.Generator) -> FinetuneRecipe:
    """Draw one mutation's genes from `space`; the same generator state gives the same recipe."""
    dpo = space.operator == "dpo"
    return FinetuneRecipe(
        operator=space.operator,
        parent=parent,
        dataset=space.datasets[int(rng.integers(len(space.datasets)))],
        learning_rate=_log_uniform(*space.learning_rate, rng),
        beta=_log_uniform(*space.beta, rng) if dpo else None,
        loss_type=str(space.loss_type[int(rng.integers(len(space.loss_type)))]) if dpo else None,
        steps=int(rng.integers(space.steps[0], space.steps[1] + 1)),
        lora_rank=int(space.lora_rank[int(rng.integers(len(space.lora_rank)))]),
        samples=space.samples,
        seed=int(rng.integers(2**31 - 1)),
        batch_size=space.batch_size,
        trainer_kwargs=dict(space.trainer_kwargs),
    )


# --- data (edge: datasets I/O) ------------------------------------------------------------------


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.read_bytes())
    return f"sha256:{digest.hexdigest()[:16]}"


def _hub_revision(source: PreferenceSource) -> str | None:
    """The commit sha of a Hub dataset at `source.revision` (the revision as given when offline)."""
    from huggingface_hub import constants

    from hubevo.hub.client import ensure_api, hub_call

    if constants.HF_HUB_OFFLINE:
        return source.revision
    api = ensure_api(None)
    with hub_call(source.path, action="read the dataset", api=api, missing=ConfigError):
        return api.dataset_info(source.path, revision=source.revision).sha


def _open(source: PreferenceSource):
    """(dataset split, revision string) of a local file/folder or a Hub dataset (the whole split is fetched once)."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetNotFoundError

    path = Path(source.path).expanduser()
    if source.is_local() and not path.exists():
        raise ConfigError(f"preference dataset {source.path!r} does not exist; give an existing file or a Hub id")
    if path.is_file() and path.suffix not in LOCAL_FORMATS:
        raise ConfigError(f"preference dataset {source.path!r}: local files must be {', '.join(LOCAL_FORMATS)}")
    try:
        if path.is_file():
            data = load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split=source.split)
            return data, _file_digest(path)
        if path.is_dir():
            return load_dataset(str(path), split=source.split), _file_digest(path)
        revision = _hub_revision(source)
        return load_dataset(source.path, revision=revision, split=source.split), revision
    except (DatasetNotFoundError, FileNotFoundError, ValueError) as err:
        raise ConfigError(f"cannot read preference dataset {source.path!r} (split {source.split!r}): {err}") from None


def required_columns(operator: str) -> tuple[str, ...]:
    return get_operator(operator).columns


def _mapping(source: PreferenceSource, *, operator: str, found: list[str]) -> dict[str, str]:
    """Our column name -> the dataset's; sft falls back to `chosen` as the completion of a preference set."""
    mapping = {name: source.columns.get(name, name) for name in required_columns(operator)}
    chosen = source.columns.get("chosen", "chosen")
    if operator == "sft" and "completion" not in source.columns and "completion" not in found and chosen in found:
        mapping["completion"] = chosen
    missing = {ours: theirs for ours, theirs in mapping.items() if theirs not in found}
    if missing:
        wanted = ", ".join(o if o == t else f"{o} (mapped to {t!r})" for o, t in missing.items())
        raise ConfigError(
            f"preference dataset {source.path!r} lacks column(s) {wanted} for operator {operator!r}; "
            f"found columns: {', '.join(found) or 'none'}; map yours with `columns`, e.g. {{prompt: question}}"
        )
    return mapping


def _load(source: PreferenceSource, *, operator: str, samples: int, seed: int):
    data, revision = _open(source)
    mapping = _mapping(source, operator=operator, found=list(data.column_names))
    count = min(samples, len(data))
    order = np.random.default_rng(seed).choice(len(data), size=count, replace=False) if count else []
    data = data.select([int(i) for i in order]).select_columns(sorted(set(mapping.values())))
    rows = [{ours: row[theirs] for ours, theirs in mapping.items()} for row in data]
    rows = [row for row in rows if all(value not in (None, "", []) for value in row.values())]
    if not rows:
        raise CandidateError(
            f"preference dataset {source.path!r} gave an empty sample ({len(data)} of {samples} rows drawn, "
            "none with every required column filled); add rows or pick another dataset"
        )
    from datasets import Dataset

    return Dataset.from_list(rows), revision


def load_pairs(source: PreferenceSource, *, operator: str = "dpo", samples: int, seed: int):
    """A seeded sample of `samples` rows with our column names (prompt/chosen/rejected or prompt/completion).

    Rows with an empty required field are dropped after sampling. Missing columns raise a
    `ConfigError` that lists the columns found; an empty sample raises `CandidateError`.
    """
    return _load(source, operator=operator, samples=samples, seed=seed)[0]


def check_sources(space: FinetuneSpace) -> None:
    """Read one row of every dataset in `space`, so that bad paths and columns fail before a run starts."""
    for source in space.datasets:
        _load(source, operator=space.operator, samples=1, seed=0)


def _require_chat_template(pairs, tokenizer, *, source: PreferenceSource) -> None:
    from trl.data_utils import is_conversational

    if is_conversational(pairs[0]) and not getattr(tokenizer, "chat_template", None):
        raise CandidateError(
            f"preference dataset {source.path!r} is conversational (lists of messages) but the parent's tokenizer "
            "has no chat template; use plain-text prompts or a model whose tokenizer defines chat_template"
        )


# --- trainers (edge: trl) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where and in which precision a mutation trains."""

    cuda: bool
    bf16: bool

    @classmethod
    def of(cls, device: str | None) -> "Placement":
        import torch

        has_cuda = torch.cuda.is_available()
        device = device or ("cuda" if has_cuda else "cpu")
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"fine-tuning device {device!r} is not supported; use 'cpu', 'cuda' or None (automatic)")
        if device == "cuda" and not has_cuda:
            raise ConfigError("fine-tuning device 'cuda' was asked for but torch sees no CUDA device")
        cuda = device == "cuda"
        return cls(cuda=cuda, bf16=cuda and torch.cuda.is_bf16_supported())


def _common_args(recipe: FinetuneRecipe, *, place: Placement, output_dir: str, max_length: int) -> dict:
    return {
        "output_dir": output_dir,
        "max_steps": recipe.steps,
        "per_device_train_batch_size": recipe.batch_size,
        "learning_rate": recipe.learning_rate,
        "seed": recipe.seed,
        "data_seed": recipe.seed,
        "use_cpu": not place.cuda,
        "bf16": place.bf16,
        "fp16": False,
        "activation_checkpointing": place.cuda,  # memory matters on a GPU; on CPU it only costs time
        "max_length": max_length,
        "logging_steps": 1,
        "logging_nan_inf_filter": False,  # the default would hide a NaN loss behind the running mean
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
    }


def _dpo(model, tokenizer, pairs, *, recipe: FinetuneRecipe, args: dict, peft_config):
    from trl import DPOConfig, DPOTrainer

    config = DPOConfig(**{**args, "beta": recipe.beta, "loss_type": [recipe.loss_type], **recipe.trainer_kwargs})
    return DPOTrainer(model, args=config, train_dataset=pairs, processing_class=tokenizer, peft_config=peft_config)


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


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("dpo", ("prompt", "chosen", "rejected"), _dpo),
        Operator("sft", ("prompt", "completion"), _sft),
    )
}


def get_operator(name: str) -> Operator:
    if name not in OPERATORS:
        raise UnknownNameError(f"unknown fine-tuning operator {name!r}; known: {', '.join(sorted(OPERATORS))}")
    return OPERATORS[name]


# --- one mutation -------------------------------------------------------------------------------


def _stop_on_non_finite():
    from transformers import TrainerCallback

    class StopOnNonFinite(TrainerCallback):
        """Stop at the first non-finite logged loss: the remaining steps could only waste time."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(loss):
                control.should_training_stop = True

    return StopOnNonFinite()


def _quiet(trainer) -> None:
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Silence the per-mutation bars of datasets (map, filter) and transformers (load, save); restore them after."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets_on, transformers_on = datasets.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_on:
            datasets.enable_progress_bars()
        if transformers_on:
            hf_logging.enable_progress_bar()


def _parent_dtype(config):
    import torch

    dtype = getattr(config, "dtype", None) or torch.float32
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def _load_parent(model_dir: Path, *, recipe: FinetuneRecipe, place: Placement):
    """(model, parent dtype); LoRA trains over bf16 weights on a bf16 GPU, full fine-tuning keeps fp32 masters."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = _parent_dtype(AutoConfig.from_pretrained(model_dir))
    load_dtype = torch.bfloat16 if recipe.lora_rank and place.bf16 else torch.float32
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=load_dtype), dtype


def _load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    if not (model_dir / "config.json").is_file():
        raise CandidateError(f"parent model folder {str(model_dir)!r} has no config.json")
    return AutoTokenizer.from_pretrained(model_dir)


def _release(place: Placement) -> None:
    """Give the trainer's GPU memory back before the next mutation or evaluation in this process."""
    if place.cuda:
        import torch

        gc.collect()
        torch.cuda.empty_cache()


def _max_length(model, tokenizer) -> int:
    limits = [MAX_LENGTH, getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    return int(min(limit for limit in limits if limit))


def _peft_config(rank: int):
    if rank == 0:
        return None
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def _check_history(history: list[dict], *, recipe: FinetuneRecipe) -> list[dict]:
    steps = [entry for entry in history if "loss" in entry]
    bad = next((entry for entry in steps if not math.isfinite(entry["loss"])), None)
    if bad is not None:
        raise CandidateError(
            f"{recipe.operator} mutation of {recipe.parent} diverged: loss {bad['loss']} at step {bad.get('step')} "
            f"(learning_rate {recipe.learning_rate:.3g}); the child is discarded"
        )
    if not steps:
        raise CandidateError(f"{recipe.operator} mutation of {recipe.parent} logged no training step")
    return steps


def _check_weights(model, *, recipe: FinetuneRecipe) -> None:
    import torch

    for name, param in model.named_parameters():
        if not torch.isfinite(param).all():
            raise CandidateError(f"{recipe.operator} mutation of {recipe.parent} diverged: non-finite weights {name}")


def _save(model, tokenizer, *, out_dir: Path, dtype, use_cache) -> None:
    """Write the model folder next to `out_dir`, then move it in place, so a half-written child never exists."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    model.config.use_cache = use_cache
    try:
        model.to(dtype).save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(partial, out_dir)


def _metrics(steps: list[dict], *, seconds: float, global_step: int, revision: str | None) -> dict:
    last = steps[-1]
    return {
        "final_loss": float(last["loss"]),
        "reward_accuracy": last.get("rewards/accuracies"),
        "reward_margin": last.get("rewards/margins"),
        "seconds": seconds,
        "steps": global_step,
        "dataset_revision": revision,
    }


def _train(model, tokenizer, pairs, *, recipe: FinetuneRecipe, place: Placement, callbacks=()):
    """Build the operator's trainer in a scratch output folder and train; returns the trainer."""
    import torch

    operator = get_operator(recipe.operator)
    with tempfile.TemporaryDirectory(prefix="hubevo-finetune-") as scratch, warnings.catch_warnings():
        # trl 1.16 still asks transformers 5 for the renamed attribute, once per trainer
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
        args = _common_args(recipe, place=place, output_dir=scratch, max_length=_max_length(model, tokenizer))
        lora = _peft_config(recipe.lora_rank)
        trainer = operator(model, tokenizer, pairs, recipe=recipe, args=args, peft_config=lora)
        _quiet(trainer)
        for callback in (_stop_on_non_finite(), *callbacks):
            trainer.add_callback(callback)
        try:
            trainer.train()
        except torch.OutOfMemoryError:
            raise CandidateError(f"{recipe.operator} mutation of {recipe.parent} ran out of GPU memory") from None
    return trainer


def finetune(model_dir: Path, recipe: FinetuneRecipe, *, out_dir: Path, device: str | None = None) -> dict:
    """Fine-tune the parent in `model_dir` by `recipe` and write the child, a plain HF model folder, to `out_dir`.

    Returns the run's metrics (`final_loss`, `reward_accuracy` and `reward_margin` of the
    last step's batch, None for sft; `seconds`, `steps`, `dataset_revision`). Raises
    `CandidateError` when the sample is empty, a conversational dataset meets a tokenizer
    without chat template, the run diverges (non-finite loss or weights) or runs out of memory.
    """
    start = time.perf_counter()
    get_operator(recipe.operator)
    place, model_dir = Placement.of(device), Path(model_dir)
    with _no_progress_bars():
        pairs, revision = _load(recipe.dataset, operator=recipe.operator, samples=recipe.samples, seed=recipe.seed)
        tokenizer = _load_tokenizer(model_dir)
        _require_chat_template(pairs, tokenizer, source=recipe.dataset)
        model, dtype = _load_parent(model_dir, recipe=recipe, place=place)
        use_cache = model.config.use_cache
        trainer = _train(model, tokenizer, pairs, recipe=recipe, place=place)
        steps, global_step = _check_history(trainer.state.log_history, recipe=recipe), trainer.state.global_step
        child = trainer.accelerator.unwrap_model(trainer.model)
        del trainer, model
        child = child.merge_and_unload() if recipe.lora_rank else child
        _check_weights(child, recipe=recipe)
        _save(child, tokenizer, out_dir=Path(out_dir), dtype=dtype, use_cache=use_cache)
    del child
    _release(place)
    return _metrics(steps, seconds=time.perf_counter() - start, global_step=global_step, revision=revision)
