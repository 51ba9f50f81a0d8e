"""Bench for survivors as recipes at real shapes: seconds per candidate by stage, disk and peak RSS.

For each architecture and size (`hubevo.demo.architectures`: llama3, qwen2.5, mistral, gemma2,
phi3 at tiny, 0.5b or 1.5b; random weights, nothing downloaded), three parents are built and
one generation of `--candidates` linear merges is run three times, each in a fresh process so
that its peak memory is its own:

  baseline    every candidate merged in memory and scored; every survivor written as a full
              folder and scored on the held-out tasks (what a run did before survivors were recipes);
  unstreamed  the current flow with the merge loop hubevo had before merges streamed: mergekit's
              `Executor.run` (it keeps the last merged tensor while computing the next) and every
              member's safetensors shard left mapped until the merge ends;
  current     the same merges and scores; one full folder (the champion's), held-out scores for
              the finalists only (`--finalists`).

Survivors are the top half. Scoring uses the demo's lm-eval tasks (`hubevo.demo.zoo`) at
`--limit` examples per task. Prints seconds per candidate split into merge / evaluate / write /
held-out, bytes written per generation, and current/baseline ratios.

Memory is sampled from /proc/self/status every 5 ms by a thread of the child: the high-water
marks of anonymous RSS (RssAnon: what the process allocated) and file-backed RSS (RssFile:
mapped pages of the members' safetensors files, clean page cache the kernel can drop, not a
copy), and the kernel's own VmHWM (both together, what `ru_maxrss` reports). The bound is the
resident model (its parameters and buffers) plus one layer per parent (the largest decoder
block or other tensor, in the merge dtype) plus evaluation buffers (the most anonymous RSS seen
while scoring, above the resident model and the constant) plus a constant: the anonymous RSS of
the process after its imports, the evaluator and the tokenizer, before any weights are loaded.
Peak anonymous RSS is checked against it. The total also holds the members' mapped pages (one
layer per parent while it is merged), the merged tensor that mergekit returns before it is
copied in, and the libraries' mapped files, so VmHWM is compared with the bound plus one more
layer plus the file-backed RSS at setup.

    python bench/scale.py [--archs llama3,qwen2.5] [--sizes tiny,0.5b] [--candidates 6] [--limit 8]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = ("baseline", "unstreamed", "current")
STAGES = ("merge", "evaluate", "write", "heldout")


def parents(arch: str, size: str, root: Path) -> list[Path]:
    from hubevo.demo.architectures import build_model, noisy_copy

    base = build_model(arch, root / "p0", seed=0, size=size)
    return [base, noisy_copy(base, root / "p1", seed=1), noisy_copy(base, root / "p2", seed=2)]


def recipe(paths: list[Path], index: int, *, dtype: str) -> dict:
    weights = [1.0 + 0.1 * ((index + k) % 3) for k in range(len(paths))]
    models = [{"model": str(p), "parameters": {"weight": w}} for p, w in zip(paths, weights)]
    return {"merge_method": "linear", "models": models, "dtype": dtype}


def fitness_config(limit: int, device: str):
    from hubevo.demo.runner import demo_config
    from hubevo.demo.zoo import build_zoo

    fitness = demo_config(build_zoo(progress=False), out_dir=Path(tempfile.gettempdir())).fitness
    return fitness.model_copy(update={"limit": limit, "heldout_limit": limit, "racing": None})


def one_generation(*, mode: str, paths: list[Path], out: Path, args) -> dict:
    """Time one generation of `mode` in this process; returns seconds by stage, bytes written and peak RSS."""
    import torch
    from transformers import AutoTokenizer

    from hubevo.evaluation import Evaluator
    from hubevo.materialize import Materializer

    torch.set_num_threads(args.threads)
    if mode == "unstreamed":
        unstream()
    dtype = "bfloat16" if args.device == "cuda" else "float32"
    evaluator = Evaluator(fitness_config(args.limit, args.device), device=args.device)
    evaluator.task_manager  # noqa: B018  (task index built before the constant is read)
    tokenizer = AutoTokenizer.from_pretrained(paths[0])
    sampler = MemorySampler.started()
    setup = sampler.now()
    resident = Materializer(paths[0], device=args.device, dtype=getattr(torch, dtype))
    seconds = dict.fromkeys(STAGES, 0.0)
    fitness = {}
    for index in range(args.candidates):
        begin = time.perf_counter()
        with sampler.phase("merge"):
            model = resident.materialize(recipe(paths, index, dtype=dtype))
        seconds["merge"] += time.perf_counter() - begin
        begin = time.perf_counter()
        with sampler.phase("evaluate"):
            fitness[index] = evaluator.fitness(model, tokenizer, generation=0).fitness
        seconds["evaluate"] += time.perf_counter() - begin
    ranked = sorted(fitness, key=fitness.get, reverse=True)
    survivors = ranked[: max(1, args.candidates // 2)]
    written = survivors if mode == "baseline" else survivors[:1]
    heldout = survivors if mode == "baseline" else ranked[: args.finalists]
    for index in written:
        begin = time.perf_counter()
        resident.materialize(recipe(paths, index, dtype=dtype))
        resident.save(out / f"c{index}")
        seconds["write"] += time.perf_counter() - begin
    for index in heldout:
        begin = time.perf_counter()
        evaluator.heldout(resident.materialize(recipe(paths, index, dtype=dtype)), tokenizer)
        seconds["heldout"] += time.perf_counter() - begin
    disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    memory = {**sampler.stop(), "constant": setup["RssAnon"], "constant_file": setup["RssFile"],
              **model_sizes(resident.model)}
    return {"seconds": seconds, "disk": disk, "rss": rss, "folders": len(written), "memory": memory}


class MemorySampler:
    """High-water marks of RssAnon, RssFile and VmRSS, overall and per phase, from a 5 ms polling thread."""

    FIELDS = ("RssAnon", "RssFile", "VmRSS")

    def __init__(self):
        self.peaks: dict[str, int] = {}
        self.current = "other"
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @classmethod
    def started(cls) -> MemorySampler:
        sampler = cls()
        sampler._thread.start()
        return sampler

    @staticmethod
    def now() -> dict[str, int]:
        values = {}
        with open("/proc/self/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in (*MemorySampler.FIELDS, "VmHWM"):
                    values[key] = int(rest.split()[0]) * 1024  # kB
        return values

    @contextlib.contextmanager
    def phase(self, name: str):
        self.current = name
        try:
            yield
        finally:
            self._record()
            self.current = "other"

    def stop(self) -> dict[str, int]:
        self._done.set()
        self._thread.join()
        return {**self.peaks, "VmHWM": self.now()["VmHWM"]}

    def _poll(self) -> None:
        while not self._done.wait(0.005):
            self._record()

    def _record(self) -> None:
        values = self.now()
        for key in self.FIELDS:
            for name in (key, f"{self.current}:{key}"):
                self.peaks[name] = max(self.peaks.get(name, 0), values[key])


def model_sizes(model) -> dict[str, int]:
    """Bytes of the resident model (each storage once) and of its largest layer (a decoder block or another tensor)."""
    seen, groups, total = set(), {}, 0
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        size = tensor.numel() * tensor.element_size()
        total += size
        parts = name.split(".")
        block = next((i for i, part in enumerate(parts[:-1]) if part.isdigit()), None)
        key = ".".join(parts[: block + 1]) if block is not None else name
        groups[key] = groups.get(key, 0) + size
    return {"resident": total, "layer": max(groups.values())}


def unstream() -> None:
    """Swap in the merge loop hubevo had before merges streamed (for the `unstreamed` mode)."""
    from mergekit.graph import Executor

    from hubevo import materialize

    def execute(tasks, *, device, method):
        try:
            results = Executor(tasks, math_device=device, storage_device=device).run(quiet=True)
            for task, value in results:
                if value is not None:
                    yield task.weight_info.name, value
        except Exception as exc:
            tensor = materialize._failing_tensor(exc)
            raise materialize.CandidateError(f"mergekit {method!r} merge failed at {tensor}: {exc}") from exc

    materialize._execute = execute


def measure(arch: str, size: str, args) -> dict:
    """Both modes for one shape, each in a fresh process (its own peak RSS)."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="hubevo-scale-") as tmp:
        root = Path(tmp)
        paths = parents(arch, size, root / "parents")
        model_bytes = sum(f.stat().st_size for f in paths[0].glob("*.safetensors"))
        for mode in MODES:
            out = root / mode
            out.mkdir()
            command = [sys.executable, __file__, "--child", mode, "--paths", *map(str, paths), "--out", str(out),
                       *child_args(args)]
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            shutil.rmtree(out, ignore_errors=True)
    return {"model_bytes": model_bytes, "parents": len(paths), **results}


