"""Stage 6, publish: full weights on disk only where they are read; anything else rebuilt from its recipe.

Every individual is reproducible bit for bit from what the run state keeps: a merged child
from its mergekit recipe over its parents, a LoRA child from its parent plus its adapter
(`candidates/<id>`), a seed from its folder or pinned Hub snapshot. So a run keeps one full
model folder of its own, the champion's (`models/<name>`, next to its card), and every other
survivor folder holds its card and `recipe.yaml` only.

mergekit reads parents from folders, so before a candidate is merged, trained, validated or
exported, `Rebuilder.ensure` materialises each parent that has no folder into the rebuild
cache (`cache/<name>`, parents first, recursively) through the runner's resident model, the
same path a candidate takes to be scored: what is rebuilt is what was scored. Nothing is
removed while a generation runs, so an ancestor is rebuilt at most once per request however
the lineage branches. At the start of each generation (`keep_only`) the cache is trimmed to
what that generation reads: its candidates' parents and the candidates carried into it. Those
are the previous generation's candidates, whose own parents are still in the cache then, so
each is rebuilt by one merge and a lineage never has to be replayed from the members. The
cache holds the parents of one generation (none for CMA-ES and DFS, which merge members);
it is cleared at the end of the run.

Only what hubevo made is removed: the cache lies in the run folder (which holds hubevo's
marker), or, outside a run folder (an export's), is created with the marker of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubevo.fsio import atomic_dir, claim_dir, has_weights, remove_tree

if TYPE_CHECKING:
    from hubevo.breed.genome import Individual
    from hubevo.execute.runner import CandidateRunner
    from hubevo.publish.resolver import Resolver

__all__ = ["Rebuilder", "full_folders", "has_weights"]


@dataclass
class Rebuilder:
    """Materialises any individual of a run, in the runner's resident model or to a folder."""

    resolver: Resolver
    runner: CandidateRunner
    tokenizer_source: Path

    @classmethod
    def over(cls, runner: CandidateRunner, *, resolver: Resolver) -> Rebuilder:
        """A rebuilder through `runner`'s resident model, copying the tokenizer of its template."""
        return cls(resolver=resolver, runner=runner, tokenizer_source=Path(runner.spec.template))

    def on_disk(self, cid: str) -> bool:
        """Whether `cid`'s weights can be read from its `load_path` as they are (seeds always can)."""
        resolver = self.resolver
        if cid in resolver.member_paths or resolver.full_finetune(cid):
            return True
        return has_weights(Path(resolver.load_path(cid)))

    def ensure(self, cids: Iterable[str]) -> None:
        """Make every one of `cids` readable from its `load_path`, rebuilding (parents first) what is not."""
        for cid in dict.fromkeys(cids):
            if self.on_disk(cid):
                continue
            self.materialize(self.resolver.state.individuals[cid])
            claim_dir(self.resolver.cache_dir)
            with atomic_dir(Path(self.resolver.load_path(cid))) as tmp:
                self.runner.materializer.save(tmp, tokenizer_source=self.tokenizer_source)

    def materialize(self, ind: Individual):
        """The resident model holding `ind`'s weights (its parents rebuilt to the cache first if needed)."""
        self.ensure(self.resolver.sources(ind))
        return self.runner.materialize(self.resolver.merge_config(ind), adapter=self.resolver.adapter(ind))

    def save(self, ind: Individual, out_dir: Path) -> Path:
        """Write `ind`'s full model folder (weights, config, tokenizer) to `out_dir`."""
        self.materialize(ind)
        return self.runner.materializer.save(out_dir, tokenizer_source=self.tokenizer_source)

    def keep_only(self, cids: Iterable[str]) -> None:
        """Rebuild `cids` into the cache (one merge each while their parents are still there), then remove
        every other rebuilt folder."""
        wanted = list(dict.fromkeys(cids))
        self.ensure(wanted)
        kept = {Path(self.resolver.load_path(c)) for c in wanted}
        for folder in self.resolver.cache_dir.glob("*"):
            if folder.is_dir() and folder not in kept:
                remove_tree(folder)

    def clear(self) -> None:
        """Remove every rebuilt parent (at the end of a run, or of a request such as an export)."""
        remove_tree(self.resolver.cache_dir)


def full_folders(root: Path) -> list[Path]:
    """Every model folder with weights under `root` (what a run costs on disk)."""
    return sorted({p.parent for p in Path(root).rglob("config.json") if has_weights(p.parent)})
