"""Bench for the crossover stage's materialisation: in memory versus through disk.

For each size and recipe, times (median of --repeats, one warm-up call for the in-process
variants, the resident model loaded once beforehand as in the evolution loop):
  in-memory        Materializer.materialize(config)
  run_merge+load   hubevo.breed.materialize.merge_to_disk (in-process mergekit) + from_pretrained
  mergekit-yaml+load  the mergekit-yaml console script + from_pretrained
and prints the speed-ups. Issue goal: in-memory at least 10x faster than mergekit-yaml+load
at tiny size and 3x at about 100M parameters.

    python bench/materialize.py [--sizes tiny,100m] [--methods linear,dare_ties] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here is a local folder
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
from mergekit.config import MergeConfiguration  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hubevo.breed.materialize import Materializer, merge_to_disk  # noqa: E402
from tests.tiny_models import build_zoo  # noqa: E402

SHAPES = {
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64, "heads": 4, "kv_heads": 2},
    "100m": {
        "hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 2048,
        "heads": 12, "kv_heads": 4, "vocab_size": 16000,
    },
}
GOALS = {"tiny": 10.0, "100m": 3.0}
MERGEKIT_YAML = Path(sys.executable).with_name("mergekit-yaml")


def recipe(method: str, zoo: dict[str, Path]) -> MergeConfiguration:
    models = [{"model": str(zoo[name]), "parameters": {"weight": 0.5, "density": 0.5}} for name in ("ft1", "ft2")]
    if method == "linear":
        models = [{"model": m["model"], "parameters": {"weight": 0.5}} for m in models]
        return MergeConfiguration.model_validate({"merge_method": method, "models": models, "dtype": "float32"})
    return MergeConfiguration.model_validate(
        {"merge_method": method, "base_model": str(zoo["base"]), "models": models, "dtype": "float32"}
    )


def median_time(run: Callable[[int], object], *, repeats: int, warmup: bool) -> float:
    if warmup:
        run(-1)
    times = []
    for index in range(repeats):
        start = time.perf_counter()
        run(index)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def through_disk(merge: Callable[[Path], None], *, scratch: Path) -> Callable[[int], object]:
    """A run that merges to a fresh folder, loads it with transformers, then deletes it."""

    def run(index: int) -> None:
        out_dir = scratch / f"out{index}"
        merge(out_dir)
        AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
        shutil.rmtree(out_dir)

    return run


def cli_merge(config: MergeConfiguration, *, scratch: Path) -> Callable[[Path], None]:
    config_file = scratch / "merge.yml"
    config_file.write_text(config.to_yaml())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def merge(out_dir: Path) -> None:
        command = [str(MERGEKIT_YAML), str(config_file), str(out_dir), "--random-seed", "0", "-j", "1"]
        subprocess.run([*command, "--no-write-model-card", "--quiet"], check=True, capture_output=True, env=env)

    return merge


def bench_one(size: str, method: str, *, zoo: dict[str, Path], scratch: Path, repeats: int) -> float:
    config = recipe(method, zoo)
    materializer = Materializer(zoo["base"])
    memory = median_time(lambda _: materializer.materialize(config), repeats=repeats, warmup=True)
    in_process = median_time(
        through_disk(lambda out: merge_to_disk(config, out), scratch=scratch), repeats=repeats, warmup=True
    )
    cli = median_time(through_disk(cli_merge(config, scratch=scratch), scratch=scratch), repeats=repeats, warmup=False)
    print(
        f"{size} {method}: in-memory {memory:.3f} s, run_merge+load {in_process:.3f} s "
        f"(speed-up {in_process / memory:.1f}x), mergekit-yaml+load {cli:.2f} s (speed-up {cli / memory:.0f}x)",
        flush=True,
    )
    return cli / memory


def bench_size(size: str, *, methods: list[str], root: Path, repeats: int) -> None:
    start = time.perf_counter()
    zoo = build_zoo(root / size, finetunes=2, **SHAPES[size])
    model = AutoModelForCausalLM.from_pretrained(zoo["base"], dtype=torch.float32)
    params = sum(p.numel() for p in model.parameters())
    print(f"{size}: {params / 1e6:.2f}M parameters fp32, zoo built in {time.perf_counter() - start:.1f} s", flush=True)
    speedups = {m: bench_one(size, m, zoo=zoo, scratch=root / size, repeats=repeats) for m in methods}
    verdicts = [f"{m} {'met' if x >= GOALS[size] else 'NOT met'} ({x:.0f}x)" for m, x in speedups.items()]
    print(f"{size}: goal {GOALS[size]:.0f}x over mergekit-yaml+load: {', '.join(verdicts)}", flush=True)
    shutil.rmtree(root / size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,100m", help="comma-separated, from: " + ",".join(SHAPES))
    parser.add_argument("--methods", default="linear,dare_ties", help="linear or task-vector merge methods")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch threads 1, {os.cpu_count()} CPUs; median of {args.repeats} repeats", flush=True)
    with tempfile.TemporaryDirectory(prefix="hubevo-bench-") as root:
        for size in args.sizes.split(","):
            bench_size(size, methods=args.methods.split(","), root=Path(root), repeats=args.repeats)


if __name__ == "__main__":
    main()
