"""EvoMerge's population GA as an ask/tell strategy.

tell: elites (`keep_top_k`, carried unchanged) and, for every other slot of the next
population, parents picked by roulette wheel or tournament with a chance of a
uniform pick. ask: the seeds in generation 0; afterwards the elites plus one child
per planned couple, made by crossover (a merge recipe) and mutation: gene perturbation,
or fine-tuning (dpo, sft) of the couple's first, fitter-picked parent.
"""

from __future__ import annotations

from collections.abc import Mapping

from hubevo import ranking, selection
from hubevo.crossover import crossover
from hubevo.finetune.recipe import sample_recipe
from hubevo.genome import Individual, child_individual, finetune_individual
from hubevo.mutation import get_operator, is_finetune
from hubevo.state import Evaluation, rng_for
from hubevo.strategies.base import Strategy


class GeneticAlgorithm(Strategy):
    name = "ga"

    def __init__(self, cfg, view, **kwargs):
        super().__init__(cfg, view, **kwargs)
        self.best: list[str] = []
        self.elites: list[str] = []
        self.couples: list[tuple[str, ...]] = []

    def ask(self) -> list[Individual]:
        view = self.view
        if view.generation == 0:
            return self.seeds()
        rng = rng_for(self.cfg.seed, view.generation, "breed")
        population = [view.individuals[i] for i in self.elites]
        for parents in self.couples:
            for _attempt in range(8):  # a duplicate recipe would only re-read the cache
                child = self.make_child(parents, rng)
                if child.id not in {p.id for p in population} and child.id not in view.evaluations:
                    break
            if child.id not in {p.id for p in population}:
                population.append(view.individuals.get(child.id, child))
        return population

    def make_child(self, parents: tuple[str, ...], rng) -> Individual:
        cfg, view = self.cfg, self.view
        base_id = view.base
        genome = crossover([view.individuals[p] for p in parents], base_id=base_id, cfg=cfg.crossover, rng=rng)
        if rng.random() < cfg.mutation.probability:
            name = cfg.mutation.operators[rng.integers(len(cfg.mutation.operators))]
            if is_finetune(name):  # EvoMerge's mutation by training: a child of the fitter parent alone
                space = cfg.mutation.finetune.model_copy(update={"operator": name})
                recipe = sample_recipe(space, parent=parents[0], rng=rng)
                return finetune_individual(recipe, generation=view.generation)
            genome = get_operator(name)(genome, mutation=cfg.mutation, cross=cfg.crossover, base_id=base_id, rng=rng)
        return child_individual(genome, generation=view.generation)

    def tell(self, results: Mapping[str, Evaluation]) -> None:
        cfg = self.cfg
        ok = [e for e in results.values() if e.status == "ok"]
        fitness = {e.id: e.fitness for e in ok}
        self.best = ranking.ranked(ok)[: max(cfg.selection.keep_top_k, 1)]
        self.elites = self.best[: cfg.selection.keep_top_k]
        rng = rng_for(cfg.seed, self.view.generation, "select")
        n_children = cfg.budget.population_size - len(self.elites)
        self.couples = [] if len(fitness) < 2 else [
            selection.pick_parents(fitness, n=cfg.selection.parents_per_child, cfg=cfg.selection, rng=rng)
            for _ in range(n_children)
        ]

    def stop(self) -> str | None:
        if self.view.generation > 0 or self.couples:
            return None
        ok = sum(1 for i in self.view.seeds if getattr(self.view.evaluations.get(i), "status", None) == "ok")
        return (f"only {ok} population member(s) scored: the GA needs two to breed "
                "(add members, or fix the failed ones: see results.parquet)")

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
