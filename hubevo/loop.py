"""The evolution loop: seed -> evaluate -> select -> crossover/mutate -> publish, repeated.

The orchestrator (`evolve`, at the bottom) reads like the papers' figure. The search
strategy decides who is evaluated (`ask`) and learns from the results (`tell`); the
execution backend runs candidate jobs; racing, when configured, is a policy over the
backend; survivors are written with lineage cards before they can be parents, and the
champion (`hubevo.ranking`) is always one of them. Survivors are recipes: only the champion keeps
full weights in its folder; the parents a generation reads are rebuilt into a cache at its start
and anything else on demand (`hubevo.rebuild`); held-out tasks score the last finalists and the
champion at the end. The run state is saved atomically after
every evaluated candidate and every written survivor, so a killed run resumes without
losing a survivor or repeating an evaluation. `Run` is this module's own: strategies see a
`PopulationView`, backends see `CandidateJob`s.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from hubevo import publish, ranking
from hubevo.config import RunConfig
from hubevo.errors import CandidateError, HubError
from hubevo.export import full_folder, write_card
from hubevo.fsio import atomic_dir, atomic_write_text, clean_temp_dirs, has_weights
from hubevo.genome import Individual, seed_individual
from hubevo.lock import run_lock
from hubevo.preflight import check_run
from hubevo.population import PopulationView
from hubevo.rebuild import Rebuilder
from hubevo.resolver import Resolver
from hubevo.runner import CandidateJob, CandidateRunner, RunnerSpec, TRAINING_FILE, training_done
from hubevo.seed import ResolvedMember, check_compatible, seed_population
from hubevo.state import RunState, append_event, config_hash, open_state, save_state

log = logging.getLogger("hubevo")


@dataclass
class Run:
    """Everything one run holds while it is alive: config, state, resolver, strategy and the runner."""

    cfg: RunConfig
    state: RunState
    resolver: Resolver
    view: PopulationView
    progress: bool = True
    api: object | None = None  # an injected huggingface_hub.HfApi; None = built from the environment
    started: float = field(default_factory=time.monotonic)
    strategy: object | None = None
    _runner: CandidateRunner | None = None
    _rebuild: Rebuilder | None = None
    sync: object | None = None  # a hubevo.hub.state_sync.StateSync with `publish.state: hub`

    @property
    def run_dir(self) -> Path:
        return self.cfg.output.dir

    @property
    def seed_ids(self) -> list[str]:
        return list(self.state.initial)

    @property
    def template(self) -> str:
        return self.resolver.load_path(self.state.initial[0])

    @property
    def runner(self) -> CandidateRunner:
        if self._runner is None:
            self._runner = CandidateRunner(RunnerSpec(template=self.template, fitness=self.cfg.fitness,
                                                      dtype=self.cfg.dtype))
        return self._runner

    @property
    def rebuild(self) -> Rebuilder:
        if self._rebuild is None:
            self._rebuild = Rebuilder(resolver=self.resolver, runner=self.runner, tokenizer_source=Path(self.template))
        return self._rebuild

    def reads(self, cid: str) -> list[str]:
        """The ids whose folders the job of `cid` reads (parents, merge base, the fine-tuned parent)."""
        ind = self.state.individuals[cid]
        untrained = ind.finetune is not None and not training_done(self.resolver.train_dir(cid))
        return list(dict.fromkeys([*self.resolver.sources(ind), *([ind.finetune.parent] if untrained else [])]))

    def job(self, ind: Individual, *, sample=None) -> CandidateJob:
        """The candidate job of `ind` in the current generation, over local folders (`keep_only` rebuilt its parents
        at the start of the generation)."""
        ft = ind.finetune
        return CandidateJob(
            id=ind.id, name=ind.name, generation=self.state.generation, merge=self.resolver.merge_config(ind),
            finetune=ft, parent_path=self.resolver.load_path(ft.parent) if ft else None,
            train_dir=str(self.resolver.train_dir(ind.id)) if ft else None, sample=sample,
            adapter=self.resolver.adapter(ind),
        )

    def build(self, ind: Individual) -> dict:
        """What materialises `ind` in the runner (`merge`, `adapter`), its parents rebuilt if needed."""
        self.rebuild.ensure(self.resolver.sources(ind))
        return {"merge": self.resolver.merge_config(ind), "adapter": self.resolver.adapter(ind)}

    def task_arithmetic_weights(self, cid: str, *, groups, modules) -> list[list[float]] | None:
        """`cid`'s weights read as per-block task arithmetic of the members over the base (`hubevo.projection`)."""
        from hubevo.projection import task_arithmetic_weights

        try:
            model = self.rebuild.materialize(self.state.individuals[cid])
        except CandidateError as err:
            log.warning("cannot read %s as task arithmetic: %s", self.resolver.table_name(cid), err)
            return None
        return task_arithmetic_weights(model.state_dict().items(), base=self.resolver.load_path(self.state.base),
                                       parents=[self.resolver.load_path(i) for i in self.state.initial],
                                       groups=groups, modules=modules)

    def save(self) -> None:
        now = time.monotonic()
        self.state.elapsed_s += now - self.started
        self.started = now
        self.state.strategy_state = self.strategy.state_dict() if self.strategy else {}
        save_state(self.state, self.run_dir)
        if self.sync is not None:
            self.sync.saved(run_dir=self.run_dir, state=self.state)


