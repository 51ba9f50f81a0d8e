"""Stage 6, publish: the mergekit-multi document that rebuilds a bred model from the members alone.

A card's `recipe.yaml` is a multi-document YAML in mergekit's multi-stage format
(`mergekit-multi`): one document per merge and per LoRA fine-tune of the model's lineage,
parents first, each intermediate named after the individual it rebuilds, the model itself the
last (unnamed) document. So the whole lineage, merges and fine-tunes, is plain mergekit:

- a member is named by its Hub repo id and pinned revision (`org/name@sha`) where it came from
  the Hub, else by the name the run file gave it (point that name at the member's folder);
- a merge is its stored genome rendered with the names above (`hubevo.breed.genome.to_merge_dict`);
- a LoRA fine-tune is its parent plus its adapter, mergekit's `model+adapter` reference in a
  one-model linear merge; the adapters ship beside the card in `adapters/<name>/`;
- a full fine-tune (`lora_rank: 0`) cannot be rebuilt from a recipe: it is named as a leaf, by
  its survivor repo when survivors are pushed, else by its name (its folder is the run's
  `candidates/<id>`).

Every stage is seeded by `--random-seed` (mergekit's `run_merge` seeds each stage), as hubevo
seeds each merge, so DARE and DELLA masks come out the same and the rebuild is bit for bit on
the same device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import yaml

from hubevo.breed.genome import DEFAULT_SEED, Individual, to_merge_dict

if TYPE_CHECKING:
    from hubevo.publish.resolver import Resolver

ADAPTERS = "adapters"
BUILD = "./build"
REBUILD_COMMAND = (f"mergekit-multi recipe.yaml --intermediate-dir {BUILD} --out-path ./out "
                   f"--random-seed {DEFAULT_SEED} --lora-merge-cache {BUILD}/lora --no-write-model-card")


@dataclass(frozen=True)
class LineageRecipe:
    """The documents that rebuild one model, and what they read besides themselves."""

    documents: list[dict]
    local_members: list[str] = field(default_factory=list)
    hub_members: list[str] = field(default_factory=list)
    full_finetunes: list[str] = field(default_factory=list)
    adapters: dict[str, str] = field(default_factory=dict)  # adapters/<name> -> the individual's id

    @property
    def stages(self) -> int:
        return len(self.documents)

    def notes(self) -> list[str]:
        """One line per kind of input the documents name, saying where to point it."""
        lines = []
        if self.local_members:
            names = ", ".join(f"`{n}`" for n in self.local_members)
            lines.append(f"{names}: local members, named as the run file named them; point each name at the "
                         f"member's folder (replace it in recipe.yaml, or `ln -s /path/to/folder NAME` here).")
        if self.hub_members:
            lines.append(", ".join(f"`{n}`" for n in self.hub_members) + ": Hub members, pinned to the revision "
                         "the run used.")
        if self.adapters:
            lines.append(f"`+./{ADAPTERS}/...`: each LoRA fine-tune is its parent plus its adapter, which ships "
                         f"beside this card in `{ADAPTERS}/`.")
        if self.full_finetunes:
            lines.append(", ".join(f"`{n}`" for n in self.full_finetunes) + ": full fine-tunes (no adapter); "
                         "point each at its folder or Hub repo.")
        return lines

    def to_yaml(self) -> str:
        header = [f"# Rebuild with mergekit alone: {REBUILD_COMMAND}"] + [f"# {line}" for line in self.notes()]
        return "\n".join(header) + "\n" + yaml.safe_dump_all(self.documents, sort_keys=False)


def lineage_recipe(resolver: Resolver, cid: str) -> LineageRecipe:
    """The mergekit-multi documents that rebuild individual `cid` (a merge or a fine-tune) from the members."""
    state = resolver.state
    order: list[str] = []
    _visit(resolver, cid, order=order, seen=set())
    refs = {i: _ref(resolver, state.individuals[i]) for i in order}
    documents, adapters = [], {}
    for i in order:
        ind = state.individuals[i]
        if _is_leaf(resolver, ind):
            continue
        doc = _document(resolver, ind, refs=refs)
        if ind.finetune is not None:
            adapters[ind.name] = ind.id
        documents.append(doc if i == cid else {"name": ind.name, **doc})
    leaves = [state.individuals[i] for i in order if _is_leaf(resolver, state.individuals[i])]
    seeds = [s for s in leaves if s.kind == "seed"]
    return LineageRecipe(
        documents=documents,
        local_members=[refs[s.id] for s in seeds if not _hub_member(resolver, s.id)],
        hub_members=[refs[s.id] for s in seeds if _hub_member(resolver, s.id)],
        full_finetunes=[refs[s.id] for s in leaves if s.kind != "seed"],
        adapters=adapters,
    )


def _visit(resolver: Resolver, cid: str, *, order: list[str], seen: set[str]) -> None:
    """Post-order over the lineage: every input before the stage that reads it."""
    if cid in seen:
        return
    seen.add(cid)
    ind = resolver.state.individuals[cid]
    if not _is_leaf(resolver, ind):
        for parent in _inputs(ind):
            _visit(resolver, parent, order=order, seen=seen)
    order.append(cid)


def _inputs(ind: Individual) -> list[str]:
    if ind.finetune is not None:
        return [ind.finetune.parent]
    return [p for p in dict.fromkeys((*ind.genome.parents, ind.genome.base)) if p]


def _is_leaf(resolver: Resolver, ind: Individual) -> bool:
    return ind.genome is None and (ind.finetune is None or resolver.full_finetune(ind.id))


def _hub_member(resolver: Resolver, cid: str) -> bool:
    return bool(resolver.state.members.get(cid, {}).get("revision"))


def _ref(resolver: Resolver, ind: Individual) -> str:
    """How the documents name `ind`: a member by Hub id@revision or its name, a stage by its name."""
    if ind.kind == "seed":
        member = resolver.state.members.get(ind.id, {})
        return f"{member['source'].split('@')[0]}@{member['revision']}" if member.get("revision") else ind.name
    if resolver.full_finetune(ind.id) and resolver.pushes_survivors and ind.id in resolver.state.saved:
        return resolver.survivor_repo(ind.id)
    return ind.name


def _document(resolver: Resolver, ind: Individual, *, refs: Mapping[str, str]) -> dict:
    if ind.finetune is not None:  # a LoRA child: its parent plus its adapter, mergekit's `model+adapter`
        model = f"{refs[ind.finetune.parent]}+./{ADAPTERS}/{ind.name}"
        return {"merge_method": "linear", "models": [{"model": model, "parameters": {"weight": 1.0}}],
                "dtype": resolver.dtype}
    return to_merge_dict(ind.genome, refs=refs, dtype=resolver.dtype)
