"""Genomes and individuals: pure data, and the one pure function genome -> mergekit config.

An individual is a seed (an initial member) or a child made by a merge recipe
(`MergeGenome`). Its id is a hash of its recipe, so the same recipe is the same
individual everywhere: in the fitness cache, the run state and the lineage graph.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Literal

from mergekit.config import MergeConfiguration
from pydantic import BaseModel, ConfigDict, Field

from hubevo.methods import get_method


class MergeGenome(BaseModel):
    """A merge recipe: method, parents (individual ids), optional base and the gene values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str
    parents: tuple[str, ...]
    base: str | None = None
    shared: dict[str, float] = Field(default_factory=dict)
    per_parent: tuple[dict[str, float], ...] = ()

    def canonical(self) -> dict:
        rounded = lambda genes: {k: round(float(v), 6) for k, v in sorted(genes.items())}  # noqa: E731
        return {
            "method": self.method,
            "parents": list(self.parents),
            "base": self.base,
            "shared": rounded(self.shared),
            "per_parent": [rounded(g) for g in self.per_parent],
        }


class Individual(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kind: Literal["seed", "merge", "finetune"]
    generation: int = 0
    name: str
    genome: MergeGenome | None = None
    source: str | None = Field(None, description="Seeds only: local path or Hub repo id (with @revision).")
    revision: str | None = Field(None, description="Seeds from the Hub: the resolved commit sha.")

    @property
    def parents(self) -> tuple[str, ...]:
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


def child_individual(genome: MergeGenome, *, generation: int) -> Individual:
    digest = recipe_hash(genome.canonical())
    return Individual(id=digest, kind="merge", generation=generation, name=f"g{generation}-{digest[:8]}", genome=genome)


def to_merge_config(genome: MergeGenome, *, refs: Mapping[str, str], dtype: str = "float32") -> MergeConfiguration:
    """The mergekit configuration that builds `genome`; `refs` maps individual ids to model paths or repo ids."""
    return MergeConfiguration.model_validate(to_merge_dict(genome, refs=refs, dtype=dtype))


def to_merge_dict(genome: MergeGenome, *, refs: Mapping[str, str], dtype: str = "float32") -> dict:
    info = get_method(genome.method)
    models = [
        {"model": refs[pid], "parameters": dict(genes)} if genes else {"model": refs[pid]}
        for pid, genes in zip(genome.parents, genome.per_parent or [{}] * len(genome.parents), strict=True)
    ]
    config: dict = {"merge_method": genome.method, "models": models, "dtype": dtype}
    if genome.method == "slerp":
        config["base_model"] = refs[genome.parents[0]]
    elif genome.base is not None and info.base != "ignored":
        config["base_model"] = refs[genome.base]
    if genome.shared:
        config["parameters"] = dict(genome.shared)
    return config
