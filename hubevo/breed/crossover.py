"""Stage 4, crossover: a child's merge recipe from its parents (pure gene operators).

The merge method and its parameters are genes (EvoMerge section 3.4): a child
inherits them from a parent that was itself a merge, or draws them from the
configured ranges. Turning the recipe into weights happens in `materialize.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hubevo.breed.genome import Individual, MergeGenome
from hubevo.config import CrossoverConfig
from hubevo.config.methods import MethodInfo, get_method
from hubevo.errors import ConfigError


def usable_methods(names: Sequence[str], *, n_parents: int, has_base: bool) -> list[MethodInfo]:
    infos = [get_method(name) for name in names]
    return [m for m in infos if m.accepts(n_parents) and (has_base or not m.needs_base)]


def sample_gene(name: str, ranges: dict[str, tuple[float, float]], rng: np.random.Generator) -> float:
    low, high = ranges.get(name, (0.0, 1.0))
    return float(rng.uniform(low, high))


def inherited_value(parent: Individual, gene: str) -> float | None:
    """A parent's own value for a per-parent gene: the mean over the parents it was merged from."""
    if not isinstance(parent.genome, MergeGenome):
        return None
    values = [genes[gene] for genes in parent.genome.per_parent if gene in genes]
    return float(np.mean(values)) if values else None


def build_genes(
    method: MethodInfo,
    parents: Sequence[Individual],
    *,
    donor: MergeGenome | None,
    ranges: dict[str, tuple[float, float]],
    rng: np.random.Generator,
) -> tuple[dict[str, float], tuple[dict[str, float], ...]]:
    shared = {g: (donor.shared[g] if donor and g in donor.shared else sample_gene(g, ranges, rng)) for g in method.shared_genes}
    per_parent = []
    for parent in parents:
        genes = {}
        for gene in method.input_genes:
            value = inherited_value(parent, gene) if donor else None
            genes[gene] = value if value is not None else sample_gene(gene, ranges, rng)
        per_parent.append(genes)
    return shared, tuple(per_parent)


def repair(genome: MergeGenome) -> MergeGenome:
    """Keep gene combinations mergekit accepts: DELLA needs density +/- epsilon inside (0, 1)."""
    def fix(genes: dict[str, float]) -> dict[str, float]:
        if "epsilon" not in genes or "density" not in genes:
            return genes
        eps = min(genes["epsilon"], 0.49)
        return {**genes, "epsilon": eps, "density": float(np.clip(genes["density"], eps + 1e-3, 1 - eps - 1e-3))}

    return genome.model_copy(update={"per_parent": tuple(fix(g) for g in genome.per_parent)})


def crossover(
    parents: Sequence[Individual], *, base_id: str | None, cfg: CrossoverConfig, rng: np.random.Generator
) -> MergeGenome:
    """A child recipe merging `parents`; raises ConfigError if no configured method fits them."""
    candidates = usable_methods(cfg.methods, n_parents=len(parents), has_base=base_id is not None)
    if not candidates:
        raise ConfigError(
            f"no merge method in crossover.methods {cfg.methods} accepts {len(parents)} parents"
            + ("" if base_id else " without population.base_model")
        )
    by_name = {m.name: m for m in candidates}
    donors = [p.genome for p in parents if isinstance(p.genome, MergeGenome) and p.genome.method in by_name]
    if donors and rng.random() < cfg.inherit_prob:
        donor = donors[rng.integers(len(donors))]
        method = by_name[donor.method]
    else:
        donor, method = None, candidates[rng.integers(len(candidates))]
    shared, per_parent = build_genes(method, parents, donor=donor, ranges=cfg.ranges, rng=rng)
    return repair(MergeGenome(
        method=method.name,
        parents=tuple(p.id for p in parents),
        base=base_id if method.base != "ignored" else None,
        shared=shared,
        per_parent=per_parent,
    ))
