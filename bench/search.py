"""Search strategies at equal evaluation budget on the demo zoo: GA, CMA-ES, random search, CMA-ES with racing.

Every search gets the same number of candidate evaluations (the members included) and the
same fitness sample size. During a run, fitness is measured on each generation's sample;
afterwards each run's champion is re-scored on the whole fitness sets and on the held-out
tasks, which no search ever saw. Prints one row per search (best fitness, held-out score,
evaluations and examples used, seconds) and writes a PNG of best-so-far fitness against
evaluations and against examples consumed. `--searches` adds per-layer CMA-ES and DFS.

    python bench/search.py [--budget 40] [--limit 64] [--seeds 1] [--out runs/bench-search]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import torch

from hubevo.breed.genome import identity_dict as identity_config
from hubevo.breed.materialize import Materializer
from hubevo.config import RacingConfig
from hubevo.demo.runner import demo_config
from hubevo.demo.zoo import build_zoo
from hubevo.evaluation.evaluator import Evaluator
from hubevo.evaluation.fitness import weighted_fitness
from hubevo.run.loop import evolve

WHOLE_MODEL = {"method": "dare_ties", "layer_granularity": 0}
SEARCHES = {  # name -> (strategy, options, racing)
    "ga": ("ga", {}, None),
    "random": ("random", WHOLE_MODEL, None),
    "cmaes": ("cmaes", WHOLE_MODEL, None),
    "cmaes+racing": ("cmaes", WHOLE_MODEL, RacingConfig(rungs=[8, 24], keep=0.5)),
    "cmaes-per-layer": ("cmaes", {"method": "dare_ties", "layer_granularity": 1}, None),
    "dfs": ("dfs", {"repeats": 2}, None),
}
DEFAULT = ["ga", "random", "cmaes", "cmaes+racing"]


def search_config(zoo, out: Path, name: str, *, budget: int, limit: int, seed: int):
    strategy, options, racing = SEARCHES[name]
    cfg = demo_config(zoo, out_dir=out, generations=1000, population_size=8, seed=seed)
    return cfg.model_copy(update={
        "fitness": cfg.fitness.model_copy(update={"limit": limit, "racing": racing, "heldout_limit": 64}),
        "budget": cfg.budget.model_copy(update={"max_evaluations": budget, "wall_time_s": None}),
        "search": cfg.search.model_copy(update={"strategy": strategy, "options": options}),
    })


def curve(state) -> pd.DataFrame:
    """Best fitness so far after each evaluation, with the examples consumed so far."""
    rows, best, examples = [], float("nan"), 0
    for n, ev in enumerate(state.evaluations.values(), start=1):
        examples += ev.examples
        if ev.status == "ok":
            best = ev.fitness if best != best else max(best, ev.fitness)  # nan-aware max
        rows.append({"evaluations": n, "examples": examples, "best": best})
    return pd.DataFrame(rows)


def rescore(cfg, state) -> dict[str, float]:
    """The champion on the whole fitness sets (fitness) and the held-out tasks (mean)."""
    champion = state.individuals[state.champion()]
    paths = {i: ind.source for i, ind in state.individuals.items() if ind.kind == "seed"} | dict(state.saved)
    full = cfg.fitness.model_copy(update={"limit": None, "racing": None})
    evaluator = Evaluator(full)
    first = next(iter(paths.values()))
    model = Materializer(first).materialize(identity_config(paths[champion.id], dtype="float32"))  # its full folder
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(first)
    fit = evaluator.scorer.score(model, tokenizer, tasks=full.tasks).scores
    held = evaluator.scorer.score(model, tokenizer, tasks=full.heldout).scores
    return {"champion": champion.name, "full_fitness": weighted_fitness(fit, full.tasks),
            "heldout": sum(held.values()) / len(held), **{f"heldout/{k}": v for k, v in held.items()}}


def best_member(cfg, zoo) -> dict[str, float]:
    evaluator = Evaluator(cfg.fitness.model_copy(update={"limit": None, "racing": None}))
    rows = []
    for name, path in zoo.specialists.items():
        model = Materializer(path).materialize(identity_config(str(path), dtype="float32"))
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        fit = evaluator.scorer.score(model, tokenizer, tasks=evaluator.cfg.tasks).scores
        held = evaluator.scorer.score(model, tokenizer, tasks=evaluator.cfg.heldout).scores
        rows.append({"champion": name, "full_fitness": weighted_fitness(fit, evaluator.cfg.tasks),
                     "heldout": sum(held.values()) / len(held)})
    return max(rows, key=lambda r: r["full_fitness"])


def plot(curves: pd.DataFrame, member: float, path: Path) -> None:
    """Best fitness so far against evaluations and examples: the mean over seeds, with its range shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for name, runs in curves.groupby("search", sort=False):
        mean = runs.groupby("evaluations").agg(best=("best", "mean"), low=("best", "min"), high=("best", "max"),
                                               examples=("examples", "mean")).reset_index()
        for ax, x in zip(axes, ("evaluations", "examples"), strict=True):
            line, = ax.step(mean[x], mean["best"], where="post", label=name)
            ax.fill_between(mean[x], mean["low"], mean["high"], step="post", alpha=0.15, color=line.get_color())
    for ax, x in zip(axes, ("candidate evaluations", "fitness examples consumed"), strict=True):
        ax.axhline(member, color="k", ls=":", lw=1, label="best member")
        ax.set_xlabel(x)
    seeds = curves["seed"].nunique()
    axes[0].set_ylabel("best fitness so far (generation samples)")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"demo zoo: searches at equal evaluation budget (mean of {seeds} seed{'s' * (seeds > 1)}, range shaded)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=40, help="candidate evaluations per search, members included")
    parser.add_argument("--limit", type=int, default=64, help="fitness examples per task and generation")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--searches", nargs="*", default=DEFAULT, choices=list(SEARCHES))
    parser.add_argument("--out", default="runs/bench-search")
    args = parser.parse_args()
    torch.set_num_threads(1)
    zoo = build_zoo(progress=False)
    out = Path(args.out).resolve()
    rows, curves, member_sample = [], [], []
    for seed in range(args.seeds):
        for name in args.searches:
            run_dir = out / f"{name}-s{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            cfg = search_config(zoo, run_dir, name, budget=args.budget, limit=args.limit, seed=seed)
            started = time.perf_counter()
            state = evolve(cfg, progress=False)
            seconds = time.perf_counter() - started
            frame = curve(state).assign(search=name, seed=seed)
            curves.append(frame)
            member_sample += [e.fitness for i, e in state.evaluations.items()
                              if state.individuals[i].kind == "seed" and e.status == "ok"]
            rows.append({"search": name, "seed": seed, "best_sample_fitness": frame["best"].iloc[-1],
                         **rescore(cfg, state), "evaluations": len(state.evaluations),
                         "examples": int(frame["examples"].iloc[-1]), "seconds": round(seconds, 1)})
            print(json.dumps(rows[-1]), flush=True)
    member = best_member(cfg, zoo)
    table = pd.DataFrame(rows)
    print(f"\nbest member on the full sets: {member['champion']} fitness {member['full_fitness']:.3f}, "
          f"held-out {member['heldout']:.3f}\n")
    cols = ["search", "seed", "best_sample_fitness", "full_fitness", "heldout", "evaluations", "examples", "seconds"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "search.csv", index=False)
    curves = pd.concat(curves, ignore_index=True)
    curves.to_csv(out / "curves.csv", index=False)
    plot(curves, max(member_sample), out / "search.png")
    summary = table.groupby("search", sort=False)[["full_fitness", "heldout", "examples", "seconds"]].mean()
    print(f"\nmean over {args.seeds} seed(s):\n{summary.to_string(float_format=lambda v: f'{v:.3f}')}")
    print(f"\nplot: {out / 'search.png'}")


if __name__ == "__main__":
    main()
