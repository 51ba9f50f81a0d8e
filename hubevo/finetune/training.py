"""Stage 5, mutate by fine-tuning: the edge that trains one child from one parent with trl.

`finetune` loads the parent, builds the operator's trl trainer, trains, merges a LoRA
adapter back (`merge_and_unload`) and writes a plain model folder that mergekit can merge
again. A run that diverges, an empty sample or a missing chat template raises
`CandidateError`: that child fails and the run goes on.

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
import math
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hubevo.errors import CandidateError, ConfigError
from hubevo.finetune.data import _load, require_chat_template
from hubevo.finetune.operators import OPERATORS
from hubevo.finetune.recipe import FinetuneRecipe
from hubevo.fsio import atomic_dir

MAX_LENGTH = 1024  # tokens per prompt + completion, unless the model or tokenizer allows fewer


def finetune(model_dir: Path, recipe: FinetuneRecipe, *, out_dir: Path, device: str | None = None,
             adapter_only: bool = False, report: dict | None = None) -> dict:
    """Fine-tune the parent in `model_dir` by `recipe` and write the child, a plain HF model folder, to `out_dir`.

    With `adapter_only` and a LoRA recipe, `out_dir` gets the peft adapter alone (the child is
    the parent plus the adapter, merged when it is materialised): megabytes instead of a model.
    `report` names where the training curves go (trl's `report_to`, `run_name`, `project`, and
    `logging_dir` for tensorboard); None: nowhere.

    Returns the run's metrics (`final_loss`, `reward_accuracy` and `reward_margin` of the
    last step's batch, None for sft; `seconds`, `steps`, `dataset_revision`). Raises
    `CandidateError` when the sample is empty, a conversational dataset meets a tokenizer
    without chat template, the run diverges (non-finite loss or weights, non-finite or flat logits) or runs
    out of memory.
    """
    start = time.perf_counter()
    OPERATORS[recipe.operator]
    place, model_dir = Placement.of(device), Path(model_dir)
    with _no_progress_bars():
        pairs, revision = _load(recipe.dataset, operator=recipe.operator, samples=recipe.samples, seed=recipe.seed)
        tokenizer = _load_tokenizer(model_dir)
        require_chat_template(pairs, tokenizer, source=recipe.dataset)
        model, dtype = _load_parent(model_dir, recipe=recipe, place=place)
        use_cache = model.config.use_cache
        trainer = _train(model, tokenizer, pairs, recipe=recipe, place=place, report=report)
        steps, global_step = _check_history(trainer.state.log_history, recipe=recipe), trainer.state.global_step
        child = trainer.accelerator.unwrap_model(trainer.model)
        _check_outputs(child, next(iter(trainer.get_train_dataloader())), recipe=recipe)
        del trainer, model
        if adapter_only and recipe.lora_rank:
            _check_weights(child, recipe=recipe)
            _save_adapter(child, out_dir=Path(out_dir))
        else:
            child = child.merge_and_unload() if recipe.lora_rank else child
            _check_weights(child, recipe=recipe)
            _save(child, tokenizer, out_dir=Path(out_dir), dtype=dtype, use_cache=use_cache)
    del child
    _release(place)
    return _metrics(steps, seconds=time.perf_counter() - start, global_step=global_step, revision=revision)


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


# --- the trainer ------------------------------------------------------------------------------


def _train(model, tokenizer, pairs, *, recipe: FinetuneRecipe, place: Placement, callbacks=(), report=None):
    """Build the operator's trainer in a scratch output folder and train; returns the trainer."""
    import torch

    operator = OPERATORS[recipe.operator]
    with tempfile.TemporaryDirectory(prefix="hubevo-finetune-") as scratch, warnings.catch_warnings():
        # trl 1.16 still asks transformers 5 for the renamed attribute, once per trainer
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
        reporting, reporters = _reporting(report)
        args = {**_common_args(recipe, place=place, output_dir=scratch, max_length=_max_length(model, tokenizer)),
                **reporting}
        lora = _peft_config(recipe.lora_rank)
        trainer = operator(model, tokenizer, pairs, recipe=recipe, args=args, peft_config=lora)
        _quiet(trainer)
        for callback in (_stop_on_non_finite(), *reporters, *callbacks):
            trainer.add_callback(callback)
        try:
            trainer.train()
        except torch.OutOfMemoryError:
            raise CandidateError(f"{recipe.operator} mutation of {recipe.parent} ran out of GPU memory") from None
    return trainer


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


