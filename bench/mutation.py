"""Bench for the fine-tuning mutation: seconds per DPO step, LoRA against full fine-tuning, on CPU.

For each model size and variant, runs the DPO trainer that `hubevo.finetune.finetune` builds
(same arguments, same data path) and times every optimizer step with a trainer callback;
a run's figure is the median step after the first (warm-up) step, and the printed figure
the median over --repeats runs. The whole `finetune` call (data, parent load, trainer
construction, training, merge and save) is timed once per variant as well, to show the
fixed cost of a mutation. One torch thread.

    python bench/mutation.py [--sizes tiny,small] [--repeats 3] [--steps 12] [--rank 8]

With --fitness-change N, also the distribution of fitness(child) - fitness(parent) over N DPO
mutations of the demo zoo's specialists (genes sampled per mutation, scored with lm-eval).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hubevo.config.finetune import FinetuneSpace, PreferenceSource  # noqa: E402
from hubevo.finetune.data import _load  # noqa: E402
from hubevo.finetune.recipe import FinetuneRecipe, sample_recipe  # noqa: E402
from hubevo.finetune.training import Placement, _load_parent, _load_tokenizer, _no_progress_bars, _train, finetune  # noqa: E402
from tests.tiny_models import build_llama  # noqa: E402

SHAPES = {
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64, "heads": 4, "kv_heads": 2},
    "small": {"hidden_size": 256, "num_hidden_layers": 4, "intermediate_size": 768, "heads": 8, "kv_heads": 4},
    "medium": {"hidden_size": 768, "num_hidden_layers": 8, "intermediate_size": 2048, "heads": 12, "kv_heads": 4},
}


class StepTimer(TrainerCallback):
    def __init__(self):
        self.seconds: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._start)


def reversal_pairs(count: int) -> list[dict]:
    words = [f"{chr(97 + i % 8)}{chr(97 + i // 8 % 8)}{chr(97 + i // 64 % 8)}h" for i in range(count)]
    return [{"prompt": f"{w}>", "chosen": w[::-1], "rejected": w} for w in words]


def make_recipe(data: Path, *, rank: int, steps: int) -> FinetuneRecipe:
    return FinetuneRecipe(
        operator="dpo", parent="bench", dataset=PreferenceSource(path=str(data)),
        learning_rate=1e-3 if rank else 1e-4, beta=0.1, loss_type="sigmoid", steps=steps, lora_rank=rank,
        samples=64, seed=0, batch_size=8,
    )


def step_seconds(parent: Path, recipe: FinetuneRecipe) -> float:
    """Median seconds of one optimizer step after the first, through finetune's own trainer builder."""
    place, timer = Placement.of("cpu"), StepTimer()
    with _no_progress_bars():
        pairs, _ = _load(recipe.dataset, operator=recipe.operator, samples=recipe.samples, seed=recipe.seed)
        model, _ = _load_parent(parent, recipe=recipe, place=place)
        _train(model, _load_tokenizer(parent), pairs, recipe=recipe, place=place, callbacks=[timer])
    return statistics.median(timer.seconds[1:])


def mutation_seconds(parent: Path, recipe: FinetuneRecipe, *, out_dir: Path) -> float:
    start = time.perf_counter()
    finetune(parent, recipe, out_dir=out_dir, device="cpu")
    return time.perf_counter() - start


def param_count(model_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as handle:
        return sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())


