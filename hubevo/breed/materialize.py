"""Stage 4, breed, at its side-effect edge (the mergekit fence): a mergekit `MergeConfiguration` into weights.

Genome -> `MergeConfiguration` is pure and happens elsewhere; this file is the one place
where such a configuration touches disk and memory. `Materializer` keeps one resident model
and overwrites its parameters with each merge (no disk round-trip); `merge_to_disk` runs
`mergekit.merge.run_merge` for survivors that must be written out.

Every use of mergekit's private API is here, and `tests/breed/test_materialize.py` pins it:
- `MergePlanner._plan()` and the `_tensors` list it fills, plus one
  `ReturnTensor.model_construct(...)` per tensor: the public `plan_in_memory()` fails under
  pydantic >= 2.13 ("Can't instantiate abstract class Task[Tensor]") while validating the
  generic `Task[torch.Tensor]` field, and `model_construct` skips that validation;
- `mergekit.merge._model_out_config`, the output model's config (changes for layer stacking;
  `_follow_slice_layer_types` completes it for configs with per-layer `layer_types`);
- `LoaderCache.loaders`, see `clear_loader_cache` and `_release_shards`;
- `Executor._run` (task handles and values), see `_execute`;
- the locals `task` (`graph.Executor._run`), `self` (a `Task.execute`) and `weight`
  (`MergePlanner.plan_tensor`) of the frames on a failure's traceback, read only to name the
  failing tensor in the error message (best effort; falls back to "an unknown tensor").

Stochastic methods (dare_ties, dare_linear, della, della_linear) draw their masks with
`torch.bernoulli` from torch's global generator; mergekit has no per-merge generator. Its only
seed is `MergeOptions.random_seed` (CLI `--random-seed`), which `run_merge` feeds to
`transformers.set_seed` once before planning; unset, the masks differ on every run. Masks
are drawn in the executor's schedule order (tensor name, then priority), which is the same
for the in-memory and to-disk plans, so the same seed gives bit-identical weights on the
same device. Here every merge seeds torch with `random_seed` (default `DEFAULT_SEED`) inside
`torch.random.fork_rng`, so a config always materialises to the same weights and the
caller's random state is left as it was. breadcrumbs (magnitude_outliers) is deterministic.
"""

from __future__ import annotations

import contextlib
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import transformers
from mergekit.architecture import WeightInfo, get_architecture_info
from mergekit.config import MergeConfiguration
from mergekit.graph import Executor
from mergekit.io.tasks import LoaderCache, ReturnTensor
from mergekit.merge import _model_out_config, run_merge
from mergekit.options import MergeOptions
from mergekit.plan import MergePlanner
from transformers.initialization import no_init_weights

from hubevo.breed.genome import DEFAULT_SEED
from hubevo.errors import CandidateError, MemberNotFoundError

TOKENIZER_FILES = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer.model",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
# Config keys that differ between a saved and a loaded config without changing the model.
_BOOKKEEPING_KEYS = frozenset({"transformers_version", "_name_or_path", "dtype", "torch_dtype", "use_cache"})


def clear_loader_cache() -> None:
    """Forget mergekit's open tensor loaders so the next merge re-reads every member from disk.

    `LoaderCache` is a per-thread singleton, but its `loaders` dict (model path -> index of
    tensor names plus an open safetensors shard) is a class attribute shared by all threads.
    A folder rewritten in place (a mutation that overwrites its parent, a re-downloaded
    snapshot, a re-used output folder) would otherwise be read through the stale index and
    mmap. `Materializer.materialize` and `merge_to_disk` call this before each merge, which
    costs one safetensors header read per member; call it yourself before using mergekit
    elsewhere in the process. Not safe while another thread is merging.
    """
    cache = LoaderCache()
    cache.flush_all()
    cache.loaders.clear()


def merge_options(
    *, device: str = "cpu", trust_remote_code: bool = False, random_seed: int = DEFAULT_SEED
) -> MergeOptions:
    """Offline-safe mergekit options: no model card (it asks the Hub), eager unpickling, seeded."""
    return MergeOptions(
        device=device,
        trust_remote_code=trust_remote_code,
        random_seed=random_seed,
        write_model_card=False,
        lazy_unpickle=False,
        quiet=True,
    )


