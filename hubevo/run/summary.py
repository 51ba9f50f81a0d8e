"""The loop's line per generation: candidates, best and mean fitness, the champion and its lead, time left."""

from __future__ import annotations

import math

from hubevo.breed.genome import Individual
from hubevo.publish.decision import comparison, decision_text, lead_text
from hubevo.run.run import Run, stop_reason
from hubevo.selection import ranking
from hubevo.state.runstate import RunState


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
    new = sum(1 for e in evs if e.generation == state.generation)
    raced = sum(1 for e in evs if e.status == "raced_out")
    return (f"generation {state.generation}: {len(evs)} candidates ({new} new, {len(evs) - len(ok) - raced} failed"
            f"{f', {raced} raced out' if raced else ''}), best fitness {state.evaluations[best.id].fitness:.3f} "
            f"({best.name}), mean {sum(e.fitness for e in ok) / len(ok):.3f}, "
            f"champion {ind.name} ({describe(ind)}, fitness {ev.fitness:.3f}), "
            f"survivors {len(state.survivors.get(state.generation, []))}, {state.elapsed_s:.0f} s{time_left(run)}"
            + against_baselines(state) + f"; {decision_text(state)}")


def time_left(run: Run) -> str:
    """', about N s left' from the pace so far, when the budget says how much is left (generations or
    evaluations); nothing once the run stops."""
    budget, state = run.cfg.budget, run.state
    done = len(state.evaluations)
    left = min((budget.max_evaluations or math.inf) - done,
               (budget.generations - state.generation) * budget.population_size)
    if stop_reason(run) or not math.isfinite(left) or left <= 0 or not done:
        return ""
    return f", about {state.elapsed_s / done * left:.0f} s left"


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