# 1 seed ------------------------------------------------------------------------------------------
def validate_names(cfg: RunConfig) -> None:
    """Registry names again (a config built in code may skip the schema), backends that need an extra,
    preference sources that must exist."""
    from hubevo.execution import get_backend
    from hubevo.methods import get_method
    from hubevo.mutation import get_operator
    from hubevo.strategies import get_strategy

    for name in cfg.crossover.methods:
        get_method(name)
    for name in cfg.mutation.operators:
        get_operator(name)
    get_strategy(cfg.search_strategy)
    get_backend(cfg.execution.backend)
    if cfg.mutation.finetune is not None and cfg.fine_tunes:
        from hubevo.finetune import check_sources

        check_sources(cfg.mutation.finetune)


def record_member(state: RunState, member: ResolvedMember) -> str:
    """Add a seed (initial member, base or immigrant) to the state; returns its id."""
    ind = seed_individual(name=member.label, source=member.source, revision=member.revision)
    state.individuals.setdefault(ind.id, ind)
    state.members[ind.id] = {"label": member.label, "source": member.source, "path": str(member.path),
                             "revision": member.revision}
    return ind.id


def first_state(cfg: RunConfig, *, api=None) -> RunState:
    members, base = seed_population(cfg.population, api=api)
    state = RunState(config_hash=config_hash(cfg))
    state.initial = [record_member(state, m) for m in members]
    state.base = record_member(state, base) if base else None
    return state


def local_member(member: dict, *, api=None) -> ResolvedMember:
    """A recorded seed, downloaded again at its pinned revision if its folder is gone."""
    resolved = ResolvedMember(**{**member, "path": Path(member["path"])})
    if (resolved.path / "config.json").is_file() or not resolved.revision:
        return resolved
    from hubevo.config import Member
    from hubevo.seed import resolve

    repo = f"{member['source'].split('@')[0]}@{member['revision']}"
    return ResolvedMember(**{**member, "path": resolve(Member(repo=repo), api=api).path})


def seed_layers(paths: dict[str, str]) -> dict[str, int]:
    layers = {}
    for cid, path in paths.items():
        config = json.loads((Path(path) / "config.json").read_text())
        layers[cid] = int(config.get("text_config", config)["num_hidden_layers"])
    return layers


def build_strategy(cfg: RunConfig, view: PopulationView, saved: dict):
    from hubevo.strategies import get_strategy

    strategy = get_strategy(cfg.search_strategy)(cfg, view)
    strategy.load_state_dict(saved)
    return strategy


