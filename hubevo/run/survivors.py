"""Stage 6 in the loop: survivors to disk (they may be parents next), held-out scores, then the Hub.

A survivor folder holds its card and recipe; only the champion's holds full weights, and any other
is rebuilt on demand. Held-out tasks score the champion and the last finalists, never a selection.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hubevo.breed.genome import Individual
from hubevo.errors import CandidateError, HubError
from hubevo.fsio import atomic_dir, has_weights
from hubevo.publish.export import full_folder, write_card
from hubevo.publish.tables import write_tables
from hubevo.run.generation import finalist_ids
from hubevo.run.run import Run
from hubevo.state.events import append_event

log = logging.getLogger("hubevo")


# 6 publish: survivors to disk (they may be parents next), then to the Hub --------------------------
def write_survivors(run: Run, survivors: list[str]) -> None:
    """A card folder per survivor, full weights for the champion only; a run that pushes each generation scores
    its champion on held-out first (the Hub card carries the scores; otherwise only the last finalists are)."""
    state = run.state
    champion = state.champion()
    scored = score_heldout_of(run, [champion] if champion and run.cfg.publish.push != "none" else [])
    for cid in survivors:
        ind = state.individuals[cid]
        if ind.kind != "seed" and cid not in state.saved:
            write_survivor(run, ind, weights=cid == champion)
            append_event(run.run_dir, "survivor", id=cid, generation=state.generation, path=state.saved[cid])
    recard(run, scored)
    keep_champion(run)
    write_tables(state, run.run_dir)


def score_finalists(run: Run) -> None:
    """At the end of a run: held-out scores of the champion and the last finalists (those scored on validation),
    on the cards (their own, and the comparison tables of the others)."""
    state = run.state
    validated = [i for i in finalist_ids(state, k=run.cfg.fitness.finalists)
                 if getattr(state.validation.get(i), "status", None) == "ok"]
    champion = state.champion()  # a finalist of an earlier generation may still lead
    score_heldout_of(run, [*([champion] if champion else []), *validated])
    recard(run, list(state.saved))


def score_heldout_of(run: Run, ids: list[str]) -> list[str]:
    """Held-out scores of `ids`, once each; returns the ids scored now. Anyone else is scored on request
    (`score_heldout`): the end of the run scores its finalists, a run that pushes each generation's champion."""
    state = run.state
    todo = [cid for cid in dict.fromkeys(ids) if cid not in state.heldout]
    for cid in todo:
        state.heldout[cid] = heldout_scores(run, state.individuals[cid])
        run.save()
    return todo


def recard(run: Run, ids: list[str]) -> None:
    """Survivors of earlier generations scored on held-out since: their cards gain the scores."""
    for cid in ids:
        if cid in run.state.saved:
            write_card(run, run.state.individuals[cid], Path(run.state.saved[cid]))


def heldout_scores(run: Run, ind: Individual) -> dict[str, float]:
    try:
        return run.runner.heldout(**run.build(ind))
    except CandidateError as err:
        log.warning("held-out evaluation of %s failed: %s", ind.name, err)
        return {}


def write_survivor(run: Run, ind: Individual, *, weights: bool) -> None:
    """The survivor's folder: its card and recipe, and with `weights` its full model (the champion's)."""
    final = run.resolver.survivor_dir(ind.id)
    with atomic_dir(final) as tmp:
        if weights:
            run.rebuild.save(ind, tmp)
        write_card(run, ind, tmp, home=final)
    run.state.saved[ind.id] = str(final)
    run.save()


def keep_champion(run: Run) -> None:
    """Full weights in the champion's survivor folder, and in no other (the others are rebuilt on demand)."""
    state, champion = run.state, run.state.champion()
    if champion in state.saved and not has_weights(Path(state.saved[champion])):
        write_survivor(run, state.individuals[champion], weights=True)
    for cid, folder in list(state.saved.items()):
        if cid != champion and has_weights(Path(folder)):
            write_survivor(run, state.individuals[cid], weights=False)


def push(run: Run) -> None:
    """Publish what is on disk to the Hub; a failed push is logged and completed at a later call."""
    if run.cfg.publish.push == "none":
        return
    from hubevo.publish.hub import publish_generation

    try:
        publish_generation(run_dir=run.run_dir, state=run.state, cfg=run.cfg, api=run.api,
                           licenses=run.cfg.publish.derive_licenses, license_override=run.cfg.publish.license,
                           folder_of=lambda cid: full_folder(run, cid))
    except HubError as err:
        log.warning("publishing to the Hub failed (local survivors are kept): %s", err)
