"""The demo zoo: a tiny base model and two specialists fine-tuned from it, trained on CPU and cached.

Recipe (about a minute on one CPU thread):
1. base: a 0.2M-parameter Llama trained 400 steps on a general mixture that is mostly copying
   strings (`copy_digits`, `copy_letters`) with a little of each skill, so it knows the
   characters and the prompt/answer format but is mediocre at both skills;
2. specialists: the base fine-tuned 200 steps on one skill only. Each becomes near perfect at
   its own skill and forgets much of the other, while staying close enough to the base that a
   plain merge (linear 0.5/0.5, or ties) keeps most of both skills and beats every specialist on
   `demo_combined_heldout`.

That is the `fast` recipe, for unit tests and quick runs. The `hard` recipe trains the specialists
twice as long at twice the learning rate (400 steps at 2e-3): each forgets the other skill
entirely and drifts far enough from the base that the skills interfere, so the standard recipes
keep only part of them (uniform linear about 0.71, model_stock about 0.77 mean exact match on
the fitness sets, where each specialist scores 0.50) and a searched recipe has room to win.

The `trio` recipe has three specialists trained as hard as `hard`'s on three skills over the same digit
strings (`digits` sorts them, `reverse` reverses them, `shift` adds one to each digit): each member
holds one skill of three, and a merge of all three interferes, so a model that keeps every skill has
to be bred from complementary parents. Its tasks are `trio_<skill>` (fitness), `trio_<skill>_validation`,
`trio_<skill>_heldout` and `trio_combined_heldout`.

A zoo lives in `<cache dir>/<recipe>-seed-<seed>-<key>/`, where the cache dir is the user's
(`~/.cache/hubevo/zoo`) and the key a content hash of everything that decides the weights (the
recipe, the code that trains the zoo and makes its data, the torch and transformers releases): a
changed recipe is trained anew, never served stale. A marker file written last (atomically) says
the zoo is complete and records its weights' hash, so a second `build_zoo` reuses it. Building
happens in a temporary sibling folder that is renamed into place (`hubevo.fsio.atomic_dir`), so an
interrupted build never looks complete.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import transformers
import yaml
from filelock import FileLock
from pydantic import BaseModel
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from hubevo.demo import data
from hubevo.demo.tokenizer import MAX_LENGTH, build_tokenizer
from hubevo.errors import ConfigError
from hubevo.fsio import atomic_dir, atomic_write_bytes, atomic_write_text

MARKER = "zoo.json"
TRAINING_CODE = [Path(__file__).with_name(name) for name in ("zoo.py", "data.py", "tokenizer.py")]
TEMPLATES_DIR = Path(__file__).parent / "tasks"
FITNESS_TASKS = ["demo_digits", "demo_letters"]
HELDOUT_TASKS = ["demo_digits_heldout", "demo_letters_heldout", "demo_combined_heldout"]
VALIDATION_TASKS = ["demo_digits_validation", "demo_letters_validation"]  # the finals: as large as held-out
HEADLINE_TASK = "demo_combined_heldout"


class Phase(BaseModel, frozen=True):
    """One training run: examples per batch drawn from each pool, optimizer steps, peak LR."""

    mix: dict[str, int]
    steps: int
    lr: float


BASE_PHASE = Phase(
    mix={"copy_digits": 28, "copy_letters": 28, "digits": 2, "letters": 6}, steps=400, lr=3e-3
)
SPECIALIST_PHASES = {
    "digits": Phase(mix={"digits": 64}, steps=200, lr=1e-3),
    "letters": Phase(mix={"letters": 64}, steps=200, lr=1e-3),
}


class ZooRecipe(BaseModel, frozen=True):
    """How one kind of zoo is trained: the base phase, then one phase per specialist from the base; its lm-eval
    tasks are named `<tasks>_<skill>` (fitness), `..._validation`, `..._heldout` and `<tasks>_combined_heldout`."""

    name: str
    base: Phase
    specialists: dict[str, Phase]
    tasks: str = "demo"

    @property
    def headline(self) -> str:
        return f"{self.tasks}_combined_heldout"

    def key(self) -> str:
        """A content hash of what decides the weights: this recipe, the code that trains the zoo and makes
        its data (`TRAINING_CODE`), and the torch and transformers releases."""
        digest = hashlib.sha256(self.model_dump_json().encode())
        for source in TRAINING_CODE:
            digest.update(source.read_bytes())
        digest.update(f"torch {torch.__version__}, transformers {transformers.__version__}".encode())
        return digest.hexdigest()[:12]

    def folder(self, seed: int) -> str:
        return f"{self.name}-seed-{seed}-{self.key()}"


ZOO_RECIPES = {
    "fast": ZooRecipe(name="fast", base=BASE_PHASE, specialists=SPECIALIST_PHASES),
    "hard": ZooRecipe(name="hard", base=BASE_PHASE, specialists={
        skill: Phase(mix={skill: 64}, steps=400, lr=2e-3) for skill in ("digits", "letters")}),
    "trio": ZooRecipe(name="trio", tasks="trio", base=Phase(
        mix={"copy_digits": 28, "copy_letters": 16, "digits": 4, "reverse": 4, "shift": 4}, steps=400, lr=3e-3),
        specialists={skill: Phase(mix={skill: 64}, steps=400, lr=2e-3) for skill in data.TRIO_SKILLS}),
}


class Zoo(BaseModel, frozen=True):
    """Where a built zoo lives: model folders, rendered lm-eval tasks and their names."""

    root: Path
    base: Path
    specialists: dict[str, Path]
    tasks_dir: Path
    fitness_tasks: list[str]
    heldout_tasks: list[str]
    validation_tasks: list[str]
    headline: str = HEADLINE_TASK

    def weights_hash(self) -> str:
        """sha256 of the members' weight files (base, then the specialists by name)."""
        return _weights_hash(self.root, self.specialists)