def fitness_change(root: Path, *, mutations: int = 10, seed: int = 0, trainer_kwargs: dict | None = None) -> list[float]:
    """Fitness(child) - fitness(parent) of `mutations` DPO mutations of the demo zoo's specialists.

    Each mutation samples its genes (learning rate, beta, steps, LoRA rank) from one space, trains
    on the shipped preference data, and is scored with lm-eval on the full fitness sets, as the loop
    would score it.
    """
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hubevo.config import FitnessConfig
    from hubevo.demo.preferences import write_preferences
    from hubevo.demo.zoo import build_zoo
    from hubevo.evaluation.evaluator import Evaluator
    from hubevo.evaluation.fitness import weighted_fitness

    zoo = build_zoo(progress=False)
    prefs = write_preferences(root / "prefs.jsonl", seed=seed)
    space = FinetuneSpace(datasets=[PreferenceSource(path=str(prefs))], samples=64, steps=(10, 30),
                             learning_rate=(3e-4, 1.5e-3), lora_rank=[8, 16], trainer_kwargs=trainer_kwargs or {})
    evaluator = Evaluator(FitnessConfig(tasks=zoo.fitness_tasks, include_path=[zoo.tasks_dir]))
    tokenizer = AutoTokenizer.from_pretrained(zoo.base)

    def fitness(folder: Path) -> float:
        model = AutoModelForCausalLM.from_pretrained(folder)
        return weighted_fitness(evaluator.scorer.score(model, tokenizer, tasks=evaluator.cfg.tasks).scores, evaluator.cfg.tasks)

    rng = np.random.default_rng(seed)
    parents = list(zoo.specialists.items())
    before = {name: fitness(path) for name, path in parents}
    deltas = []
    for index in range(mutations):
        name, path = parents[index % len(parents)]
        recipe = sample_recipe(space, parent=name, rng=rng)
        child = root / f"child-{index}"
        metrics = finetune(path, recipe, out_dir=child)
        delta = fitness(child) - before[name]
        deltas.append(delta)
        print(f"mutation {index:2d} of {name:7s} lr {recipe.learning_rate:.1e} beta {recipe.beta:.2f} "
              f"steps {recipe.steps:2d} rank {recipe.lora_rank:2d}: reward acc {metrics['reward_accuracy']:.2f}, "
              f"fitness {before[name]:.3f} -> {before[name] + delta:.3f} ({delta:+.3f})")
    improved = sum(d > 0 for d in deltas)
    print(f"fitness change over {len(deltas)} DPO mutations: mean {statistics.mean(deltas):+.3f}, "
          f"median {statistics.median(deltas):+.3f}, min {min(deltas):+.3f}, max {max(deltas):+.3f}, "
          f"improved {improved}/{len(deltas)}")
    return deltas


def bench_size(size: str, *, root: Path, data: Path, rank: int, steps: int, repeats: int) -> None:
    parent = build_llama(root / size, seed=0, **SHAPES[size])
    figures = {}
    for label, r in (("lora", rank), ("full", 0)):
        recipe = make_recipe(data, rank=r, steps=steps)
        per_step = statistics.median(step_seconds(parent, recipe) for _ in range(repeats))
        figures[label] = (per_step, mutation_seconds(parent, recipe, out_dir=root / "child"))
    (lora, lora_total), (full, full_total) = figures["lora"], figures["full"]
    print(
        f"{size:5s} {param_count(parent) / 1e6:5.2f}M params: s/DPO step lora(r={rank}) {lora:.4f}, full {full:.4f}"
        f" -> lora/full {lora / full:.2f}x | one {steps}-step mutation end to end: lora {lora_total:.2f} s,"
        f" full {full_total:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny", help=f"comma-separated, from {', '.join(SHAPES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank of the LoRA variant")
    parser.add_argument("--fitness-change", type=int, default=0, metavar="N",
                        help="also run N DPO mutations of the demo zoo and print the fitness changes")
    parser.add_argument("--rpo", action="store_true",
                        help="with --fitness-change: add an NLL term on the chosen answer (loss_type [sigmoid, sft])")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="hubevo-bench-mutation-") as tmp:
        root = Path(tmp)
        data = root / "pairs.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in reversal_pairs(256)))
        for size in args.sizes.split(","):
            bench_size(size, root=root, data=data, rank=args.rank, steps=args.steps, repeats=args.repeats)
        if args.fitness_change:
            rpo = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 1.0]} if args.rpo else None
            fitness_change(root, mutations=args.fitness_change, trainer_kwargs=rpo)


if __name__ == "__main__":
    main()
