"""EvoMerge's population GA as an ask/tell strategy.

tell: elites (`keep_top_k`, carried unchanged) and, for every other slot of the next
population, parents picked by roulette wheel or tournament with a chance of a
uniform pick. ask: the seeds in generation 0; afterwards the elites plus one child
per planned couple, made by crossover (a merge recipe) and mutation: gene perturbation,
or fine-tuning (dpo, sft) of the couple's first, fitter-picked parent. When fine-tuning is
among the operators, one slot of every generation is the best candidate fine-tuned, and one
a soup: the uniform average of the two best fine-tuned candidates not averaged yet, which on
the demo zoo scores above every single fine-tune (`search.options.soup`).

With the per-task archive (`search.options.archive`; the default for open-ended populations)
the GA keeps skills as well as fitness, in the spirit of CycleQD and M2N2: the best candidate
seen on each fitness task stays in the population unchanged, and each couple's second parent
is drawn in proportion to how much it is better than the first on the tasks where the first
is weak, so merges combine complementary strengths rather than two copies of one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from hubevo.breed.baselines import standard_recipe
from hubevo.breed.crossover import crossover
from hubevo.breed.genome import Individual, child_individual, finetune_individual
from hubevo.breed.mutation import MUTATION_OPERATORS, is_finetune
from hubevo.evaluation.records import Evaluation
from hubevo.finetune.recipe import sample_recipe
from hubevo.search.base import Strategy
from hubevo.selection import ranking
from hubevo.selection.parents import pick_parents
from hubevo.state.runstate import rng_for


class GeneticAlgorithm(Strategy):
    name = "ga"

    def __init__(self, cfg, view, **kwargs):
        super().__init__(cfg, view, **kwargs)
        self.best: list[str] = []
        self.elites: list[str] = []
        self.couples: list[tuple[str, ...]] = []
        self.archive: dict[str, str] = {}  # fitness task -> id of the best candidate on it so far
        self.soup_pair: tuple[str, ...] = ()  # the next generation's soup ingredients

    @property
    def uses_archive(self) -> bool:
        wanted = self.options.archive
        return wanted if wanted is not None else self.cfg.population.query is not None

    def ask(self) -> list[Individual]:
        view = self.view
        if view.generation == 0:
            return self.seeds()
        rng = rng_for(self.cfg.seed, view.generation, "breed")
        population = [view.individuals[i] for i in self.elites]
        couples = self.couples
        for extra in (self.tuned_leader(rng), self.soup()):  # a slot each: the leader fine-tuned, a soup
            if extra is not None and couples and extra.id not in {p.id for p in population}:
                population.append(view.individuals.get(extra.id, extra))
                couples = couples[:-1]
        for parents in couples:
            for _attempt in range(8):  # a duplicate recipe would only re-read the cache
                child = self.make_child(parents, rng)
                if child.id not in {p.id for p in population} and child.id not in view.evaluations:
                    break
            if child.id not in {p.id for p in population}:
                population.append(view.individuals.get(child.id, child))
        return population

    def tuned_leader(self, rng) -> Individual | None:
        """A fine-tuned child of the best candidate, when fine-tuning is among the mutation operators."""
        operators = [op for op in self.cfg.mutation.operators if is_finetune(op)]
        if not operators or not self.best:
            return None
        space = self.cfg.mutation.finetune.model_copy(update={"operator": operators[0]})
        recipe = sample_recipe(space, parent=self.best[0], rng=rng)
        return finetune_individual(recipe, generation=self.view.generation)

    def soup(self) -> Individual | None:
        """The planned soup of this generation (`plan_soup`), if any."""
        return soup_individual(self.soup_pair, generation=self.view.generation) if self.soup_pair else None

    def plan_soup(self) -> tuple[str, ...]:
        """The two best fine-tuned candidates (or soups of them) not averaged yet: their uniform linear merge is
        a model soup (Wortsman et al., 2022), which averages the fine-tunes' training noise away."""
        view = self.view
        if not self.options.soup or not any(is_finetune(op) for op in self.cfg.mutation.operators):
            return ()
        tuned = [i for i in ranking.ranked(view.evaluations.values()) if is_tuned(view.individuals, i)][:SOUP_POOL]
        for pair in itertools.combinations(tuned, 2):
            if soup_individual(pair, generation=0).id not in view.evaluations:  # the id ignores the generation
                return pair
        return ()

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
            genome = MUTATION_OPERATORS[name](genome, mutation=cfg.mutation, cross=cfg.crossover, base_id=base_id, rng=rng)
        return child_individual(genome, generation=view.generation)

    def tell(self, results: Mapping[str, Evaluation]) -> None:
        cfg = self.cfg
        ok = [e for e in results.values() if e.status == "ok"]
        fitness = {e.id: e.fitness for e in ok}
        self.best = ranking.ranked(ok)[: max(cfg.selection.keep_top_k, 1)]
        self.elites = self.best[: cfg.selection.keep_top_k]
        if self.uses_archive:
            self.archive = update_archive(self.archive, ok, self.view.evaluations)
            self.elites = list(dict.fromkeys([*self.elites, *self.archive.values()]))
        rng = rng_for(cfg.seed, self.view.generation, "select")
        n_children = max(cfg.budget.population_size - len(self.elites), 1)
        self.couples = [] if len(fitness) < 2 else [self.pick_couple(fitness, rng) for _ in range(n_children)]
        self.soup_pair = self.plan_soup()

    def pick_couple(self, fitness: Mapping[str, float], rng) -> tuple[str, ...]:
        cfg = self.cfg
        if not self.uses_archive or cfg.selection.parents_per_child < 2:
            return pick_parents(fitness, n=cfg.selection.parents_per_child, cfg=cfg.selection, rng=rng)
        first = pick_parents(fitness, n=1, cfg=cfg.selection, rng=rng)[0]
        mates = [i for i in fitness if i != first]
        gains = np.array([complement(self.view.evaluations[first], self.view.evaluations[m]) for m in mates])
        weights = gains + 1e-3 * (gains.sum() == 0)  # nobody complements the first: any mate, uniformly
        second = mates[int(rng.choice(len(mates), p=weights / weights.sum()))]
        return (first, second)

    def stop(self) -> str | None:
        if self.view.generation > 0 or self.couples:
            return None
        ok = sum(1 for i in self.view.seeds if getattr(self.view.evaluations.get(i), "status", None) == "ok")
        return (f"only {ok} population member(s) scored: the GA needs two to breed "
                "(add members, or fix the failed ones: see results.parquet)")

    def survivors(self, *, final: bool) -> list[str]:
        """The best (and elites) always; the planned parents too unless no generation follows."""
        parents = [] if final else [p for couple in (*self.couples, self.soup_pair) for p in couple]
        return list(dict.fromkeys([*self.best, *self.archive.values(), *parents]))

    def state_dict(self) -> dict:
        return {"best": self.best, "elites": self.elites, "couples": [list(c) for c in self.couples],
                "archive": dict(self.archive), "soup": list(self.soup_pair)}

    def load_state_dict(self, state: dict) -> None:
        self.best = list(state.get("best", []))
        self.elites = list(state.get("elites", []))
        self.couples = [tuple(c) for c in state.get("couples", [])]
        self.archive = dict(state.get("archive", {}))
        self.soup_pair = tuple(state.get("soup", ()))


