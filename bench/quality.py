"""Search quality and the champion rule against the simple baselines, on a demo zoo, over seeds.

Two regimes. `user` (the headline) is configured the way a user writes a run file: fitness tasks of
`--sizes` examples per task (100, 200, 400), no `fitness.validation` (the finals carve a quarter of
the fitness tasks, drawn by each run seed), held-out tasks of 300 per skill, every other setting at
hubevo's defaults (with preference pairs: `mutation: {operators: [perturb, dpo], finetune:
{datasets: [...]}}`). `validation` is the demo's configuration: fitness tasks of 300, the zoo's
validation tasks of 300 per skill for the finals.

For every seed, search, budget and preference setting, one run; then every incumbent (the members,
the standard recipes, the merge + fine-tune baselines) and every finalist are scored on held-out,
which no search and no rule ever saw. Each champion rule of `hubevo.selection.ranking` (`evidence`, the
default; `validation`, the previous one; `fitness`, the best by fitness) is replayed on the same
run, so the rules are compared on identical searches.

Columns: the champion's kind (member / standard / bred) and held-out score, the best member, the
best standard recipe, merge + fine-tune, the best finalist's held-out, regret (best finalist minus
champion), fitness - held-out of the champion, the finals' examples per model and the smallest lead
they could resolve; for SLERP children (`m2n2`'s split-point crossover), the champion's per-block t
(`split`). The goals printed at the end are issue #28's. `--zoo trio` runs on the three-specialist zoo
(`hubevo.demo.zoo`), whose members each hold one skill of three.

    python bench/quality.py --regime user [--sizes 100 200 400] [--seeds 3] [--budgets 24 100]
                            [--prefs both] [--out runs/bench-quality-user]
    python bench/quality.py --regime validation [--searches default ga dfs] [--ceiling 300]
    python bench/quality.py --zoo trio --sizes 100 --prefs no --searches m2n2 cmaes ga --budgets 100
    python bench/quality.py --replay runs/bench-quality-user [more folders]    # the table from finished runs
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
from hubevo.demo.zoo import build_zoo
from hubevo.run.loop import evolve, score_heldout

SEARCHES = {  # name -> search section (None: the config's default)
    "default": None,
    "ga": {"strategy": "ga"},
    "cmaes": {"strategy": "cmaes"},
    "cmaes-per-layer": {"strategy": "cmaes", "options": {"layer_granularity": 1}},
    "dfs": {"strategy": "dfs"},
    "cmaes-ta": {"strategy": "cmaes", "options": {"method": "task_arithmetic", "layer_granularity": 1}},
    "cmaes-ta-whole": {"strategy": "cmaes", "options": {"method": "task_arithmetic", "layer_granularity": 0}},
    "m2n2": {"strategy": "m2n2"},
    "m2n2-nosplit": {"strategy": "m2n2", "options": {"split": False}},
}
RULES = ["evidence", "evidence-margin1", "validation", "fitness"]  # hubevo.selection.ranking's rules, the default first


def skills(zoo) -> dict[str, str]:
    """Each specialist's skill -> its fitness task template."""
    return dict(zip(zoo.specialists, zoo.fitness_tasks, strict=True))


def headline(cfg) -> str:
    """The zoo's combined held-out task among the run's held-out tasks."""
    return next(t.name for t in cfg.fitness.heldout if t.name.endswith("_combined_heldout"))


def split_points(genome) -> str:
    """A SLERP child's t per gene block (`start-end[.module]:t`); empty for any other recipe."""
    if getattr(genome, "method", None) != "slerp":
        return ""
    if not genome.blocks:
        return f"t={genome.shared.get('t', 0.5):.2f}"
    return " ".join(f"{b.start}-{b.end}{'.' + b.module if b.module else ''}:{b.shared['t']:.2f}" for b in genome.blocks)


