"""Stage 2, evaluate: cheap fitness, a bred candidate's fitness estimated from part of the fitness sample (pure).

`fitness.estimator` names the kind; the members, the standard recipes, carried elites, the finals and
held-out always score real examples. The references are the candidates scored on the whole fitness
sample (generation 0's members and standard recipes, and any candidate completed later); every kind
reads their per-example outcomes and nothing else, so an estimator is a pure function of the run
state, and a resumed run refits the same one.

- `full`: no estimate, every example.
- `subset`: a seeded random subset of each task's sample, the same for every candidate scored between
  two refits (a generation, by default: the candidates a search compares, so their evidence stays
  paired) and drawn again at each refit, so a long search never fits one small subset. The estimate
  is the generalised regression estimator of survey sampling: a ridge regression of the candidate's outcomes on the references' (ridge by generalised
  cross-validation) predicts every example, and the mean residual on the subset corrects it, so the
  estimate stays unbiased over the draw of the subset even for a candidate better than every
  reference (the case an evolution is made of). Its standard error is the residuals' spread with the
  finite-population correction.
- `anchors`: a 2PL item-response fit on the references (`hubevo.evaluation.irt`); anchors chosen per
  task by k-means over the items' response patterns (tinyBenchmarks), the candidate's ability read
  from them, its unseen examples predicted (p-IRT).
- `disagreement`: the examples the references disagree on most (refreshed at every refit, as completed
  candidates join them); the unseen examples, where they agree, predicted by the same regression.

The model-based kinds (anchors, disagreement) keep a quarter of their examples as a random audit:
the model's prediction there, against what the candidate really scored, is its `drift`, which the
loop uses to score a drifting leader in full.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hubevo.config import EstimatorConfig
from hubevo.evaluation import irt
from hubevo.evaluation.outcomes import keys
from hubevo.evaluation.plan import Sample
from hubevo.evaluation.records import Evaluation, TaskOutcomes

AUDIT = 0.25  # share of a model-based kind's examples drawn at random, to measure its drift
RIDGE_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass(frozen=True)
class References:
    """The candidates scored on the whole fitness sample: per task, ids x documents of `sample[task]`."""

    ids: list[str]
    values: dict[str, np.ndarray]

    @classmethod
    def of(cls, evaluations: Mapping[str, Evaluation], sample: Sample) -> References | None:
        ids, rows = [], {t: [] for t in sample}
        for cid, ev in evaluations.items():
            if ev.status != "ok" or ev.estimate is not None or set(ev.outcomes) != set(sample):
                continue
            by_doc = {t: dict(zip(keys(ev, t), ev.outcomes[t].values, strict=True)) for t in sample}
            if all(all(d in by_doc[t] for d in docs) for t, docs in sample.items()):
                ids.append(cid)
                for t, docs in sample.items():
                    rows[t].append([by_doc[t][d] for d in docs])
        if not ids:
            return None
        return cls(ids=ids, values={t: np.asarray(r, dtype=float) for t, r in rows.items()})


@dataclass(frozen=True)
class TaskEstimate:
    mean: float
    stderr: float
    drift: float | None = None


class Estimator:
    """One fitted estimator: which examples a bred candidate is scored on (`items`), and its estimate."""

    kind = "full"

    def __init__(self, cfg: EstimatorConfig, *, sample: Sample, references: References | None, seed: int,
                 epoch: int = 0):
        self.cfg, self.sample, self.refs, self.seed, self.epoch = cfg, sample, references, seed, epoch

    def size(self, task: str) -> int:
        count = len(self.sample[task])
        wanted = self.cfg.examples_per_task or round(self.cfg.fraction * count)
        return int(min(count, max(wanted, 4)))

    def rng(self, task: str, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, 4441, stream, zlib.crc32(task.encode())])

    def positions(self, task: str) -> np.ndarray:
        """Positions in `sample[task]` of the examples a bred candidate is scored on."""
        return np.arange(len(self.sample[task]))

    @cached_property
    def items(self) -> Sample:
        return {t: sorted(int(docs[k]) for k in self.positions(t)) for t, docs in self.sample.items()}

    def reference(self, task: str) -> np.ndarray | None:
        return None if self.refs is None else self.refs.values[task]

    def estimate_task(self, task: str, values: np.ndarray, seen: np.ndarray) -> TaskEstimate:
        """`values` on positions `seen` of `sample[task]` -> the estimated mean over the whole sample."""
        n, total = len(values), len(self.sample[task])
        fpc = 1 - n / total
        spread = float(np.sqrt(max(fpc, 0) * values.var(ddof=1) / n)) if n > 1 else 0.0
        return TaskEstimate(float(values.mean()), spread)

    def estimate(self, outcomes: Mapping[str, TaskOutcomes]) -> dict[str, TaskEstimate]:
        out = {}
        for task, docs in self.sample.items():
            where = {int(d): k for k, d in enumerate(docs)}
            got = outcomes[task]
            pairs = sorted((where[d], v) for d, v in zip(got.docs or [], got.values, strict=False) if d in where)
            seen = np.array([p for p, _ in pairs], dtype=int)
            out[task] = self.estimate_task(task, np.array([v for _, v in pairs], dtype=float), seen)
        return out


def ridge_predictions(x_seen: np.ndarray, y: np.ndarray, x_all: np.ndarray) -> tuple[np.ndarray, float]:
    """A ridge regression of `y` on the columns of `x_seen` (an intercept unpenalised), its penalty chosen by
    generalised cross-validation; the predictions on `x_all` and the fit's effective degrees of freedom."""
    mean_x, mean_y = x_seen.mean(axis=0), y.mean()
    u, s, vt = np.linalg.svd(x_seen - mean_x, full_matrices=False)
    uy, n = u.T @ (y - mean_y), len(y)
    best = None
    for lam in RIDGE_GRID:
        shrink = s ** 2 / (s ** 2 + lam)
        residual = (y - mean_y) - u @ (shrink * uy)
        df = 1 + shrink.sum()
        gcv = float(residual @ residual) / max(n - df, 0.5) ** 2
        if best is None or gcv < best[0]:
            best = (gcv, lam, df)
    _, lam, df = best
    coef = vt.T @ (s / (s ** 2 + lam) * uy)
    return mean_y + (x_all - mean_x) @ coef, df


