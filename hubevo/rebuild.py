"""Stage 6, publish: full weights on disk only where they are read; anything else rebuilt from its recipe.

Every individual is reproducible bit for bit from what the run state keeps: a merged child
from its mergekit recipe over its parents, a LoRA child from its parent plus its adapter
(`candidates/<id>`), a seed from its folder or pinned Hub snapshot. So a run keeps one full
model folder of its own, the champion's (`models/<name>`, next to its card), and every other
survivor folder holds its card and `recipe.yaml` only.

mergekit reads parents from folders, so before a candidate is merged, trained, validated or
exported, `Rebuilder.ensure` materialises each parent that has no folder into the rebuild
cache (`cache/<name>`, parents first, recursively) through the runner's resident model, the
same path a candidate takes to be scored: what is rebuilt is what was scored. Before any folder
is written, `make_room` removes rebuilt parents nobody reads now (then, if still needed, the
champion's weights, written again at the end of the generation), so a run holds at most
`MAX_FOLDERS` full folders: the exception is a merge whose parents are all rebuilt from
parents that are rebuilt too, which needs three at once. Rebuilt parents stay across
generations (survivors are often parents again) until room is needed, the least recently
read first; the cache is cleared at the end of the run. The bound holds for the local backend,
which runs one job at a time and has each job's parents ensured just before it runs
(`Run.prepared`); with Ray, jobs of a generation run side by side and may read any of its
parents, so nothing is removed while they run and the cache is cleared each generation.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubevo.fsio import atomic_dir, has_weights, strip_weights

if TYPE_CHECKING:
    from hubevo.genome import Individual
    from hubevo.resolver import Resolver
    from hubevo.runner import CandidateRunner

__all__ = ["MAX_FOLDERS", "Rebuilder", "full_folders", "has_weights"]

MAX_FOLDERS = 2  # full model folders a run holds at once (the champion's and one being written)


@dataclass
class Rebuilder:
    """Materialises any individual of a run, in the runner's resident model or to a folder."""

    resolver: Resolver
    runner: CandidateRunner
    tokenizer_source: Path
    bounded: bool = False  # enforce MAX_FOLDERS with make_room (jobs run one at a time, parents ensured just before)

    def on_disk(self, cid: str) -> bool:
        """Whether `cid`'s weights can be read from its `load_path` as they are (seeds always can)."""
        resolver = self.resolver
        if cid in resolver.member_paths or resolver.full_finetune(cid):
            return True
        return has_weights(Path(resolver.load_path(cid)))

    def ensure(self, cids: Iterable[str], *, keep: Iterable[str] = ()) -> None:
        """Make every one of `cids` readable from its `load_path`, rebuilding (parents first) what is not.
        Before a folder is written, room is made (`make_room`) sparing `cids` and `keep`."""
        wanted = list(dict.fromkeys(cids))
        spare = {*keep, *wanted}
        for cid in wanted:
            if self.on_disk(cid):
                self.touch(cid)
                continue
            self.materialize(self.resolver.state.individuals[cid], keep=spare)
            self.make_room(keep=spare)  # its own parents are read: they may go before it is written
            with atomic_dir(Path(self.resolver.load_path(cid))) as tmp:
                self.runner.materializer.save(tmp, tokenizer_source=self.tokenizer_source)

    def materialize(self, ind: Individual, *, keep: Iterable[str] = ()):
        """The resident model holding `ind`'s weights (its parents rebuilt to the cache first if needed)."""
        self.ensure(self.resolver.sources(ind), keep=keep)
        return self.runner.materialize(self.resolver.merge_config(ind), adapter=self.resolver.adapter(ind))

    def save(self, ind: Individual, out_dir: Path) -> Path:
        """Write `ind`'s full model folder (weights, config, tokenizer) to `out_dir`."""
        self.materialize(ind)
        self.make_room(keep=())
        return self.runner.materializer.save(out_dir, tokenizer_source=self.tokenizer_source)

    def make_room(self, *, keep: Iterable[str]) -> None:
        """Free a slot for one more full folder, so that a run never holds more than `MAX_FOLDERS`: rebuilt
        parents go first (least recently written first), then the champion's weights (the loop writes
        them again at the end of the generation, `keep_champion`). Ids in `keep` are never removed."""
        if not self.bounded:  # jobs running side by side (Ray) may read any parent of the generation
            return
        held = self.held()
        spared = {Path(self.resolver.load_path(c)) for c in keep if c in self.resolver.state.individuals}
        removable = [p for p in held if p not in spared]
        for folder in removable[: max(len(held) - (MAX_FOLDERS - 1), 0)]:
            if folder.parent == self.resolver.cache_dir:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                strip_weights(folder)

    def touch(self, cid: str) -> None:
        """Mark a rebuilt parent as just read, so that it goes after the ones read longer ago."""
        folder = Path(self.resolver.load_path(cid))
        if folder.parent == self.resolver.cache_dir:
            os.utime(folder)

    def held(self) -> list[Path]:
        """The full folders this run wrote, in the order they may go: rebuilt parents, least recently read
        first, then survivors (the champion)."""
        state, resolver = self.resolver.state, self.resolver
        cached = sorted((p for p in resolver.cache_dir.glob("*") if p.is_dir() and has_weights(p)),
                        key=lambda p: p.stat().st_mtime)
        return [*cached, *(Path(f) for f in state.saved.values() if has_weights(Path(f)))]

    def clear(self) -> None:
        """Remove every rebuilt parent (at the end of a run, or of a request such as an export)."""
        shutil.rmtree(self.resolver.cache_dir, ignore_errors=True)


def full_folders(root: Path) -> list[Path]:
    """Every model folder with weights under `root` (what a run costs on disk)."""
    return sorted({p.parent for p in Path(root).rglob("config.json") if has_weights(p.parent)})