def user_tasks(zoo, folder: Path, sizes: list[int]) -> Path:
    """Fitness tasks of `size` examples per skill, drawn (fixed) from the zoo's fitness and validation
    problems, which no held-out task holds: a user's own small tasks."""
    import random

    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for skill, template in skills(zoo).items():
        rows = [line for split in ("fitness", "validation")
                for line in (zoo.tasks_dir / f"{skill}_{split}.jsonl").read_text().splitlines() if line.strip()]
        random.Random(f"user-{skill}").shuffle(rows)
        spec = yaml.safe_load((zoo.tasks_dir / f"{template}.yaml").read_text())
        for size in sizes:
            data = folder / f"user_{skill}_{size}.jsonl"
            data.write_text("\n".join(rows[:size]) + "\n")
            task = {**spec, "task": f"user_{skill}_{size}", "dataset_kwargs": {"data_files": {"test": str(data)}}}
            (folder / f"user_{skill}_{size}.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return folder


def run_config(zoo, out: Path, *, search: str, budget: int, seed: int, prefs: bool, limit: int,
               size: int | None = None, tasks_dir: Path | None = None):
    """The demo's config (`size` None: the validation regime), or a user's (fitness tasks of `size` per skill,
    no validation tasks, the defaults everywhere else)."""
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
    if size is not None:
        data = user_config(data, size=size, tasks_dir=tasks_dir, prefs=prefs, skills=list(skills(zoo)))
    return type(cfg).model_validate(data)


NLL_WEIGHT: float | None = None  # --nll-weight: the DPO loss's NLL term (None: hubevo's default)


def user_config(data: dict, *, size: int, tasks_dir: Path, prefs: bool, skills: list[str]) -> dict:
    fitness = {"tasks": [f"user_{skill}_{size}" for skill in skills], "heldout": data["fitness"]["heldout"],
               "include_path": [*data["fitness"]["include_path"], str(tasks_dir)]}
    data = {**data, "fitness": fitness, "budget": {"max_evaluations": data["budget"]["max_evaluations"],
                                                   "generations": 10_000},
            "crossover": {}, "selection": {}}
    if prefs:
        finetune = {"datasets": data["mutation"]["finetune"]["datasets"]}
        data["mutation"] = {"operators": ["perturb", "dpo"],
                            "finetune": finetune | ({} if NLL_WEIGHT is None else {"nll_weight": NLL_WEIGHT})}
    return data


def one_run(zoo, out: Path, **kwargs) -> list[dict]:
    cfg = run_config(zoo, out, **kwargs)
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    evolve(cfg, progress=False)
    seconds = time.perf_counter() - started
    return judged(cfg, seconds=seconds, **{k: kwargs[k] for k in ("search", "budget", "seed", "prefs", "size")})


def judged(cfg, *, seconds: float, **labels) -> list[dict]:
    """One row per champion rule: every incumbent and every finalist scored on held-out, then each rule."""
    from hubevo.selection import ranking
    from hubevo.state.runstate import load_state

    state = load_state(cfg.output.dir)
    finalists = [i for i, v in state.validation.items() if v.status == "ok"]
    state = score_heldout(cfg, list(dict.fromkeys([*state.initial, *state.baselines, *finalists])))
    held = lambda i: state.heldout.get(i, {}).get(headline(cfg), float("nan"))  # noqa: E731
    plain = [i for i in state.baselines if state.individuals[i].kind != "finetune"]
    tuned = [i for i in state.baselines if i not in plain]
    incumbents = {*state.initial, *state.baselines}
    rows = []
    for rule in RULES:
        decision = ranking.decide(state.evaluations, validation=state.validation, incumbents=incumbents, rule=rule)
        champion = decision.champion
        kind = "member" if champion in state.initial else "standard" if champion in state.baselines else "bred"
        rows.append({**labels, "rule": rule, "champion": state.individuals[champion].name, "kind": kind,
                     "split": split_points(state.individuals[champion].genome),
                     "champion_heldout": held(champion),
                     "fitness_minus_heldout": state.evaluations[champion].fitness - held(champion),
                     "best_member": max(held(i) for i in state.initial),
                     "best_std": max((held(i) for i in plain), default=float("nan")),
                     "merge_finetune": max((held(i) for i in tuned), default=float("nan")),
                     "best_finalist": max(held(i) for i in finalists) if finalists else float("nan"),
                     "finals_examples": max((v.examples for v in state.validation.values()), default=0),
                     "resolvable": decision.resolvable if decision.resolvable is not None else float("nan"),
                     "evaluations": len(state.evaluations),
                     "examples": sum(e.examples for e in state.evaluations.values()), "seconds": round(seconds, 1)})
    return rows


def replay(folder: Path) -> pd.DataFrame:
    """The rows again from finished runs (each run folder's config.yaml and state), without searching."""
    from hubevo.config import load_config

    rows = []
    for run in sorted(p for p in folder.iterdir() if (p / "config.yaml").is_file()):
        search, budget, prefs, *rest = run.name.split("-")
        size = int(rest[0].removeprefix("n")) if rest[0].startswith("n") else None
        seed = int(rest[-1].removeprefix("s"))
        cfg = load_config(run / "config.yaml")
        rows += judged(cfg, seconds=float("nan"), search=search, budget=int(budget), seed=seed,
                       prefs=prefs == "prefs", size=size)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regime", choices=["user", "validation"], default="user")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400], help="user regime: examples per task")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--ceiling-seeds", type=int, default=None, help="seeds that get the long search; default all")
    parser.add_argument("--budgets", type=int, nargs="+", default=[24, 100])
    parser.add_argument("--searches", nargs="+", default=None, choices=list(SEARCHES),
                        help="default: 'default' in the user regime, default ga cmaes dfs in the validation one")
    parser.add_argument("--prefs", choices=["no", "yes", "both"], default="both")
    parser.add_argument("--ceiling", type=int, default=None, help="evaluations of the long per-layer search; 0: skip "
                                                                   "(default: 300 in the validation regime, 0 in the user one)")
    parser.add_argument("--limit", type=int, default=0, help="fitness examples per task; 0: all, as fitness.limit's "
                                                               "default")
    parser.add_argument("--zoo", default="hard", choices=["fast", "hard", "trio"])
    parser.add_argument("--out", default=None, help="default: runs/bench-quality-<regime>")
    parser.add_argument("--nll-weight", type=float, default=None,
                        help="user regime with preference pairs: the DPO loss's NLL weight (default hubevo's, 1.0)")
    parser.add_argument("--replay", type=Path, nargs="+", default=None,
                        help="finished bench folders: their table again, every rule replayed on their runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    global NLL_WEIGHT
    NLL_WEIGHT = args.nll_weight
    if args.replay:
        table = pd.concat([replay(folder) for folder in args.replay], ignore_index=True)
        table.to_csv(args.replay[0] / "replayed.csv", index=False)
        return report(table, ceiling=0, top_budget=max(table["budget"]))
    user = args.regime == "user"
    searches = args.searches or (["default"] if user else ["default", "ga", "cmaes", "dfs"])
    ceiling = (0 if user else 300) if args.ceiling is None else args.ceiling
    zoo = build_zoo(progress=False, recipe=args.zoo)
    out = Path(args.out or f"runs/bench-quality-{args.regime}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    tasks_dir = user_tasks(zoo, out / "tasks", args.sizes) if user else None
    prefs_options = {"no": [False], "yes": [True], "both": [False, True]}[args.prefs]
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        plan = [(s, b, p, n) for p in prefs_options for s in searches for b in args.budgets
                for n in (args.sizes if user else [None]) if not (p and s != "default")]  # prefs: the GA's mutation
        if ceiling and seed < args.first_seed + (args.ceiling_seeds or args.seeds):
            plan.append(("cmaes-per-layer", ceiling, False, None))
        for search, budget, prefs, size in plan:
            name = f"{search}-{budget}-{'prefs' if prefs else 'merge'}-{f'n{size}-' if size else ''}s{seed}"
            for row in one_run(zoo, out / name, search=search, budget=budget, seed=seed, prefs=prefs,
                               limit=args.limit, size=size, tasks_dir=tasks_dir):
                rows.append(row)
                print(json.dumps(row), flush=True)
            pd.DataFrame(rows).to_csv(out / "quality.csv", index=False)
    report(pd.DataFrame(rows), ceiling=ceiling, top_budget=max(args.budgets))


def report(table: pd.DataFrame, *, ceiling: int, top_budget: int) -> None:
    is_ceiling = (table["search"] == "cmaes-per-layer") & (table["budget"] == ceiling)
    long = table[is_ceiling & (table["rule"] == RULES[0])].set_index("seed")["champion_heldout"]
    runs = table[~is_ceiling].copy()
    runs["ceiling"] = runs["seed"].map(long) if len(long) else float("nan")
    runs["vs_std"] = runs["champion_heldout"] - runs["best_std"]
    runs["vs_member"] = runs["champion_heldout"] - runs["best_member"]
    runs["vs_ceiling"] = runs["champion_heldout"] - runs["ceiling"]
    runs["vs_ft"] = runs["champion_heldout"] - runs["merge_finetune"]
    runs["regret"] = runs["best_finalist"] - runs["champion_heldout"]
    cols = ["rule", "search", "size", "budget", "prefs", "seed", "kind", "champion", "champion_heldout", "best_member",
            "best_std", "merge_finetune", "best_finalist", "regret", "fitness_minus_heldout", "finals_examples",
            "resolvable", "evaluations", "split", "seconds"]
    fmt = lambda v: f"{v:.3f}"  # noqa: E731
    for rule, part in runs.groupby("rule", sort=False):
        print(f"\nrule {rule}:\n" + part[[c for c in cols if c in part]].to_string(index=False, float_format=fmt))
        goals(part, top_budget=top_budget)


def goals(runs: pd.DataFrame, *, top_budget: int) -> None:
    def listing(frame, column):
        return "".join(f"\n    {r.search} n={r.size} {r.budget} prefs={r.prefs} seed {r.seed}: {getattr(r, column):+.3f}"
                       for r in frame.itertuples())

    below = runs[(runs["vs_std"] < -0.005) | (runs["vs_member"] < -0.005)]
    print(f"  goals: runs below the best member or standard recipe (0.005 tolerance): {len(below)} of {len(runs)}"
          + listing(below, "vs_std"))
    print(f"  regret (best finalist - champion on held-out): median {runs['regret'].median():.3f}, "
          f"max {runs['regret'].max():.3f}; kinds: {runs['kind'].value_counts().to_dict()}")
    pref = runs[runs["prefs"]]
    lost = pref[~(pref["vs_ft"] > 0)]
    print(f"  runs with preference pairs not above merge + fine-tune: {len(lost)} of {len(pref)}" + listing(lost, "vs_ft"))
    low = pref[pref["champion_heldout"] < 0.80]
    print(f"  runs with preference pairs below 0.80 held-out: {len(low)} of {len(pref)}"
          + listing(low, "champion_heldout"))
    gap = runs[runs["fitness_minus_heldout"] > 0.03]
    print(f"  runs whose fitness exceeds held-out by more than 0.03: {len(gap)} of {len(runs)}"
          + listing(gap, "fitness_minus_heldout"))
    top = runs[(runs["budget"] == top_budget) & runs["ceiling"].notna()]
    if len(top):
        far = top[top["vs_ceiling"] < -0.01]
        print(f"  runs at {top_budget} evaluations more than 0.01 below the ceiling: {len(far)} of {len(top)}"
              + listing(far, "vs_ceiling"))


if __name__ == "__main__":
    main()