def update_archive(archive: Mapping[str, str], results: list[Evaluation],
                   evaluations: Mapping[str, Evaluation]) -> dict[str, str]:
    """Per fitness task, the best candidate so far (ties: the fitter overall, then `hubevo.selection.ranking`'s order)."""
    out = dict(archive)
    for ev in results:
        for task, score in ev.scores.items():
            holder = evaluations.get(out[task]) if task in out else None
            if holder is None or _beats(ev, holder, task):
                out[task] = ev.id
    return out


def _beats(challenger: Evaluation, holder: Evaluation, task: str) -> bool:
    a, b = challenger.scores[task], holder.scores.get(task, float("-inf"))
    if a != b:
        return a > b
    key = lambda e: ranking.rank_key(e.fitness, e.generation, e.id)  # noqa: E731
    return key(challenger) < key(holder)


def complement(first: Evaluation, mate: Evaluation) -> float:
    """How much `mate` adds to `first`: its summed lead on the tasks where it scores higher."""
    return sum(max(0.0, score - first.scores.get(task, 0.0)) for task, score in mate.scores.items())


SOUP_POOL = 4  # the best fine-tuned candidates a soup draws its two ingredients from


def soup_individual(ingredients: tuple[str, ...], *, generation: int) -> Individual:
    """The uniform linear merge of `ingredients` (fine-tuned candidates), named `g<gen>-soup-<hash>`."""
    genome = standard_recipe("linear", members=ingredients, base=None)
    child = child_individual(genome, generation=generation)
    return child.model_copy(update={"name": f"g{generation}-soup-{child.id[:8]}"})


def is_tuned(individuals: Mapping[str, Individual], cid: str) -> bool:
    """Whether `cid` is a fine-tuned candidate or a linear merge of fine-tuned candidates only (a soup)."""
    ind = individuals[cid]
    if ind.finetune is not None:
        return True
    genome = ind.genome
    return (genome is not None and getattr(genome, "method", None) == "linear" and genome.base is None
            and bool(genome.parents) and all(p in individuals and is_tuned(individuals, p) for p in genome.parents))