def default_cache_dir() -> Path:
    """`$HUBEVO_CACHE` if set, else `hubevo/zoo` in the user's cache folder (`$XDG_CACHE_HOME` or `~/.cache`)."""
    if os.environ.get("HUBEVO_CACHE"):
        return Path(os.environ["HUBEVO_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hubevo" / "zoo"


def build_zoo(cache_dir: Path | None = None, *, seed: int = 0, progress: bool = True, recipe: str = "fast") -> Zoo:
    """Return the `recipe` zoo ("fast", "hard" or "trio") for `seed`, training it first unless a complete one is cached."""
    if recipe not in ZOO_RECIPES:
        raise ConfigError(f"unknown demo zoo {recipe!r}; choose one of {', '.join(ZOO_RECIPES)}")
    spec = ZOO_RECIPES[recipe]
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = cache_dir.expanduser().resolve() / spec.folder(seed)
    if not _is_complete(root, spec):
        with _build_lock(root):
            if not _is_complete(root, spec):  # a concurrent build may have finished while this one waited
                _build_into(root, seed=seed, progress=progress, spec=spec)
    return _zoo_at(root, spec)


def render_tasks(dest_dir: Path, *, data_dir: Path | None = None) -> Path:
    """Write the lm-eval task YAMLs and their JSONL data into `dest_dir`; return it, absolute.

    The YAMLs name their data files by absolute path (lm-eval resolves relative paths against
    the working directory). `data_dir` is where the JSONL files will be read from, when that
    differs from `dest_dir` (a folder that is renamed after rendering).
    """
    dest_dir = Path(dest_dir).resolve()
    data_dir = Path(data_dir).resolve() if data_dir else dest_dir
    if dest_dir == TEMPLATES_DIR.resolve():
        raise ConfigError(f"render_tasks would overwrite its templates in {dest_dir}; pick another folder")
    dest_dir.mkdir(parents=True, exist_ok=True)
    for data_file in TEMPLATES_DIR.glob("*.jsonl"):  # each file replaced whole: a process reading it never sees half
        atomic_write_bytes(dest_dir / data_file.name, data_file.read_bytes())
    for template in sorted(TEMPLATES_DIR.glob("*.yaml")):
        config = _rendered_config(template, data_dir=data_dir)
        header = f"# Rendered by hubevo.demo.render_tasks from {template.name}: data paths are absolute.\n"
        atomic_write_text(dest_dir / template.name, header + yaml.dump(config, Dumper=_TaskDumper, sort_keys=False))
    return dest_dir


def _rendered_config(template: Path, *, data_dir: Path) -> dict:
    """`template`'s task config with its data files named by absolute path in `data_dir`."""
    config = yaml.safe_load(template.read_text())
    files = config["dataset_kwargs"]["data_files"]  # split -> file name
    config["dataset_kwargs"]["data_files"] = {split: str(data_dir / f) for split, f in files.items()}
    return config


class _TaskDumper(yaml.SafeDumper):
    """Writes strings with a newline (the `until` stop sequence) double-quoted, as `"\\n"`."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style='"' if "\n" in text else None)


_TaskDumper.add_representer(str, _represent_str)


def exact_match(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, *, examples: list[data.Example]
) -> float:
    """Greedy-decoding exact match from one teacher-forced pass (a fast check, not lm-eval).

    Greedy decoding reproduces an answer exactly when the argmax at every answer position, and
    at the `</s>` after it, is the reference token; that is what this counts.
    """
    ids, labels = _encode(tokenizer, examples, length=_max_length(examples))
    with torch.no_grad():
        predictions = model(input_ids=ids).logits[:, :-1].argmax(-1)  # [batch, seq-1]
    targets = labels[:, 1:]
    correct = ((predictions == targets) | (targets == -100)).all(dim=1)
    return correct.float().mean().item()


# --- cache ---------------------------------------------------------------------------------


def _is_complete(root: Path, spec: ZooRecipe) -> bool:
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("key") == spec.key()


def _weights_hash(root: Path, specialists: dict) -> str:
    digest = hashlib.sha256()
    for member in ["base", *sorted(specialists)]:
        digest.update((root / member / "model.safetensors").read_bytes())
    return digest.hexdigest()


def _zoo_at(root: Path, spec: ZooRecipe) -> Zoo:
    if not _tasks_current(root / "tasks"):  # moved or copied (stale absolute paths), or fewer tasks than shipped
        render_tasks(root / "tasks")
    return Zoo(
        root=root,
        base=root / "base",
        specialists={skill: root / skill for skill in spec.specialists},
        tasks_dir=root / "tasks",
        fitness_tasks=[f"{spec.tasks}_{skill}" for skill in spec.specialists],
        heldout_tasks=[*(f"{spec.tasks}_{skill}_heldout" for skill in spec.specialists), spec.headline],
        validation_tasks=[f"{spec.tasks}_{skill}_validation" for skill in spec.specialists],
        headline=spec.headline,
    )


def _tasks_current(tasks_dir: Path) -> bool:
    """Whether every shipped task is rendered in `tasks_dir` as its template says now, reading its data files
    from that folder (a moved or copied zoo has stale absolute paths; an older release, older templates)."""
    for template in TEMPLATES_DIR.glob("*.yaml"):
        try:
            rendered = yaml.safe_load((tasks_dir / template.name).read_text())
        except (OSError, yaml.YAMLError):
            return False
        if not isinstance(rendered, dict) or rendered != _rendered_config(template, data_dir=tasks_dir):
            return False
    return True


def _build_lock(root: Path) -> FileLock:
    """One build per zoo folder at a time (a second process waits): concurrent builds would share
    `atomic_dir`'s temporary sibling."""
    root.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(root.parent / f".{root.name}.lock")


def _build_into(root: Path, *, seed: int, progress: bool, spec: ZooRecipe) -> None:
    with atomic_dir(root) as staging:
        started = time.perf_counter()
        _train_zoo(staging, seed=seed, progress=progress, spec=spec)
        render_tasks(staging / "tasks", data_dir=root / "tasks")
        seconds = round(time.perf_counter() - started, 1)
        marker = {"recipe": spec.name, "key": spec.key(), "seed": seed, "build_seconds": seconds,
                  "weights_sha256": _weights_hash(staging, spec.specialists)}
        atomic_write_text(staging / MARKER, json.dumps(marker, indent=2))


# --- training ------------------------------------------------------------------------------

_Encoded = tuple[torch.Tensor, torch.Tensor]  # (ids, labels), each [n, length]
_Pools = dict[str, _Encoded]  # training pool name -> its encoded examples


def _train_zoo(out_dir: Path, *, seed: int, progress: bool, spec: ZooRecipe) -> None:
    tokenizer = build_tokenizer()
    pools = _pools(tokenizer, names={name for phase in [spec.base, *spec.specialists.values()] for name in phase.mix})
    total = spec.base.steps + sum(phase.steps for phase in spec.specialists.values())
    bar = tqdm(total=total, disable=not progress, unit="step")
    with _single_thread(), _no_hf_progress_bars(), torch.random.fork_rng(), bar:
        torch.manual_seed(seed)
        base = LlamaForCausalLM(_model_config(tokenizer))
        bar.set_description("demo zoo: base")
        _train(base, spec.base, pools=pools, generator=_generator(seed, "base"), bar=bar)
        _save(base, tokenizer, out_dir / "base")
        for skill, phase in spec.specialists.items():
            bar.set_description(f"demo zoo: {skill} specialist")
            specialist = copy.deepcopy(base)
            _train(specialist, phase, pools=pools, generator=_generator(seed, skill), bar=bar)
            _save(specialist, tokenizer, out_dir / skill)


def _model_config(tokenizer: PreTrainedTokenizerBase) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=MAX_LENGTH,
        tie_word_embeddings=False,  # merges treat embeddings and LM head as separate tensors
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )


def _train(
    model: LlamaForCausalLM, phase: Phase, *, pools: _Pools, generator: torch.Generator, bar: tqdm
) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=phase.lr, betas=(0.9, 0.98), weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, phase.steps))
    model.train()
    for _ in range(phase.steps):
        ids, labels = _batch(pools, phase.mix, generator=generator)
        model(input_ids=ids, labels=labels).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        bar.update(1)
    model.eval()


