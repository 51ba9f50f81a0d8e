"""The champion rules of `hubevo.selection.ranking` on simulated runs whose true scores are known.

`bench/quality.py` compares the rules on real searches; there the truth is a held-out score
with its own noise, and the zoo decides how close the bred merges come to the standard recipes.
This bench sets that closeness itself: a user's two small tasks (`--sizes` examples each, a
quarter carved for the finals), two specialist members (near 1 on one task, near 0 on the
other), five standard recipes, and `--bred` bred candidates whose true scores sit `--gaps` above
or below the best standard recipe, spread by 0.03. Every model answers each example right with
a probability that shares a per-example difficulty across all models and a second one across
the merges (merges of one family agree on most examples). The finalists are chosen as a run
chooses them (the top 3 bred by fitness, the best member and the best standard recipe by
fitness); each rule then names a champion.

Printed per scenario and rule: how often the champion is below the best member or standard
recipe by more than 0.005 (true scores), the median and largest regret (the best finalist's true
score minus the champion's), and how often the champion is bred.

    python bench/champion_rule.py [--runs 100] [--sizes 100 200 400] [--gaps -0.03 0 0.03 0.06] [--bred 24 100]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pandas as pd

from hubevo.evaluation.records import Evaluation, TaskOutcomes
from hubevo.selection import ranking

RULES = ["evidence", "evidence-margin1", "validation", "fitness"]
TASKS = ("a", "b")


def logit(p):
    return np.log(p / (1 - p))


def answers(rng, truth: np.ndarray, shared: np.ndarray, family: np.ndarray | None) -> np.ndarray:
    """0/1 outcomes of models (rows) on examples (columns): each row's mean is near its true score."""
    z = logit(np.clip(truth, 0.01, 0.99))[:, None] + 1.5 * shared[None, :]
    if family is not None:
        z = z + 1.0 * family[None, :]
    return (rng.uniform(size=z.shape) < 1 / (1 + np.exp(-z))).astype(float)


def true_scores(rng, *, gap: float, bred: int) -> dict[str, np.ndarray]:
    """Per task true scores: members, standard recipes, bred candidates."""
    std = np.clip(rng.normal(0.56, 0.03, size=(5, 1)) + np.zeros((1, 2)), 0.05, 0.95)
    best_std = std.mean(axis=1).max()
    bred_mean = np.clip(best_std + gap + rng.normal(0, 0.03, size=(bred, 1)) + rng.normal(0, 0.02, size=(bred, 2)),
                        0.05, 0.95)
    members = np.array([[0.98, 0.03], [0.03, 0.98]])
    return {"member": members, "std": std, "bred": bred_mean}


def simulate(rng, *, size: int, gap: float, bred: int):
    truth = true_scores(rng, gap=gap, bred=bred)
    n_val = round(0.25 * size)
    n_fit = size - n_val
    kinds = [("member", i) for i in range(2)] + [("std", i) for i in range(5)] + [("bred", i) for i in range(bred)]
    ids = [f"{k}{i}" for k, i in kinds]
    true = {cid: float(truth[k][i].mean()) for cid, (k, i) in zip(ids, kinds, strict=True)}
    per_task = {}
    for t in range(2):
        shared = rng.normal(size=size)
        family = rng.normal(size=size)
        rows = []
        for k, block in truth.items():
            rows.append(answers(rng, block[:, t], shared, family if k != "member" else None))
        per_task[TASKS[t]] = np.vstack(rows)  # models x examples; the first n_val examples validate
    def scored(j, cid, part, generation):
        values = {t: v[j, part] for t, v in per_task.items()}
        return Evaluation(id=cid, generation=generation, status="ok", examples=sum(len(v) for v in values.values()),
                          fitness=float(np.mean([v.mean() for v in values.values()])),
                          outcomes={t: TaskOutcomes(weight=0.5, values=v.tolist()) for t, v in values.items()})
    val_part, fit_part = slice(0, n_val), slice(n_val, size)
    fitness = {cid: scored(j, cid, fit_part, 0 if not cid.startswith("bred") else 1 + j % 4)
               for j, cid in enumerate(ids)}
    by_fit = lambda prefix: sorted((c for c in ids if c.startswith(prefix)), key=lambda c: -fitness[c].fitness)  # noqa: E731
    finalists = [*by_fit("bred")[:3], by_fit("member")[0], by_fit("std")[0]]
    validation = {cid: scored(ids.index(cid), cid, val_part, 5) for cid in finalists}
    incumbents = {c for c in ids if not c.startswith("bred")}
    return true, fitness, validation, incumbents, finalists


def one(rng, **scenario) -> list[dict]:
    true, fitness, validation, incumbents, finalists = simulate(rng, **scenario)
    simple_best = max(true[c] for c in incumbents)
    best_final = max(true[c] for c in finalists)
    rows = []
    for rule in RULES:
        champion = ranking.decide(fitness, validation=validation, incumbents=incumbents, rule=rule).champion
        rows.append({**scenario, "rule": rule, "below": true[champion] < simple_best - 0.005,
                     "regret": best_final - true[champion], "bred_champion": champion not in incumbents})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--gaps", type=float, nargs="+", default=[-0.03, 0.0, 0.03, 0.06])
    parser.add_argument("--bred", type=int, nargs="+", default=[24, 100])
    args = parser.parse_args()
    rows = []
    for size, gap, bred in itertools.product(args.sizes, args.gaps, args.bred):
        rng = np.random.default_rng([size, int(gap * 1000) + 1000, bred])
        for _ in range(args.runs):
            rows += one(rng, size=size, gap=gap, bred=bred)
    table = pd.DataFrame(rows)
    summary = table.groupby(["size", "gap", "bred", "rule"], sort=False).agg(
        below=("below", "mean"), regret_median=("regret", "median"), regret_max=("regret", "max"),
        regret_mean=("regret", "mean"), bred=("bred_champion", "mean"))
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    overall = table.groupby("rule", sort=False).agg(below=("below", "mean"), regret_mean=("regret", "mean"),
                                                     regret_p90=("regret", lambda r: r.quantile(0.9)))
    print("\nover every scenario:\n" + overall.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
