"""Natural niches (Abrantes, Lange & Tang 2025, "Competition and Attraction Improve Model Fusion", M2N2).

Stages 3-4, select and crossover, as an ask/tell strategy over an archive of `options.archive` models:
- generation 0 scores the members (and the loop's standard recipes); the archive is filled from them by
  resource competition (`hubevo.selection.niches`): the weakest is dropped, one at a time, until it fits;
- each later generation asks `options.children` children. A child's first parent is drawn in proportion
  to competition fitness, its second in proportion to attraction (strong where the first is weak);
  the child is a split-point SLERP of the two (`hubevo.breed.crossover.split_point_genome`): t = w below
  a drawn split point, 1 - w above it, so each part of the stack leans towards a different parent. Every
  child is a plain mergekit recipe, and a child of children names its parents' recipes (lineage);
- `tell` offers each scored child to the archive in turn: it replaces the weakest member unless it is
  itself the weakest. Failed and raced-out children keep no outcomes and never enter.

Competition reads the per-example outcomes on the examples every archive model scored
(`hubevo.evaluation.outcomes.aligned`): with a cheap-fitness subset or a resampled sample, the
competition runs over their common examples; with none in common, over mean fitness. With
`fitness.resample` the archive is asked again each generation, so it is re-scored on the new sample.
The champion is still the run's rule's; the archive's best by competition fitness are finalists.
Draws come from `rng_for(cfg.seed, generation, "m2n2")`; the state is plain data, so a resumed run
asks the same children.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hubevo.breed.crossover import split_point_genome
from hubevo.breed.genome import Individual, child_individual
from hubevo.evaluation.records import Evaluation
from hubevo.search.base import Strategy
from hubevo.selection import niches
from hubevo.state.runstate import rng_for

ATTEMPTS = 8  # draws per child before a duplicate recipe is given up (it would only re-read the cache)


class M2N2(Strategy):
    name = "m2n2"

    def __init__(self, cfg, view, **kwargs):
        super().__init__(cfg, view, **kwargs)
        self.archive: list[str] = []
        self.pending: list[str] = []  # children asked, in order, not yet offered to the archive

    # ask: attraction mating and split-point crossover -------------------------------------------------
    def ask(self) -> list[Individual]:
        if self.view.generation == 0:
            return self.seeds()
        rng = rng_for(self.cfg.seed, self.view.generation, self.name)
        children: dict[str, Individual] = {}
        for _ in range(self.options.children or self.cfg.budget.population_size):
            child = self.new_child(rng, taken=children)
            if child is not None:
                children[child.id] = child
        self.pending = list(children)
        carried = [self.view.individuals[i] for i in self.archive] if self.cfg.fitness.resample else []
        return [*carried, *children.values()]

    def new_child(self, rng: np.random.Generator, *, taken: Mapping[str, Individual]) -> Individual | None:
        for _ in range(ATTEMPTS):
            first, second = self.mates(rng)
            child = child_individual(self.crossover((first, second), rng), generation=self.view.generation)
            if child.id not in taken and child.id not in self.view.evaluations:
                return child
        return None

    def mates(self, rng: np.random.Generator) -> tuple[str, str]:
        """First parent by competition fitness, second by attraction to it (same layer count)."""
        ids, scores, share, _ = niches.outcome_matrix(self.view.evaluations, self.archive)
        first = niches.drawn(niches.competition_fitness(scores, share, alpha=self.options.alpha), rng)
        layers = np.array([self.view.layers(i) for i in ids])
        allowed = (layers == layers[first]) & (np.arange(len(ids)) != first)
        pull = niches.attraction(scores, share, first=first, alpha=self.options.alpha)
        return ids[first], ids[niches.drawn(pull, rng, allowed=allowed)]

    def crossover(self, parents: tuple[str, str], rng: np.random.Generator):
        w = round(float(rng.uniform()), 6)
        n_layers = self.view.layers(parents[0])
        groups = n_layers * (len(self.options.modules) + 1)
        split = int(rng.integers(1, groups)) if self.options.split and groups > 1 else None
        return split_point_genome(parents, w=w, split=split, n_layers=n_layers, modules=self.options.modules)

    # tell: resource competition ----------------------------------------------------------------------
    def tell(self, results: Mapping[str, Evaluation]) -> None:
        scored = [i for i, e in results.items() if e.status == "ok" and e.fitness is not None]
        if not self.archive:
            self.archive = self.competed(scored)
        for cid in self.pending:
            if cid in scored and cid not in self.archive:
                self.archive = self.competed([*self.archive, cid])
        self.pending = []

    def competed(self, ids: list[str]) -> list[str]:
        """`ids` less their weakest by competition fitness, one at a time (shares recomputed), until they fit."""
        ids = list(dict.fromkeys(ids))
        while len(ids) > self.options.archive:
            kept, scores, share, _ = niches.outcome_matrix(self.view.evaluations, ids)
            if len(kept) < len(ids):  # evaluations without a fitness go first
                ids = kept
                continue
            del ids[niches.weakest(scores, share, alpha=self.options.alpha, ids=ids)]
        return ids

    def ranked_archive(self) -> list[str]:
        if len(self.archive) < 2:
            return list(self.archive)
        ids, scores, share, _ = niches.outcome_matrix(self.view.evaluations, self.archive)
        fitness = niches.competition_fitness(scores, share, alpha=self.options.alpha)
        return [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-fitness[i], ids[i]))]

    def survivors(self, *, final: bool) -> list[str]:
        return list(self.archive)

    def finalists(self) -> list[str]:
        return self.ranked_archive()[: self.options.finalists]

    def stop(self) -> str | None:
        if len(self.archive) < 2:
            return f"m2n2 needs two scored models to mate, and its archive holds {len(self.archive)}"
        return None

    def state_dict(self) -> dict:
        return {"archive": list(self.archive), "pending": list(self.pending)}

    def load_state_dict(self, state: dict) -> None:
        self.archive = list(state.get("archive", []))
        self.pending = list(state.get("pending", []))
