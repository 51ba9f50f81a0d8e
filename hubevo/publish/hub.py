"""Stage 6 at the Hub edge: push survivors, the succession of champions and the results dataset.

Everything pushed is derived from the run state and the run folder, never from a record
of what was pushed before, so a call is idempotent and a push that failed midway is
completed by the next call:

- each survivor `{namespace}/{run}-{id}` gets its folder (lineage card as README) and its
  scores as `.eval_results/*.yaml` in one commit, then a tag `gen-N` for every generation it
  survived; a repo that already has all its tags is left alone, except that a champion
  since replaced gets `new_version` (its successor's repo) in its card, once;
- with `licenses=True`, every bred model's card carries the license derived from its
  parents' (`hubevo.hub.licenses`; `license_override` replaces it) and names gated parents;
- the champion repo `{namespace}/{run}` gets one commit and one tag `gen-N` for every
  generation in which the champion changed, in order; tags already there are done;
- the results dataset `{namespace}/{run}-results` gets the candidate table, the lineage
  graph, the run config and a card, in one commit that the client skips when nothing changed.

The local run folder is only read: a failed push never loses a survivor. A survivor folder may
hold only its card (`hubevo.publish.rebuild`): `folder_of` lends the full folder of one model at a
time, only when a commit needs its weights.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from hubevo.config import RunConfig
from hubevo.errors import HubError, MemberNotFoundError
from hubevo.hub.cards import champion_card, results_card
from hubevo.hub.client import ensure_api, hub_call
from hubevo.hub.download import MODEL_FILES, snapshot
from hubevo.hub.eval_results import eval_result_files
from hubevo.hub.licenses import Derived, gated_note, hub_license, lineage_licenses, local_license
from hubevo.hub.repos import card_data, commit_files, ensure_repo, existing_tags, model_files, tag
from hubevo.publish.resolver import Resolver
from hubevo.publish.tables import results_frame
from hubevo.state.runstate import RunState

log = logging.getLogger("hubevo")

# champion.json: the decision, for viewers; outcomes.parquet: every per-example outcome
RESULT_FILES = ("lineage.json", "config.yaml", "champion.json", "outcomes.parquet")
FolderOf = Callable[[str], AbstractContextManager[Path]]  # individual id -> its full model folder, while open


@dataclass
class Published:
    """What a call left on the Hub: repo ids (the survivors' keyed by individual id)."""

    survivors: dict[str, str] = field(default_factory=dict)
    champion: str | None = None
    results: str | None = None


def publish_generation(
    *, run_dir: Path, state: RunState, cfg: RunConfig, api=None, licenses: bool = False,
    license_override: str | None = None, task_datasets: dict[str, str] | None = None,
    folder_of: FolderOf | None = None,
) -> Published:
    """Bring the Hub up to date with `state` as `cfg.publish` asks; raises HubError naming the repo on failure.

    `licenses` derives each bred model's license from its parents' (LicenseError when they
    conflict, unless `license_override`); `task_datasets` names the Hub dataset of a task for
    its `.eval_results` entries. `folder_of` lends a bred model's full folder (default: its survivor folder).
    """
    pub = cfg.publish
    folder_of = folder_of or (lambda cid: contextlib.nullcontext(Path(state.saved[cid])))
    if pub.push == "none":
        return Published()
    api = ensure_api(api)
    done = Published()
    extras = Extras(state=state, cfg=cfg, api=api, task_datasets=task_datasets or {},
                    licenses=derive_licenses(state, api=api, override=license_override) if licenses else {})
    if pub.push == "survivors":
        newer = superseded(state, cfg)
        for cid, generations in survivor_generations(state).items():
            repo_id = pub.survivor_repo(cfg.name, cid)
            folder = Path(state.saved[cid])
            push_survivor(api, repo_id=repo_id, folder=folder, generations=generations,
                          private=pub.private, message=survivor_message(state, cid),
                          extra=extras.survivor(cid, folder, new_version=newer.get(cid)), new_version=newer.get(cid),
                          weights=lambda cid=cid: folder_of(cid))
            done.survivors[cid] = repo_id
    done.champion = push_champions(api, state=state, cfg=cfg, extras=extras, folder_of=folder_of)
    done.results = push_results(api, run_dir=Path(run_dir), state=state, cfg=cfg)
    return done


# what to push, derived from the state (pure) ----------------------------------------------------
def survivor_generations(state: RunState) -> dict[str, list[int]]:
    """Bred survivors written to disk -> the generations they survived (seeds live where they came from)."""
    out: dict[str, list[int]] = {}
    for generation in sorted(state.survivors):
        for cid in state.survivors[generation]:
            if state.individuals[cid].kind != "seed" and cid in state.saved:
                out.setdefault(cid, []).append(generation)
    return out


def champion_history(state: RunState) -> list[tuple[int, str]]:
    """(generation, champion id) for every finished generation in which the champion changed.

    The champion after generation g is `hubevo.selection.ranking`'s champion among candidates evaluated
    up to g, as everywhere else; a generation is finished once its survivors are written.
    """
    history: list[tuple[int, str]] = []
    for generation in sorted(state.survivors):
        best = state.champion(upto=generation)
        if best is None:
            continue
        if not history or history[-1][1] != best:
            history.append((generation, best))
    return history


def hub_repo_of(state: RunState, cfg: RunConfig, cid: str) -> str | None:
    """The Hub repo where individual `cid` can be found, if any (the resolver's answer)."""
    return Resolver.of(state, cfg).hub_repo(cid)


def superseded(state: RunState, cfg: RunConfig) -> dict[str, str]:
    """Bred champions since replaced -> the repo of the champion that replaced each (its `new_version`)."""
    history = champion_history(state)
    out: dict[str, str] = {}
    for (_, old), (_, new) in zip(history, history[1:]):
        if state.individuals[old].kind != "seed":
            out[old] = hub_repo_of(state, cfg, new) or cfg.publish.champion_repo(cfg.name)
    return out


def derive_licenses(state: RunState, *, api=None, override: str | None = None) -> dict[str, Derived]:
    """Each bred individual's license from its seeds' cards (Hub metadata or local README.md)."""
    seeds, parents_of, names = {}, {}, {}
    for cid, ind in state.individuals.items():
        names[cid] = ind.name
        if ind.kind == "seed":
            folder = state.members.get(cid, {}).get("path")
            local = Path(ind.source or "").exists() or not ind.source
            seeds[cid] = local_license(folder or ind.source) if local else hub_license(ind.source, api=api)
        else:
            parents_of[cid] = list(ind.parents)
    return lineage_licenses(parents_of, seeds, names=names, override=override)


@dataclass
class Extras:
    """What a pushed model carries besides its folder: scores as `.eval_results`, license and links in the card."""

    state: RunState
    cfg: RunConfig
    api: object
    task_datasets: dict[str, str]
    licenses: dict[str, Derived]

    def eval_files(self, cid: str) -> dict[str, bytes]:
        ev, results = self.state.evaluations.get(cid), self.cfg.publish.results_repo(self.cfg.name)
        validation = self.state.validation.get(cid)
        return eval_result_files(
            fitness=ev.scores if ev else {}, validation=validation.scores if validation else None,
            heldout=self.state.heldout.get(cid), datasets=self.task_datasets, fallback_dataset=results,
            source_url=f"{self.api.endpoint}/datasets/{results}", source_name=f"hubevo run {self.cfg.name}",
        )

    def readme(self, text: str, cid: str, *, new_version: str | None = None) -> str:
        """`text` (a card) with the derived license, the gated parents and `new_version`; unchanged if none apply."""
        from huggingface_hub import ModelCard

        derived = self.licenses.get(cid)
        if derived is None and new_version is None:
            return text
        card = ModelCard(text)
        if derived is not None:
            card.data.license = derived.license
            card.text = card.text.rstrip("\n") + "\n" + gated_note(derived)
        if new_version is not None:
            card.data.new_version = new_version
        return str(card)

    def survivor(self, cid: str, folder: Path, *, new_version: str | None = None) -> dict[str, bytes]:
        files = self.eval_files(cid)
        readme = folder / "README.md"
        if readme.is_file():
            text = readme.read_text()
            changed = self.readme(text, cid, new_version=new_version)
            if changed != text:
                files["README.md"] = changed.encode()
        return files


def survivor_message(state: RunState, cid: str) -> str:
    ind, ev = state.individuals[cid], state.evaluations.get(cid)
    fitness = f", fitness {ev.fitness:.4f}" if ev and ev.fitness is not None else ""
    how = f"{ind.finetune.operator} fine-tune" if ind.finetune else f"{getattr(ind.genome, 'method', 'seed')} merge"
    return f"{ind.name}: generation {ind.generation} {how}{fitness}"


# pushing ----------------------------------------------------------------------------------------------
def push_survivor(api, *, repo_id: str, folder: Path, generations: list[int], private: bool, message: str,
                  extra: dict[str, bytes] | None = None, new_version: str | None = None,
                  weights: Callable[[], AbstractContextManager[Path]] | None = None) -> None:
    """Commit the survivor's full folder plus `extra` files, then tag it; only `new_version` is updated once tagged.

    `folder` holds its card; `weights()` lends the full folder (default: `folder`), only when a commit is due.
    """
    tags = [f"gen-{g}" for g in generations]
    extra = extra or {}
    with hub_call(repo_id, action="push to", api=api, missing=HubError):
        have = existing_tags(api, repo_id)
        todo = [t for t in tags if have is None or t not in have]
        if not todo:
            if new_version is not None:
                link_new_version(api, repo_id, readme=extra.get("README.md", folder / "README.md"),
                                 new_version=new_version)
            return
    with (weights or (lambda: contextlib.nullcontext(folder)))() as full:
        files: dict[str, Path | bytes] = {**model_files(full, repo_id=repo_id), **extra}
        _commit_survivor(api, repo_id=repo_id, files=files, tags=todo, private=private, message=message)
    log.info("pushed survivor %s (%s)", repo_id, ", ".join(todo))


def _commit_survivor(api, *, repo_id: str, files: dict[str, Path | bytes], tags: list[str], private: bool,
                     message: str) -> None:
    with hub_call(repo_id, action="push to", api=api, missing=HubError):
        ensure_repo(api, repo_id, private=private)
        commit = commit_files(api, repo_id, files, message=message)
        for name in tags:
            tag(api, repo_id, name=name, revision=commit.oid, message=message)


def link_new_version(api, repo_id: str, *, readme: Path | bytes, new_version: str) -> None:
    """Point a replaced champion's card at its successor, unless the card on the Hub already does."""
    card = card_data(api, repo_id)
    if card is not None and card.get("new_version") == new_version:
        return
    commit_files(api, repo_id, {"README.md": readme}, message=f"superseded by {new_version}")
    log.info("marked %s as superseded by %s", repo_id, new_version)


def push_champions(api, *, state: RunState, cfg: RunConfig, extras: Extras | None = None,
                   folder_of: FolderOf | None = None) -> str | None:
    """Commit and tag every change of champion not yet on the champion repo; returns the repo id."""
    history = champion_history(state)
    if not history:
        return None
    repo_id = cfg.publish.champion_repo(cfg.name)
    with hub_call(repo_id, action="push to", api=api, missing=HubError):
        have = existing_tags(api, repo_id)
        todo = [(g, cid) for g, cid in history if have is None or f"gen-{g}" not in have]
        if todo:
            ensure_repo(api, repo_id, private=cfg.publish.private)
        for generation, cid in todo:
            ev, name = state.evaluations[cid], state.individuals[cid].name
            message = f"gen-{generation}: {name} is the champion (fitness {ev.fitness:.4f})"
            bred = state.individuals[cid].kind != "seed"
            with (folder_of or _saved_folder(state))(cid) if bred else contextlib.nullcontext() as folder:
                files = champion_files(api, state=state, cfg=cfg, cid=cid, generation=generation, extras=extras,
                                       folder=folder)
                commit = commit_files(api, repo_id, files, message=message, delete_others=True)
            tag(api, repo_id, name=f"gen-{generation}", revision=commit.oid, message=message)
            log.info("pushed champion %s at gen-%d to %s", name, generation, repo_id)
    return repo_id


def _saved_folder(state: RunState) -> FolderOf:
    return lambda cid: contextlib.nullcontext(Path(state.saved[cid]))


def champion_files(api, *, state: RunState, cfg: RunConfig, cid: str, generation: int,
                   extras: Extras | None = None, folder: Path | None = None) -> dict[str, Path | bytes]:
    """The champion's model files, card and `.eval_results`; a seed champion is read from where it came from,
    a bred one from `folder` (default: its survivor folder)."""
    files = _champion_files(api, state=state, cfg=cfg, cid=cid, generation=generation, folder=folder)
    if extras is not None:
        files["README.md"] = extras.readme(files["README.md"].decode(), cid).encode()
        files.update(extras.eval_files(cid))
    return files


def _champion_files(api, *, state: RunState, cfg: RunConfig, cid: str, generation: int,
                    folder: Path | None = None) -> dict[str, Path | bytes]:
    ind, ev = state.individuals[cid], state.evaluations[cid]
    card = dict(run_name=cfg.name, generation=generation, name=ind.name, fitness=ev.fitness)
    repo_id = cfg.publish.champion_repo(cfg.name)
    if ind.kind != "seed":
        files = model_files(folder or Path(state.saved[cid]), repo_id=repo_id)
        readme = files.pop("README.md", None)
        text = readme.read_text() if readme else None
        files["README.md"] = champion_card(text, also_at=hub_repo_of(state, cfg, cid), **card).encode()
        return files
    seed_repo = hub_repo_of(state, cfg, cid)
    try:
        folder = snapshot(ind.source, api=api)[0] if seed_repo else Path(ind.source)
    except MemberNotFoundError as err:
        raise HubError(f"cannot push the champion {ind.name!r} to {repo_id!r}: {err}") from None
    files = model_files(folder, repo_id=repo_id, patterns=MODEL_FILES)
    files["README.md"] = champion_card(None, seed_repo=seed_repo, **card).encode()
    return files


def push_results(api, *, run_dir: Path, state: RunState, cfg: RunConfig) -> str:
    """The results dataset: candidate table, lineage graph, run config and card, in one commit."""
    repo_id = cfg.publish.results_repo(cfg.name)
    history = champion_history(state)
    champion = state.individuals[history[-1][1]].name if history else None
    files: dict[str, Path | bytes] = {name: run_dir / name for name in RESULT_FILES if (run_dir / name).is_file()}
    files["results.parquet"] = results_table(state, cfg)
    files["README.md"] = results_card(
        repo_id=repo_id, run_name=cfg.name, generations=sorted(state.survivors), evaluated=len(state.evaluations),
        champion=champion, champion_repo=cfg.publish.champion_repo(cfg.name) if history else None,
    ).encode()
    with hub_call(repo_id, action="push to", api=api, missing=HubError):
        ensure_repo(api, repo_id, private=cfg.publish.private, repo_type="dataset")
        generation = max(state.survivors, default=state.generation)
        commit_files(api, repo_id, files, repo_type="dataset",
                     message=f"results after generation {generation}: {len(state.evaluations)} candidates")
    return repo_id


def results_table(state: RunState, cfg: RunConfig) -> bytes:
    """The candidate table as parquet bytes, with each model's Hub repo and without local paths."""
    frame = results_frame(state)
    if not frame.empty:
        frame = frame.drop(columns=["path"])
        frame["repo"] = [hub_repo_of(state, cfg, cid) for cid in frame["id"]]
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
