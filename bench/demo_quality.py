"""Quality of the evolved champion on the demo zoo against simple baselines.

Runs the demo evolution, then scores on the full fitness sets and the held-out tasks:
the champion, the best initial member, a uniform linear merge of the specialists and
task arithmetic (weight 1 per specialist, over the base). Prints the table and the
champion's margin over each baseline.

    python bench/demo_quality.py [--generations 4] [--out runs/bench-quality]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from hubevo.breed.genome import MergeGenome, to_merge_config
from hubevo.breed.materialize import Materializer
from hubevo.config import FitnessConfig
from hubevo.demo.runner import demo_config
from hubevo.demo.zoo import build_zoo
from hubevo.evaluation.evaluator import Evaluator
from hubevo.evaluation.fitness import weighted_fitness
from hubevo.run.loop import evolve


def baselines(zoo) -> dict[str, dict]:
    """Recipes (mergekit config dicts) of the baselines, by name."""
    specs = list(zoo.specialists.values())
    refs = {f"s{i}": str(p) for i, p in enumerate(specs)} | {"base": str(zoo.base)}
    names = tuple(f"s{i}" for i in range(len(specs)))
    linear = MergeGenome(method="linear", parents=names, per_parent=tuple({"weight": 1.0} for _ in names))
    arithmetic = MergeGenome(method="task_arithmetic", parents=names, base="base",
                             per_parent=tuple({"weight": 1.0} for _ in names))
    return {"uniform linear": to_merge_config(linear, refs=refs), "task arithmetic": to_merge_config(arithmetic, refs=refs)}


def identity(path: str):
    from hubevo.breed.genome import identity_dict as identity_config

    return identity_config(path, dtype="float32")


def score(evaluator: Evaluator, materializer: Materializer, tokenizer, config) -> dict[str, float]:
    model = materializer.materialize(config)
    fit = evaluator.scorer.score(model, tokenizer, tasks=evaluator.cfg.tasks).scores
    held = evaluator.scorer.score(model, tokenizer, tasks=evaluator.cfg.heldout).scores
    return {"fitness": weighted_fitness(fit, evaluator.cfg.tasks), **fit, **held}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--out", default="runs/bench-quality")
    args = parser.parse_args()
    torch.manual_seed(0)
    zoo = build_zoo(progress=False)
    out = Path(args.out).resolve()
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    state = evolve(demo_config(zoo, out_dir=out, generations=args.generations), progress=False)
    print(f"evolution: {len(state.evaluations)} candidates in {time.perf_counter() - started:.0f} s")

    cfg = demo_config(zoo, out_dir=out).fitness
    evaluator = Evaluator(FitnessConfig.model_validate({**cfg.model_dump(), "limit": None}))
    materializer = Materializer(next(iter(zoo.specialists.values())))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(zoo.base)
    seeds = {state.individuals[i].name: i for i in state.individuals if state.individuals[i].kind == "seed"}
    best_parent = max((n for n in seeds if seeds[n] in state.evaluations),
                      key=lambda n: state.evaluations[seeds[n]].fitness)
    rows = {
        "champion": score(evaluator, materializer, tokenizer, identity(state.saved[state.champion()])),
        f"best parent ({best_parent})": score(evaluator, materializer, tokenizer,
                                              identity(str(dict(zoo.specialists)[best_parent]))),
        **{name: score(evaluator, materializer, tokenizer, c) for name, c in baselines(zoo).items()},
    }
    columns = list(next(iter(rows.values())))
    print("\n" + " " * 28 + "".join(f"{c[:22]:>24}" for c in columns))
    for name, values in rows.items():
        print(f"{name:<28}" + "".join(f"{values[c]:>24.3f}" for c in columns))
    champion = rows["champion"]
    print()
    for name, values in rows.items():
        if name != "champion":
            for key in ("fitness", "demo_combined_heldout"):
                if key in values and values[key] > 0:
                    print(f"champion / {name} on {key}: {champion[key] / values[key]:.2f}x")


if __name__ == "__main__":
    main()
