"""What the terminal shows: hubevo's own lines and bars; library bars and warnings only with `-v`.

The libraries read their switches from the environment when they are imported (and child
processes inherit it), so `quiet_libraries` sets the environment first and flips the switches
of any library already imported. lm-eval draws its request bars whatever the environment says;
`hubevo.evaluation` asks `library_bars()` before it lets lm-eval draw them.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

QUIET_LOGGERS = ("lm_eval", "lm-eval", "transformers", "mergekit", "datasets", "httpx", "accelerate", "peft",
                 "trl", "torch")
QUIET_ENVIRONMENT = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",       # huggingface_hub, and transformers' bars follow it
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore",
}


def quiet_libraries(*, verbose: bool = False) -> None:
    """Library progress bars, warnings and info lines off (kept on with `verbose`)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if verbose:
        return
    os.environ.update(QUIET_ENVIRONMENT)
    warnings.simplefilter("ignore")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    _switch_off_imported()


def _switch_off_imported() -> None:
    """Libraries imported before `quiet_libraries` read the environment already: flip their switches."""
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()


def library_bars() -> bool:
    """Whether libraries may draw progress bars (Hugging Face's switch, which `quiet_libraries` turns off)."""
    from huggingface_hub.utils import are_progress_bars_disabled

    return not are_progress_bars_disabled()


def where(path: Path) -> str:
    """`path` as a person would type it from here: relative under the working folder, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd())) or "."
    except ValueError:
        return str(path)


def browse_lines(run_dir: Path) -> list[str]:
    """The closing lines of a run: where it is and how to look at it."""
    run_dir = Path(run_dir)
    return [
        f"run folder: {where(run_dir)}",
        f"results table: {where(run_dir / 'results.parquet')} (one row per candidate)",
        f"survivors (cards and weights): {where(run_dir / 'models')}",
        f"browse it: hubevo space --runs {where(run_dir.parent)}   (then open http://127.0.0.1:7860)",
    ]


def evolve_opening(cfg) -> str:
    """The first line of `hubevo evolve`: what it is about to do and where it writes."""
    members = len(cfg.population.members) + (1 if cfg.population.query is not None else 0)
    tasks = ", ".join(t.name for t in cfg.fitness.tasks)
    return (f"hubevo evolve: run {cfg.name!r}, {members} member source(s), {cfg.search_strategy} search for "
            f"{cfg.budget.generations} generation(s) of {cfg.budget.population_size}, fitness on {tasks}; "
            f"writing to {where(cfg.output.dir)}")


def reason_line(state) -> str:
    """Why the champion is champion: the decision the run recorded, in the words of every other report."""
    from hubevo.publish import decision_text

    return f"why: {decision_text(state)}"


def champion_line(state) -> str:
    """The champion by the one rule (`hubevo.ranking`), its fitness and held-out mean."""
    cid = state.champion()
    if cid is None:
        return "no champion: no candidate was fully evaluated"
    heldout = state.heldout.get(cid) or {}
    mean = f", held-out {sum(heldout.values()) / len(heldout):.3f}" if heldout else ""
    return f"champion: {state.individuals[cid].name} (fitness {state.evaluations[cid].fitness:.3f}{mean})"
