"""Random search over the `cmaes` parameter space: the baseline every search must beat.

Each generation draws `budget.population_size` points uniformly from [0, 1]^n (the same
genes, layer groups and ranges as `cmaes`) from a generator seeded by (run seed,
generation), so a resume needs no state of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from hubevo.breed.genome import Individual, child_individual
from hubevo.evaluation.records import Evaluation
from hubevo.search.base import Strategy
from hubevo.search.cmaes import leaders, parameter_space
from hubevo.state.runstate import rng_for


class RandomSearch(Strategy):
    name = "random"

    def __init__(self, cfg, view, **kwargs):
        super().__init__(cfg, view, **kwargs)
        self.space = parameter_space(cfg, view, self.options)

    def ask(self) -> list[Individual]:
        generation = self.view.generation
        rng = rng_for(self.cfg.seed, generation, "random")
        points = rng.random((self.cfg.budget.population_size, self.space.dim))
        children = [child_individual(self.space.decode(x), generation=generation) for x in points]
        seeds = self.seeds() if generation == 0 and self.options.evaluate_seeds else []
        return list({ind.id: ind for ind in [*seeds, *children]}.values())

    def tell(self, results: Mapping[str, Evaluation]) -> None:
        del results  # nothing to learn: the next draws depend on the generation alone

    def survivors(self, *, final: bool) -> list[str]:
        return leaders(self.view)
