"""Search quality against the simple baselines, on the hard demo zoo, over several seeds.

For every seed and every search (the default, and each strategy named), at each evaluation
budget, with and without preference pairs (DPO mutation), one run with that budget; then the
champion, the best member and every standard recipe are scored on the held-out tasks, which
no search ever saw. The long per-layer CMA-ES search (`--ceiling` evaluations, one per seed)
is the ceiling of merging alone; the merge + fine-tune baseline is the best standard recipe
fine-tuned in one go on the same preference pairs (the run's built-in `ft-std-*` candidates).

Columns: champion held-out, best member, best standard recipe, ceiling, merge + fine-tune,
fitness - held-out of the champion, evaluations, examples, wall seconds. The goals printed
at the end: no run below the best standard recipe; at the largest budget every seed within
0.01 of the ceiling; with preference pairs every seed above merge + fine-tune; fitness minus
held-out at most 0.03.

    python bench/quality.py [--seeds 3] [--budgets 24 100] [--searches default ga cmaes dfs]
                            [--prefs both] [--ceiling 300] [--limit 0] [--out runs/bench-quality]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import torch

from hubevo.demo.runner import demo_config
from hubevo.demo.zoo import HEADLINE_TASK, build_zoo
from hubevo.loop import evolve, score_heldout

SEARCHES = {  # name -> search section (None: the config's default)
    "default": None,
    "ga": {"strategy": "ga"},
    "cmaes": {"strategy": "cmaes"},
    "cmaes-per-layer": {"strategy": "cmaes", "options": {"layer_granularity": 1}},
    "dfs": {"strategy": "dfs"},
    "cmaes-ta": {"strategy": "cmaes", "options": {"method": "task_arithmetic", "layer_granularity": 1}},
    "cmaes-ta-whole": {"strategy": "cmaes", "options": {"method": "task_arithmetic", "layer_granularity": 0}},
}
HEADLINE = HEADLINE_TASK


def run_config(zoo, out: Path, *, search: str, budget: int, seed: int, prefs: bool, limit: int):
    cfg = demo_config(zoo, out_dir=out, generations=10_000, seed=seed, dpo=prefs)
    data = cfg.model_dump(mode="json", exclude_defaults=False)
    data["fitness"] |= {"limit": limit or None, "heldout_limit": None}
    data["budget"] |= {"max_evaluations": budget, "wall_time_s": None}
    data["search"] = {**{k: v for k, v in data["search"].items() if k == "baselines"}, **(SEARCHES[search] or {})}
    if SEARCHES[search] is None:
        data.pop("search")
        data["selection"] = {}  # the defaults, not the demo's
    if not prefs:
        data.pop("mutation")
    return type(cfg).model_validate(data)


def one_run(zoo, out: Path, **kwargs) -> dict:
    cfg = run_config(zoo, out, **kwargs)
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    state = evolve(cfg, progress=False)
    seconds = time.perf_counter() - started
    champion = state.champion()
    extra = [*state.initial, *state.baselines, champion]
    state = score_heldout(cfg, list(dict.fromkeys(extra)))
    held = lambda i: state.heldout.get(i, {}).get(HEADLINE, float("nan"))  # noqa: E731
    plain = {i: n for i, n in state.baselines.items() if not state.individuals[i].kind == "finetune"}
    tuned = [i for i in state.baselines if i not in plain]
    return {
        "champion": state.individuals[champion].name,
        "champion_heldout": held(champion),
        "fitness_minus_heldout": state.evaluations[champion].fitness - held(champion),
        "best_member": max(held(i) for i in state.initial),
        "best_std": max((held(i) for i in plain), default=float("nan")),
        "merge_finetune": max((held(i) for i in tuned), default=float("nan")),
        "evaluations": len(state.evaluations),
        "examples": sum(e.examples for e in state.evaluations.values()),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--ceiling-seeds", type=int, default=None, help="seeds that get the long search; default all")
    parser.add_argument("--budgets", type=int, nargs="+", default=[24, 100])
    parser.add_argument("--searches", nargs="+", default=["default", "ga", "cmaes", "dfs"], choices=list(SEARCHES))
    parser.add_argument("--prefs", choices=["no", "yes", "both"], default="both")
    parser.add_argument("--ceiling", type=int, default=300, help="evaluations of the long per-layer search; 0: skip")
    parser.add_argument("--limit", type=int, default=0, help="fitness examples per task; 0: all, as fitness.limit's "
                                                               "default")
    parser.add_argument("--zoo", default="hard", choices=["fast", "hard"])
    parser.add_argument("--out", default="runs/bench-quality")
    args = parser.parse_args()
    torch.set_num_threads(1)
    zoo = build_zoo(progress=False, recipe=args.zoo)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    prefs_options = {"no": [False], "yes": [True], "both": [False, True]}[args.prefs]
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        plan = [(s, b, p) for p in prefs_options for s in args.searches for b in args.budgets
                if not (p and s != "default")]  # preference pairs change only the GA's mutation
        if args.ceiling and seed < args.first_seed + (args.ceiling_seeds or args.seeds):
            plan.append(("cmaes-per-layer", args.ceiling, False))
        for search, budget, prefs in plan:
            name = f"{search}-{budget}-{'prefs' if prefs else 'merge'}-s{seed}"
            row = {"search": search, "budget": budget, "prefs": prefs, "seed": seed,
                   **one_run(zoo, out / name, search=search, budget=budget, seed=seed, prefs=prefs, limit=args.limit)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            pd.DataFrame(rows).to_csv(out / "quality.csv", index=False)
    report(pd.DataFrame(rows), ceiling=args.ceiling, top_budget=max(args.budgets))


def report(table: pd.DataFrame, *, ceiling: int, top_budget: int) -> None:
    is_ceiling = (table["search"] == "cmaes-per-layer") & (table["budget"] == ceiling)
    long = table[is_ceiling].set_index("seed")["champion_heldout"]
    runs = table[~is_ceiling].copy()
    runs["ceiling"] = runs["seed"].map(long)
    runs["vs_std"] = runs["champion_heldout"] - runs["best_std"]
    runs["vs_ceiling"] = runs["champion_heldout"] - runs["ceiling"]
    runs["vs_ft"] = runs["champion_heldout"] - runs["merge_finetune"]
    cols = ["search", "budget", "prefs", "seed", "champion", "champion_heldout", "best_member", "best_std",
            "ceiling", "merge_finetune", "fitness_minus_heldout", "evaluations", "examples", "seconds"]
    print("\n" + runs[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\ngoals:")
    below = runs[runs["vs_std"] < 0]
    print(f"  runs below the best standard recipe: {len(below)} of {len(runs)}"
          + "".join(f"\n    {r.search} {r.budget} prefs={r.prefs} seed {r.seed}: {r.vs_std:+.3f}" for r in below.itertuples()))
    top = runs[runs["budget"] == top_budget]
    far = top[top["vs_ceiling"] < -0.01]
    print(f"  runs at {top_budget} evaluations more than 0.01 below the ceiling: {len(far)} of {len(top)}"
          + "".join(f"\n    {r.search} prefs={r.prefs} seed {r.seed}: {r.vs_ceiling:+.3f}" for r in far.itertuples()))
    pref = runs[runs["prefs"]]
    lost = pref[~(pref["vs_ft"] > 0)]
    print(f"  runs with preference pairs not above merge + fine-tune: {len(lost)} of {len(pref)}"
          + "".join(f"\n    {r.search} {r.budget} seed {r.seed}: {r.vs_ft:+.3f}" for r in lost.itertuples()))
    gap = runs[runs["fitness_minus_heldout"] > 0.03]
    print(f"  runs whose fitness exceeds held-out by more than 0.03: {len(gap)} of {len(runs)}"
          + "".join(f"\n    {r.search} {r.budget} prefs={r.prefs} seed {r.seed}: {r.fitness_minus_heldout:+.3f}"
                    for r in gap.itertuples()))
    mean = runs.groupby(["search", "budget", "prefs"])[["champion_heldout", "vs_std", "vs_ceiling", "seconds"]].mean()
    print("\nmean over seeds:\n" + mean.to_string(float_format=lambda v: f"{v:+.3f}"))


if __name__ == "__main__":
    main()
