"""Stage 6, publish, to the terminal: the lines that open and close a run (`hubevo evolve`, the demo).

The champion and the reason it is champion are the run's recorded decision (`hubevo.publish.decision`),
in the words of every other report.
"""

from __future__ import annotations

from pathlib import Path

from hubevo.terminal import where


def browse_lines(run_dir: Path) -> list[str]:
    """The closing lines of a run: where it is and how to look at it."""
    run_dir = Path(run_dir)
    return [
        f"run folder: {where(run_dir)}",
        f"results table: {where(run_dir / 'results.parquet')} (one row per candidate)",
        f"survivors: {where(run_dir / 'models')} (a card and recipe.yaml each; the champion's folder also holds "
        "its weights)",
        f"browse it: hubevo space --runs {where(run_dir.parent)}   (then open http://127.0.0.1:7860)",
    ]


def evolve_opening(cfg) -> str:
    """The first line of `hubevo evolve`: what it is about to do and where it writes."""
    members = len(cfg.population.members) + (1 if cfg.population.query is not None else 0)
    tasks = ", ".join(t.name for t in cfg.fitness.tasks)
    own = cfg.search_strategy in ("cmaes", "dfs", "psdfs")  # they size their own populations
    size = "its own population size" if own else f"a population of {cfg.budget.population_size}"
    return (f"hubevo evolve: run {cfg.name!r}, {members} member source(s), {cfg.search_strategy} search for "
            f"{cfg.budget.generations} generation(s) after generation 0 with {size} (baselines on top), fitness on "
            f"{tasks}; writing to {where(cfg.output.dir)}")


def clock_line(state) -> str:
    """The run's one elapsed time (`hubevo.state.clock`), as every report gives it."""
    from hubevo.state.clock import duration_text

    return (f"elapsed: {duration_text(state.elapsed_s)} (the run's clock, state.json's elapsed_s: generations, "
            "finals and held-out scoring, over every resume)")


def reason_line(state) -> str:
    """Why the champion is champion: the decision the run recorded, in the words of every other report."""
    from hubevo.publish.decision import decision_text

    return f"why: {decision_text(state)}"


def champion_line(state) -> str:
    """The champion by the one rule (`hubevo.selection.ranking`), its fitness and held-out mean."""
    cid = state.champion()
    if cid is None:
        return "no champion: no candidate was fully evaluated"
    heldout = state.heldout.get(cid) or {}
    mean = f", held-out {sum(heldout.values()) / len(heldout):.3f}" if heldout else ""
    return f"champion: {state.individuals[cid].name} (fitness {state.evaluations[cid].fitness:.3f}{mean})"
