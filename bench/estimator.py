"""Cheap fitness (`fitness.estimator`), measured: every kind against full-sample fitness, in the user regime.

The hard demo zoo configured as a user writes a run file (`bench/quality.py --regime user`: fitness tasks
of `--sizes` examples per skill, no `fitness.validation`, every other setting at the defaults), plus one
task set of `--big` examples per skill, fresh problems drawn from the demo generators outside every
training, validation and held-out example. For every task set, seed and budget:

- one run with `estimator: full`, and one with each other kind, with the same seed and budget;
- offline, on every candidate the full run scored (its per-example outcomes on the whole sample are in
  its state), each kind's estimate from the examples it would have scored, against the full-sample
  fitness: mean absolute error, Spearman rank correlation, and both again on the candidates that beat
  every earlier one (the extrapolation case);
- live: the champion's held-out score and regret (the best finalist's held-out minus the champion's),
  the champion against the full run's, the best member and the best standard recipe, the examples
  scored per bred candidate, and the wall time per evaluation, side by side.

    python bench/estimator.py [--sizes 200] [--big 1000] [--seeds 3] [--budgets 24 100]
                              [--kinds full subset anchors disagreement] [--out runs/bench-estimator]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from hubevo.demo import data
from hubevo.demo.zoo import build_zoo
from hubevo.run.loop import evolve

# bench/quality.py: the user regime's tasks, configs and judging
_spec = importlib.util.spec_from_file_location("bench_quality", Path(__file__).with_name("quality.py"))
quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality)

KINDS = ["full", "subset", "anchors", "disagreement"]


def big_tasks(zoo, folder: Path, size: int) -> Path:
    """Fitness tasks of `size` fresh problems per skill, outside every example the zoo trained or is judged on."""
    folder.mkdir(parents=True, exist_ok=True)
    for skill, template in quality.skills(zoo).items():
        seen = {e["prompt"] for e in data._sample(skill, data.POOL_SIZE)}
        seen |= {e["prompt"] for e in data.skill_splits(skill)["validation"]}
        rows = data._sample(skill, size, stream=2, exclude=frozenset(seen))
        path = folder / f"user_{skill}_{size}.jsonl"
        data.write_jsonl(path, list(rows))
        spec = yaml.safe_load((zoo.tasks_dir / f"{template}.yaml").read_text())
        task = {**spec, "task": f"user_{skill}_{size}", "dataset_kwargs": {"data_files": {"test": str(path)}}}
        (folder / f"user_{skill}_{size}.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return folder


def run_config(zoo, out: Path, *, kind: str, size: int, budget: int, seed: int, tasks_dir: Path):
    cfg = quality.run_config(zoo, out, search="default", budget=budget, seed=seed, prefs=False, limit=0, size=size,
                             tasks_dir=tasks_dir)
    if kind == "default":
        return cfg
    data_ = cfg.model_dump(mode="json", exclude_defaults=True)
    name, _, fraction = kind.partition("@")  # kind@fraction: another share of the sample
    data_["fitness"]["estimator"] = {"kind": name, **({"fraction": float(fraction)} if fraction else {})}
    return type(cfg).model_validate(data_)


def finished(out: Path) -> bool:
    state = out / "state.json"
    return state.is_file() and json.loads(state.read_text()).get("finished", False)


def one_run(zoo, out: Path, *, kind: str, size: int, budget: int, seed: int, tasks_dir: Path) -> dict:
    cfg = run_config(zoo, out, kind=kind, size=size, budget=budget, seed=seed, tasks_dir=tasks_dir)
    timing = out / "bench-seconds.json"
    if not (finished(out) and timing.is_file()):
        started = time.perf_counter()
        evolve(cfg, progress=False)
        timing.write_text(json.dumps({"seconds": time.perf_counter() - started}))
    seconds = json.loads(timing.read_text())["seconds"]
    row = next(r for r in quality.judged(cfg, seconds=seconds, search="default", budget=budget, seed=seed,
                                         prefs=False, size=size) if r["rule"] == "evidence")
    return {**row, "champion_kind": row["kind"], **bred_cost(out), "kind": kind}


def bred_cost(out: Path) -> dict:
    """Examples scored per bred candidate (its estimate's and any completion's) and wall seconds per evaluation."""
    from hubevo.state.runstate import load_state

    state = load_state(out)
    incumbents = {*state.initial, *state.baselines}
    bred = [e for i, e in state.evaluations.items() if i not in incumbents]
    full = max((e.examples for i, e in state.evaluations.items() if i in incumbents), default=0)
    rescored = sum(e.examples for e in state.rescored if e.id not in incumbents)
    examples = (sum(e.examples for e in bred) + rescored) / max(len(bred), 1)
    seconds = sum(e.seconds for e in bred) + sum(e.seconds for e in state.rescored if e.id not in incumbents)
    return {"examples_per_bred": examples, "share_per_bred": examples / full if full else float("nan"),
            "seconds_per_bred": seconds / max(len(bred), 1),
            "seconds_per_eval": sum(e.seconds for e in state.evaluations.values()) / len(state.evaluations)}


def offline(out: Path, *, kind: str, seed: int) -> dict:
    """Each estimator replayed on a full run's bred candidates: their estimates from the examples `kind` picks,
    against their full-sample fitness."""
    from hubevo.config import load_config
    from hubevo.state.runstate import load_state

    cfg = load_config(out / "config.yaml")
    state = load_state(out)
    estimator = cfg.fitness.estimator.model_copy(update={"kind": kind})
    truth, estimate, extrapolating = replay(state, estimator, seed=cfg.fitness.seed)
    if not truth:
        return {}
    t, e = np.array(truth), np.array(estimate)
    x = np.array(extrapolating, dtype=bool)
    spearman = lambda a, b: float(pd.Series(a).corr(pd.Series(b), method="spearman"))  # noqa: E731
    return {"mae": float(np.mean(np.abs(t - e))), "spearman": spearman(t, e), "candidates": len(t),
            "mae_new_best": float(np.mean(np.abs(t[x] - e[x]))) if x.any() else float("nan"),
            "spearman_new_best": spearman(t[x], e[x]) if x.sum() > 2 else float("nan"), "new_best": int(x.sum())}


def replay(state, cfg, *, seed: int) -> tuple[list[float], list[float], list[bool]]:
    """Every bred candidate of a full run, estimated by `cfg` (an EstimatorConfig) from the examples it would have
    scored, the references being generation 0's members and standard recipes: (full fitness, estimate, whether it
    beat every candidate evaluated before it)."""
    from hubevo.evaluation.estimator import estimator
    from hubevo.evaluation.fitness import TaskOutcomes

    incumbents = [i for i in [*state.initial, *state.baselines] if state.evaluations.get(i)
                  and state.evaluations[i].status == "ok"]
    first = state.evaluations[incumbents[0]]
    sample = {t: list(o.docs) for t, o in first.outcomes.items()}
    refs = {i: state.evaluations[i] for i in incumbents}
    fitted = {}  # refit epoch -> the estimator the live run would have used then (references: generation 0's)
    truth, guess, new_best, best = [], [], [], -1.0
    for cid, ev in state.evaluations.items():
        if ev.status != "ok":
            continue
        if cid not in incumbents and ev.outcomes:
            epoch = ev.generation // cfg.refit_every
            est = fitted.setdefault(epoch, estimator(cfg, sample=sample, evaluations=refs, seed=seed, epoch=epoch))
            seen = {t: [(d, v) for d, v in zip(o.docs, o.values, strict=True) if d in set(est.items[t])]
                    for t, o in ev.outcomes.items()}
            part = {t: TaskOutcomes(weight=ev.outcomes[t].weight, values=[v for _, v in s], docs=[d for d, _ in s])
                    for t, s in seen.items()}
            estimates = est.estimate(part)
            truth.append(ev.fitness)
            guess.append(sum(ev.outcomes[t].weight * e.mean for t, e in estimates.items())
                         / sum(ev.outcomes[t].weight for t in estimates))
            new_best.append(ev.fitness > best)
        best = max(best, ev.fitness)
    return truth, guess, new_best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[200])
    parser.add_argument("--big", type=int, default=1000, help="examples per skill of the large task set; 0: skip")
    parser.add_argument("--big-budgets", type=int, nargs="+", default=None, help="default: --budgets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budgets", type=int, nargs="+", default=[24, 100])
    parser.add_argument("--kinds", nargs="+", default=KINDS, help=f"{', '.join(KINDS)} or default; kind@fraction for "
                                                                   "another share of the sample")
    parser.add_argument("--offline-only", action="store_true", help="replay the estimators on finished full runs")
    parser.add_argument("--no-offline", action="store_true", help="runs only")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-estimator"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    zoo = build_zoo(progress=False, recipe="hard")
    out = args.out.resolve()
    sets = [(size, quality.user_tasks(zoo, out / "tasks", [size]), args.budgets) for size in args.sizes]
    if args.big:
        sets.append((args.big, big_tasks(zoo, out / "tasks-big", args.big), args.big_budgets or args.budgets))
    live, replayed = [], []
    for size, tasks_dir, budgets in sets:
        for budget in budgets:
            for seed in args.seeds:
                for kind in args.kinds:
                    folder = out / f"{kind}-{budget}-n{size}-s{seed}"
                    if args.offline_only and not finished(folder):
                        continue
                    if not args.offline_only:
                        live.append(one_run(zoo, folder, kind=kind, size=size, budget=budget, seed=seed,
                                            tasks_dir=tasks_dir))
                        print(json.dumps(live[-1]), flush=True)
                        pd.DataFrame(live).to_csv(out / "live.csv", index=False)
                    if kind == "full" and not args.no_offline:
                        for other in KINDS[1:]:
                            replayed.append({"size": size, "budget": budget, "seed": seed, "kind": other,
                                             **offline(folder, kind=other, seed=seed)})
                        pd.DataFrame(replayed).to_csv(out / "offline.csv", index=False)
    report(pd.DataFrame(live), pd.DataFrame(replayed))


def report(live: pd.DataFrame, replayed: pd.DataFrame) -> None:
    fmt = lambda v: f"{v:.3f}"  # noqa: E731
    if len(replayed):
        print("\noffline: estimates of every candidate of the full runs against their full-sample fitness")
        print(replayed.to_string(index=False, float_format=fmt))
        print(replayed.groupby(["size", "kind"])[["mae", "spearman", "mae_new_best", "spearman_new_best"]]
              .mean().to_string(float_format=fmt))
    if not len(live):
        return
    full = live[live["kind"] == "full"].set_index(["size", "budget", "seed"])["champion_heldout"]
    live = live.assign(vs_full=[r.champion_heldout - full.get((r.size, r.budget, r.seed), float("nan"))
                                for r in live.itertuples()],
                       regret=live["best_finalist"] - live["champion_heldout"],
                       vs_best_incumbent=live["champion_heldout"] - live[["best_member", "best_std"]].max(axis=1))
    cols = ["size", "budget", "seed", "kind", "champion", "champion_kind", "champion_heldout", "vs_full", "regret",
            "vs_best_incumbent", "best_member", "best_std", "examples_per_bred", "share_per_bred",
            "seconds_per_bred", "seconds_per_eval", "seconds"]
    print("\nlive runs\n" + live[[c for c in cols if c in live]].to_string(index=False, float_format=fmt))
    for kind, part in live.groupby("kind", sort=False):
        print(f"  {kind}: vs full mean {part['vs_full'].mean():+.3f} worst {part['vs_full'].min():+.3f}; "
              f"below the best incumbent {int((part['vs_best_incumbent'] < -0.005).sum())} of {len(part)}; "
              f"share of examples per bred candidate {part['share_per_bred'].mean():.3f}; "
              f"seconds per bred candidate {part['seconds_per_bred'].mean():.2f}, per evaluation "
              f"{part['seconds_per_eval'].mean():.2f}, per run {part['seconds'].mean():.1f}")


if __name__ == "__main__":
    main()
