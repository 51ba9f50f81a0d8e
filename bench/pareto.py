"""Bench for the Pareto mask: `hubevo.selection.pareto.non_dominated` against the all-pairs definition.

Times the mask on n random two-objective points and the all-pairs definition (an n x n x k
comparison) on the same points, and prints both and their ratio. The all-pairs mask needs a few
n^2 bytes (800 MB at n = 20,000), so by default it runs at up to 10,000 points only.

    python bench/pareto.py [--sizes 2000,10000,20000] [--objectives 2] [--all-pairs-max 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hubevo.selection.pareto import non_dominated  # noqa: E402


def all_pairs(points: np.ndarray) -> np.ndarray:
    """The definition: a row is dominated when another is >= everywhere and > somewhere."""
    at_least = (points[None, :, :] >= points[:, None, :]).all(axis=2)
    better = (points[None, :, :] > points[:, None, :]).any(axis=2)
    return ~(at_least & better).any(axis=1)


def seconds(fn, points: np.ndarray) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    mask = fn(points)
    return time.perf_counter() - started, mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,10000,20000")
    parser.add_argument("--objectives", type=int, default=2)
    parser.add_argument("--all-pairs-max", type=int, default=10_000)
    args = parser.parse_args()
    print(f"{'points':>8} {'front':>6} {'mask s':>8} {'all-pairs s':>12} {'ratio':>7}")
    for n in (int(s) for s in args.sizes.split(",")):
        points = np.random.default_rng(0).uniform(size=(n, args.objectives))
        fast, mask = seconds(non_dominated, points)
        if n <= args.all_pairs_max:
            slow, reference = seconds(all_pairs, points)
            assert (mask == reference).all(), "the mask differs from the definition"
            print(f"{n:>8} {int(mask.sum()):>6} {fast:>8.3f} {slow:>12.3f} {slow / fast:>6.0f}x")
        else:
            print(f"{n:>8} {int(mask.sum()):>6} {fast:>8.3f} {'-':>12} {'-':>7}")


if __name__ == "__main__":
    main()
