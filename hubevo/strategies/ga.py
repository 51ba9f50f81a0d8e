"""EvoMerge's population GA as an ask/tell strategy.

tell: elites (`keep_top_k`, carried unchanged) and, for every other slot of the next
population, parents picked by roulette wheel or tournament with a chance of a
uniform pick. ask: the seeds in generation 0; afterwards the elites plus one child
per planned couple, made by crossover (a merge recipe) and mutation: gene perturbation,
or fine-tuning (dpo, sft) of the couple's first, fitter-picked parent.
"""

from __future__ import annotations

from collections.abc import Mapping

from hubevo import selection
from hubevo.crossover import crossover
from hubevo.finetune import sample_recipe
from hubevo.genome import Individual, child_individual, finetune_individual
from hubevo.mutation import get_operator, is_finetune
from hubevo.state import Evaluation, rng_for
from hubevo.strategies.base import Strategy


class GeneticAlgorithm(Strategy):
    name = "ga"

    def __init__(self, run):
        super().__init__(run)
        self.best: list[str] = []
        self.elites: list[str] = []
        self.couples: list[tuple[str, ...]] = []

    def ask(self) -> list[Individual]:
        state = self.run.state
        if state.generation == 0:
            return [state.individuals[i] for i in self.run.seed_ids]
        rng = rng_for(self.run.cfg.seed, state.generation, "breed")
        population = [state.individuals[i] for i in self.elites]
        for parents in self.couples:
            for _attempt in range(8):  # a duplicate recipe would only re-read the cache
                child = self.make_child(parents, rng)
                if child.id not in {p.id for p in population} and child.id not in state.evaluations:
                    break
            if child.id not in {p.id for p in population}:
                population.append(state.individuals.get(child.id, child))
        return population

    def make_child(self, parents: tuple[str, ...], rng) -> Individual:
        cfg, state = self.run.cfg, self.run.state
        base_id = self.run.base_id
        genome = crossover([state.individuals[p] for p in parents], base_id=base_id, cfg=cfg.crossover, rng=rng)
        if rng.random() < cfg.mutation.probability:
            name = cfg.mutation.operators[rng.integers(len(cfg.mutation.operators))]
            if is_finetune(name):  # EvoMerge's mutation by training: a child of the fitter parent alone
                space = cfg.mutation.finetune.model_copy(update={"operator": name})
                recipe = sample_recipe(space, parent=parents[0], rng=rng)
                return finetune_individual(recipe, generation=state.generation)
            genome = get_operator(name)(genome, mutation=cfg.mutation, cross=cfg.crossover, base_id=base_id, rng=rng)
        return child_individual(genome, generation=state.generation)

    def tell(self, results: Mapping[str, Evaluation]) -> None:
        cfg = self.run.cfg
        fitness = {i: e.fitness for i, e in results.items() if e.status == "ok"}
        self.best = selection.elites(fitness, k=max(cfg.selection.keep_top_k, 1))
        self.elites = self.best[: cfg.selection.keep_top_k]
        rng = rng_for(cfg.seed, self.run.state.generation, "select")
        n_children = cfg.budget.population_size - len(self.elites)
        self.couples = [] if len(fitness) < 2 else [
            selection.pick_parents(fitness, n=cfg.selection.parents_per_child, cfg=cfg.selection, rng=rng)
            for _ in range(n_children)
        ]

    def survivors(self, *, final: bool) -> list[str]:
        """The best (and elites) always; the planned parents too unless no generation follows."""
        parents = [] if final else [p for couple in self.couples for p in couple]
        return list(dict.fromkeys([*self.best, *parents]))

    def state_dict(self) -> dict:
        return {"best": self.best, "elites": self.elites, "couples": [list(c) for c in self.couples]}

    def load_state_dict(self, state: dict) -> None:
        self.best = list(state.get("best", []))
        self.elites = list(state.get("elites", []))
        self.couples = [tuple(c) for c in state.get("couples", [])]
