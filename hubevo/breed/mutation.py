"""Stage 5, mutate: operators in a registry, chosen per child.

`perturb` is pure: Gaussian noise on the merge-parameter genes, clipped to their
ranges, and now and then a switch to another merge method. `dpo` and `sft` (in
`hubevo.finetune`) train a child from one selected parent. Elites are never mutated:
they are carried unchanged, and only new children are mutated.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hubevo.breed.crossover import repair, sample_gene, usable_methods
from hubevo.breed.genome import MergeGenome
from hubevo.config import CrossoverConfig, MutationConfig
from hubevo.config.methods import get_method
from hubevo.finetune.operators import OPERATORS as FINETUNE_OPERATORS
from hubevo.registry import Registry

GeneOperator = Callable[..., MergeGenome]


def _jitter(genes: dict[str, float], *, ranges, strength: float, rng: np.random.Generator) -> dict[str, float]:
    out = {}
    for name, value in genes.items():
        low, high = ranges.get(name, (0.0, 1.0))
        sigma = strength * (high - low)
        out[name] = float(np.clip(value + rng.normal(0.0, sigma), low, high)) if sigma > 0 else value
    return out


def _switch_method(genome: MergeGenome, *, cross: CrossoverConfig, base_id: str | None, rng) -> MergeGenome:
    options = [
        m for m in usable_methods(cross.methods, n_parents=len(genome.parents), has_base=base_id is not None)
        if m.name != genome.method
    ]
    if not options:
        return genome
    method = options[rng.integers(len(options))]
    keep = lambda old, names: {g: old.get(g, sample_gene(g, cross.ranges, rng)) for g in names}  # noqa: E731
    per_parent = genome.per_parent or tuple({} for _ in genome.parents)
    return MergeGenome(
        method=method.name,
        parents=genome.parents,
        base=base_id if method.base != "ignored" else None,
        shared=keep(genome.shared, method.shared_genes),
        per_parent=tuple(keep(g, method.input_genes) for g in per_parent),
    )


def perturb(
    genome: MergeGenome,
    *,
    mutation: MutationConfig,
    cross: CrossoverConfig,
    base_id: str | None,
    rng: np.random.Generator,
) -> MergeGenome:
    if rng.random() < mutation.method_flip_prob:
        genome = _switch_method(genome, cross=cross, base_id=base_id, rng=rng)
    get_method(genome.method)  # fail loudly on an unknown method
    return repair(genome.model_copy(
        update={
            "shared": _jitter(genome.shared, ranges=cross.ranges, strength=mutation.strength, rng=rng),
            "per_parent": tuple(
                _jitter(g, ranges=cross.ranges, strength=mutation.strength, rng=rng) for g in genome.per_parent
            ),
        }
    ))


GENE_OPERATORS: dict[str, GeneOperator] = {"perturb": perturb}
# a gene operator (pure, on merge genomes) or a fine-tuning operator (trl, on a parent model)
MUTATION_OPERATORS = Registry("mutation operator", {**GENE_OPERATORS, **FINETUNE_OPERATORS})


def is_finetune(name: str) -> bool:
    return name in FINETUNE_OPERATORS
