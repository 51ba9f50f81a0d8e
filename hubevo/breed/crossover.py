"""Stage 4, crossover: a child's merge recipe from its parents (pure gene operators).

The merge method and its parameters are genes (EvoMerge section 3.4): a child
inherits them from a parent that was itself a merge, or draws them from the
configured ranges. Turning the recipe into weights happens in `materialize.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hubevo.breed.genome import GeneBlock, Individual, MergeGenome
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


def split_point_genome(parents: tuple[str, str], *, w: float, split: int | None, n_layers: int,
                       modules: Sequence[str] = ()) -> MergeGenome:
    """M2N2's split-point crossover as a mergekit SLERP: t = w below `split`, 1 - w from it on (None: t = w
    everywhere, a plain SLERP). `split` counts a layer's parameter groups: `modules` in order, then the rest of
    the layer, so split point k = layer k // (len(modules) + 1), group k % (len(modules) + 1). Embeddings go with
    the first layer, the final norm and head with the last (as mergekit plans them)."""
    if split is None:
        return MergeGenome(method="slerp", parents=parents, shared={"t": w}, per_parent=({}, {}))
    per_layer = len(modules) + 1
    if not 0 < split < n_layers * per_layer:
        raise ValueError(f"split point {split} is outside the {n_layers * per_layer} parameter groups' inside")
    layer, group = divmod(split, per_layer)
    below, above = {"t": w}, {"t": 1.0 - w}
    blocks = [GeneBlock(start=0, end=layer, shared=below)] if layer > 0 else []
    if group:  # the split layer: its first `group` module sets below, the rest of it above
        blocks += [GeneBlock(start=layer, end=layer + 1, module=m, shared=below) for m in modules[:group]]
        blocks.append(GeneBlock(start=layer, end=layer + 1, shared=above))
        layer += 1
    if layer < n_layers:
        blocks.append(GeneBlock(start=layer, end=n_layers, shared=above))
    return MergeGenome(method="slerp", parents=parents, blocks=tuple(blocks))
