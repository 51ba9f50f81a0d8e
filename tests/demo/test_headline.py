"""`python app.py demo`'s headline: after the shipped run, the champion beats each specialist it
was bred from on the held-out combined task (README, first section), and the demo says so."""

import contextlib
import io
import logging
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from hubevo.demo import HEADLINE_TASK
from hubevo.demo.runner import run_demo
from hubevo.state.clock import duration_text
from tests.helpers.cards import card_cells


@pytest.fixture(scope="module")
def demo_run(demo_zoo, demo_zoo_cache, tmp_path_factory):
    """The demo as `app.py demo` runs it, on the session's zoo: (final state, what it printed)."""
    torch.set_num_threads(1)
    printed = io.StringIO()
    lines = logging.StreamHandler(printed)  # the generation summaries: `hubevo demo` logs them to stdout
    logger, level = logging.getLogger("hubevo"), logging.getLogger("hubevo").level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):  # bars draw on stderr
            state = run_demo(out_dir=tmp_path_factory.mktemp("demo-run") / "demo", cache_dir=demo_zoo_cache,
                             progress=False)
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    return state, printed.getvalue()


def test_the_champion_beats_every_specialist_on_the_held_out_task(demo_run, demo_zoo):
    state, _ = demo_run
    champion = state.heldout[state.champion()][HEADLINE_TASK]
    specialists = {state.individuals[i].name: state.heldout[i][HEADLINE_TASK] for i in state.initial}
    assert set(specialists) == set(demo_zoo.specialists)
    assert all(champion > score for score in specialists.values()), (champion, specialists)


def test_the_demo_prints_the_comparison_and_the_claim(demo_run):
    state, printed = demo_run
    assert f"heldout/{HEADLINE_TASK}" in printed and state.individuals[state.champion()].name in printed
    assert f"the champion beats every initial member on {HEADLINE_TASK}" in printed


def test_the_demo_opens_with_what_it_does_and_closes_with_where_to_look(demo_run):
    state, printed = demo_run
    lines = printed.splitlines()
    assert lines[0].startswith("hubevo demo: evolving the tiny hard demo zoo's specialists") and "zoo cached in" in lines[0]
    assert lines[1].startswith("members: ") and "run folder: " in lines[1]
    assert f"champion: {state.individuals[state.champion()].name} (fitness" in printed
    assert lines[-1].startswith("browse it: hubevo space --runs ")
    assert any(line.startswith("results table: ") and line.endswith("results.parquet (one row per candidate)")
               for line in lines)


def test_the_demo_draws_no_library_progress_bars(demo_run):
    _, printed = demo_run
    bars = [line for line in printed.replace("\r", "\n").splitlines() if "it/s]" in line or "s/it]" in line]
    assert bars == [], bars[:3]


def test_the_demo_picks_its_champion_on_the_zoos_validation_tasks(demo_run, demo_zoo):
    """The finals score the zoo's validation tasks, every example (as many as held-out), never a fitness one."""
    from hubevo.demo import data

    state, _ = demo_run
    assert state.champion() in state.validation
    for cid, scored in state.validation.items():
        assert scored.status == "ok" and scored.examples == len(demo_zoo.validation_tasks) * data.EVAL_SIZE, cid
        assert {task: len(o.values) for task, o in scored.outcomes.items()} == \
            dict.fromkeys(demo_zoo.validation_tasks, data.EVAL_SIZE)


def test_the_demo_runs_to_its_budget_of_generations_however_busy_the_machine(demo_run):
    """No wall-time stop: the demo's result does not depend on how fast the machine is."""
    state, printed = demo_run
    assert state.stop_reason == "4 generations done"
    assert "wall_time_s" not in printed and "s left" in printed  # the summaries estimate the time left


def test_the_demo_gives_its_time_as_one_clock_and_its_estimates_as_ranges(demo_run):
    """One elapsed time, the state's, in the words every report uses; the time left a range from measured
    generation times; candidates counted as what they are, the baselines apart."""
    state, printed = demo_run
    summaries = [line for line in printed.splitlines() if re.match(r"generation \d+: ", line)]
    assert len(summaries) == state.generation + 1
    assert summaries[0].startswith("generation 0: 9 candidates (2 members, 7 baselines)")
    assert all(re.search(r"\d+ candidates \(\d+ new from the search\)", line) for line in summaries[1:])
    left = [re.search(r"about (.+?) left", line) for line in summaries]
    assert all(m and (" - " in m.group(1) or re.fullmatch(r"\d+-\d+ s", m.group(1))) for m in left[:-1])
    assert left[-1] is None  # the last generation: nothing left to estimate
    ends = [state.generation_ends[g] for g in sorted(state.generation_ends)]
    assert ends == sorted(ends) and ends[-1] <= state.elapsed_s
    assert f"elapsed: {duration_text(state.elapsed_s)} (the run's clock" in printed
    assert [line for line in printed.splitlines() if line.startswith("elapsed")] == \
        [f"elapsed: {duration_text(state.elapsed_s)} (the run's clock, state.json's elapsed_s: generations, finals "
         "and held-out scoring, over every resume)"]


def test_the_demo_says_why_the_champion_won_in_the_rules_own_words(demo_run):
    state, printed = demo_run
    decision = state.decision()
    why = next(line for line in printed.splitlines() if line.startswith("why: "))
    assert state.individuals[decision.champion].name in why
    assert ("leads the best incumbent" in why) == decision.crowned
    assert f"{decision.lead:+.3f} ± {decision.stderr:.3f}" in why and f"{decision.z:+.1f} SE" in why


def test_every_number_a_card_prints_is_the_results_tables(demo_run):
    """Cards and table are one source: every score cell of every survivor's card (its scores and the comparison
    with its parents and the baselines, held-out included) equals `results.parquet`, after the demo's own
    held-out scoring of the members and standard recipes."""
    state, _ = demo_run
    run_dir = Path(next(iter(state.saved.values()))).parents[1]
    table = pd.read_parquet(run_dir / "results.parquet").set_index("model")
    cards = sorted((run_dir / "models").glob("*/README.md"))
    assert len(cards) == len(state.saved) >= 2
    checked = 0
    for card in cards:
        for (model, column), cell in card_cells(card.read_text(), model=card.parent.name).items():
            value = table.loc[model, column] if column in table.columns else None
            expected = "-" if value is None or pd.isna(value) else f"{value:.4f}"
            assert cell == expected, (card.parent.name, model, column, cell, expected)
            checked += 1
    parents_heldout = [m for m in state.initial if state.heldout.get(m)]
    assert parents_heldout and checked > 20
