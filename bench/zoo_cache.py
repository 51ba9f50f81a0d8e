"""Bench for the demo zoo's cache: a build from nothing against reusing the cached zoo.

Trains the zoo into a temporary cache folder (one torch thread, as `build_zoo` does), then calls
`build_zoo` again on that folder, which finds the marker and returns without training; prints both
times and their ratio, and whether the two calls agree on the weights.

    python bench/zoo_cache.py [--recipe fast|hard] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hubevo.demo.zoo import build_zoo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fast", choices=["fast", "hard"])
    parser.add_argument("--repeats", type=int, default=5, help="reuses timed (the median is printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hubevo-zoo-bench-") as cache:
        started = time.perf_counter()
        built = build_zoo(Path(cache), progress=False, recipe=args.recipe)
        build_s = time.perf_counter() - started
        reuses = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            reused = build_zoo(Path(cache), progress=False, recipe=args.recipe)
            reuses.append(time.perf_counter() - started)
        same = reused.weights_hash() == built.weights_hash()
    reuse_s = statistics.median(reuses)
    print(f"{args.recipe} zoo: build {build_s:.1f} s, cached reuse {reuse_s * 1000:.1f} ms (median of "
          f"{args.repeats}), {build_s / reuse_s:,.0f}x; same weights: {same}")


if __name__ == "__main__":
    main()
