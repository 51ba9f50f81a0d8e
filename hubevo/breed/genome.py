"""Genomes and individuals: pure data, and the one pure function genome -> mergekit config.

An individual is a seed (an initial member) or a child made by a merge recipe
(`MergeGenome`). Its id is a hash of its recipe, so the same recipe is the same
individual everywhere: in the fitness cache, the run state and the lineage graph.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hubevo.config.methods import get_method
from hubevo.finetune.recipe import FinetuneRecipe

DEFAULT_SEED = 0  # every merge is seeded with it (DARE/DELLA masks): `mergekit-yaml --random-seed 0` rebuilds a recipe


def _rounded(genes: Mapping[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in sorted(genes.items())}


class GeneBlock(BaseModel):
    """Gene values for layers [start, end) of every parent, limited to tensors whose name contains `module`.

    `module=None` is the catch-all for the block's layers (and, for the first and last block,
    the embeddings and the output head, which mergekit plans with the first and last slice).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: int = Field(ge=0)
    end: int
    module: str | None = Field(None, description="Substring of tensor names, e.g. 'self_attn' or 'mlp'.")
    shared: dict[str, float] = Field(default_factory=dict)
    per_parent: tuple[dict[str, float], ...] = ()

    def canonical(self) -> dict:
        return {"layers": [self.start, self.end], "module": self.module, "shared": _rounded(self.shared),
                "per_parent": [_rounded(g) for g in self.per_parent]}


class MergeGenome(BaseModel):
    """A merge recipe: method, parents (individual ids), optional base and the gene values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str
    parents: tuple[str, ...]
    base: str | None = None
    shared: dict[str, float] = Field(default_factory=dict)
    per_parent: tuple[dict[str, float], ...] = ()
    blocks: tuple[GeneBlock, ...] = Field(
        (), description="Per-layer-group (and per-module) gene values; empty = `shared`/`per_parent` for the whole model."
    )

    @model_validator(mode="after")
    def _blocks_have_a_default(self):
        ranges = {(b.start, b.end) for b in self.blocks}
        missing = sorted(r for r in ranges if not any((b.start, b.end) == r and b.module is None for b in self.blocks))
        if missing:
            raise ValueError(f"gene blocks for layers {missing} have module filters but no catch-all (module=None) block")
        return self

    def canonical(self) -> dict:
        rounded = lambda genes: {k: round(float(v), 6) for k, v in sorted(genes.items())}  # noqa: E731
        return {
            "method": self.method,
            "parents": list(self.parents),
            "base": self.base,
            "shared": rounded(self.shared),
            "per_parent": [rounded(g) for g in self.per_parent],
            **({"blocks": [block.canonical() for block in self.blocks]} if self.blocks else {}),
        }

    def genes(self) -> dict:
        """The gene values, as the results table shows them."""
        blocks = {"blocks": [block.model_dump() for block in self.blocks]} if self.blocks else {}
        return {"shared": self.shared, "per_parent": list(self.per_parent), **blocks}


class LayerStep(BaseModel):
    """One step of a data-flow path: layer `layer` of individual `parent`, its input scaled by `scale`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parent: str
    layer: int = Field(ge=0)
    scale: float = Field(1.0, gt=0)


