"""The evolution loop: seed -> evaluate -> select -> crossover/mutate -> publish, repeated.

The orchestrator (`evolve`, at the bottom) reads like the papers' figure; its stages are
`hubevo.run.generation` (ask, evaluate, tell, finals, select) and `hubevo.run.survivors` (to disk,
held-out, to the Hub). The search strategy decides who is evaluated (`ask`) and learns from the
results (`tell`); the execution backend runs candidate jobs; racing, when configured, is a policy
over the backend; survivors are written with lineage cards before they can be parents, and the
champion (`hubevo.selection.ranking`) is always one of them. Survivors are recipes: only the
champion keeps full weights in its folder; the parents a generation reads are rebuilt into a cache
at its start and anything else on demand (`hubevo.publish.rebuild`); held-out tasks score the last
finalists and the champion at the end. The run state is saved atomically after every evaluated
candidate and every written survivor, so a killed run resumes without losing a survivor or
repeating an evaluation. `Run` (`hubevo.run.run`) is the run package's own: strategies see a
`PopulationView`, backends see `CandidateJob`s.
"""

from __future__ import annotations

import logging

from hubevo.config import RunConfig
from hubevo.fsio import clean_temp_dirs
from hubevo.publish.tables import write_tables
from hubevo.run.generation import evaluate_generation, finals, generation_reads, next_generation, select, tell
from hubevo.run.lock import run_lock
from hubevo.run.preflight import check_run
from hubevo.run.run import Run, start, stop_reason
from hubevo.run.summary import end_generation
from hubevo.run.survivors import keep_champion, push, recard, score_finalists, score_heldout_of, write_survivors
from hubevo.run.tracking import open_tracking
from hubevo.state.events import append_event
from hubevo.state.runstate import RunState

log = logging.getLogger("hubevo")


def step_past_finished(run: Run) -> str | None:
    """A resumed run whose last generation finished (survivors written, pushed, its summary logged) moves on
    to the next one, so nothing is logged or pushed twice; the reason to stop instead if the budget is spent."""
    state = run.state
    if not (state.finished and state.generation in state.survivors):
        return None
    reason = stop_reason(run) or run.strategy.stop()
    if reason is None:  # it was the last generation of a smaller budget: its planned parents survive too
        write_survivors(run, select(run, final=False))
        advance(run)
    return reason


def advance(run: Run) -> None:
    run.state.generation += 1
    run.state.population = []
    run.save()


def finish(run: Run, reason: str | None) -> None:
    state = run.state
    state.finished, state.stop_reason = True, reason or "the strategy proposed no new candidate"
    score_finalists(run)
    keep_champion(run)
    run.rebuild.clear()
    run.save()
    write_tables(state, run.run_dir)
    push(run)
    run.rebuild.clear()
    champion = state.champion()
    if champion is not None:
        log.info("champion: %s (fitness %.3f)", state.individuals[champion].name, state.evaluations[champion].fitness)


def score_heldout(cfg: RunConfig, ids: list[str], *, api=None) -> RunState:
    """Held-out scores of any individuals of a run, on request (members, non-survivors); kept in its state."""
    with run_lock(cfg.output.dir):
        run = start(cfg, resume=True, progress=False, api=api)
        score_heldout_of(run, ids)
        run.rebuild.clear()
        recard(run, list(run.state.saved))  # the cards print what the table holds
        write_tables(run.state, run.run_dir)
        return run.state


def evolve(cfg: RunConfig, *, resume: bool = False, progress: bool = True, api=None) -> RunState:
    """Run (or resume) an evolution to the end of its budget; returns the final state."""
    check_run(cfg, api=api)
    with run_lock(cfg.output.dir):  # one process per run folder, for the run's life
        return _evolve(cfg, resume=resume, progress=progress, api=api)


def _evolve(cfg: RunConfig, *, resume: bool, progress: bool, api) -> RunState:
    from hubevo.execute.backends import make_backend

    for stale in clean_temp_dirs(cfg.output.dir):
        log.info("removed %s, left by an interrupted write", stale)
    run = start(cfg, resume=resume, progress=progress, api=api)
    reason = step_past_finished(run)                      # a finished generation is never redone
    backend = make_backend(cfg, runner=run.runner)
    tracking = open_tracking(cfg, resume=resume)          # dashboards, if `tracking` names any
    run.state.finished = False
    try:
        while reason is None and next_generation(run):    # 4+5: crossover and mutation inside ask
            run.rebuild.keep_only(generation_reads(run))  # 6: what it reads on disk, nothing else
            evaluate_generation(run, backend)             # 2
            tell(run)                                     # 3
            finals(run)                                   # 3: the champion is picked on validation
            reason = stop_reason(run) or run.strategy.stop()
            write_survivors(run, select(run, final=reason is not None))  # 3, then 6 to disk
            push(run)                                     # 6 to the Hub
            line = end_generation(run)                    # the clock's mark, then the generation's line
            log.info(line)
            append_event(run.run_dir, "generation", generation=run.state.generation, summary=line)
            tracking.generation(run.state)
            if reason is not None:
                break
            advance(run)
    finally:
        backend.close()
    finish(run, reason)
    tracking.close(run.state)
    return run.state
