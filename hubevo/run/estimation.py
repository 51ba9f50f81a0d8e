"""Stage 2 with cheap fitness (`fitness.estimator`): who is scored in full, on which examples the rest are, and
when a leader is completed.

The members, the standard recipes, the merge + fine-tune baselines and elites carried into a generation are
scored on the whole fitness sample: they are the references. Every other candidate is scored on the
estimator's examples and its fitness is the estimate, with its standard error
(`hubevo.evaluation.estimator`). The estimator is refitted every `refit_every` generations on the
references scored before that refit (generation 0's at first), so it is a pure function of the run state
and a resumed run refits the same one. After a generation is scored, its best estimated candidate is
completed (scored on the rest of the sample, and so becomes a reference) when its estimate drifted from
what it really scored on the audit examples by more than `drift`. Finals and held-out never use estimates.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hubevo.errors import ConfigError
from hubevo.evaluation.estimator import Estimator, estimator
from hubevo.evaluation.fitness import weighted_fitness, weighted_stderr
from hubevo.evaluation.outcomes import merged
from hubevo.evaluation.records import Evaluation, TaskOutcomes

log = logging.getLogger("hubevo")


def active(run) -> bool:
    return run.cfg.fitness.estimator.kind != "full" and run.runner.evaluator.plan.split is not None


def measured_in_full(run, ind) -> bool:
    """Members, standard recipes and candidates scored before (carried elites) are never estimated."""
    state = run.state
    return ind.kind == "seed" or ind.id in state.baselines or ind.id in state.evaluations


def current(run) -> Estimator:
    """This generation's estimator, fitted on the references scored before its refit (cached per refit)."""
    state, cfg = run.state, run.cfg.fitness.estimator
    epoch = state.generation // cfg.refit_every
    before = max(epoch * cfg.refit_every, 1)
    sample = run.runner.evaluator.plan.sample_indices(state.generation)
    evaluations = {i: e for i, e in state.evaluations.items() if e.generation < before}
    key = (epoch, state.generation if run.cfg.fitness.resample else None, tuple(sorted(evaluations)))
    cache = run.__dict__.setdefault("_estimators", {})
    if key not in cache:
        cache.clear()
        evaluations |= warm_start(run)
        cache[key] = estimator(cfg, sample=sample, evaluations=evaluations, seed=run.cfg.fitness.seed, epoch=epoch)
        refs = cache[key].refs
        log.debug("estimator %s refitted on %d references: %s examples per task", cfg.kind,
                  len(refs.ids) if refs else 0, {t: len(d) for t, d in cache[key].items.items()})
    return cache[key]


def warm_start(run) -> dict[str, Evaluation]:
    """`fitness.estimator.references`: earlier runs' candidates scored in full on these tasks (read once a run)."""
    if "_warm_start" not in run.__dict__:
        tasks = {t.name for t in run.cfg.fitness.tasks}
        run.__dict__["_warm_start"] = {k: e for path in run.cfg.fitness.estimator.references
                                       for k, e in read_references(path, tasks=tasks).items()}
    return run.__dict__["_warm_start"]


def read_references(path: Path, *, tasks: set[str]) -> dict[str, Evaluation]:
    """An earlier run's `outcomes.parquet`: each candidate it measured (not estimated) on these fitness tasks, as
    evaluations holding only outcomes (the estimator keeps those covering this run's sample). ConfigError if the
    file is not such a table."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read {str(path)!r} as an outcomes.parquet table: {err}") from None
    missing = {"id", "scoring", "estimate", "task", "doc", "value"} - set(frame.columns)
    if missing:
        raise ConfigError(f"{str(path)!r} is not a hubevo outcomes.parquet (no column {', '.join(sorted(missing))})")
    frame = frame[(frame["scoring"] == "fitness") & frame["estimate"].isna() & frame["task"].isin(tasks)]
    if frame.empty:
        raise ConfigError(f"{str(path)!r} holds no measured fitness outcome on the tasks {sorted(tasks)}")
    out = {}
    for cid, rows in frame.groupby("id", sort=True):
        outcomes = {task: TaskOutcomes(weight=1.0, values=part["value"].astype(float).tolist(),
                                       docs=part["doc"].astype(int).tolist())
                    for task, part in rows.sort_values("doc").groupby("task")}
        out[f"{Path(path).name}:{cid}"] = Evaluation(id=str(cid), generation=0, status="ok", outcomes=outcomes)
    return out


def applied(run, est: Estimator, ev: Evaluation) -> Evaluation:
    """`ev`, scored on the estimator's examples, with its fitness and per-task scores the estimates."""
    if ev.status != "ok" or not ev.outcomes:
        return ev
    tasks = run.cfg.fitness.tasks
    estimates = est.estimate(ev.outcomes)
    scores = {t: e.mean for t, e in estimates.items()}
    stderrs = {t: e.stderr for t, e in estimates.items()}
    drifts = {t: e.drift for t, e in estimates.items() if e.drift is not None}
    total = sum(t.weight for t in tasks)
    drift = sum(t.weight / total * drifts[t.name] for t in tasks if t.name in drifts) if drifts else None
    return ev.model_copy(update={"fitness": weighted_fitness(scores, tasks), "scores": scores, "stderrs": stderrs,
                                 "stderr": weighted_stderr(stderrs, tasks), "estimate": est.kind, "drift": drift})


def rest_of_sample(run, ev: Evaluation) -> dict[str, list[int]]:
    """The examples of the generation's sample `ev` was not scored on."""
    sample = run.runner.evaluator.plan.sample_indices(run.state.generation)
    scored = {t: set(ev.outcomes[t].docs or []) for t in sample}
    return {t: [d for d in docs if d not in scored[t]] for t, docs in sample.items()}


def completed(run, ev: Evaluation, rest: Evaluation) -> Evaluation:
    """An estimated evaluation and its scoring on the rest of the sample, as one measured on all of it."""
    tasks = run.cfg.fitness.tasks
    outcomes = {task: merged(part, rest.outcomes[task]) if task in rest.outcomes else part
                for task, part in ev.outcomes.items()}
    scores = {task: sum(o.values) / len(o.values) for task, o in outcomes.items()}
    stderrs = {t: (s * (1 - s) / len(outcomes[t].values)) ** 0.5 for t, s in scores.items()}
    return ev.model_copy(update={
        "fitness": weighted_fitness(scores, tasks), "scores": scores, "stderrs": stderrs,
        "stderr": weighted_stderr(stderrs, tasks), "estimate": None, "drift": None, "outcomes": outcomes,
        "examples": ev.examples + rest.examples, "seconds": ev.seconds + rest.seconds})


def drifting_leader(run) -> Evaluation | None:
    """This generation's best estimated candidate, when its estimate drifted past `fitness.estimator.drift`."""
    bound = run.cfg.fitness.estimator.drift
    state = run.state
    mine = [state.evaluations[i] for i in state.population if i in state.evaluations]
    estimated = [e for e in mine if e.status == "ok" and e.estimate is not None]
    if bound is None or not estimated:
        return None
    leader = max(estimated, key=lambda e: e.fitness)
    return leader if leader.drift is not None and abs(leader.drift) > bound else None
