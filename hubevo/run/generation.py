"""One generation of the loop: ask (crossover and mutation), evaluate, tell, finals, select.

The strategy's candidates (with the standard recipes in generation 0 and the merge + fine-tune
baselines in generation 1) are scored on the generation's sample, raced when `fitness.racing`
says so; the finalists are scored on validation, and the survivors are chosen: the strategy's, and
always the champion.
"""

from __future__ import annotations

import json
import logging

from tqdm.auto import tqdm

from hubevo.breed.genome import Individual
from hubevo.errors import CandidateError
from hubevo.execute.runner import TRAINING_FILE
from hubevo.run import estimation
from hubevo.run.run import Run, stop_reason
from hubevo.selection import ranking
from hubevo.state.events import append_event
from hubevo.state.runstate import RunState

log = logging.getLogger("hubevo")


# 2 evaluate --------------------------------------------------------------------------------------
def evaluate_generation(run: Run, backend) -> None:
    """Score this generation's newcomers, and with `resample` the elites carried into it, on its sample."""
    state = run.state
    todo = [state.individuals[i] for i in state.population if i not in state.evaluations]
    cap = run.cfg.budget.max_evaluations
    if cap is not None:
        todo = todo[: max(0, cap - len(state.evaluations))]
    todo = [*stale(run), *todo]
    bar = tqdm(total=len(todo), desc=f"generation {state.generation}", unit="candidate", disable=not run.progress)
    for done, evaluation in enumerate(scored(run, backend, todo), start=1):
        record(run, evaluation)
        append_event(run.run_dir, "evaluated", id=evaluation.id, generation=state.generation,
                     status=evaluation.status, fitness=evaluation.fitness, done=done, total=len(todo))
        bar.update()
    bar.close()
    if estimation.active(run):
        complete_drifting_leader(run, backend)


def complete_drifting_leader(run: Run, backend) -> None:
    """Score the generation's best estimated candidate on the rest of the sample when its estimate drifted."""
    leader = estimation.drifting_leader(run)
    if leader is None or stop_reason(run, within_generation=True):
        return
    rest = next(iter(backend.evaluate([run.job(run.state.individuals[leader.id],
                                               sample=estimation.rest_of_sample(run, leader))])))
    if rest.status != "ok":
        log.warning("completing %s failed: %s", run.state.individuals[leader.id].name, rest.reason)
        return
    log.info("%s completed in full: its estimate drifted by %+.3f on its audit examples",
             run.state.individuals[leader.id].name, leader.drift)
    record(run, estimation.completed(run, leader, rest))


def generation_reads(run: Run) -> list[str]:
    """The ids this generation reads from folders: its candidates' parents, and the candidates carried into it
    (re-scored on a new sample, or validated)."""
    state = run.state
    carried = [i for i in state.population if i in state.evaluations]
    return list(dict.fromkeys([*(r for cid in state.population for r in run.reads(cid)), *carried]))


def stale(run: Run) -> list[Individual]:
    """Carried-over candidates scored on another generation's sample: scored again, so a selection compares
    scores on the same examples (a score is cached per recipe and sample)."""
    state = run.state
    key = run.runner.evaluator.plan.sample_key(state.generation)
    return [state.individuals[i] for i in state.population
            if i in state.evaluations and state.evaluations[i].status == "ok" and state.evaluations[i].sample != key]


def scored(run: Run, backend, todo: list[Individual]):
    """Evaluations of `todo`: with cheap fitness, the references in full first, then the rest on the estimator's
    examples, their fitness estimated (`hubevo.run.estimation`); each raced when `fitness.racing` says so."""
    if not estimation.active(run):
        yield from measured(run, backend, todo)
        return
    full = [estimation.measured_in_full(run, ind) for ind in todo]  # decided before any of them is recorded
    yield from measured(run, backend, [ind for ind, whole in zip(todo, full, strict=True) if whole])
    cheap = [ind for ind, whole in zip(todo, full, strict=True) if not whole]
    if cheap:
        est = estimation.current(run)
        for evaluation in measured(run, backend, cheap, sample=est.items):
            yield estimation.applied(run, est, evaluation)


def measured(run: Run, backend, todo: list[Individual], *, sample=None):
    """Evaluations of `todo` on `sample` (default the generation's): raced over growing parts of it when
    `fitness.racing` says so, else on all of it."""
    racing = run.cfg.fitness.racing
    if racing is None:
        within_budget = (run.job(ind, sample=sample) for ind in todo if not stop_reason(run, within_generation=True))
        return backend.evaluate(within_budget)
    from hubevo.evaluation.fitness import weighted_fitness
    from hubevo.execute.racing import race

    tasks = run.cfg.fitness.tasks
    order = run.runner.evaluator.plan.racing_order(run.state.generation)
    if sample is not None:
        chosen = {t: set(docs) for t, docs in sample.items()}
        order = {t: [d for d in docs if d in chosen[t]] for t, docs in order.items()}
    return race([run.job(ind) for ind in todo], evaluate=backend.evaluate, order=order, rungs=racing.rungs,
                keep=racing.keep, min_keep=racing.min_keep, fitness=lambda scores: weighted_fitness(scores, tasks),
                protect=frozenset(protected(run, todo)))


def protected(run: Run, todo: list[Individual]) -> list[str]:
    """Who racing never races out: members, standard recipes and elites scored again."""
    state = run.state
    return [i.id for i in todo if i.kind == "seed" or i.id in state.baselines or i.id in state.evaluations]