def start(cfg: RunConfig, *, resume: bool = False, progress: bool = True, api=None) -> Run:
    """Validate everything that can be validated before the first merge, then open or create the state.

    A resumed run takes its seeds from the state (pinned paths and revisions), never from a new query.
    """
    from hubevo.evaluation import Evaluator
    from hubevo.hub.state_sync import StateSync, pull_state

    validate_names(cfg)
    pull_state(cfg, resume=resume, api=api)  # `publish.state: hub` and no state on disk: the Hub's, if any
    state = open_state(cfg, resume=resume)
    evaluator = Evaluator(cfg.fitness)
    evaluator.check_tasks()
    if cfg.fitness.racing is not None:
        evaluator.check_racing()
    state = state or first_state(cfg, api=api)
    paths = {i: str(local_member(m, api=api).path) for i, m in state.members.items()}
    resolver = Resolver(state=state, run_dir=cfg.output.dir, run_name=cfg.name, publish=cfg.publish,
                        member_paths=paths, dtype=cfg.dtype)
    view = PopulationView(state, seed_layers=seed_layers(paths))
    run = Run(cfg, state, resolver, view, progress=progress, api=api)
    view.lend_reader(run.task_arithmetic_weights)
    run._runner = CandidateRunner(RunnerSpec(template=run.template, fitness=cfg.fitness, dtype=cfg.dtype),
                                  evaluator=evaluator)
    for cid, ind in state.individuals.items():  # states written before recipes were stored
        if ind.genome is not None and cid not in state.recipes:
            state.recipes[cid] = resolver.recipe(ind)
    run.strategy = build_strategy(cfg, view, state.strategy_state)
    run.save()
    atomic_write_text(run.run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    if not (run.run_dir / "env.json").is_file():
        from hubevo.evaluation import run_environment

        atomic_write_text(run.run_dir / "env.json", json.dumps(run_environment(), indent=1, default=str))
    run.sync = StateSync.of(cfg, state=state, api=api)
    return run


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
    key = run.runner.evaluator.sample_key(state.generation)
    return [state.individuals[i] for i in state.population
            if i in state.evaluations and state.evaluations[i].status == "ok" and state.evaluations[i].sample != key]


def scored(run: Run, backend, todo: list[Individual]):
    """Evaluations of `todo`: raced over growing samples when `fitness.racing` says so, else in full."""
    racing = run.cfg.fitness.racing
    if racing is None:
        within_budget = (run.job(ind) for ind in todo if not stop_reason(run, within_generation=True))
        return backend.evaluate(within_budget)
    from hubevo.evaluation import weighted_fitness
    from hubevo.racing import race

    tasks = run.cfg.fitness.tasks
    return race([run.job(ind) for ind in todo], evaluate=backend.evaluate,
                order=run.runner.evaluator.racing_order(run.state.generation), rungs=racing.rungs,
                keep=racing.keep, min_keep=racing.min_keep, fitness=lambda scores: weighted_fitness(scores, tasks),
                protect=frozenset(protected(run, todo)))


def protected(run: Run, todo: list[Individual]) -> list[str]:
    """Who racing never races out: members, standard recipes and elites scored again."""
    state = run.state
    return [i.id for i in todo if i.kind == "seed" or i.id in state.baselines or i.id in state.evaluations]


def record(run: Run, evaluation) -> None:
    from hubevo.evaluation import weighted_stderr

    state = run.state
    ind = state.individuals[evaluation.id]
    if ind.finetune is not None:  # the driver learns how the child trained, whichever backend trained it
        metrics = run.resolver.train_dir(ind.id) / TRAINING_FILE
        if metrics.is_file():
            state.training[ind.id] = json.loads(metrics.read_text())
    update = {"sample": run.runner.evaluator.sample_key(state.generation)}
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
    them there (`hubevo.ranking`)."""
    state = run.state
    if not run.runner.evaluator.can_validate():
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
    from hubevo.state import Evaluation

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


# 6 publish: survivors to disk (they may be parents next), then to the Hub --------------------------
def write_survivors(run: Run, survivors: list[str]) -> None:
    """A card folder per survivor, full weights for the champion only; a run that pushes each generation scores
    its champion on held-out first (the Hub card carries the scores; otherwise only the last finalists are)."""
    state = run.state
    champion = state.champion()
    scored = score_heldout_of(run, [champion] if champion and run.cfg.publish.push != "none" else [])
    for cid in survivors:
        ind = state.individuals[cid]
        if ind.kind != "seed" and cid not in state.saved:
            write_survivor(run, ind, weights=cid == champion)
            append_event(run.run_dir, "survivor", id=cid, generation=state.generation, path=state.saved[cid])
    recard(run, scored)
    keep_champion(run)
    publish.write_tables(state, run.run_dir)


def score_finalists(run: Run) -> None:
    """At the end of a run: held-out scores of the champion and the last finalists (those scored on validation),
    on the cards (their own, and the comparison tables of the others)."""
    state = run.state
    validated = [i for i in finalist_ids(state, k=run.cfg.fitness.finalists)
                 if getattr(state.validation.get(i), "status", None) == "ok"]
    champion = state.champion()  # a finalist of an earlier generation may still lead
    score_heldout_of(run, [*([champion] if champion else []), *validated])
    recard(run, list(state.saved))


def score_heldout_of(run: Run, ids: list[str]) -> list[str]:
    """Held-out scores of `ids`, once each; returns the ids scored now. Anyone else is scored on request
    (`score_heldout`): the end of the run scores its finalists, a run that pushes each generation's champion."""
    state = run.state
    todo = [cid for cid in dict.fromkeys(ids) if cid not in state.heldout]
    for cid in todo:
        state.heldout[cid] = heldout_scores(run, state.individuals[cid])
        run.save()
    return todo


def recard(run: Run, ids: list[str]) -> None:
    """Survivors of earlier generations scored on held-out since: their cards gain the scores."""
    for cid in ids:
        if cid in run.state.saved:
            write_card(run, run.state.individuals[cid], Path(run.state.saved[cid]))


def heldout_scores(run: Run, ind: Individual) -> dict[str, float]:
    try:
        return run.runner.heldout(**run.build(ind))
    except CandidateError as err:
        log.warning("held-out evaluation of %s failed: %s", ind.name, err)
        return {}


def write_survivor(run: Run, ind: Individual, *, weights: bool) -> None:
    """The survivor's folder: its card and recipe, and with `weights` its full model (the champion's)."""
    final = run.resolver.survivor_dir(ind.id)
    with atomic_dir(final) as tmp:
        if weights:
            run.rebuild.save(ind, tmp)
        write_card(run, ind, tmp)
    run.state.saved[ind.id] = str(final)
    run.save()


def keep_champion(run: Run) -> None:
    """Full weights in the champion's survivor folder, and in no other (the others are rebuilt on demand)."""
    state, champion = run.state, run.state.champion()
    if champion in state.saved and not has_weights(Path(state.saved[champion])):
        write_survivor(run, state.individuals[champion], weights=True)
    for cid, folder in list(state.saved.items()):
        if cid != champion and has_weights(Path(folder)):
            write_survivor(run, state.individuals[cid], weights=False)


def push(run: Run) -> None:
    """Publish what is on disk to the Hub; a failed push is logged and completed at a later call."""
    if run.cfg.publish.push == "none":
        return
    from hubevo.hub.publish import publish_generation

    try:
        publish_generation(run_dir=run.run_dir, state=run.state, cfg=run.cfg, api=run.api,
                           licenses=run.cfg.publish.derive_licenses, license_override=run.cfg.publish.license,
                           folder_of=lambda cid: full_folder(run, cid))
    except HubError as err:
        log.warning("publishing to the Hub failed (local survivors are kept): %s", err)


# 4 crossover + 5 mutate happen inside the strategy's ask -------------------------------------------
def next_generation(run: Run) -> bool:
    """Ask the strategy for the current generation's candidates (once); False if it has nothing new."""
    state = run.state
    if state.population:  # asked before a restart: carry on with it
        return True
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
    from hubevo.baselines import baseline_individuals

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
    from hubevo.baselines import finetuned_baselines as made

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


# budget and the loop --------------------------------------------------------------------------------
def stop_reason(run: Run, *, within_generation: bool = False) -> str | None:
    budget, state = run.cfg.budget, run.state
    if budget.max_evaluations and len(state.evaluations) >= budget.max_evaluations:
        return f"max_evaluations ({budget.max_evaluations}) reached"
    elapsed = state.elapsed_s + time.monotonic() - run.started
    if budget.wall_time_s and elapsed >= budget.wall_time_s:
        return f"wall_time_s ({budget.wall_time_s:g}) reached"
    if not within_generation and state.generation >= budget.generations:
        return f"{budget.generations} generations done"
    return None


def summarize(run: Run) -> str:
    """One line per generation; the champion it names is `hubevo.ranking`'s, as everywhere else."""
    state = run.state
    evs = [state.evaluations[i] for i in state.population if i in state.evaluations]
    ok = [e for e in evs if e.status == "ok"]
    champion = state.champion()
    if not ok or champion is None:
        return f"generation {state.generation}: no candidate succeeded ({len(evs)} failed)"
    best = state.individuals[ranking.champion(ok)]
    ind, ev = state.individuals[champion], state.evaluations[champion]
    new = sum(1 for e in evs if e.generation == state.generation)
    raced = sum(1 for e in evs if e.status == "raced_out")
    return (f"generation {state.generation}: {len(evs)} candidates ({new} new, {len(evs) - len(ok) - raced} failed"
            f"{f', {raced} raced out' if raced else ''}), best fitness {state.evaluations[best.id].fitness:.3f} "
            f"({best.name}), mean {sum(e.fitness for e in ok) / len(ok):.3f}, "
            f"champion {ind.name} ({describe(ind)}, fitness {ev.fitness:.3f}), "
            f"survivors {len(state.survivors.get(state.generation, []))}, {state.elapsed_s:.0f} s{time_left(run)}"
            + against_baselines(state) + f"; {publish.decision_text(state)}")


def time_left(run: Run) -> str:
    """', about N s left' from the pace so far, when the budget says how much is left (generations or
    evaluations); nothing once the run stops."""
    budget, state = run.cfg.budget, run.state
    done = len(state.evaluations)
    left = min((budget.max_evaluations or math.inf) - done,
               (budget.generations - state.generation) * budget.population_size)
    if stop_reason(run) or not math.isfinite(left) or left <= 0 or not done:
        return ""
    return f", about {state.elapsed_s / done * left:.0f} s left"


def against_baselines(state: RunState) -> str:
    """'; lead over the best member ... and the best standard recipe ...', when they are not the champion."""
    names = publish.comparison(state)
    champion = names.pop("champion")
    parts = [f"{label} {state.individuals[i].name}: {publish.lead_text(state, champion, i)}"
             for label, i in names.items() if i is not None and i != champion]
    return f"; lead over the {' and the '.join(parts)}" if parts else ""


def describe(ind: Individual) -> str:
    if ind.finetune is not None:
        return ind.finetune.operator
    return ind.kind if ind.genome is None else ind.genome.method


def add_immigrants(run: Run, members: list[ResolvedMember]) -> list[str]:
    """New seeds (e.g. from a Hub query) that join the next generation; incompatible ones raise."""
    template = ResolvedMember(label="population", source=run.template, path=Path(run.template))
    added = []
    for member in members:
        check_compatible([template, member])
        if seed_individual(name=member.label, source=member.source).id in run.state.individuals:
            continue
        cid = record_member(run.state, member)
        run.state.pending.append(cid)
        run.resolver.add_member(cid, str(member.path))
        run.view.add_seed_layers(cid, seed_layers({cid: str(member.path)})[cid])
        added.append(cid)
    run.save()
    return added


def step_past_finished(run: Run) -> str | None:
    """A resumed run whose last generation finished (survivors written, pushed, its summary logged) moves on
    to the next one, so nothing is logged or pushed twice; the reason to stop instead if the budget is spent."""
    state = run.state
    if not (state.finished and state.generation in state.survivors):
        return None
    reason = stop_reason(run) or run.strategy.stop()
    if reason is None:  # it was the last generation of a smaller budget: its planned parents survive too
        write_survivors(run, select(run, final=False))
        advance(run)
    return reason


def advance(run: Run) -> None:
    run.state.generation += 1
    run.state.population = []
    run.save()


def finish(run: Run, reason: str | None) -> None:
    state = run.state
    state.finished, state.stop_reason = True, reason or "the strategy proposed no new candidate"
    score_finalists(run)
    keep_champion(run)
    run.rebuild.clear()
    run.save()
    publish.write_tables(state, run.run_dir)
    push(run)
    run.rebuild.clear()
    champion = state.champion()
    if champion is not None:
        log.info("champion: %s (fitness %.3f)", state.individuals[champion].name, state.evaluations[champion].fitness)


def score_heldout(cfg: RunConfig, ids: list[str], *, api=None) -> RunState:
    """Held-out scores of any individuals of a run, on request (members, non-survivors); kept in its state."""
    with run_lock(cfg.output.dir):
        run = start(cfg, resume=True, progress=False, api=api)
        score_heldout_of(run, ids)
        run.rebuild.clear()
        publish.write_tables(run.state, run.run_dir)
        return run.state


def evolve(cfg: RunConfig, *, resume: bool = False, progress: bool = True, api=None) -> RunState:
    """Run (or resume) an evolution to the end of its budget; returns the final state."""
    check_run(cfg, api=api)
    with run_lock(cfg.output.dir):  # one process per run folder, for the run's life
        return _evolve(cfg, resume=resume, progress=progress, api=api)


def _evolve(cfg: RunConfig, *, resume: bool, progress: bool, api) -> RunState:
    from hubevo.execution import make_backend

    for stale in clean_temp_dirs(cfg.output.dir):
        log.info("removed %s, left by an interrupted write", stale)
    run = start(cfg, resume=resume, progress=progress, api=api)
    reason = step_past_finished(run)                      # a finished generation is never redone
    backend = make_backend(cfg, runner=run.runner)
    run.state.finished = False
    try:
        while reason is None and next_generation(run):    # 4+5: crossover and mutation inside ask
            run.rebuild.keep_only(generation_reads(run))  # 6: what it reads on disk, nothing else
            evaluate_generation(run, backend)             # 2
            tell(run)                                     # 3
            finals(run)                                   # 3: the champion is picked on validation
            reason = stop_reason(run) or run.strategy.stop()
            write_survivors(run, select(run, final=reason is not None))  # 3, then 6 to disk
            push(run)                                     # 6 to the Hub
            log.info(summarize(run))
            append_event(run.run_dir, "generation", generation=run.state.generation, summary=summarize(run))
            if reason is not None:
                break
            advance(run)
    finally:
        backend.close()
    finish(run, reason)
    return run.state

