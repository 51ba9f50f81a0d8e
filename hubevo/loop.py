"""The evolution loop: seed -> evaluate -> select -> crossover/mutate -> publish, repeated.

The orchestrator (`evolve`, at the bottom) reads like the papers' figure. The search
strategy decides who is evaluated (`ask`) and who survives (`tell`); the execution
backend evaluates; survivors are written with lineage cards before they can be
parents. The run state is saved atomically after every evaluated candidate and every
written survivor, so a killed run resumes without losing a survivor or repeating an
evaluation.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from hubevo import publish
from hubevo.config import RunConfig
from hubevo.errors import CandidateError, HubError
from hubevo.evaluation import Evaluator, run_environment
from hubevo.execution import get_backend
from hubevo.genome import Individual, seed_individual, to_merge_config
from hubevo.methods import get_method
from hubevo.mutation import get_operator, is_finetune
from hubevo.racing import race_generation
from hubevo.seed import ResolvedMember, check_compatible, seed_population
from hubevo.state import RunState, append_event, atomic_write_text, config_hash, open_state, save_state
from hubevo.strategies import get_strategy

log = logging.getLogger("hubevo")


@dataclass
class Run:
    """Everything one run holds while it is alive: config, state, strategy and the resident model."""

    cfg: RunConfig
    state: RunState
    evaluator: Evaluator
    paths: dict[str, str]  # individual id -> local model folder
    hub_names: dict[str, str]  # seed id -> how a card names it: Hub repo id, or the member's label
    yaml_refs: dict[str, str]  # seed id -> how a card's mergekit YAML names it: repo@sha, or its path
    seed_ids: list[str]
    base_id: str | None
    progress: bool = True
    api: object | None = None  # an injected huggingface_hub.HfApi; None = built from the environment
    started: float = field(default_factory=time.monotonic)
    strategy: object | None = None
    _materializer: object | None = None
    _tokenizer: object | None = None

    @property
    def run_dir(self) -> Path:
        return self.cfg.output.dir

    @property
    def template(self) -> str:
        return self.paths[self.seed_ids[0]]

    @property
    def materializer(self):
        if self._materializer is None:
            import torch

            from hubevo.materialize import Materializer

            dtype = getattr(torch, self.cfg.dtype)
            self._materializer = Materializer(self.template, device=self.evaluator.device, dtype=dtype)
        return self._materializer

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.template)
        return self._tokenizer

    def merge_config(self, ind: Individual):
        """The mergekit config that materialises `ind`; a seed is the identity merge of its folder."""
        if ind.genome is None:
            return identity_config(self.paths[ind.id], dtype=self.cfg.dtype)
        return to_merge_config(ind.genome, refs=self.paths, dtype=self.cfg.dtype)

    def save(self) -> None:
        now = time.monotonic()
        self.state.elapsed_s += now - self.started
        self.started = now
        self.state.strategy_state = self.strategy.state_dict() if self.strategy else {}
        save_state(self.state, self.run_dir)


def identity_config(path: str, *, dtype: str):
    from mergekit.config import MergeConfiguration

    return MergeConfiguration.model_validate(
        {"merge_method": "linear", "models": [{"model": path, "parameters": {"weight": 1.0}}], "dtype": dtype}
    )


# 1 seed ------------------------------------------------------------------------------------------
def validate_names(cfg: RunConfig) -> None:
    """Unknown methods, operators and strategies fail before anything is downloaded or merged."""
    for name in cfg.crossover.methods:
        get_method(name)
    for name in cfg.mutation.operators:
        get_operator(name)
    get_strategy(cfg.search.strategy)
    get_backend(cfg.execution.backend)
    if cfg.mutation.finetune is not None and any(is_finetune(op) for op in cfg.mutation.operators):
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


def start(cfg: RunConfig, *, resume: bool = False, progress: bool = True, api=None) -> Run:
    """Validate everything that can be validated before the first merge, then open or create the state.

    A resumed run takes its seeds from the state (pinned paths and revisions), never from a new query.
    """
    validate_names(cfg)
    state = open_state(cfg, resume=resume)
    evaluator = Evaluator(cfg.fitness)
    evaluator.check_tasks()
    state = state or first_state(cfg, api=api)
    members = {i: local_member(m, api=api) for i, m in state.members.items()}
    trained = {i: str(cfg.output.dir / "candidates" / i) for i in state.training}
    paths = {i: str(m.path) for i, m in members.items()} | trained | dict(state.saved)
    hub_names = {i: m.hub_name for i, m in members.items()}
    yaml_refs = {i: m.recipe_ref for i, m in members.items()}
    run = Run(cfg, state, evaluator, paths, hub_names, yaml_refs, seed_ids=list(state.initial),
              base_id=state.base, progress=progress, api=api)
    run.strategy = get_strategy(cfg.search.strategy)(run)
    run.strategy.load_state_dict(state.strategy_state)
    run.save()
    atomic_write_text(run.run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    if not (run.run_dir / "env.json").is_file():
        atomic_write_text(run.run_dir / "env.json", json.dumps(run_environment(), indent=1, default=str))
    return run


# 2 evaluate --------------------------------------------------------------------------------------
def evaluate_generation(run: Run, backend) -> None:
    state = run.state
    todo = [state.individuals[i] for i in state.population if i not in state.evaluations]
    bar = tqdm(total=len(todo), desc=f"generation {state.generation}", unit="candidate", disable=not run.progress)
    budgeted = (ind for ind in todo if not stop_reason(run, within_generation=True))
    evaluations = (race_generation(run, todo, generation=state.generation) if run.cfg.fitness.racing
                   else backend.evaluate(budgeted, generation=state.generation))
    for evaluation in evaluations:
        state.evaluations[evaluation.id] = evaluation
        run.save()
        append_event(run.run_dir, "evaluated", id=evaluation.id, generation=state.generation,
                     status=evaluation.status, fitness=evaluation.fitness, done=bar.n + 1, total=len(todo))
        bar.update()
    bar.close()


# 3 select ----------------------------------------------------------------------------------------
def select(run: Run, *, final: bool) -> list[str]:
    """Tell the strategy this generation's results (once, even across resumes); name the survivors."""
    state = run.state
    if state.told < state.generation:
        run.strategy.tell({i: state.evaluations[i] for i in state.population if i in state.evaluations})
        state.told = state.generation
    state.survivors[state.generation] = run.strategy.survivors(final=final)
    run.save()
    return state.survivors[state.generation]