def record(run: Run, evaluation) -> None:
    from hubevo.evaluation.fitness import weighted_stderr

    state = run.state
    ind = state.individuals[evaluation.id]
    if ind.finetune is not None:  # the driver learns how the child trained, whichever backend trained it
        metrics = run.resolver.train_dir(ind.id) / TRAINING_FILE
        if metrics.is_file():
            state.training[ind.id] = json.loads(metrics.read_text())
    update = {"sample": run.runner.evaluator.plan.sample_key(state.generation)}
    if evaluation.stderr is None and evaluation.stderrs:  # a racing finalist: its rungs' stderrs combined
        update["stderr"] = weighted_stderr(evaluation.stderrs, run.cfg.fitness.tasks)
    if evaluation.id in state.evaluations:
        state.rescored.append(state.evaluations[evaluation.id])
    state.evaluations[evaluation.id] = evaluation.model_copy(update=update)
    run.save()


# 3 select ----------------------------------------------------------------------------------------
def tell(run: Run) -> None:
    """Tell the strategy this generation's results (once, even across resumes)."""
    state = run.state
    if state.told < state.generation:
        run.strategy.tell({i: state.evaluations[i] for i in state.population if i in state.evaluations})
        state.told = state.generation
        run.save()


def finals(run: Run) -> None:
    """Score the finalists on the validation examples (once each): the top-k by fitness, the best member,
    the best standard recipe and those the strategy names (its recipe soups). The champion is the best of
    them there (`hubevo.selection.ranking`)."""
    state = run.state
    if not run.runner.evaluator.plan.can_validate():
        return
    named = [i for i in run.strategy.finalists() if i in state.evaluations and state.evaluations[i].status == "ok"]
    for cid in dict.fromkeys([*finalist_ids(state, k=run.cfg.fitness.finalists), *named]):
        if cid not in state.validation:
            state.validation[cid] = validation_score(run, state.individuals[cid])
            run.save()


def finalist_ids(state: RunState, *, k: int) -> list[str]:
    """The finalists now: the top-k by fitness, the best member and the best standard recipe."""
    order = ranking.ranked(state.evaluations.values())
    best_of = lambda ids: next((i for i in order if i in ids), None)  # noqa: E731
    chosen = [*order[:k], best_of(set(state.initial)), best_of(set(state.baselines))]
    return list(dict.fromkeys(i for i in chosen if i))


def validation_score(run: Run, ind: Individual):
    from hubevo.evaluation.records import Evaluation

    generation = run.state.generation
    try:
        scored = run.runner.validate(**run.build(ind))
    except CandidateError as err:
        log.warning("validation of %s failed: %s", ind.name, err)
        return Evaluation(id=ind.id, generation=generation, status="failed", reason=str(err))
    return Evaluation(id=ind.id, generation=generation, status="ok", fitness=scored.fitness, scores=scored.scores,
                      stderr=scored.stderr, stderrs=scored.stderrs, examples=scored.examples, outcomes=scored.outcomes)


def select(run: Run, *, final: bool) -> list[str]:
    """The survivors of this generation: the strategy's, and always the champion."""
    state = run.state
    champion = state.champion()
    state.survivors[state.generation] = list(dict.fromkeys(
        [*run.strategy.survivors(final=final), *([champion] if champion else [])]))
    run.save()
    return state.survivors[state.generation]


# 4 crossover + 5 mutate happen inside the strategy's ask -------------------------------------------
def next_generation(run: Run) -> bool:
    """Ask the strategy for the current generation's candidates (once); False if it has nothing new."""
    state = run.state
    if state.population:  # asked before a restart: carry on with it
        return True
    for request in run.strategy.wants_weights():  # read ahead: a strategy sees data, never a model
        run.view.add_weights(request, run.task_arithmetic_weights(request.cid, groups=request.groups,
                                                                  modules=request.modules))
    asked = [*run.strategy.ask(), *(baselines(run) if state.generation == 0 else []),
             *(finetuned_baselines(run) if state.generation == 1 else [])]
    for ind in asked:
        state.individuals.setdefault(ind.id, ind)
        if ind.genome is not None and ind.id not in state.recipes:
            state.recipes[ind.id] = run.resolver.recipe(ind)
    state.population = list(dict.fromkeys([*state.pending, *(ind.id for ind in asked)]))
    state.pending = []
    run.save()
    return any(i not in state.evaluations for i in state.population)


def baselines(run: Run) -> list[Individual]:
    """The standard recipes of the members, scored in generation 0 (`search.baselines`)."""
    from hubevo.breed.baselines import baseline_individuals

    state, wanted = run.state, run.cfg.search.baselines
    made = baseline_individuals(wanted, members=state.initial, base=state.base)
    if wanted and len(made) < len(wanted):
        skipped = sorted(set(wanted) - {state.baselines.get(i.id, i.name.removeprefix("std-")) for i in made})
        log.warning("search.baselines %s do not apply to %d members%s", skipped, len(state.initial),
                    "" if state.base else " without population.base_model")
    for ind in made:
        state.baselines[ind.id] = ind.name.removeprefix("std-")
    return made


def finetuned_baselines(run: Run) -> list[Individual]:
    """Generation 1's merge + fine-tune baselines: the best standard recipe fine-tuned in one go."""
    from hubevo.breed.baselines import finetuned_baselines as made

    state, space = run.state, run.cfg.mutation.finetune
    order = ranking.ranked(state.evaluations[i] for i in state.baselines if i in state.evaluations)
    plain = [i for i in order if state.individuals[i].kind == "merge"]
    if space is None or not plain:
        return []
    best = plain[0]
    out = made(space, parent=best, recipe=state.baselines[best], seed=run.cfg.seed)
    for ind in out:
        state.baselines[ind.id] = ind.name.removeprefix("std-")
    return out