def child_args(args) -> list[str]:
    return ["--candidates", str(args.candidates), "--limit", str(args.limit), "--finalists", str(args.finalists),
            "--threads", str(args.threads), "--device", args.device]


def report(arch: str, size: str, result: dict, *, candidates: int) -> None:
    mib = 2**20
    print(f"\n{arch} {size}: model {result['model_bytes'] / mib:.1f} MiB")
    for mode in MODES:
        r = result[mode]
        per = {s: r["seconds"][s] / candidates for s in STAGES}
        total = sum(r["seconds"].values())
        share = (r["seconds"]["write"] + r["seconds"]["heldout"]) / total
        print(f"  {mode:8s} s/candidate " + " ".join(f"{s} {v:.3f}" for s, v in per.items())
              + f" | generation {total:.1f} s, write+held-out {share:.0%} | disk {r['disk'] / mib:.1f} MiB"
              f" in {r['folders']} folders | peak RSS {r['rss'] / mib:.0f} MiB"
              f" ({r['rss'] / result['model_bytes']:.1f}x the model)")
    base, cur = result["baseline"], result["current"]
    ratio = sum(cur["seconds"].values()) / sum(base["seconds"].values())
    print(f"  current/baseline: generation time {ratio:.2f}, disk {cur['disk'] / max(base['disk'], 1):.2f}, "
          f"peak RSS {cur['rss'] / base['rss']:.2f}")
    for mode in MODES:
        report_memory(mode, result[mode]["memory"], parents=result["parents"])