class DataFlowGenome(BaseModel):
    """A data-flow recipe (Akiba et al. 2024, DFS): the decoder layers a token passes through, in order.

    Realised as a mergekit passthrough merge, one slice per step. Scaling a layer's input by W
    equals, up to RMSNorm's epsilon, scaling that layer's residual branches (`residual_outputs`)
    by 1/C, where C is the product of the input scales so far; the final norm absorbs C.
    Embeddings come from the first step's model, the final norm and head from the last's.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["passthrough"] = "passthrough"
    path: tuple[LayerStep, ...] = Field(min_length=1)
    residual_outputs: tuple[str, ...] = Field(
        ("o_proj", "down_proj"), description="Tensor-name substrings of the projections that write the residual stream."
    )

    @property
    def parents(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(step.parent for step in self.path))

    @property
    def base(self) -> None:
        return None

    def canonical(self) -> dict:
        return {
            "method": self.method,
            "path": [[s.parent, s.layer, round(float(s.scale), 6)] for s in self.path],
            "residual_outputs": list(self.residual_outputs),
        }

    def genes(self) -> dict:
        return {"path": [[s.parent, s.layer, round(s.scale, 4)] for s in self.path]}


class Individual(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kind: Literal["seed", "merge", "finetune"]
    generation: int = 0
    name: str
    genome: MergeGenome | DataFlowGenome | None = None
    source: str | None = Field(None, description="Seeds only: local path or Hub repo id (with @revision).")
    revision: str | None = Field(None, description="Seeds from the Hub: the resolved commit sha.")
    finetune: FinetuneRecipe | None = Field(None, description="Fine-tuned children: the sampled training recipe.")

    @property
    def parents(self) -> tuple[str, ...]:
        if self.finetune is not None:
            return (self.finetune.parent,)
        if self.genome is None:
            return ()
        base = (self.genome.base,) if self.genome.base and self.genome.base not in self.genome.parents else ()
        return self.genome.parents + base


def recipe_hash(payload: dict) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def seed_individual(*, name: str, source: str, revision: str | None = None) -> Individual:
    digest = recipe_hash({"source": source})[:8]
    return Individual(id=f"seed-{digest}", kind="seed", name=name, source=source, revision=revision)


def finetune_individual(recipe: FinetuneRecipe, *, generation: int) -> Individual:
    """A child trained from one parent; its id hashes the whole recipe (parent, data, genes, seed)."""
    digest = recipe_hash(recipe.model_dump(mode="json"))
    return Individual(id=digest, kind="finetune", generation=generation, name=f"g{generation}-{recipe.operator}-{digest[:8]}",
                      finetune=recipe)


def child_individual(genome: MergeGenome | DataFlowGenome, *, generation: int) -> Individual:
    digest = recipe_hash(genome.canonical())
    return Individual(id=digest, kind="merge", generation=generation, name=f"g{generation}-{digest[:8]}", genome=genome)


def to_merge_config(genome: MergeGenome | DataFlowGenome, *, refs: Mapping[str, str], dtype: str = "float32"):
    """The mergekit configuration that builds `genome`; `refs` maps individual ids to model paths or repo ids."""
    from mergekit.config import MergeConfiguration

    return MergeConfiguration.model_validate(to_merge_dict(genome, refs=refs, dtype=dtype))


def to_merge_dict(genome: MergeGenome | DataFlowGenome, *, refs: Mapping[str, str], dtype: str = "float32") -> dict:
    """The mergekit configuration of `genome` as plain data (the one genome -> recipe renderer)."""
    if isinstance(genome, DataFlowGenome):
        return data_flow_dict(genome, refs=refs, dtype=dtype)
    info = get_method(genome.method)
    models = [
        {"model": refs[pid], "parameters": dict(genes)} if genes else {"model": refs[pid]}
        for pid, genes in zip(genome.parents, genome.per_parent or [{}] * len(genome.parents), strict=True)
    ]
    config: dict = {"merge_method": genome.method, "models": models, "dtype": dtype}
    if genome.blocks:
        del config["models"]
        config["slices"] = block_slices(genome, refs=refs)
    if genome.method == "slerp":
        config["base_model"] = refs[genome.parents[0]]
    elif genome.base is not None and info.base != "ignored":
        config["base_model"] = refs[genome.base]
    if genome.shared:
        config["parameters"] = dict(genome.shared)
    return config


def _conditional(blocks: Sequence[GeneBlock], values: Callable[[GeneBlock], dict[str, float]]) -> dict:
    """mergekit parameters for one layer range: a scalar per gene, or filtered values (catch-all last)."""
    ordered = sorted(blocks, key=lambda b: b.module is None)
    genes = dict.fromkeys(name for b in ordered for name in values(b))
    if len(ordered) == 1:
        return dict(values(ordered[0]))
    return {g: [{"filter": b.module, "value": values(b)[g]} for b in ordered if g in values(b)] for g in genes}


def block_slices(genome: MergeGenome, *, refs: Mapping[str, str]) -> list[dict]:
    """One mergekit slice per layer range of `genome.blocks`, with per-parent (and per-module) values."""
    ranges = list(dict.fromkeys((b.start, b.end) for b in genome.blocks))
    slices = []
    for start, end in ranges:
        blocks = [b for b in genome.blocks if (b.start, b.end) == (start, end)]
        sources = []
        for index, pid in enumerate(genome.parents):
            params = _conditional(blocks, lambda b, i=index: b.per_parent[i] if b.per_parent else {})
            sources.append({"model": refs[pid], "layer_range": [start, end], **({"parameters": params} if params else {})})
        if genome.base is not None and genome.base not in genome.parents and get_method(genome.method).base != "ignored":
            sources.append({"model": refs[genome.base], "layer_range": [start, end]})
        shared = _conditional(blocks, lambda b: b.shared)
        slices.append({"sources": sources, **({"parameters": shared} if shared else {})})
    return slices


def identity_dict(ref: str, *, dtype: str = "float32") -> dict:
    """A one-model linear merge: how a seed (or a fine-tuned child's folder) is materialised."""
    return {"merge_method": "linear", "models": [{"model": ref, "parameters": {"weight": 1.0}}], "dtype": dtype}


def data_flow_dict(genome: DataFlowGenome, *, refs: Mapping[str, str], dtype: str = "float32") -> dict:
    """A passthrough merge stacking the path's layers; input scales become residual-branch scales."""
    slices, cumulative = [], 1.0
    for step in genome.path:
        cumulative *= step.scale
        source = {"model": refs[step.parent], "layer_range": [step.layer, step.layer + 1]}
        if abs(cumulative - 1.0) > 1e-9:
            value = 1.0 / cumulative
            source["parameters"] = {"scale": [{"filter": f, "value": value} for f in genome.residual_outputs]
                                    + [{"filter": None, "value": 1.0}]}
        slices.append({"sources": [source]})
    return {"merge_method": "passthrough", "slices": slices, "dtype": dtype}