class Materializer:
    """Keeps one resident model and overwrites its weights with each merge, in memory."""

    def __init__(
        self,
        template: Path | str,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        trust_remote_code: bool = False,
        random_seed: int = DEFAULT_SEED,
    ):
        self._template = _existing_dir(template)
        self._device = device
        self._dtype = dtype
        self._options = merge_options(device=device, trust_remote_code=trust_remote_code, random_seed=random_seed)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            self._template, dtype=dtype, trust_remote_code=trust_remote_code
        )
        self._model = model.to(device).eval()

    @property
    def model(self) -> transformers.PreTrainedModel:
        return self._model

    def materialize(
        self, config: MergeConfiguration | dict, *, adapter: Path | str | None = None
    ) -> transformers.PreTrainedModel:
        """Run mergekit's planner/executor for `config` and copy every tensor into the resident model.

        With `adapter` (a peft LoRA adapter folder, a fine-tuned child's), the adapter is then
        merged into the resident weights as peft's `merge_and_unload` does.

        Returns the resident model: the same object each call, unless the merge's output config
        differs from the resident one (passthrough layer stacking, a base with another
        `rope_theta`), in which case a model of the new config becomes the resident one.
        Raises CandidateError on non-finite merged weights or any mergekit failure, naming the
        method and the tensor; the resident weights are then undefined until the next merge.
        Raises MemberNotFoundError, before mergekit runs, if a member is not a local folder.
        """
        if isinstance(config, dict):
            config = MergeConfiguration.model_validate(config)
        config = _checked_copy(config)
        clear_loader_cache()
        tasks, out_config = _plan_in_memory(config, options=self._options)
        self._fit_to(out_config)
        written = self._copy_merged(tasks, method=config.merge_method)
        _require_all_written(self._model, written=written, method=config.merge_method)
        if adapter is not None:
            self._merge_adapter(Path(adapter))
        return self._model

    def save(self, out_dir: Path, *, tokenizer_source: Path | None = None) -> Path:
        """Write the current resident weights as a HF model folder (safetensors + config + tokenizer
        copied from tokenizer_source or template)."""
        out_dir = Path(out_dir).resolve()
        self._model.save_pretrained(out_dir)
        copy_tokenizer_files(source=Path(tokenizer_source or self._template), out_dir=out_dir)
        return out_dir

    def _merge_adapter(self, adapter: Path) -> None:
        """Add a LoRA adapter's update to the resident weights in place (peft restores the plain modules)."""
        from peft import PeftModel

        if not (adapter / "adapter_config.json").is_file():
            raise CandidateError(f"LoRA adapter folder {str(adapter)!r} has no adapter_config.json")
        with torch.no_grad():
            merged = PeftModel.from_pretrained(self._model, adapter).merge_and_unload()
        for name, param in merged.named_parameters():
            _require_finite(param, name=name, method="lora")
        self._model = merged

    def _fit_to(self, out_config: transformers.PretrainedConfig) -> None:
        """Rebuild the resident model if the merge's output config differs from its own."""
        if not _config_differs(out_config, self._model.config):
            return
        with no_init_weights():
            model = transformers.AutoModelForCausalLM.from_config(
                out_config, dtype=self._dtype, trust_remote_code=self._options.trust_remote_code
            )
        model.tie_weights()  # under no_init_weights transformers 5 leaves a tied lm_head (Qwen2.5, Gemma-2) untied
        self._model = model.to(self._device).eval()

    def _copy_merged(self, tasks: list[ReturnTensor], *, method: str) -> set[int]:
        """Execute the plan, copying each checked tensor into its parameter; returns ids written."""
        targets = {**dict(self._model.named_buffers()), **dict(self._model.named_parameters(remove_duplicate=False))}
        written = set()
        with _seeded(self._options.random_seed), torch.no_grad():
            for name, value in _execute(tasks, device=self._device, method=method):
                target = _target_for(targets, name=name, value=value, method=method)
                _require_finite(value, name=name, method=method)
                target.copy_(value)
                written.add(id(target))
                del value  # before the executor computes the next tensor
        return written


