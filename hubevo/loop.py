"""The evolution loop: seed -> evaluate -> select -> crossover -> mutate -> publish, repeated.

One function per stage; each stage reads and writes the run state, which is saved
atomically after every evaluated candidate and every written survivor, so a killed
run resumes where it stopped without losing a survivor or repeating an evaluation.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from hubevo import publish, selection
from hubevo.config import RunConfig
from hubevo.crossover import crossover
from hubevo.errors import CandidateError
from hubevo.evaluation import Evaluator
from hubevo.genome import Individual, child_individual, seed_individual, to_merge_config
from hubevo.mutation import get_operator
from hubevo.seed import seed_population
from hubevo.state import Evaluation, RunState, atomic_write_text, config_hash, open_state, rng_for, save_state

log = logging.getLogger("hubevo")


@dataclass
class Run:
    """Everything one run holds while it is alive: config, state, and the resident model."""

    cfg: RunConfig
    state: RunState
    evaluator: Evaluator
    paths: dict[str, str]  # individual id -> local model folder
    hub_names: dict[str, str]  # seed id -> how a card names it: Hub repo id, or the member's label
    yaml_refs: dict[str, str]  # seed id -> how a card's mergekit YAML names it: repo@sha, or its path
    base_id: str | None
    progress: bool = True
    started: float = field(default_factory=time.monotonic)
    _materializer: object | None = None
    _tokenizer: object | None = None
    api: object | None = None  # an injected huggingface_hub.HfApi; None = built from the environment

    @property
    def run_dir(self) -> Path:
        return self.cfg.output.dir

    @property
    def materializer(self):
        if self._materializer is None:
            import torch

            from hubevo.materialize import Materializer

            template = next(iter(self.paths.values()))
            self._materializer = Materializer(template, device=self.evaluator.device, dtype=getattr(torch, self.cfg.dtype))
        return self._materializer

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(next(iter(self.paths.values())))
        return self._tokenizer

    def save(self) -> None:
        now = time.monotonic()
        self.state.elapsed_s += now - self.started
        self.started = now
        save_state(self.state, self.run_dir)


# 1 seed ------------------------------------------------------------------------------------------
def start(cfg: RunConfig, *, resume: bool = False, progress: bool = True, api=None) -> Run:
    """Validate everything that can be validated before the first merge, then open or create the state."""
    state = open_state(cfg, resume=resume)
    members, base = seed_population(cfg.population, api=api)
    evaluator = Evaluator(cfg.fitness)
    evaluator.check_tasks()
    for name in cfg.crossover.methods:
        from hubevo.methods import get_method

        get_method(name)
    for name in cfg.mutation.operators:
        get_operator(name)
    seeds = [(seed_individual(name=m.label, source=m.source, revision=m.revision), m) for m in members]
    base_seed = (seed_individual(name=base.label, source=base.source, revision=base.revision), base) if base else None
    everyone = seeds + ([base_seed] if base_seed else [])
    if state is None:
        state = RunState(config_hash=config_hash(cfg), population=[ind.id for ind, _ in seeds])
        state.individuals.update({ind.id: ind for ind, _ in everyone})
    paths = {ind.id: str(m.path) for ind, m in everyone}
    paths.update({i: p for i, p in state.saved.items()})
    hub_names = {ind.id: (m.source.split("@")[0] if m.revision else m.label) for ind, m in everyone}
    yaml_refs = {ind.id: (f"{m.source.split('@')[0]}@{m.revision}" if m.revision else str(m.path)) for ind, m in everyone}
    run = Run(cfg, state, evaluator, paths, hub_names, yaml_refs, base_seed[0].id if base_seed else None, progress)
    run.api = api
    run.save()
    atomic_write_text(run.run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return run


# 2 evaluate --------------------------------------------------------------------------------------
def merge_config(run: Run, ind: Individual, *, refs: dict[str, str] | None = None):
    refs = refs or run.paths
    if ind.genome is None:  # a seed: the identity merge loads it through the same resident model
        return to_merge_config_identity(refs[ind.id], dtype=run.cfg.dtype)
    return to_merge_config(ind.genome, refs=refs, dtype=run.cfg.dtype)


def to_merge_config_identity(path: str, *, dtype: str):
    from mergekit.config import MergeConfiguration

    return MergeConfiguration.model_validate(
        {"merge_method": "linear", "models": [{"model": path, "parameters": {"weight": 1.0}}], "dtype": dtype}
    )


def evaluate_candidate(run: Run, ind: Individual) -> Evaluation:
    started = time.perf_counter()
    try:
        model = run.materializer.materialize(merge_config(run, ind))
        fitness, scores, used = run.evaluator.fitness(model, run.tokenizer, generation=run.state.generation)
    except CandidateError as err:
        log.warning("candidate %s failed: %s", ind.name, err)
        return Evaluation(id=ind.id, generation=run.state.generation, status="failed", reason=str(err),
                          seconds=time.perf_counter() - started)
    return Evaluation(id=ind.id, generation=run.state.generation, status="ok", fitness=fitness, scores=scores,
                      examples=used, seconds=time.perf_counter() - started)


def evaluate_generation(run: Run) -> None:
    todo = [i for i in run.state.population if i not in run.state.evaluations]
    bar = tqdm(todo, desc=f"generation {run.state.generation}", unit="candidate", disable=not run.progress)
    for cid in bar:
        if stop_reason(run, within_generation=True):
            break
        run.state.evaluations[cid] = evaluate_candidate(run, run.state.individuals[cid])
        run.save()


# 3 select ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    elites: list[str]
    couples: list[tuple[str, ...]]

    @property
    def survivors(self) -> list[str]:
        return list(dict.fromkeys([*self.elites, *(p for c in self.couples for p in c)]))


def plan_generation(run: Run, *, final: bool) -> Plan:
    cfg, state = run.cfg, run.state
    fitness = {i: f for i, f in state.fitness_of(state.population).items() if f is not None}
    best = selection.elites(fitness, k=max(cfg.selection.keep_top_k, 1))
    elites = best[: cfg.selection.keep_top_k] if cfg.selection.keep_top_k else []
    if final or len(fitness) < 2:
        return Plan(elites=best, couples=[])
    rng = rng_for(cfg.seed, state.generation, "select")
    n_children = cfg.budget.population_size - len(elites)
    couples = [
        selection.pick_parents(fitness, n=cfg.selection.parents_per_child, cfg=cfg.selection, rng=rng)
        for _ in range(n_children)
    ]
    return Plan(elites=list(dict.fromkeys(best[:1] + elites)), couples=couples)


# 6 publish (survivors to disk, before they can be parents) ------------------------------------------
def write_survivors(run: Run, plan: Plan) -> None:
    state = run.state
    state.survivors[state.generation] = plan.survivors
    for cid in plan.survivors:
        ind = state.individuals[cid]
        if ind.kind != "seed" and cid not in state.saved:
            write_survivor(run, ind)
        if cid not in state.heldout:
            state.heldout[cid] = heldout_scores(run, ind)
        run.save()
    publish.write_tables(state, run.run_dir)


def heldout_scores(run: Run, ind: Individual) -> dict[str, float]:
    try:
        model = run.materializer.materialize(merge_config(run, ind))
        return run.evaluator.heldout(model, run.tokenizer)
    except CandidateError as err:
        log.warning("held-out evaluation of %s failed: %s", ind.name, err)
        return {}


def write_survivor(run: Run, ind: Individual) -> None:
    final = run.run_dir / "models" / ind.name
    tmp = final.with_name(f".{ind.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    run.materializer.materialize(merge_config(run, ind))
    run.materializer.save(tmp, tokenizer_source=Path(next(iter(run.paths.values()))))
    heldout = run.state.heldout.get(ind.id) or heldout_scores(run, ind)
    run.state.heldout[ind.id] = heldout
    ev = run.state.evaluations[ind.id]
    card = publish.lineage_card(
        ind, run_name=run.cfg.name, parent_refs=card_names(run), merge_refs=yaml_refs(run), fitness=ev.fitness,
        scores=ev.scores, heldout=heldout, dtype=run.cfg.dtype,
    )
    card.save(tmp / "README.md")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    run.state.saved[ind.id] = str(final)
    run.paths[ind.id] = str(final)


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


# 4 crossover + 5 mutate ---------------------------------------------------------------------------
def make_child(run: Run, parents: tuple[str, ...], rng) -> Individual:
    cfg = run.cfg
    genome = crossover([run.state.individuals[p] for p in parents], base_id=run.base_id, cfg=cfg.crossover, rng=rng)
    if rng.random() < cfg.mutation.probability:
        op = get_operator(cfg.mutation.operators[rng.integers(len(cfg.mutation.operators))])
        genome = op(genome, mutation=cfg.mutation, cross=cfg.crossover, base_id=run.base_id, rng=rng)
    return child_individual(genome, generation=run.state.generation + 1)


def breed(run: Run, plan: Plan) -> None:
    rng = rng_for(run.cfg.seed, run.state.generation, "breed")
    next_population = list(plan.elites[: run.cfg.selection.keep_top_k] or [])
    for parents in plan.couples:
        for _attempt in range(8):  # a duplicate recipe would only re-read the cache
            child = make_child(run, parents, rng)
            if child.id not in next_population and child.id not in run.state.evaluations:
                break
        run.state.individuals.setdefault(child.id, child)
        if child.id not in next_population:
            next_population.append(child.id)
    run.state.population = next_population
    run.state.generation += 1
    run.save()


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
    mean = sum(e.fitness for e in ok) / len(ok)
    ind = state.individuals[best.id]
    return (f"generation {state.generation}: {len(evs)} evaluated ({len(evs) - len(ok)} failed), "
            f"best {best.fitness:.3f} ({ind.name}, {ind.genome.method if ind.genome else 'seed'}), "
            f"mean {mean:.3f}, survivors {len(state.survivors.get(state.generation, []))}")


def push(run: Run) -> None:
    """Publish what is on disk to the Hub; a failed push is logged and retried at the next generation."""
    if run.cfg.publish.push == "none":
        return
    from hubevo.errors import HubError
    from hubevo.hub.publish import publish_generation

    try:
        publish_generation(run_dir=run.run_dir, state=run.state, cfg=run.cfg, api=run.api)
    except HubError as err:
        log.warning("publishing to the Hub failed (local survivors are kept): %s", err)


def evolve(cfg: RunConfig, *, resume: bool = False, progress: bool = True, api=None) -> RunState:
    """Run (or resume) an evolution to the end of its budget; returns the final state."""
    run = start(cfg, resume=resume, progress=progress, api=api)
    run.state.finished = False
    while True:
        evaluate_generation(run)
        reason = stop_reason(run)
        plan = plan_generation(run, final=reason is not None)
        write_survivors(run, plan)
        push(run)
        log.info(summarize(run))
        if reason is not None or not plan.couples:
            break
        breed(run, plan)
    run.state.finished, run.state.stop_reason = True, reason or "fewer than two candidates alive"
    run.save()
    publish.write_tables(run.state, run.run_dir)
    push(run)
    return run.state
