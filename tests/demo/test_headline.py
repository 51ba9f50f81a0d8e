"""`python app.py demo`'s headline: after the shipped run, the champion beats each specialist it
was bred from on the held-out combined task (README, first section), and the demo says so."""

import contextlib
import io

import pytest
import torch

from hubevo.demo import HEADLINE_TASK
from hubevo.demo.runner import run_demo


@pytest.fixture(scope="module")
def demo_run(demo_zoo, demo_zoo_cache, tmp_path_factory):
    """The demo as `app.py demo` runs it, on the session's zoo: (final state, what it printed)."""
    torch.set_num_threads(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):  # bars draw on stderr
        state = run_demo(out_dir=tmp_path_factory.mktemp("demo-run") / "demo", cache_dir=demo_zoo_cache,
                         progress=False)
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


def test_the_demo_says_why_the_champion_won_in_the_rules_own_words(demo_run):
    state, printed = demo_run
    decision = state.decision()
    why = next(line for line in printed.splitlines() if line.startswith("why: "))
    assert state.individuals[decision.champion].name in why
    assert ("leads the best incumbent" in why) == decision.crowned
    assert f"{decision.lead:+.3f} ± {decision.stderr:.3f}" in why and f"{decision.z:+.1f} SE" in why