# 6 publish: survivors to disk (they may be parents next), then to the Hub --------------------------
def write_survivors(run: Run, survivors: list[str]) -> None:
    state = run.state
    for cid in survivors:
        ind = state.individuals[cid]
        if ind.kind != "seed" and cid not in state.saved:
            write_survivor(run, ind)
        if cid not in state.heldout:
            state.heldout[cid] = heldout_scores(run, ind)
        run.save()
    publish.write_tables(state, run.run_dir)


def heldout_scores(run: Run, ind: Individual) -> dict[str, float]:
    try:
        model = run.materializer.materialize(run.merge_config(ind))
        return run.evaluator.heldout(model, run.tokenizer)
    except CandidateError as err:
        log.warning("held-out evaluation of %s failed: %s", ind.name, err)
        return {}


def write_survivor(run: Run, ind: Individual) -> None:
    final = run.run_dir / "models" / ind.name
    tmp = final.with_name(f".{ind.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    heldout = run.state.heldout.get(ind.id) or heldout_scores(run, ind)  # leaves `ind` materialised
    run.state.heldout[ind.id] = heldout
    run.materializer.save(tmp, tokenizer_source=Path(run.template))
    ev = run.state.evaluations[ind.id]
    card = publish.lineage_card(
        ind, run_name=run.cfg.name, parent_refs=card_names(run), merge_refs=yaml_refs(run), fitness=ev.fitness,
        scores=ev.scores, heldout=heldout, dtype=run.cfg.dtype, hub_only=run.cfg.publish.push != "none",
        training=run.state.training.get(ind.id),
    )
    card.save(tmp / "README.md")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    run.state.saved[ind.id] = str(final)
    run.paths[ind.id] = str(final)
    run.save()
    append_event(run.run_dir, "survivor", id=ind.id, generation=run.state.generation, path=str(final))


def card_names(run: Run) -> dict[str, str]:
    """How cards name each individual: Hub repo ids where they are (or will be) on the Hub."""
    pub = run.cfg.publish
    on_hub = lambda ind: pub.push == "survivors" and ind.kind != "seed"  # noqa: E731
    return {
        i: pub.survivor_repo(run.cfg.name, i) if on_hub(ind) else run.hub_names.get(i, ind.name)
        for i, ind in run.state.individuals.items()
    }


def yaml_refs(run: Run) -> dict[str, str]:
    """How a card's mergekit YAML names each parent: repo@sha for Hub seeds, Hub repos or local folders."""
    names = card_names(run)
    pushed = {i: names[i] for i, ind in run.state.individuals.items()
              if ind.kind != "seed" and run.cfg.publish.push == "survivors"}
    return {**run.paths, **pushed, **run.yaml_refs}


def push(run: Run) -> None:
    """Publish what is on disk to the Hub; a failed push is logged and completed at a later call."""
    if run.cfg.publish.push == "none":
        return
    from hubevo.hub.publish import publish_generation

    try:
        publish_generation(run_dir=run.run_dir, state=run.state, cfg=run.cfg, api=run.api)
    except HubError as err:
        log.warning("publishing to the Hub failed (local survivors are kept): %s", err)


# 4 crossover + 5 mutate happen inside the strategy's ask -------------------------------------------
def next_generation(run: Run) -> bool:
    """Ask the strategy for the current generation's candidates (once); False if it has nothing new."""
    state = run.state
    if state.population:  # asked before a restart: carry on with it
        return True
    asked = run.strategy.ask()
    for ind in asked:
        state.individuals.setdefault(ind.id, ind)
    state.population = list(dict.fromkeys([*state.pending, *(ind.id for ind in asked)]))
    state.pending = []
    run.save()
    return any(i not in state.evaluations for i in state.population)


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
    state = run.state
    evs = [state.evaluations[i] for i in state.population if i in state.evaluations]
    ok = [e for e in evs if e.status == "ok"]
    if not ok:
        return f"generation {state.generation}: no candidate succeeded ({len(evs)} failed)"
    best = max(ok, key=lambda e: e.fitness)
    ind = state.individuals[best.id]
    new = sum(1 for e in evs if e.generation == state.generation)
    return (f"generation {state.generation}: {len(evs)} candidates ({new} new, {len(evs) - len(ok)} failed), "
            f"best {best.fitness:.3f} ({ind.name}, {ind.kind if ind.genome is None else ind.genome.method}), "
            f"mean {sum(e.fitness for e in ok) / len(ok):.3f}, "
            f"survivors {len(state.survivors.get(state.generation, []))}, {state.elapsed_s:.0f} s")


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
        run.paths[cid] = str(member.path)
        run.hub_names[cid] = member.hub_name
        run.yaml_refs[cid] = member.recipe_ref
        added.append(cid)
    run.save()
    return added


def advance(run: Run) -> None:
    run.state.generation += 1
    run.state.population = []
    run.save()


def evolve(cfg: RunConfig, *, resume: bool = False, progress: bool = True, api=None) -> RunState:
    """Run (or resume) an evolution to the end of its budget; returns the final state."""
    run = start(cfg, resume=resume, progress=progress, api=api)
    backend = get_backend(cfg.execution.backend)(run)
    run.state.finished, reason = False, None
    try:
        while next_generation(run):                       # 4+5: crossover and mutation inside ask
            evaluate_generation(run, backend)             # 2
            reason = stop_reason(run)
            write_survivors(run, select(run, final=reason is not None))  # 3, then 6 to disk
            push(run)                                     # 6 to the Hub
            log.info(summarize(run))
            append_event(run.run_dir, "generation", generation=run.state.generation, summary=summarize(run))
            if reason is not None:
                break
            advance(run)
    finally:
        backend.close()
    run.state.finished, run.state.stop_reason = True, reason or "the strategy proposed no new candidate"
    run.save()
    publish.write_tables(run.state, run.run_dir)
    push(run)
    return run.state
