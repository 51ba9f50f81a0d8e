"""Stage 1's other half: the standard recipes a practitioner tries first, scored beside the members.

Generation 0 scores, besides the population members, the field's standard merges of them:
a uniform linear merge, task arithmetic with lambda 1, TIES and DARE-TIES at density 0.5 and
weight 1, model_stock, and for two members slerp and nuslerp halfway. When fine-tuning is
configured, generation 1 adds the merge + fine-tune baseline: the best of them fine-tuned in
one go on the same data (`ft-std-<recipe>-<steps>`, a few step counts). They are candidates
like any other (they can win and be parents); the run state remembers which they are, so the
summary, the cards and the Space show the champion against the best of them. Pure: genomes
in, genomes out.
"""

from __future__ import annotations

from collections.abc import Sequence

from hubevo.breed.genome import Individual, MergeGenome, child_individual, finetune_individual
from hubevo.config import BASELINE_RECIPES
from hubevo.config.finetune import FinetuneSpace
from hubevo.config.methods import get_method
from hubevo.finetune.recipe import baseline_step_counts, one_go_recipe

STANDARD_GENES = {  # per-parent genes, shared genes
    "linear": ({"weight": 1.0}, {}),
    "task_arithmetic": ({"weight": 1.0}, {"lambda": 1.0}),
    "ties": ({"weight": 1.0, "density": 0.5}, {"lambda": 1.0}),
    "dare_ties": ({"weight": 1.0, "density": 0.5}, {"lambda": 1.0}),
    "model_stock": ({}, {}),
    "slerp": ({}, {"t": 0.5}),
    "nuslerp": ({"weight": 0.5}, {}),
}


def standard_recipe(name: str, *, members: Sequence[str], base: str | None) -> MergeGenome | None:
    """The standard `name` merge of `members`, or None when it does not apply (too many members, no base)."""
    info = get_method(name)
    if not info.accepts(len(members)) or (info.needs_base and base is None):
        return None
    per_parent, shared = STANDARD_GENES[name]
    return MergeGenome(method=name, parents=tuple(members), base=base if info.base != "ignored" else None,
                       shared=dict(shared), per_parent=tuple(dict(per_parent) for _ in members))


def baseline_individuals(names: Sequence[str] | None, *, members: Sequence[str], base: str | None) -> list[Individual]:
    """Generation-0 individuals of the standard recipes `names` (None: every one that applies), named `std-<recipe>`."""
    if len(members) < 2:
        return []
    out = []
    for name in BASELINE_RECIPES if names is None else names:
        genome = standard_recipe(name, members=members, base=base)
        if genome is not None:
            out.append(child_individual(genome, generation=0).model_copy(update={"name": f"std-{name}"}))
    return out


def finetuned_baselines(space: FinetuneSpace, *, parent: str, recipe: str, seed: int) -> list[Individual]:
    """The best standard recipe (`parent`, named `std-<recipe>`) fine-tuned in one go, once per step count."""
    out = []
    for steps in baseline_step_counts(space):
        ind = finetune_individual(one_go_recipe(space, parent=parent, steps=steps, seed=seed), generation=1)
        out.append(ind.model_copy(update={"name": f"ft-std-{recipe}-{steps}"}))
    return out
