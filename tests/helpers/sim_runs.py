"""Simulated runs: run folders and states written by the loop's own writers, with no evolution behind them.

`new_run` grows a run generation by generation for the publishing tests (seeds on the test Hub, bred
survivors as tiny Llama folders with real lineage cards); `write_run` writes a finished (or live)
two-generation run folder for the Space.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from hubevo.breed.genome import Individual, MergeGenome, child_individual, seed_individual, to_merge_dict
from hubevo.config import RunConfig, parse_config
from hubevo.evaluation.records import Evaluation
from hubevo.fsio import atomic_write_text
from hubevo.publish.cards import lineage_card
from hubevo.publish.hub import publish_generation
from hubevo.publish.lineage_recipe import lineage_recipe
from hubevo.publish.resolver import Resolver
from hubevo.publish.tables import write_tables
from hubevo.state.runstate import RunState, save_state
from tests.tiny_models import build_llama

ALICE, ALICE_TOKEN, BOB_TOKEN = "alice", "token-alice", "token-bob"
_runs = itertools.count()


def tiny_weights(root: Path) -> dict[str, Path]:
    """Two seed models and three bred ones (tiny random Llamas; their values do not matter)."""
    return {name: build_llama(root / name, seed=i) for i, name in enumerate(["s1", "s2", "c1", "c2", "c3"])}


@dataclass
class SimRun:
    """A run state grown generation by generation, with survivor folders written as the loop writes them."""

    cfg: RunConfig
    state: RunState
    run_dir: Path
    weights: dict[str, Path]
    seeds: dict[str, Individual]
    children: dict[str, Individual]

    def repo(self, key: str) -> str:
        return self.cfg.publish.survivor_repo(self.cfg.name, self.children[key].id)

    def evaluate(self, ind: Individual, fitness: float | None, generation: int) -> None:
        status = "ok" if fitness is not None else "failed"
        self.state.individuals[ind.id] = ind
        self.state.evaluations[ind.id] = Evaluation(
            id=ind.id, generation=generation, status=status, fitness=fitness,
            scores={"tiny": fitness} if fitness is not None else {}, reason=None if fitness is not None else "NaN",
            examples=8, seconds=0.5,
        )

    def survive(self, generation: int, keys: list[str]) -> None:
        everyone = {**self.seeds, **self.children}
        self.state.survivors[generation] = [everyone[k].id for k in keys]
        for key in keys:
            if key in self.children and self.children[key].id not in self.state.saved:
                self.state.saved[self.children[key].id] = str(self.write_survivor(key))
        self.state.generation = generation
        write_tables(self.state, self.run_dir)

    def write_survivor(self, key: str) -> Path:
        ind = self.children[key]
        folder = self.run_dir / "models" / ind.name
        shutil.copytree(self.weights[key], folder)
        names = {i.id: i.source for i in self.seeds.values()} | {c.id: self.repo(k) for k, c in self.children.items()}
        self.state.recipes[ind.id] = to_merge_dict(ind.genome, refs=names)
        resolver = Resolver(state=self.state, run_dir=self.run_dir, run_name=self.cfg.name, publish=self.cfg.publish,
                            member_paths={})
        card = lineage_card(ind, run_name=self.cfg.name, parent_refs=names, rebuild=lineage_recipe(resolver, ind.id),
                            evaluation=self.state.evaluations[ind.id], heldout={"tiny_heldout": 0.25})
        card.save(folder / "README.md")
        return folder

    def publish(self, api) -> object:
        return publish_generation(run_dir=self.run_dir, state=self.state, cfg=self.cfg, api=api)


def new_run(tmp_path: Path, weights, seed_repos, *, push="survivors", private=False) -> SimRun:
    name = f"pubrun{next(_runs)}"
    cfg = parse_config({
        "name": name,
        "population": {"members": list(seed_repos.values())},
        "fitness": {"tasks": ["tiny"]},
        "budget": {"generations": 2, "population_size": 3},
        "output": {"dir": str(tmp_path / name)},
        "publish": {"namespace": ALICE, "private": private, "push": push},
    }, root=tmp_path)
    atomic_write_text(cfg.output.dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    seeds = {k: seed_individual(name=repo, source=repo) for k, repo in seed_repos.items()}
    c1 = child_individual(MergeGenome(method="linear", parents=(seeds["s1"].id, seeds["s2"].id),
                                      per_parent=({"weight": 0.5}, {"weight": 0.5})), generation=1)
    c3 = child_individual(MergeGenome(method="slerp", parents=(seeds["s1"].id, seeds["s2"].id),
                                      shared={"t": 0.3}), generation=1)
    c2 = child_individual(MergeGenome(method="slerp", parents=(c1.id, seeds["s2"].id), shared={"t": 0.4}),
                          generation=2)
    state = RunState(config_hash="test", population=[s.id for s in seeds.values()],
                     individuals={s.id: s for s in seeds.values()})
    return SimRun(cfg, state, cfg.output.dir, weights, seeds, {"c1": c1, "c2": c2, "c3": c3})


def write_run(root: Path, *, name: str = "sim", finished: bool = True) -> RunConfig:
    cfg = parse_config({
        "name": name,
        "population": {"members": ["alice/s1", "alice/s2"]},
        "fitness": {"tasks": ["tiny"], "heldout": ["tiny_heldout"]},
        "crossover": {"methods": ["linear", "slerp"]},  # the methods of the children below; no base model
        "budget": {"generations": 2, "population_size": 3},
        "output": {"dir": str(root / name)},
        "publish": {"namespace": "alice", "push": "survivors"},
    }, root=root)
    atomic_write_text(cfg.output.dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    s1, s2 = (seed_individual(name=f"alice/{n}", source=f"alice/{n}") for n in ("s1", "s2"))
    c1 = child_individual(MergeGenome(method="linear", parents=(s1.id, s2.id),
                                      per_parent=({"weight": 0.7}, {"weight": 0.3})), generation=1)
    c3 = child_individual(MergeGenome(method="slerp", parents=(s1.id, s2.id), shared={"t": 0.3}), generation=1)
    c2 = child_individual(MergeGenome(method="slerp", parents=(c1.id, s2.id), shared={"t": 0.4}), generation=2)
    state = RunState(config_hash="test", individuals={i.id: i for i in (s1, s2, c1, c3, c2)})
    for ind, fitness, gen in ((s1, 0.3, 0), (s2, 0.5, 0), (c1, 0.6, 1), (c3, None, 1), (c2, 0.55, 2)):
        state.evaluations[ind.id] = Evaluation(
            id=ind.id, generation=gen, status="ok" if fitness is not None else "failed", fitness=fitness,
            scores={"tiny": fitness} if fitness is not None else {}, reason=None if fitness else "NaN weights")
    state.survivors = {0: [s2.id, s1.id], 1: [c1.id, s2.id], 2: [c1.id, c2.id]}
    state.heldout = {s1.id: {"tiny_heldout": 0.2}, s2.id: {"tiny_heldout": 0.4}, c1.id: {"tiny_heldout": 0.45},
                     c2.id: {"tiny_heldout": 0.5}}
    names = {i.id: i.source for i in (s1, s2)} | {c.id: cfg.publish.survivor_repo(name, c.id) for c in (c1, c2)}
    state.recipes = {c.id: to_merge_dict(c.genome, refs=names) for c in (c1, c3, c2)}
    for child in (c1, c2):
        folder = cfg.output.dir / "models" / child.name
        resolver = Resolver(state=state, run_dir=cfg.output.dir, run_name=name, publish=cfg.publish, member_paths={})
        lineage_card(child, run_name=name, parent_refs=names, rebuild=lineage_recipe(resolver, child.id),
                     evaluation=state.evaluations[child.id], heldout=state.heldout[child.id]).save(folder / "README.md")
        state.saved[child.id] = str(folder)
    state.generation, state.population = 2, [c1.id, c2.id]
    state.finished, state.stop_reason = finished, "2 generations done" if finished else None
    state.elapsed_s = 125.0
    save_state(state, cfg.output.dir)
    write_tables(state, cfg.output.dir)
    return cfg
