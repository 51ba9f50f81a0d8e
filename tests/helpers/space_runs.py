"""Finished runs with finals for the Space's tests: `write_run`'s two-generation run (tests/helpers/sim_runs.py)
given a second fitness task, fitness errors, the members as incumbents and validation scores for its finalists,
then written again by the loop's own writers (`save_state`, `write_tables`), so its `champion.json` records a
decision with a lead and its error.

`champion="bred"`: c1 leads the best member s2 by 0.12 on validation (error 0.028) and is crowned;
`champion="seed"`: c1 leads by 0.01 only, and s2, the best incumbent, stays.
"""

from __future__ import annotations

from pathlib import Path

from hubevo.config import RunConfig
from hubevo.evaluation.records import Evaluation
from hubevo.publish.tables import write_tables
from hubevo.state.runstate import load_state, save_state
from tests.helpers.sim_runs import write_run

SECOND_TASK = "tiny2"
FITNESS_STDERR, VALIDATION_STDERR, VALIDATION_EXAMPLES = 0.02, 0.02, 200
SECOND_SCORES = {"alice/s1": 0.70, "alice/s2": 0.45, "g1": 0.50, "g2": 0.40}  # front: s1 and c1
VALIDATION = {"bred": {"alice/s2": 0.50, "g1": 0.62, "g2": 0.56}, "seed": {"alice/s2": 0.51, "g1": 0.52, "g2": 0.45}}


def write_finals_run(root: Path, *, name: str, champion: str = "bred") -> RunConfig:
    """A finished run whose finals crown a bred child (`champion="bred"`) or keep a member (`"seed"`)."""
    cfg = write_run(root, name=name)
    state = load_state(cfg.output.dir)
    by_name = {ind.name: ind for ind in state.individuals.values()}
    state.initial = [by_name["alice/s1"].id, by_name["alice/s2"].id]
    state.members = {i: {"label": state.individuals[i].name, "source": state.individuals[i].source}
                     for i in state.initial}
    for short, second in SECOND_SCORES.items():
        ev = state.evaluations[_find(state, by_name, short).id]
        ev.scores = {**ev.scores, SECOND_TASK: second}
        ev.stderr, ev.examples = FITNESS_STDERR, 64
    for short, score in VALIDATION[champion].items():
        ind = _find(state, by_name, short)
        state.validation[ind.id] = Evaluation(id=ind.id, generation=state.evaluations[ind.id].generation, status="ok",
                                              fitness=score, stderr=VALIDATION_STDERR,
                                              examples=VALIDATION_EXAMPLES)
    save_state(state, cfg.output.dir)
    write_tables(state, cfg.output.dir)
    return cfg


def _find(state, by_name: dict, short: str):
    """A member by name, or the scored child of generation 1 (`g1`) or 2 (`g2`)."""
    if "/" in short:
        return by_name[short]
    return next(i for i in state.individuals.values() if i.name.startswith(f"{short}-") and i.kind == "merge"
                and state.evaluations[i.id].status == "ok")