def _lr_factor(step: int, steps: int) -> float:
    """Linear warm-up over the first 10% of steps, then cosine decay to 10% of the peak."""
    warmup = max(1, steps // 10)
    return min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))


def _pools(tokenizer: PreTrainedTokenizerBase, *, names: set[str]) -> _Pools:
    examples = {skill: data.skill_splits(skill)["train"] for skill in data.ALL_SKILLS if skill in names}
    examples |= {name: data.general_examples(name) for name in data.GENERAL}
    length = max(_max_length(pool) for pool in examples.values())
    return {name: _encode(tokenizer, pool, length=length) for name, pool in examples.items()}


def _batch(pools: _Pools, mix: dict[str, int], *, generator: torch.Generator) -> _Encoded:
    parts = []
    for name, count in mix.items():
        ids, labels = pools[name]
        rows = torch.randint(0, len(ids), (count,), generator=generator)
        parts.append((ids[rows], labels[rows]))
    return torch.cat([ids for ids, _ in parts]), torch.cat([labels for _, labels in parts])


def _encode(tokenizer: PreTrainedTokenizerBase, examples: list[data.Example], *, length: int) -> _Encoded:
    """Right-padded `<s>prompt answer</s>` ids [n, length] and labels that score only the answer."""
    # One id per character: a dict lookup is ~50x faster than calling the tokenizer per example,
    # and a test checks it gives the tokenizer's ids.
    vocab, unk = tokenizer.get_vocab(), tokenizer.unk_token_id
    ids = np.full((len(examples), length), tokenizer.pad_token_id, dtype=np.int64)
    labels = np.full((len(examples), length), -100, dtype=np.int64)
    for row, example in enumerate(examples):
        prompt = [tokenizer.bos_token_id] + [vocab.get(char, unk) for char in example["prompt"]]
        answer = [vocab.get(char, unk) for char in example["answer"]] + [tokenizer.eos_token_id]
        ids[row, : len(prompt) + len(answer)] = prompt + answer
        labels[row, len(prompt) : len(prompt) + len(answer)] = answer
    return torch.from_numpy(ids), torch.from_numpy(labels)


def _max_length(examples: list[data.Example]) -> int:
    # One token per character, plus <s> and </s>.
    return max(len(example["prompt"]) + len(example["answer"]) for example in examples) + 2


def _generator(seed: int, stream: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}/{stream}".encode()))


def _save(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, path: Path) -> None:
    model.save_pretrained(path)  # safetensors, float32
    tokenizer.save_pretrained(path)


@contextlib.contextmanager
def _no_hf_progress_bars() -> Iterator[None]:
    """Hide transformers' own bars (one per saved shard): the build shows a single bar."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """One torch thread: deterministic reductions, and no slowdown on a shared CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