def merge_to_disk(
    config: MergeConfiguration,
    out_dir: Path,
    *,
    copy_tokenizer: bool = True,
    random_seed: int = DEFAULT_SEED,
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> Path:
    """mergekit.merge.run_merge to a folder with offline-safe options; returns the folder.

    Uses the same seed as `Materializer`, so on the same device both give identical weights.
    Raises CandidateError on any mergekit failure.
    """
    config = _checked_copy(config)
    out_dir = Path(out_dir).resolve()
    options = merge_options(device=device, trust_remote_code=trust_remote_code, random_seed=random_seed)
    options = options.model_copy(update={"copy_tokenizer": copy_tokenizer})
    clear_loader_cache()
    try:
        with _preserved_rng():  # run_merge seeds random, numpy and torch globally
            run_merge(config, str(out_dir), options=options)
    except Exception as exc:  # mergekit raises bare RuntimeError/ValueError/KeyError alike
        raise CandidateError(f"mergekit run_merge failed for method {config.merge_method!r}: {exc}") from exc
    return out_dir


def copy_tokenizer_files(*, source: Path, out_dir: Path) -> None:
    """Copy the tokenizer files of `source` into `out_dir` (offline; no re-serialisation)."""
    source = _existing_dir(source)
    found = [name for name in TOKENIZER_FILES if (source / name).is_file()]
    if not found:
        raise MemberNotFoundError(f"no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}...) in {source}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in found:
        shutil.copy(source / name, out_dir / name)


def _plan_in_memory(
    config: MergeConfiguration, *, options: MergeOptions
) -> tuple[list[ReturnTensor], transformers.PretrainedConfig]:
    """What `MergePlanner.plan_in_memory()` does, minus the pydantic validation that breaks it."""
    try:
        arch_info = get_architecture_info(config, options)
        out_config = _model_out_config(config, arch_info, trust_remote_code=options.trust_remote_code)
        _follow_slice_layer_types(out_config, config, trust_remote_code=options.trust_remote_code)
        LoaderCache().setup(options)
        planner = MergePlanner(config, arch_info, options=options, out_model_config=out_config)
        planner._plan()
    except Exception as exc:  # mergekit's validation errors are untyped
        tensor = _failing_tensor(exc)
        raise CandidateError(f"mergekit could not plan the {config.merge_method!r} merge at {tensor}: {exc}") from exc
    tasks = [
        ReturnTensor.model_construct(
            weight_info=weight, tensor_task=task, dtype=weight.force_dtype or config.out_dtype
        )
        for weight, task in planner._tensors
    ]
    return tasks, out_config


def _follow_slice_layer_types(
    out_config: transformers.PretrainedConfig, config: MergeConfiguration, *, trust_remote_code: bool
) -> None:
    """Give each output layer the `layer_types` entry of the layer its slice takes.

    mergekit only sets `num_hidden_layers` for a slices merge; configs with per-layer kinds
    (Gemma-2 alternates sliding and full attention, Qwen2 lists them too) would keep the base's
    list, of the wrong length (transformers cannot build the model) or order (a layer trained
    with full attention would run with a sliding window).
    """
    if not config.slices or getattr(out_config, "layer_types", None) is None:
        return
    kinds = []
    for piece in config.slices:
        source = piece.sources[0]
        source_kinds = getattr(source.model.config(trust_remote_code=trust_remote_code), "layer_types", None)
        if source_kinds is None or source.layer_range is None:
            return
        kinds += source_kinds[source.layer_range[0] : source.layer_range[1]]
    if len(kinds) == out_config.num_hidden_layers:
        out_config.layer_types = kinds


def _execute(tasks: list[ReturnTensor], *, device: str, method: str) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (tensor name, merged value) one tensor at a time; mergekit failures become CandidateError.

    Reads `Executor._run` because `Executor.run`'s generator keeps the value it last yielded
    while the executor computes the next one (two merged tensors alive instead of one). The
    caller must drop each value before asking for the next. The executor goes tensor by tensor
    in name order, so a decoder layer's tensors come together: the members' shards are closed
    whenever a new layer (or a tensor outside the layers) begins.
    """
    layer = None
    try:
        for handle, value in Executor(tasks, math_device=device, storage_device=device)._run(quiet=True):
            name = handle.task().weight_info.name
            if _layer_of(name) != layer:
                _release_shards()
                layer = _layer_of(name)
            if value is not None:  # an optional weight (e.g. a tied lm_head) absent from the inputs
                yield name, value
            del value
        _release_shards()
    except Exception as exc:
        tensor = _failing_tensor(exc)
        raise CandidateError(f"mergekit {method!r} merge failed at {tensor}: {exc}") from exc


def _release_shards() -> None:
    """Close every member's open safetensors shard, so its pages leave this process's RSS.

    A loader keeps its current shard (one mmap of the whole file) open for the next tensor;
    over a merge every page of every member is touched and stays mapped, which counts as
    resident (file-backed) memory equal to all members together until the merge ends.
    Reopening costs one header read per member and layer. Shards of `.bin` members stay
    open: reopening one unpickles the whole file.
    """
    for loader in LoaderCache().loaders.values():
        if loader.index.is_safetensors:
            loader.flush()


def _layer_of(name: str) -> str:
    """'model.layers.3' for 'model.layers.3.mlp.up_proj.weight'; the name itself outside numbered layers."""
    parts = name.split(".")
    index = next((i for i, part in enumerate(parts[:-1]) if part.isdigit()), None)
    return name if index is None else ".".join(parts[: index + 1])


def _failing_tensor(exc: BaseException) -> str:
    """Name the tensor of the innermost mergekit task or planner frame on the traceback, if any."""
    name = "an unknown tensor"
    frame = exc.__traceback__
    while frame is not None:
        for local in ("task", "self", "weight"):  # Executor._run, Task.execute, MergePlanner.plan_tensor
            found = _tensor_name(frame.tb_frame.f_locals.get(local))
            name = f"tensor {found!r}" if found else name
        frame = frame.tb_next
    return name


def _tensor_name(item: object) -> str | None:
    if isinstance(item, WeightInfo):
        return item.name
    for attr in ("output_weight", "weight_info"):  # ExecuteMergeMethodTask, ReturnTensor
        info = getattr(item, attr, None)
        if isinstance(info, WeightInfo):
            return info.name
    tensor = getattr(item, "tensor", None)  # LoadTensor
    return tensor if isinstance(tensor, str) else None


def _target_for(targets: dict[str, torch.Tensor], *, name: str, value: torch.Tensor, method: str) -> torch.Tensor:
    target = targets.get(name)
    if target is None:
        raise CandidateError(f"{method!r} merge produced tensor {name!r}, which the resident model does not have")
    if target.shape != value.shape:
        raise CandidateError(
            f"{method!r} merge produced tensor {name!r} of shape {tuple(value.shape)}; "
            f"the resident model expects {tuple(target.shape)}"
        )
    return target


def _require_finite(value: torch.Tensor, *, name: str, method: str) -> None:
    # One sum is ~5x cheaper than isfinite().all() and NaN/inf propagate through it; only a
    # non-finite sum (or a finite-value overflow) pays for the exact count.
    if not value.is_floating_point() or bool(torch.isfinite(value.sum())):
        return
    bad = int((~torch.isfinite(value)).sum())
    if bad:
        raise CandidateError(f"{method!r} merge gave {bad} non-finite (NaN/inf) values in tensor {name!r}")


def _require_all_written(model: torch.nn.Module, *, written: set[int], method: str) -> None:
    """A parameter the merge did not write would silently keep the previous candidate's weights."""
    missing = [name for name, param in model.named_parameters() if id(param) not in written]
    if missing:
        raise CandidateError(f"{method!r} merge wrote no value for parameters {missing[:5]} ({len(missing)} in all)")


def _config_differs(out_config: transformers.PretrainedConfig, resident: transformers.PretrainedConfig) -> bool:
    return any(
        getattr(resident, key, None) != value
        for key, value in out_config.to_diff_dict().items()
        if key not in _BOOKKEEPING_KEYS
    )


def _checked_copy(config: MergeConfiguration) -> MergeConfiguration:
    """A deep copy (the planner rewrites `models` into `modules` in place) whose members exist locally."""
    for reference in config.referenced_models():
        _existing_dir(reference.model.path)
    return config.model_copy(deep=True)


def _existing_dir(path: Path | str) -> Path:
    """Members must be local folders: offline, mergekit would otherwise ask the Hub for the name."""
    resolved = Path(path).resolve()
    if not resolved.is_dir():
        raise MemberNotFoundError(f"model folder {str(path)!r} does not exist (resolved to {resolved})")
    return resolved


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generators (mergekit draws DARE/DELLA masks from them), then restore."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _preserved_rng() -> Iterator[None]:
    """Restore python, numpy and torch random state after code that reseeds them globally."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
