"""The live run: everything one run holds while it is alive, and how it starts.

`start` validates what can be validated before the first merge, then opens or creates the run
state; `Run` holds the config, the state, the resolver, the strategy and the runner, and saves the
state after every step. Strategies see a `PopulationView`, backends see `CandidateJob`s: `Run` is
the run package's own.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hubevo.breed.genome import Individual, seed_individual
from hubevo.config import RunConfig
from hubevo.errors import CandidateError
from hubevo.execute.runner import CandidateJob, CandidateRunner, RunnerSpec, training_done
from hubevo.fsio import atomic_write_text
from hubevo.publish.rebuild import Rebuilder
from hubevo.publish.resolver import Resolver
from hubevo.run.tracking import trainer_report
from hubevo.search.view import PopulationView
from hubevo.seed.members import ResolvedMember, check_compatible, local_member, seed_layers
from hubevo.seed.population import seed_population
from hubevo.state.runstate import RunState, config_hash, open_state, save_state

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
    sync: object | None = None  # a hubevo.run.state_sync.StateSync with `publish.state: hub`

    @property
    def run_dir(self) -> Path:
        return self.cfg.output.dir

    @property
    def seed_ids(self) -> list[str]:
        return list(self.state.initial)

    @property
    def template(self) -> str:
        return self.resolver.template

    @property
    def runner(self) -> CandidateRunner:
        if self._runner is None:
            self._runner = CandidateRunner(RunnerSpec.of(self.cfg, template=self.template))
        return self._runner

    @property
    def rebuild(self) -> Rebuilder:
        if self._rebuild is None:
            self._rebuild = Rebuilder.over(self.runner, resolver=self.resolver)
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
            adapter=self.resolver.adapter(ind), report=trainer_report(self.cfg, child=ind.name) if ft else None,
        )

    def build(self, ind: Individual) -> dict:
        """What materialises `ind` in the runner (`merge`, `adapter`), its parents rebuilt if needed."""
        self.rebuild.ensure(self.resolver.sources(ind))
        return {"merge": self.resolver.merge_config(ind), "adapter": self.resolver.adapter(ind)}

    def task_arithmetic_weights(self, cid: str, *, groups, modules) -> list[list[float]] | None:
        """`cid`'s weights read as per-block task arithmetic of the members over the base (`hubevo.breed.projection`)."""
        from hubevo.breed.projection import task_arithmetic_weights

        try:
            model = self.rebuild.materialize(self.state.individuals[cid])
        except CandidateError as err:
            log.warning("cannot read %s as task arithmetic: %s", self.resolver.table_name(cid), err)
            return None
        return task_arithmetic_weights(model.state_dict().items(), base=self.resolver.load_path(self.state.base),
                                       parents=[self.resolver.load_path(i) for i in self.state.initial],
                                       groups=groups, modules=modules)

    def tick(self) -> float:
        """Bring the run's clock (`state.elapsed_s`) up to now; returns it."""
        now = time.monotonic()
        self.state.elapsed_s += now - self.started
        self.started = now
        return self.state.elapsed_s

    def save(self) -> None:
        self.tick()
        self.state.strategy_state = self.strategy.state_dict() if self.strategy else {}
        save_state(self.state, self.run_dir)
        if self.sync is not None:
            self.sync.saved(run_dir=self.run_dir, state=self.state)


# 1 seed ------------------------------------------------------------------------------------------
def validate_names(cfg: RunConfig) -> None:
    """Registry names again (a config built in code may skip the schema), backends that need an extra,
    preference sources that must exist."""
    from hubevo.breed.mutation import MUTATION_OPERATORS
    from hubevo.config.methods import get_method
    from hubevo.execute.backends import BACKENDS
    from hubevo.search import STRATEGIES

    for name in cfg.crossover.methods:  # each lookup raises UnknownNameError naming what exists
        get_method(name)
    for name in cfg.mutation.operators:
        MUTATION_OPERATORS[name]
    STRATEGIES[cfg.search_strategy]
    BACKENDS[cfg.execution.backend]  # and ConfigError when its extra is not installed
    if cfg.mutation.finetune is not None and cfg.fine_tunes:
        from hubevo.finetune.data import check_sources

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


def build_strategy(cfg: RunConfig, view: PopulationView, saved: dict):
    from hubevo.search import STRATEGIES

    strategy = STRATEGIES[cfg.search_strategy](cfg, view)
    strategy.load_state_dict(saved)
    return strategy


def start(cfg: RunConfig, *, resume: bool = False, progress: bool = True, api=None) -> Run:
    """Validate everything that can be validated before the first merge, then open or create the state.

    A resumed run takes its seeds from the state (pinned paths and revisions), never from a new query.
    """
    from hubevo.evaluation.evaluator import Evaluator
    from hubevo.run.state_sync import StateSync, pull_state

    validate_names(cfg)
    pull_state(cfg, resume=resume, api=api)  # `publish.state: hub` and no state on disk: the Hub's, if any
    state = open_state(cfg, resume=resume)
    evaluator = Evaluator(cfg.fitness)
    evaluator.tasks.check()
    if cfg.fitness.racing is not None:
        evaluator.tasks.check_racing()
    state = state or first_state(cfg, api=api)
    paths = {i: str(local_member(m, api=api).path) for i, m in state.members.items()}
    resolver = Resolver(state=state, run_dir=cfg.output.dir, run_name=cfg.name, publish=cfg.publish,
                        member_paths=paths, dtype=cfg.dtype)
    view = PopulationView(state, seed_layers=seed_layers(paths))
    run = Run(cfg, state, resolver, view, progress=progress, api=api)
    run._runner = CandidateRunner(RunnerSpec.of(cfg, template=run.template), evaluator=evaluator)
    for cid, ind in state.individuals.items():  # states written before recipes were stored
        if ind.genome is not None and cid not in state.recipes:
            state.recipes[cid] = resolver.recipe(ind)
    run.strategy = build_strategy(cfg, view, state.strategy_state)
    run.save()
    atomic_write_text(run.run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    if not (run.run_dir / "env.json").is_file():
        from hubevo.evaluation.lm_eval_fence import run_environment

        atomic_write_text(run.run_dir / "env.json", json.dumps(run_environment(), indent=1, default=str))
    run.sync = StateSync.of(cfg, state=state, api=api)
    return run


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
