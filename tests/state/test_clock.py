"""The run's one clock (`hubevo.state.clock`): one way to write a duration, per-generation times from the marks the
loop keeps, and the time left as a range that holds the generations' measured spread."""

import pytest

from hubevo.state.clock import duration_text, generation_seconds, generations_left, range_text, time_left


def test_a_duration_reads_the_same_everywhere():
    assert [duration_text(s) for s in (0, 42.4, 187, 3725, None)] == ["0 s", "42 s", "3 m 07 s", "1 h 02 m", "-"]
    assert range_text(40, 70) == "40-70 s" and range_text(45, 45) == "45 s"
    assert range_text(40, 185) == "40 s - 3 m 05 s"


def test_each_generations_time_comes_from_the_marks_at_their_ends():
    assert generation_seconds({0: 20.0, 1: 50.0, 2: 65.0}) == {0: 20.0, 1: 30.0, 2: 15.0}
    assert generation_seconds({}) == {}


def test_the_time_left_spans_the_fastest_and_slowest_bred_generation_plus_the_end_of_the_run():
    ends = {0: 20.0, 1: 50.0, 2: 65.0, 3: 90.0}  # bred generations took 30, 15 and 25 s
    assert time_left(ends, generations_left=2, end_s=10.0) == (2 * 15 + 10, 2 * 30 + 10)
    assert time_left(ends, generations_left=0, end_s=10.0) == (10.0, 10.0)
    assert time_left({}, generations_left=3) is None


def test_few_measured_generations_give_a_wider_range():
    """Generation 0 alone (members and standard recipes): half to twice itself; one or two bred generations:
    two thirds of the fastest to one and a half the slowest."""
    assert time_left({0: 20.0}, generations_left=3) == (30.0, 120.0)
    assert time_left({0: 20.0, 1: 50.0}, generations_left=2) == pytest.approx((40.0, 90.0))


def test_an_evaluation_budget_caps_the_generations_left_at_the_pace_so_far():
    assert generations_left(generation=1, generations=10, evaluated=20, max_evaluations=40, done=2) == 2
    assert generations_left(generation=1, generations=3, evaluated=20, max_evaluations=None, done=2) == 2
    assert generations_left(generation=3, generations=3, evaluated=40, max_evaluations=40, done=4) == 0
