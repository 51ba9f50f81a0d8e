"""The loop's line per generation: candidates, best and mean fitness, the champion and its lead, time left.

Its words are defined once: `candidates` are the generation's population (`budget.population_size`:
the elites carried over and the new children the search breeds) plus the baselines on top (the
standard recipes in generation 0, the merge + fine-tune baselines in generation 1); `survivors` are
the candidates a generation keeps as the next one's parents (the search's pick, and always the
champion), each bred one with a card in `models/`; `elapsed` is the run's one clock
(`hubevo.state.clock`), and the time left a range from the measured generation times.
"""

from __future__ import annotations

import statistics

from hubevo.breed.genome import Individual
from hubevo.publish.decision import comparison, decision_text, lead_text
from hubevo.run.run import Run, stop_reason
from hubevo.selection import ranking
from hubevo.state.clock import budget_time_left, duration_text, range_text
from hubevo.state.runstate import RunState


def end_generation(run: Run) -> str:
    """Mark the generation's end on the run's clock (saved), and return its summary line."""
    run.state.generation_ends[run.state.generation] = run.tick()
    run.save()
    return summarize(run)


def summarize(run: Run) -> str:
    """One line per generation; the champion it names is `hubevo.selection.ranking`'s, as everywhere else."""
    state = run.state
    evs = [state.evaluations[i] for i in state.population if i in state.evaluations]
    ok = [e for e in evs if e.status == "ok"]
    champion = state.champion()
    if not ok or champion is None:
        return f"generation {state.generation}: no candidate succeeded ({len(evs)} failed)"
    best = state.individuals[ranking.champion(ok)]
    ind, ev = state.individuals[champion], state.evaluations[champion]
    raced = sum(1 for e in evs if e.status == "raced_out")
    survivors = state.survivors.get(state.generation, [])
    return (f"generation {state.generation}: {candidates_text(state, evs)}, "
            f"{len(evs) - len(ok) - raced} failed{f', {raced} raced out' if raced else ''}; best fitness "
            f"{state.evaluations[best.id].fitness:.3f} ({best.name}), mean {sum(e.fitness for e in ok) / len(ok):.3f}, "
            f"champion {ind.name} ({describe(ind)}, fitness {ev.fitness:.3f}), "
            f"{len(survivors)} survivor{'s' if len(survivors) != 1 else ''}, "
            f"elapsed {duration_text(state.elapsed_s)}{time_left_text(run)}"
            + against_baselines(state) + f"; {decision_text(state)}")


def candidates_text(state: RunState, evs) -> str:
    """'8 candidates (4 new from the search, 2 carried over, 2 baselines)': the generation's population (what the
    search asked for and what it carried over, `budget.population_size` for the GA) and, apart, the members scored
    in generation 0 and the baselines."""
    baselines = sum(1 for e in evs if e.id in state.baselines)
    members = sum(1 for e in evs if e.id in state.initial and e.generation == state.generation)
    carried = sum(1 for e in evs if e.id not in state.baselines and e.id not in state.initial
                  and state.individuals[e.id].generation < state.generation)
    new = len(evs) - baselines - members - carried
    parts = [f"{n} {label}" for n, label in ((new, "new from the search"), (carried, "carried over"),
                                              (members, "members"), (baselines, "baselines")) if n]
    return f"{len(evs)} candidates ({', '.join(parts)})"


def time_left_text(run: Run) -> str:
    """', about 40-70 s left' from the measured generation times and the end of the run's held-out scoring;
    nothing once the run stops."""
    estimate = estimate_left(run)
    return f", about {range_text(*estimate)} left" if estimate else ""


def estimate_left(run: Run) -> tuple[float, float] | None:
    """(low, high) seconds left (`hubevo.state.clock.time_left`); None when the run stops here or has no
    measured generation."""
    state = run.state
    if stop_reason(run):
        return None
    return budget_time_left(run.cfg.budget, generation=state.generation, evaluated=len(state.evaluations),
                            ends=state.generation_ends, end_s=heldout_seconds(run))


def heldout_seconds(run: Run) -> float:
    """The end of the run: held-out scoring of the champion and the last finalists not scored yet, at the measured
    seconds per fitness example of the merged candidates."""
    state, fitness = run.state, run.cfg.fitness
    if not fitness.heldout:
        return 0.0
    merged = [e for e in state.evaluations.values() if e.status == "ok" and e.examples and e.seconds
              and state.individuals[e.id].finetune is None]
    if not merged:
        return 0.0
    per_example = statistics.median(e.seconds / e.examples for e in merged)
    try:
        examples = sum(run.runner.evaluator.tasks.doc_count(t.name) for t in fitness.heldout)
    except Exception:  # noqa: BLE001 - an estimate never stops a run; a group counts as unknown
        return 0.0
    todo = max(fitness.finalists + 1 - len(state.heldout), 0)
    return todo * per_example * examples


def against_baselines(state: RunState) -> str:
    """'; lead over the best member ... and the best standard recipe ...', when they are not the champion."""
    names = comparison(state)
    champion = names.pop("champion")
    parts = [f"{label} {state.individuals[i].name}: {lead_text(state, champion, i)}"
             for label, i in names.items() if i is not None and i != champion]
    return f"; lead over the {' and the '.join(parts)}" if parts else ""


def describe(ind: Individual) -> str:
    if ind.finetune is not None:
        return ind.finetune.operator
    return ind.kind if ind.genome is None else ind.genome.method
