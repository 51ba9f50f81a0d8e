"""One answer to "what does individual X mean here?", for each purpose.

- `load_path`: the local folder its weights are read from (a seed's folder or Hub snapshot,
  the champion's survivor folder, a full fine-tune's folder, else its place in the rebuild
  cache, where `hubevo.publish.rebuild` materialises it from its recipe before it is read);
- `adapter`: a LoRA child's adapter folder, merged over its parent's weights;
- `card_name`: how a card's `base_model` names it (a Hub repo id where there is one);
- `recipe_ref`: how a stored mergekit recipe names it: a Hub id (`repo@sha` for Hub seeds,
  the survivor repo when survivors are pushed) or a path relative to the run folder,
  never an absolute local path, so a recipe rebuilds on any machine;
- `table_name`: the name in tables, logs and the Space;
- `hub_repo`: the Hub repo where it can be found, if any (its source repo, or its survivor repo).

A recipe is rendered once, when its individual joins the run, and kept in the run state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from hubevo.breed.genome import Individual, identity_dict, to_merge_dict
from hubevo.config import REPO_ID, PublishConfig, RunConfig
from hubevo.fsio import has_weights
from hubevo.state.runstate import RunState

CANDIDATES = "candidates"
MODELS = "models"
CACHE = "cache"  # rebuilt parents, removed at the end of each generation


class Resolver:
    def __init__(self, *, state: RunState, run_dir: Path, run_name: str, publish: PublishConfig,
                 member_paths: Mapping[str, str], dtype: str = "float32", cache_dir: Path | None = None):
        self.state, self.run_dir, self.run_name, self.publish = state, Path(run_dir), run_name, publish
        self.member_paths = dict(member_paths)
        self.dtype = dtype
        self.cache_dir = Path(cache_dir) if cache_dir else self.run_dir / CACHE

    @classmethod
    def of(cls, state: RunState, cfg: RunConfig) -> "Resolver":
        """A resolver over a saved state (seeds at their recorded folders), e.g. for publishing or the Space."""
        paths = {i: m["path"] for i, m in state.members.items() if m.get("path")}
        return cls(state=state, run_dir=cfg.output.dir, run_name=cfg.name, publish=cfg.publish,
                   member_paths=paths, dtype=cfg.dtype)

    def add_member(self, cid: str, path: str) -> None:
        self.member_paths[cid] = str(path)

    # purposes ---------------------------------------------------------------------------------------
    @property
    def template(self) -> str:
        """The folder of the first member: its architecture and tokenizer are every candidate's."""
        return self.load_path(self.state.initial[0])

    def load_path(self, cid: str) -> str:
        if cid in self.member_paths:
            return self.member_paths[cid]
        if cid in self.state.saved and has_weights(Path(self.state.saved[cid])):
            return self.state.saved[cid]
        if self.full_finetune(cid):
            return str(self.train_dir(cid))
        return str(self.cache_dir / self.table_name(cid))

    def adapter(self, ind: Individual) -> str | None:
        """The LoRA adapter folder of a fine-tuned child (None for everyone else)."""
        if ind.finetune is None or self.full_finetune(ind.id) or self.has_folder(ind.id):
            return None
        return str(self.train_dir(ind.id))

    def full_finetune(self, cid: str) -> bool:
        """A child fine-tuned without LoRA: its trained folder is its only recipe."""
        ft = self.state.individuals[cid].finetune
        return ft is not None and ft.lora_rank == 0

    def has_folder(self, cid: str) -> bool:
        """A merged or LoRA child whose full folder is on disk (the champion's, or rebuilt): read as it is."""
        ind = self.state.individuals[cid]
        bred = ind.genome is not None or (ind.finetune is not None and not self.full_finetune(cid))
        return bred and has_weights(Path(self.load_path(cid)))

    def sources(self, ind: Individual) -> list[str]:
        """The ids whose weights `ind` is built from (parents, merge base; a fine-tune's parent); none when its
        own folder is on disk."""
        if self.has_folder(ind.id):
            return []
        if ind.finetune is not None:
            return [] if self.full_finetune(ind.id) else [ind.finetune.parent]
        if ind.genome is None:
            return []
        return [p for p in dict.fromkeys((*ind.genome.parents, ind.genome.base)) if p]

    def table_name(self, cid: str) -> str:
        return self.state.individuals[cid].name

    def card_name(self, cid: str) -> str:
        ind = self.state.individuals[cid]
        if ind.kind == "seed":
            member = self.state.members.get(cid, {})
            return member["source"].split("@")[0] if member.get("revision") else ind.name
        return self.survivor_repo(cid) if self.pushes_survivors else ind.name

    def recipe_ref(self, cid: str) -> str:
        ind = self.state.individuals[cid]
        if ind.kind == "seed":
            member = self.state.members.get(cid, {})
            if member.get("revision"):
                return f"{member['source'].split('@')[0]}@{member['revision']}"
            return os.path.relpath(self.load_path(cid), self.run_dir)
        return self.survivor_repo(cid) if self.pushes_survivors else f"{MODELS}/{ind.name}"

    def hub_repo(self, cid: str) -> str | None:
        ind = self.state.individuals[cid]
        if ind.kind == "seed":
            source = ind.source or ""
            return source.split("@")[0] if REPO_ID.match(source) and not Path(source).exists() else None
        return self.survivor_repo(cid) if self.pushes_survivors and cid in self.state.saved else None

    # derived ----------------------------------------------------------------------------------------
    @property
    def pushes_survivors(self) -> bool:
        return self.publish.push == "survivors"

    def survivor_repo(self, cid: str) -> str:
        return self.publish.survivor_repo(self.run_name, cid)

    def survivor_dir(self, cid: str) -> Path:
        return self.run_dir / MODELS / self.table_name(cid)

    def train_dir(self, cid: str) -> Path:
        return self.run_dir / CANDIDATES / cid

    def card_names(self) -> dict[str, str]:
        return {i: self.card_name(i) for i in self.state.individuals}

    def merge_config(self, ind: Individual) -> dict:
        """The mergekit config that materialises `ind` from local folders (seeds: identity; LoRA children:
        the identity of their parent, with `adapter` merged over it; anyone whose folder is on disk: its identity)."""
        if self.has_folder(ind.id):
            return identity_dict(self.load_path(ind.id), dtype=self.dtype)
        if ind.finetune is not None and not self.full_finetune(ind.id):
            return identity_dict(self.load_path(ind.finetune.parent), dtype=self.dtype)
        if ind.genome is None:
            return identity_dict(self.load_path(ind.id), dtype=self.dtype)
        refs = {p: self.load_path(p) for p in dict.fromkeys((*ind.genome.parents, ind.genome.base)) if p}
        return to_merge_dict(ind.genome, refs=refs, dtype=self.dtype)

    def recipe(self, ind: Individual) -> dict | None:
        """The portable mergekit recipe of a merged child (None for seeds and fine-tuned children)."""
        if ind.genome is None:
            return None
        refs = {p: self.recipe_ref(p) for p in dict.fromkeys((*ind.genome.parents, ind.genome.base)) if p}
        return to_merge_dict(ind.genome, refs=refs, dtype=self.dtype)
