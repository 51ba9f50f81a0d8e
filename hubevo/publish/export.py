"""Stage 6, publish: any individual's full model folder with its card, on request or for a Hub push.

A run keeps full weights for its champion only (`hubevo.publish.rebuild`); `export` writes any
other individual's folder again from its recipe (`hubevo export RUN ID DIR`), with the
lineage card its survivor folder has. `full_folder` lends a Hub push the folder of one
survivor at a time and removes it after, so a push adds one full folder at most. An exported
folder carries `fsio.EXPORT_MARKER`: a later export may replace it, but no other folder that holds files.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

from hubevo.breed.genome import Individual
from hubevo.config import OutputConfig, RunConfig, load_config
from hubevo.errors import CandidateError, ConfigError
from hubevo.execute.runner import CandidateRunner, RunnerSpec
from hubevo.fsio import atomic_dir, atomic_write_text, check_export_folder, has_weights, mark_export, remove_tree
from hubevo.publish.cards import Usage, card_comparison, card_verdict, lineage_card, niche_texts
from hubevo.publish.lineage_recipe import ADAPTERS, LineageRecipe, lineage_recipe
from hubevo.publish.rebuild import Rebuilder
from hubevo.publish.resolver import Resolver
from hubevo.seed.members import local_member
from hubevo.state.runstate import RunState, load_state

RECIPE_FILE = "recipe.yaml"
ADAPTER_CONFIG = "adapter_config.json"
PUSH = "push"  # a survivor's folder while a push uploads it


class RunFolder(Protocol):
    """What a card or an export reads of a run: its config, state, resolver and rebuilder. A live run
    (`hubevo.run.run.Run`) is one; `open_run` reads one from a run folder."""

    cfg: RunConfig
    state: RunState
    resolver: Resolver

    @property
    def run_dir(self) -> Path: ...

    @property
    def rebuild(self) -> Rebuilder: ...


@dataclass
class OpenedRun:
    """A finished or live run read from its folder: enough to write its cards and exports, nothing to evolve."""

    cfg: RunConfig
    state: RunState
    resolver: Resolver

    @property
    def run_dir(self) -> Path:
        return self.cfg.output.dir

    @cached_property
    def rebuild(self) -> Rebuilder:
        runner = CandidateRunner(RunnerSpec.of(self.cfg, template=self.resolver.template))
        return Rebuilder.over(runner, resolver=self.resolver)


def write_card(run: RunFolder, ind: Individual, folder: Path, *, home: Path | None = None) -> None:
    """The lineage card (README.md), the mergekit-multi document that rebuilds the model from the members
    (recipe.yaml) and the LoRA adapters it reads (adapters/) into `folder`, which will live at `home`
    (default: `folder` itself; the card's usage snippet names it)."""
    state, resolver = run.state, run.resolver
    evaluation = state.evaluations.get(ind.id)
    if ind.kind == "seed" or evaluation is None or evaluation.status != "ok":
        return
    folder = Path(folder)
    rebuild = lineage_recipe(resolver, ind.id)
    card = lineage_card(
        ind, run_name=run.cfg.name, parent_refs=resolver.card_names(), rebuild=rebuild,
        evaluation=evaluation, heldout=state.heldout.get(ind.id, {}), hub_only=resolver.pushes_survivors,
        training=state.training.get(ind.id), license=run.cfg.publish.license,
        compare=card_comparison(state, ind.id, names=resolver.card_names()),
        usage=usage(run, ind, folder=folder, home=Path(home or folder)), verdict=card_verdict(state, ind.id),
        niche=niche_texts(state).get(ind.id),
    )
    copy_adapters(resolver, rebuild, folder=folder)
    atomic_write_text(folder / RECIPE_FILE, rebuild.to_yaml())
    atomic_write_text(folder / "README.md", str(card))


def usage(run: RunFolder, ind: Individual, *, folder: Path, home: Path) -> Usage:
    """Where the card's snippet loads the model: its survivor repo when pushed, else its absolute folder (with the
    `hubevo export` that writes the weights there, when the folder holds none); a prompt of the fitness task."""
    task, prompt = run.rebuild.runner.evaluator.tasks.example_prompt  # the run's own task catalog, loaded once
    if run.resolver.pushes_survivors:
        return Usage(load_from=run.resolver.survivor_repo(ind.id), prompt=prompt, task=task)
    if has_weights(folder):
        return Usage(load_from=str(home.resolve()), prompt=prompt, task=task)
    run_dir = run.run_dir.resolve()
    out = run_dir.with_name(f"{run_dir.name}-{ind.name}")
    note = (f"This folder holds the card and recipe only. Write the weights first with "
            f"`hubevo export {run_dir} {ind.name} {out}` (or rebuild them with mergekit, below).")
    return Usage(load_from=str(out), prompt=prompt, task=task, fetch_note=note)


def copy_adapters(resolver: Resolver, rebuild: LineageRecipe, *, folder: Path) -> None:
    """The LoRA adapters the recipe reads, beside the card (`adapters/<name>`); each adapter's own
    `base_model_name_or_path` names its parent as the card's `base_model` does, not a folder of the run's machine."""
    for name, cid in rebuild.adapters.items():
        target = folder / ADAPTERS / name
        if (target / ADAPTER_CONFIG).is_file():
            continue  # an adapter never changes once trained
        source = resolver.train_dir(cid)
        with atomic_dir(target) as tmp:
            for file in source.iterdir():
                if file.name.startswith("adapter_"):
                    shutil.copyfile(file, tmp / file.name)
            config = json.loads((tmp / ADAPTER_CONFIG).read_text())
            (parent,) = resolver.state.individuals[cid].parents
            config["base_model_name_or_path"] = resolver.card_name(parent)
            atomic_write_text(tmp / ADAPTER_CONFIG, json.dumps(config, indent=2))


def export(run: RunFolder, cid: str, out_dir: Path) -> Path:
    """Write individual `cid`'s full model folder, with its card, to `out_dir`: a new or empty folder, or an
    earlier export (which is replaced whole); any other folder is refused (`check_export_folder`)."""
    out_dir = Path(out_dir)
    check_export_folder(out_dir)
    ind = run.state.individuals[cid]
    with atomic_dir(out_dir) as tmp:
        run.rebuild.save(ind, tmp)
        write_card(run, ind, tmp, home=out_dir)
        mark_export(tmp)
    return out_dir


@contextlib.contextmanager
def full_folder(run: RunFolder, cid: str) -> Iterator[Path]:
    """A full folder of survivor `cid`: its own when it holds weights (the champion's), else one exported
    for the duration of the block."""
    own = Path(run.state.saved.get(cid, ""))
    if cid in run.state.saved and has_weights(own):
        yield own
        return
    scratch = run.run_dir / PUSH / run.state.individuals[cid].name
    remove_tree(scratch)
    try:
        yield export(run, cid, scratch)
    finally:
        remove_tree(scratch)


def find_individual(state: RunState, key: str, *, where: Path) -> str:
    """The id of the individual named `key` (its id or its name) in the run at `where`; ConfigError if none."""
    individuals = state.individuals
    if key in individuals:
        return key
    named = [i for i, ind in individuals.items() if ind.name == key]
    if len(named) == 1:
        return named[0]
    some = ", ".join(sorted(ind.name for ind in individuals.values())[:8])
    raise ConfigError(f"run {str(where)!r} has no individual {key!r}; some there: {some}")


def open_run(run_dir: Path, *, cache_dir: Path) -> OpenedRun:
    """A finished or live run, read from its folder to materialise individuals; parents are rebuilt into
    `cache_dir`, apart from the run's own cache."""
    run_dir = Path(run_dir).resolve()
    state = load_state(run_dir)
    if state is None or not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a run folder (no state.json and config.yaml)")
    cfg = load_config(run_dir / "config.yaml")
    cfg = cfg.model_copy(update={"output": OutputConfig(dir=run_dir)})
    paths = {i: str(local_member(m).path) for i, m in state.members.items()}
    resolver = Resolver(state=state, run_dir=run_dir, run_name=cfg.name, publish=cfg.publish, member_paths=paths,
                        dtype=cfg.dtype, cache_dir=cache_dir)
    return OpenedRun(cfg, state, resolver)


def export_from_folder(run_dir: Path, key: str, out_dir: Path) -> tuple[str, Path]:
    """`hubevo export`: open the run in `run_dir`, export the individual `key` names; returns (name, folder)."""
    out_dir = Path(out_dir).resolve()
    check_export_folder(out_dir)  # before any parent is rebuilt
    run = open_run(run_dir, cache_dir=out_dir.with_name(f".{out_dir.name}.parents"))
    cid = find_individual(run.state, key, where=run.run_dir)
    try:
        folder = export(run, cid, out_dir)
    except CandidateError as err:
        raise CandidateError(f"{run.state.individuals[cid].name} could not be rebuilt: {err}") from None
    finally:
        run.rebuild.clear()
    return run.state.individuals[cid].name, folder
