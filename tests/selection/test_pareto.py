"""The Pareto mask: the same front as the all-pairs definition, at a cost that grows with the front, not n^2."""

from __future__ import annotations

import numpy as np
import pytest

from hubevo.selection.pareto import front, non_dominated


def all_pairs(points: np.ndarray) -> np.ndarray:
    """The definition: a row is dominated when another is >= everywhere and > somewhere."""
    at_least = (points[None, :, :] >= points[:, None, :]).all(axis=2)
    better = (points[None, :, :] > points[:, None, :]).any(axis=2)
    return ~(at_least & better).any(axis=1)


@pytest.mark.parametrize("objectives", [1, 2, 3, 5])
def test_the_mask_matches_the_definition_with_ties_and_duplicates(objectives):
    rng = np.random.default_rng(objectives)
    for _ in range(20):
        points = rng.integers(0, 6, size=(60, objectives)).astype(float)  # coarse: many ties and duplicates
        assert (non_dominated(points) == all_pairs(points)).all()


def test_twenty_thousand_candidates_are_masked_right():
    """Checked point by point (the all-pairs mask needs 800 MB here); its speed: bench/pareto.py."""
    points = np.random.default_rng(0).uniform(size=(20_000, 2))
    mask = non_dominated(points)
    assert mask.any()
    for p in points[mask]:
        assert not ((points >= p).all(axis=1) & (points > p).any(axis=1)).any()
    for p in points[~mask][:200]:
        assert ((points >= p).all(axis=1) & (points > p).any(axis=1)).any()


def test_front_keeps_ids_in_order_and_skips_candidates_missing_a_task():
    scores = {"a": {"x": 0.9, "y": 0.1}, "b": {"x": 0.5, "y": 0.5}, "c": {"x": 0.4, "y": 0.4}, "d": {"x": 1.0}}
    assert front(scores, ["x", "y"]) == ["a", "b"]