def report_memory(mode: str, memory: dict, *, parents: int) -> None:
    """Peak anonymous RSS against resident model + one layer per parent + evaluation buffers + constant."""
    mib = 2**20
    bound = memory["resident"] + parents * memory["layer"]
    buffers = max(0, memory.get("evaluate:RssAnon", 0) - memory["constant"] - memory["resident"])
    limit = bound + buffers + memory["constant"]
    anon = memory["RssAnon"]
    print(f"  {mode:10s} peak anon {anon / mib:.0f} MiB (merge {memory.get('merge:RssAnon', 0) / mib:.0f}, "
          f"evaluate {memory.get('evaluate:RssAnon', 0) / mib:.0f}) against resident {memory['resident'] / mib:.0f}"
          f" + {parents} x layer {memory['layer'] / mib:.0f} + evaluation buffers {buffers / mib:.0f} + constant "
          f"{memory['constant'] / mib:.0f} = {limit / mib:.0f} MiB: {'within' if anon <= limit else 'ABOVE'} "
          f"({(anon - limit) / mib:+.0f} MiB)")
    total = limit + memory["layer"] + memory["constant_file"]
    print(f"  {'':10s} peak file-backed {memory['RssFile'] / mib:.0f} MiB ({memory['constant_file'] / mib:.0f} "
          f"at setup: libraries); VmHWM {memory['VmHWM'] / mib:.0f} MiB against that + one merged layer + "
          f"file-backed at setup = {total / mib:.0f} MiB ({(memory['VmHWM'] - total) / mib:+.0f} MiB)")


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="llama3,qwen2.5")
    parser.add_argument("--sizes", default="tiny")
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--finalists", type=int, default=2)
    parser.add_argument("--limit", type=int, default=8, help="examples per task (fitness and held-out)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs="*", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse(argv)
    if args.child:
        result = one_generation(mode=args.child, paths=[Path(p) for p in args.paths], out=Path(args.out), args=args)
        print(json.dumps(result))
        return
    for arch in args.archs.split(","):
        for size in args.sizes.split(","):
            report(arch, size, measure(arch, size, args), candidates=args.candidates)


if __name__ == "__main__":
    main()
