"""Search strategies: each speaks ask/tell over a read-only view of the population.

`ga` is EvoMerge's population GA (roulette or tournament selection, elitism,
crossover by merging, mutation); `nsga2` breeds the same way but keeps a Pareto front
over the per-task scores; `cmaes` (parameter space), `dfs` (data-flow space) and
`psdfs` (one, then the other) are the CMA-ES searches of Akiba et al. (2024); `random`
samples the `cmaes` space uniformly; `m2n2` keeps natural niches (Abrantes et al. 2025): an archive under
resource competition, attraction mating and split-point SLERP. Strategies are a registry of lazy entries (imported on
first use, so validating a config imports none of them); an unknown name lists what exists.
Options are validated in `hubevo.config.search`. Every strategy sees data only: a read-only
`PopulationView` (`view.py`), never the run, a file or a model.
"""

from __future__ import annotations

from hubevo.registry import Lazy, Registry

STRATEGIES = Registry("search strategy", {
    "ga": Lazy("hubevo.search.ga:GeneticAlgorithm"),
    "cmaes": Lazy("hubevo.search.cmaes:CMAES"),
    "dfs": Lazy("hubevo.search.dfs:DFS"),
    "psdfs": Lazy("hubevo.search.dfs:PSDFS"),
    "nsga2": Lazy("hubevo.search.nsga2:NSGA2"),
    "random": Lazy("hubevo.search.random_search:RandomSearch"),
    "m2n2": Lazy("hubevo.search.m2n2:M2N2"),
}, plural="search strategies")