class Subset(Estimator):
    kind = "subset"

    def positions(self, task: str) -> np.ndarray:
        return np.sort(self.rng(task, 100 + self.epoch).permutation(len(self.sample[task]))[:self.size(task)])

    def estimate_task(self, task, values, seen):
        ref = self.reference(task)
        n, total = len(values), len(self.sample[task])
        if ref is None or n < 4:
            return super().estimate_task(task, values, seen)
        predicted, df = ridge_predictions(ref[:, seen].T, values, ref.T)
        residual = values - predicted[seen]
        mean = float(predicted.mean() + residual.mean())
        variance = (1 - n / total) * float(residual @ residual) / max(n - df, 1.0) / n
        return TaskEstimate(float(np.clip(mean, 0.0, 1.0)), float(np.sqrt(variance)))


class ModelBased(Estimator):
    """Examples chosen by a model of the references, plus a random audit of them that measures the drift."""

    def chosen(self, task: str, count: int, exclude: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def positions(self, task):
        total, size = len(self.sample[task]), self.size(task)
        if self.reference(task) is None:
            return np.sort(self.rng(task, self.epoch).permutation(total)[:size])
        audit = self.audit(task)
        return np.sort(np.concatenate([audit, self.chosen(task, size - len(audit), exclude=audit)]))

    def audit(self, task: str) -> np.ndarray:
        size = self.size(task)
        return self.rng(task, 1).permutation(len(self.sample[task]))[:max(2, round(AUDIT * size))]

    def predict(self, task: str, values: np.ndarray, seen: np.ndarray,
                fit_on: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per example of the sample: the candidate's predicted value (fitted on positions `fit_on` of `seen`), the
        outcome's own variance around it, and the prediction's shift per standard error of the fit (shared)."""
        raise NotImplementedError

    def estimate_task(self, task, values, seen):
        if self.reference(task) is None or len(values) < 4:
            return Estimator.estimate_task(self, task, values, seen)
        total = len(self.sample[task])
        audit = np.isin(seen, self.audit(task))
        fit_on = ~audit if (~audit).sum() >= 2 else np.ones_like(audit)
        predicted, noise, shift = self.predict(task, values, seen, fit_on)
        unseen = np.setdiff1d(np.arange(total), seen)
        mean = (values.sum() + predicted[unseen].sum()) / total
        residual = values[audit] - predicted[seen[audit]]
        drift = float(residual.mean()) if audit.any() else None
        # the model's own error on unseen examples, as the audit measures it (its mean, and that mean's noise)
        bias = drift ** 2 + float(residual.var(ddof=1)) / len(residual) if audit.sum() >= 2 else 0.0
        stderr = float(np.sqrt((noise[unseen].sum() + shift[unseen].sum() ** 2) / total ** 2
                               + (len(unseen) / total) ** 2 * bias))
        return TaskEstimate(float(np.clip(mean, 0.0, 1.0)), stderr, drift)


class Anchors(ModelBased):
    kind = "anchors"

    @cached_property
    def models(self) -> dict[str, irt.ItemModel]:
        return {t: irt.fit(self.reference(t)) for t in self.sample}

    def chosen(self, task, count, exclude):
        patterns = self.reference(task).T  # items x references
        candidates = np.setdiff1d(np.arange(patterns.shape[0]), exclude)
        return kmeans_medoids(patterns[candidates], count, rng=self.rng(task, 2 + self.epoch), index=candidates)

    def predict(self, task, values, seen, fit_on):
        model = self.models[task]
        theta, se = irt.ability(model, seen[fit_on], values[fit_on])
        p = model.probability(theta)
        return p, p * (1 - p), model.a * p * (1 - p) * se  # d p / d theta, per standard error of theta


class Disagreement(ModelBased):
    kind = "disagreement"

    def chosen(self, task, count, exclude):
        ref = self.reference(task)
        spread = ref.var(axis=0)
        order = self.rng(task, 2 + self.epoch).permutation(ref.shape[1])  # ties broken at random
        ranked = order[np.argsort(-spread[order], kind="stable")]
        return ranked[~np.isin(ranked, exclude)][:count]

    def predict(self, task, values, seen, fit_on):
        ref = self.reference(task)
        predicted, df = ridge_predictions(ref[:, seen[fit_on]].T, values[fit_on], ref.T)
        predicted = predicted.clip(0.0, 1.0)
        residual = values[fit_on] - predicted[seen[fit_on]]
        variance = float(residual @ residual) / max(fit_on.sum() - df, 1.0)
        return predicted, np.full(len(predicted), variance), np.zeros(len(predicted))


def kmeans_medoids(points: np.ndarray, k: int, *, rng: np.random.Generator, index: np.ndarray,
                   rounds: int = 20) -> np.ndarray:
    """`index` of the point nearest each of `k` k-means centres (k-means++ start), distinct."""
    k = min(k, len(points))
    centres = [points[rng.integers(len(points))]]
    for _ in range(k - 1):
        gap = np.min([((points - c) ** 2).sum(axis=1) for c in centres], axis=0)
        centres.append(points[rng.choice(len(points), p=gap / gap.sum())] if gap.sum() > 0
                       else points[rng.integers(len(points))])
    centres = np.array(centres, dtype=float)
    for _ in range(rounds):
        label = ((points[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
        centres = np.array([points[label == c].mean(axis=0) if (label == c).any() else centres[c] for c in range(k)])
    taken: list[int] = []
    for centre in centres:
        order = np.argsort(((points - centre) ** 2).sum(axis=1), kind="stable")
        taken.append(next(int(i) for i in order if int(i) not in taken))
    return index[np.array(taken, dtype=int)]


KINDS: dict[str, type[Estimator]] = {"full": Estimator, "subset": Subset, "anchors": Anchors,
                                     "disagreement": Disagreement}


def estimator(cfg: EstimatorConfig, *, sample: Sample, evaluations: Mapping[str, Evaluation], seed: int,
              epoch: int = 0) -> Estimator:
    """The run's estimator at refit `epoch`, fitted on the candidates of `evaluations` scored on all of `sample`."""
    return KINDS[cfg.kind](cfg, sample=sample, references=References.of(evaluations, sample), seed=seed, epoch=epoch)