def _reporting(report: dict | None) -> tuple[dict, list]:
    """trl's reporting arguments and callbacks: `report_to` "none" (as `_common_args` says) without a `report`.
    TensorBoard gets its own writer on `report["logging_dir"]`: transformers 5 writes its event files into the
    output folder, here a scratch folder deleted after training."""
    if not report:
        return {}, []
    args = dict(report)
    logging_dir = args.pop("logging_dir", None)
    if logging_dir is None or "tensorboard" not in args["report_to"]:
        return args, []
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    args["report_to"] = [name for name in args["report_to"] if name != "tensorboard"]
    return args, [TensorBoardCallback(tb_writer=SummaryWriter(log_dir=logging_dir))]


def _max_length(model, tokenizer) -> int:
    limits = [MAX_LENGTH, getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    return int(min(limit for limit in limits if limit))


def _peft_config(rank: int):
    if rank == 0:
        return None
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


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


# --- parent in, child out ---------------------------------------------------------------------


def _load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    if not (model_dir / "config.json").is_file():
        raise CandidateError(f"parent model folder {str(model_dir)!r} has no config.json")
    return AutoTokenizer.from_pretrained(model_dir)


def _load_parent(model_dir: Path, *, recipe: FinetuneRecipe, place: Placement):
    """(model, parent dtype); LoRA trains over bf16 weights on a bf16 GPU, full fine-tuning keeps fp32 masters."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = _parent_dtype(AutoConfig.from_pretrained(model_dir))
    load_dtype = torch.bfloat16 if recipe.lora_rank and place.bf16 else torch.float32
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=load_dtype), dtype


def _parent_dtype(config):
    import torch

    dtype = getattr(config, "dtype", None) or torch.float32
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


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


def _check_outputs(model, batch: dict, *, recipe: FinetuneRecipe) -> None:
    """Fail the child whose next-token logits on a training sequence are non-finite or flat.

    A learning rate far too high can grow the weights until a normalisation layer's mean square
    overflows: every activation after it is 0, so the logits are the same for every token while the
    loss and the weights stay finite (trl's logged loss sits near log 2 and the child scores 0).
    """
    import torch

    ids = batch["input_ids"][:1]  # (1, T): one sequence is enough, and bounds the logits' memory
    mask = batch.get("attention_mask", torch.ones_like(ids))[:1]  # (1, T)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits  # (1, T, vocab)
    model.train(was_training)
    logits = logits[mask.bool()].float()  # (real tokens, vocab)
    problem = ("hold NaN or inf" if not torch.isfinite(logits).all()
               else "are flat (one value for every token)" if bool((logits.amax(-1) == logits.amin(-1)).all())
               else None)
    if problem:
        raise CandidateError(
            f"{recipe.operator} mutation of {recipe.parent} diverged: the trained model's logits {problem} after "
            f"training, though the loss stayed finite (learning_rate {recipe.learning_rate:.3g}); the child is "
            "discarded"
        )


def _check_weights(model, *, recipe: FinetuneRecipe) -> None:
    import torch

    for name, param in model.named_parameters():
        if not torch.isfinite(param).all():
            raise CandidateError(f"{recipe.operator} mutation of {recipe.parent} diverged: weights hold NaN or inf "
                                 f"after training ({name}; learning_rate {recipe.learning_rate:.3g}); the child is "
                                 "discarded")


def _save(model, tokenizer, *, out_dir: Path, dtype, use_cache) -> None:
    """Write the child folder through a temporary sibling, so a half-written child never exists."""
    model.config.use_cache = use_cache
    with atomic_dir(out_dir) as partial:
        model.to(dtype).save_pretrained(partial)
        tokenizer.save_pretrained(partial)


def _save_adapter(model, *, out_dir: Path) -> None:
    """Write only the LoRA adapter (peft's `adapter_config.json` and `adapter_model.safetensors`)."""
    with atomic_dir(out_dir) as partial:
        model.save_pretrained(partial)


def _release(place: Placement) -> None:
    """Give the trainer's GPU memory back before the next mutation or evaluation in this process."""
    if place.cuda:
        import torch

        gc.collect()
        torch.cuda.empty_cache()


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
