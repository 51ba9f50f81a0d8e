"""NSGA-II selection over the per-task fitness vector (Deb et al. 2002, through pymoo).

Breeding is the GA's (crossover by merging, then mutation); what changes is who lives on.
Instead of ranking by the weighted mean, the generation's fully evaluated candidates
(the kept parents are part of it) are sorted into non-dominated fronts, and `parents`
of them are kept front by front, the last front thinned by crowding distance. A child
that is excellent at one task and poor at the others is on the first front, so the
average does not crush it. Couples are drawn by binary tournament on (front, crowding).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hubevo.errors import ConfigError
from hubevo.evaluation.records import Evaluation
from hubevo.search.ga import GeneticAlgorithm
from hubevo.state.runstate import rng_for


def rank_and_crowding(objectives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Front index (0 = non-dominated) and crowding distance of each row; objectives are maximised."""
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    minimise = -np.asarray(objectives, dtype=float)
    rank, crowding = np.zeros(len(minimise), dtype=int), np.zeros(len(minimise))
    for index, members in enumerate(NonDominatedSorting().do(minimise)):
        rank[members] = index
        crowding[members] = calc_crowding_distance(minimise[members])
    return rank, crowding


def nsga2_order(scores: Mapping[str, Mapping[str, float]], tasks: list[str]) -> tuple[list[str], dict[str, int]]:
    """Ids best first by (front, -crowding, id), and each id's front."""
    ids = sorted(scores)
    if not ids:
        return [], {}
    rank, crowding = rank_and_crowding(np.array([[scores[i][t] for t in tasks] for i in ids]))
    order = sorted(range(len(ids)), key=lambda k: (rank[k], -crowding[k], ids[k]))
    return [ids[k] for k in order], {ids[k]: int(rank[k]) for k in range(len(ids))}


class NSGA2(GeneticAlgorithm):
    name = "nsga2"

    def __init__(self, cfg, view, **kwargs):
        super().__init__(cfg, view, **kwargs)
        self.kept = self.options.parents or max(2, cfg.budget.population_size // 2)
        if self.kept >= cfg.budget.population_size:
            raise ConfigError(f"search.options.parents ({self.kept}) must be smaller than budget.population_size "
                              f"({cfg.budget.population_size}) to leave room for children")
        self.front: list[str] = []

    def tell(self, results: Mapping[str, Evaluation]) -> None:
        cfg = self.cfg
        tasks = [t.name for t in cfg.fitness.tasks]
        scores = {i: e.scores for i, e in results.items() if e.status == "ok"}
        order, fronts = nsga2_order(scores, tasks)
        kept = order[: self.kept]
        self.front = [i for i in order if fronts[i] == 0]
        self.best = list(dict.fromkeys([*self.front, *kept]))
        self.elites = kept
        rng = rng_for(cfg.seed, self.view.generation, "select")
        position = {i: k for k, i in enumerate(order)}
        n_children = cfg.budget.population_size - len(kept)
        self.couples = [] if len(kept) < 2 else [self.couple(kept, position, rng) for _ in range(n_children)]

    @staticmethod
    def couple(kept: list[str], position: dict[str, int], rng: np.random.Generator) -> tuple[str, ...]:
        """Two distinct parents, each the better (front, crowding) of two drawn at random."""
        def tournament(pool: list[str]) -> str:
            a, b = rng.choice(len(pool), size=2, replace=len(pool) < 2)
            return min(pool[a], pool[b], key=position.__getitem__)

        first = tournament(kept)
        return first, tournament([i for i in kept if i != first] or kept)

    def survivors(self, *, final: bool) -> list[str]:
        """The front always; the kept parents too unless no generation follows."""
        return self.front if final else super().survivors(final=final)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "front": self.front}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.front = list(state.get("front", []))
