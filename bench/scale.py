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

`--run ga` or `--run cmaes` runs the real loop instead (`hubevo.run.loop.evolve`, in a fresh process):
the three parents as population members (no base model, no standard recipes), the demo's tasks
at `--limit` examples per task for fitness, validation and held-out, `--population` candidates
for `--generations` generations (CMA-ES: a per-layer linear search), the config's default
finalists (3). Random weights score 0 on every task, so with `--fitness synthetic` (the default)
lm-eval runs in full and its score is then replaced by a function of the weights (see
`synthetic_fitness`), so that merges can win and survivors get written. The loop's stages are timed by wrapping them in the child (library code is not changed): merge
and evaluate per candidate; validation (the finals); held-out; write (survivor folders and cards);
rebuild (parents without weights materialised into the rebuild cache). The parent process polls
the run folder for full model folders (config + safetensors) and their bytes; bytes written per
generation are the child's `write_bytes` from /proc/self/io. The constant of the memory bound is
the anonymous RSS when the resident model is first built (after imports and the evaluator).

`--merge-only` times `--candidates` linear merges into the resident model and nothing else
(no scoring, no writing), for memory at sizes a CPU cannot score in reasonable time;
`--parent-dtype bfloat16` builds the parents in bfloat16 (and merges in it), as real 1.5B checkpoints are.

    python bench/scale.py --run ga --archs llama3 --sizes 0.5b --population 4 --generations 3 --limit 4
    python bench/scale.py --merge-only --archs llama3,qwen2.5 --sizes 1.5b --candidates 3 --parent-dtype bfloat16
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
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
CODE = os.environ.get("HUBEVO_BENCH_CODE")  # a child of `--baseline-code`: import hubevo from that checkout
if CODE:  # ahead of this checkout, and of an editable install's import hook
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path.insert(0, CODE or str(Path(__file__).resolve().parents[1]))

MODES = ("baseline", "unstreamed", "current")
STAGES = ("merge", "evaluate", "write", "heldout")


def parents(arch: str, size: str, root: Path, *, dtype: str = "float32") -> list[Path]:
    from hubevo.demo.architectures import build_model, noisy_copy

    if dtype != "float32":
        return low_precision_parents(arch, size, root, dtype=dtype)
    base = build_model(arch, root / "p0", seed=0, size=size)
    return [base, noisy_copy(base, root / "p1", seed=1), noisy_copy(base, root / "p2", seed=2)]


def low_precision_parents(arch: str, size: str, root: Path, *, dtype: str) -> list[Path]:
    """As `parents`, with the weights in `dtype` (the builders write float32): half the disk and memory."""
    import torch
    from transformers import AutoModelForCausalLM

    from hubevo.demo.architectures import ARCHITECTURES, _save

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(ARCHITECTURES[arch].config(size=size), dtype=getattr(torch, dtype))
    paths = [_save(model, root / "p0")]
    base = {name: param.detach().clone() for name, param in model.named_parameters()}
    for seed in (1, 2):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():  # a tied head is one parameter
                param.copy_(base[name] + (torch.randn(param.shape, generator=generator) * 0.01).to(param.dtype))
        paths.append(_save(model, root / f"p{seed}"))
    return paths


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

    from hubevo.breed.materialize import Materializer
    from hubevo.evaluation.evaluator import Evaluator

    torch.set_num_threads(args.threads)
    if mode == "unstreamed":
        unstream()
    dtype = "bfloat16" if args.device == "cuda" else "float32"
    evaluator = Evaluator(fitness_config(args.limit, args.device), device=args.device)
    evaluator.tasks.task_manager  # noqa: B018  (task index built before the constant is read)
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

    from hubevo.breed import materialize

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
            "--threads", str(args.threads), "--device", args.device, *(["--run", args.run] if args.run else []),
            "--generations", str(args.generations), "--population", str(args.population),
            "--parent-dtype", args.parent_dtype, "--fitness", args.fitness]


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
    limit, buffers = memory_bound(memory, parents=parents)
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


def memory_bound(memory: dict, *, parents: int) -> tuple[int, int]:
    """(the bound on anonymous RSS, the evaluation buffers in it)."""
    buffers = max(0, memory.get("evaluate:RssAnon", 0) - memory["constant"] - memory["resident"])
    return memory["resident"] + parents * memory["layer"] + buffers + memory["constant"], buffers


def report_methods(memory: dict, phases: dict[str, int], *, parents: int) -> None:
    """Each merge method's peak anonymous RSS against the bound, in largest layers: mergekit's working set."""
    limit, _ = memory_bound(memory, parents=parents)
    peaks: dict[str, int] = {}
    for key, value in phases.items():
        if "/merge:" in key:
            method = key.rsplit(":", 1)[1]
            peaks[method] = max(peaks.get(method, 0), value)
    print("  merging, peak anonymous RSS above the bound by method (in largest layers): " + ", ".join(
        f"{m} {(v - limit) / memory['layer']:+.1f}" for m, v in sorted(peaks.items())))


def merges_only(*, paths: list[Path], args) -> dict:
    """Time `--candidates` linear merges into the resident model in this process; no scoring, no writing."""
    import torch

    from hubevo.breed.materialize import Materializer
    from hubevo.evaluation.evaluator import Evaluator

    torch.set_num_threads(args.threads)
    dtype = args.parent_dtype if args.parent_dtype != "float32" else ("bfloat16" if args.device == "cuda" else "float32")
    evaluator = Evaluator(fitness_config(args.limit, args.device), device=args.device)
    evaluator.tasks.task_manager  # noqa: B018  (the same constant as a scored generation)
    sampler = MemorySampler.started()
    setup = sampler.now()
    begin = time.perf_counter()
    with sampler.phase("load"):
        resident = Materializer(paths[0], device=args.device, dtype=getattr(torch, dtype))
    load = time.perf_counter() - begin
    merges = []
    for index in range(args.candidates):
        begin = time.perf_counter()
        with sampler.phase("merge"):
            resident.materialize(recipe(paths, index, dtype=dtype))
        merges.append(time.perf_counter() - begin)
    memory = {**sampler.stop(), "constant": setup["RssAnon"], "constant_file": setup["RssFile"],
              **model_sizes(resident.model)}
    return {"load": load, "merges": merges, "dtype": dtype, "memory": memory}


def measure_merges(arch: str, size: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="hubevo-scale-") as tmp:
        root = Path(tmp)
        begin = time.perf_counter()
        paths = parents(arch, size, root / "parents", dtype=args.parent_dtype)
        built = time.perf_counter() - begin
        model_bytes = sum(f.stat().st_size for f in paths[0].glob("*.safetensors"))
        command = [sys.executable, __file__, "--child", "merge-only", "--paths", *map(str, paths),
                   "--out", str(root), *child_args(args)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"model_bytes": model_bytes, "parents": len(paths), "build_s": built, **result}


def report_merges(arch: str, size: str, result: dict) -> None:
    mib = 2**20
    merges = result["merges"]
    print(f"\n{arch} {size} ({result['dtype']}): model {result['model_bytes'] / mib:.1f} MiB, parents built in "
          f"{result['build_s']:.0f} s; resident model loaded in {result['load']:.1f} s; merges "
          + ", ".join(f"{m:.1f}" for m in merges) + f" s (mean {sum(merges) / len(merges):.1f} s)")
    report_memory("merge-only", result["memory"], parents=result["parents"])


# --run: the real loop ------------------------------------------------------------------------------
CONTEXTS = {  # loop stage -> what it is reported as
    ("hubevo.run.loop", "evaluate_generation"): "candidates",
    ("hubevo.run.loop", "finals"): "validation",
    ("hubevo.run.survivors", "heldout_scores"): "heldout",
    ("hubevo.run.loop", "write_survivors"): "write",
    ("hubevo.publish.rebuild", "Rebuilder.ensure"): "rebuild",
    ("hubevo.publish.rebuild", "Rebuilder.clear"): "rebuild",
}
LEAVES = {
    ("hubevo.breed.materialize", "Materializer.materialize"): "merge",
    ("hubevo.breed.materialize", "Materializer.save"): "save",
    ("hubevo.evaluation.evaluator", "Evaluator.fitness"): "evaluate",
    ("hubevo.evaluation.evaluator", "Evaluator.validate"): "evaluate",
    ("hubevo.evaluation.evaluator", "Evaluator.heldout"): "evaluate",
    ("hubevo.evaluation.scorer", "Scorer.score"): "evaluate",
}


class StageTimer:
    """Exclusive seconds by (generation, loop stage, leaf): nested spans are subtracted from their callers."""

    def __init__(self, sampler: MemorySampler):
        self.sampler = sampler
        self.stack: list[list] = []  # [label, is_context, start, seconds of nested spans]
        self.seconds: dict[str, dict[str, dict[str, float]]] = {}
        self.counts: dict[str, int] = {}  # "stage/leaf" -> calls (outermost of a label only)
        self.generation = "setup"
        self.marks: list[dict] = []  # generation starts: time and bytes written so far
        self.constant: dict[str, int] | None = None
        self.materializer = None

    def mark(self, generation, *, out: Path) -> None:
        self.generation = generation
        self.marks.append({"generation": generation, "t": time.perf_counter(), **io_counters(),
                           "folders": full_model_folders(out)[0]})

    @contextlib.contextmanager
    def span(self, label: str, *, context: bool, detail: str = ""):
        self.sampler._record()
        outer = self.sampler.current
        stage = label if context else next((f[0] for f in reversed(self.stack) if f[1]), "loop")
        self.sampler.current = f"{stage}/{'other' if context else label}{detail}"  # peaks by stage, leaf, method
        self.stack.append([label, context, time.perf_counter(), 0.0])
        try:
            yield
        finally:
            self.sampler._record()
            self.sampler.current = outer
            frame = self.stack.pop()
            elapsed = time.perf_counter() - frame[2]
            if self.stack:
                self.stack[-1][3] += elapsed
            stage = next((f[0] for f in reversed([*self.stack, frame]) if f[1]), "loop")
            leaf = "other" if frame[1] else frame[0]
            by_stage = self.seconds.setdefault(str(self.generation), {}).setdefault(stage, {})
            by_stage[leaf] = by_stage.get(leaf, 0.0) + elapsed - frame[3]
            if not frame[1] and all(f[0] != frame[0] for f in self.stack):
                self.counts[f"{stage}/{leaf}"] = self.counts.get(f"{stage}/{leaf}", 0) + 1

    def wrap(self, module: str, attr: str, label: str, *, context: bool) -> None:
        import importlib

        try:  # older code (`--baseline-code`) lacks some stages
            owner = importlib.import_module(module)
            *path, name = attr.split(".")
            for part in path:
                owner = getattr(owner, part)
            original = getattr(owner, name)
        except (ImportError, AttributeError):
            return
        timer = self

        def timed(*a, **k):
            if label == "candidates":
                timer.mark(a[0].state.generation, out=a[0].run_dir)
            detail = ""
            if label == "merge":
                config = a[1]
                detail = f":{config['merge_method'] if isinstance(config, dict) else config.merge_method}"
            with timer.span(label, context=context, detail=detail):
                return original(*a, **k)

        setattr(owner, name, timed)

    def install(self) -> None:
        from hubevo.breed.materialize import Materializer

        for (module, attr), label in CONTEXTS.items():
            self.wrap(module, attr, label, context=True)
        for (module, attr), label in LEAVES.items():
            self.wrap(module, attr, label, context=False)
        init, timer = Materializer.__init__, self

        def first_resident(materializer, *a, **k):
            if timer.constant is None:  # imports and the evaluator done, no weights yet
                timer.constant = MemorySampler.now()
            timer.materializer = materializer
            init(materializer, *a, **k)

        Materializer.__init__ = first_resident
        self.mark_finish()

    def mark_finish(self) -> None:
        """The end of the run (finalists' held-out, the champion's folder) is timed apart from the generations."""
        import hubevo.run.loop

        finish, timer = hubevo.run.loop.finish, self

        def marked(run, *a, **k):
            timer.mark("finish", out=run.run_dir)
            return finish(run, *a, **k)

        hubevo.run.loop.finish = marked


def synthetic_fitness(paths: list[Path]) -> None:
    """Replace each score (after lm-eval has run in full, so its time is measured) by a function of the weights.

    Random weights score 0 on every task, so every candidate would tie and the champion would stay a
    member: nothing would ever be written. Instead a candidate scores by how close the sum of a fixed
    slice of its embeddings is to the mean of the members' (a merge can beat its parents, as in a real
    run), the same on fitness and validation examples.
    """
    from safetensors import safe_open

    try:
        from hubevo.evaluation.fitness import Scored
        from hubevo.evaluation.scorer import Scorer as owner
        method = "score"
    except ImportError:  # older code (`--baseline-code`): one module, the method `scored`
        from hubevo import evaluation

        owner, method, Scored = evaluation.Evaluator, "scored", evaluation.Scored

    def stat(tensor) -> float:
        return float(tensor[:8, :64].double().sum())

    values = []
    for path in paths:
        for shard in sorted(path.glob("*.safetensors")):
            with safe_open(shard, "pt") as f:
                name = next((k for k in f.keys() if k.endswith("embed_tokens.weight")), None)  # noqa: SIM118
                if name:
                    values.append(stat(f.get_slice(name)[:8, :64]))
    target, spread = sum(values) / len(values), max(values) - min(values) or 1.0
    score = getattr(owner, method)

    def synthetic(self, model, tokenizer, *, tasks, samples=None, limit=None, **kwargs):
        real = score(self, model, tokenizer, tasks=tasks, samples=samples, limit=limit, **kwargs)
        value = 1.0 / (1.0 + abs(stat(model.get_input_embeddings().weight) - target) / spread)
        return Scored(fitness=value, scores=dict.fromkeys(real.scores, value), stderrs={}, stderr=None,
                      examples=real.examples)

    setattr(owner, method, synthetic)


def io_counters() -> dict[str, int]:
    try:
        with open("/proc/self/io") as io:
            values = dict(line.split(": ") for line in io.read().splitlines())
        return {"write_bytes": int(values["write_bytes"]), "wchar": int(values["wchar"])}
    except OSError:
        return {"write_bytes": 0, "wchar": 0}


def run_config(paths: list[Path], out: Path, args):
    from hubevo.config import RunConfig
    from hubevo.demo.runner import demo_config
    from hubevo.demo.zoo import build_zoo

    fitness = demo_config(build_zoo(progress=False), out_dir=out).fitness.model_dump(mode="json")
    fitness |= {"limit": args.limit, "validation_limit": args.limit, "heldout_limit": args.limit, "racing": None}
    search = {"strategy": args.run, "baselines": []}
    if args.run == "cmaes":
        search["options"] = {"method": "linear", "popsize": args.population}
    data = {
        "name": f"scale-{args.run}",
        "population": {"members": [{"path": str(p), "name": p.name} for p in paths]},
        "fitness": fitness,
        "budget": {"generations": args.generations, "population_size": args.population},
        "search": search,
        "output": {"dir": str(out)},
        "dtype": args.parent_dtype if args.parent_dtype != "float32" else "float32",
    }
    return RunConfig.model_validate(data)


def one_run(*, paths: list[Path], out: Path, args) -> dict:
    """The real loop (`hubevo.run.loop.evolve`) in this process, its stages timed; returns seconds, bytes and RSS."""
    import torch

    from hubevo.run.loop import evolve

    torch.set_num_threads(args.threads)
    cfg = run_config(paths, out, args)
    if args.fitness == "synthetic":
        synthetic_fitness(paths)
    sampler = MemorySampler.started()
    timer = StageTimer(sampler)
    timer.install()
    begin = time.perf_counter()
    timer.marks.append({"generation": "setup", "t": begin, **io_counters(), "folders": 0})
    state = evolve(cfg, progress=False)
    end = {"generation": "end", "t": time.perf_counter(), **io_counters(), "folders": full_model_folders(out)[0]}
    memory = {**sampler.stop(), "constant": timer.constant["RssAnon"], "constant_file": timer.constant["RssFile"],
              **model_sizes(timer.materializer.model)}
    marks = [*timer.marks, end]
    generations = [{"generation": a["generation"], "seconds": b["t"] - a["t"],
                    "write_bytes": b["write_bytes"] - a["write_bytes"], "wchar": b["wchar"] - a["wchar"],
                    "folders_after": b["folders"]}
                   for a, b in itertools.pairwise(marks)]
    return {"wall": end["t"] - begin, "seconds": timer.seconds, "counts": timer.counts, "generations": generations,
            "memory": memory,
            "evaluations": len(state.evaluations) + len(getattr(state, "rescored", [])),
            "validations": len(state.validation),
            "heldout": len(state.heldout), "survivors": len(state.saved), "stop": state.stop_reason,
            "champion": state.champion() and state.individuals[state.champion()].name}


def full_model_folders(root: Path) -> tuple[int, int]:
    """(folders under `root` holding a config and safetensors weights, bytes of those weights)."""
    folders, size = set(), 0
    for folder, _, files in os.walk(root):  # os.walk skips folders removed while it walks (a finished write)
        for name in files:
            if name.endswith(".safetensors"):
                with contextlib.suppress(OSError):
                    size += os.stat(os.path.join(folder, name)).st_size
                    if os.path.isfile(os.path.join(folder, "config.json")):
                        folders.add(folder)
    return len(folders), size


def measure_runs(arch: str, size: str, args) -> dict[str, dict]:
    """The run on this code and, with `--baseline-code`, on that checkout, over the same parents."""
    with tempfile.TemporaryDirectory(prefix="hubevo-scale-") as tmp:
        root = Path(tmp)
        paths = parents(arch, size, root / "parents", dtype=args.parent_dtype)
        codes = {"current": None, **({"baseline": args.baseline_code} if args.baseline_code else {})}
        return {name: measure_run(paths, root / f"run-{name}", args, code=code) for name, code in codes.items()}


def measure_run(paths: list[Path], out: Path, args, *, code: str | None) -> dict:
    """The run in a child process (importing hubevo from `code` if given); the run folder polled for model
    folders meanwhile."""
    model_bytes = sum(f.stat().st_size for f in paths[0].glob("*.safetensors"))
    command = [sys.executable, __file__, "--child", "run", "--paths", *map(str, paths), "--out", str(out),
               *child_args(args)]
    env = {**os.environ, **({"HUBEVO_BENCH_CODE": str(Path(code).resolve())} if code else {})}
    peak_folders, peak_bytes = 0, 0
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True, env=env)
        while child.poll() is None:
            if out.is_dir():
                folders, size_now = full_model_folders(out)
                peak_folders, peak_bytes = max(peak_folders, folders), max(peak_bytes, size_now)
            time.sleep(0.2)
        stdout.seek(0)
        stderr.seek(0)
        if child.returncode:
            raise RuntimeError(f"run child failed ({child.returncode}):\n{stderr.read()[-4000:]}")
        result = json.loads(stdout.read().strip().splitlines()[-1])
    folders, size_now = full_model_folders(out)
    run_bytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {"model_bytes": model_bytes, "parents": len(paths), "folders_end": folders, "folders_peak": peak_folders,
            "weights_peak": peak_bytes, "run_bytes": run_bytes, **result}


RUN_STAGES = ("candidates", "validation", "heldout", "write", "rebuild", "loop")


def run_table(result: dict) -> dict[str, float]:
    """Seconds by stage over the whole run (setup included), merge and evaluate split out of the candidates."""
    totals = {f"candidates/{k}": 0.0 for k in ("merge", "evaluate", "other")} | dict.fromkeys(RUN_STAGES[1:], 0.0)
    for stages in result["seconds"].values():
        for stage, leaves in stages.items():
            if stage == "candidates":
                for leaf, seconds in leaves.items():
                    key = f"candidates/{leaf if leaf in ('merge', 'evaluate') else 'other'}"
                    totals[key] += seconds
            else:
                totals[stage] += sum(leaves.values())
    return totals


def report_run(arch: str, size: str, result: dict, *, strategy: str) -> None:
    mib = 2**20
    totals = run_table(result)
    n = max(result["evaluations"], 1)
    wall = result["wall"]
    print(f"\n{arch} {size} {strategy}: model {result['model_bytes'] / mib:.1f} MiB; {result['evaluations']} "
          f"candidate evaluations, {result['validations']} validations, {result['heldout']} held-out, "
          f"{result['survivors']} survivor folders; stop: {result['stop']}; champion {result['champion']}")
    print(f"  per candidate: merge {totals['candidates/merge'] / n:.2f} s, evaluate "
          f"{totals['candidates/evaluate'] / n:.2f} s, other {totals['candidates/other'] / n:.2f} s, "
          f"write {totals['write'] / n:.2f} s")
    print(f"  run {wall:.1f} s: " + ", ".join(f"{k} {v:.1f} s ({v / wall:.0%})" for k, v in totals.items()))
    share = (totals["write"] + totals["heldout"]) / wall
    with_rebuild = (totals["write"] + totals["heldout"] + totals["rebuild"]) / wall
    bred, bred_share = generation_share(result)
    print(f"  write + held-out {bred_share:.1%} of the bred generations' {bred:.1f} s (goal <= 10% of a generation: "
          f"{'met' if bred_share <= 0.10 else 'MISSED'}); {share:.1%} of the whole run with its end (finalists' "
          f"held-out), {with_rebuild:.1%} with rebuilt parents too")
    for g in result["generations"]:
        stages = result["seconds"].get(str(g["generation"]), {})
        write = sum(sum(stages.get(s, {}).values()) for s in ("write", "heldout"))
        print(f"  generation {g['generation']}: {g['seconds']:.1f} s, write + held-out {write:.1f} s "
              f"({write / max(g['seconds'], 1e-9):.0%}), written {g['write_bytes'] / mib:.0f} MiB "
              f"(write() calls {g['wchar'] / mib:.0f} MiB); full model folders after it {g['folders_after']}")
    counts, saves = result["counts"], {s: 0.0 for s in ("write", "rebuild")}
    for stages in result["seconds"].values():
        for stage in saves:
            saves[stage] += stages.get(stage, {}).get("save", 0.0)
    print("  full folders written: " + ", ".join(
        f"{stage} {counts.get(f'{stage}/save', 0)} ({seconds / max(counts.get(f'{stage}/save', 0), 1):.1f} s each "
        "to save, after its merge)" for stage, seconds in saves.items()))
    print(f"  full model folders in the run folder: {result['folders_end']} at the end, {result['folders_peak']} at "
          f"the peak (goal <= 2: {'met' if result['folders_peak'] <= 2 else 'MISSED'}); weights on disk at the peak "
          f"{result['weights_peak'] / mib:.0f} MiB, run folder at the end {result['run_bytes'] / mib:.0f} MiB")
    memory = dict(result["memory"])
    phases = {k.rsplit(":", 1)[0]: v for k, v in memory.items() if k.endswith(":RssAnon") and "/" in k}
    memory["evaluate:RssAnon"] = max((v for k, v in phases.items() if k.endswith("/evaluate")), default=0)
    memory["merge:RssAnon"] = max((v for k, v in phases.items() if "/merge" in k), default=0)
    report_memory("run", memory, parents=result["parents"])
    report_methods(memory, phases, parents=result["parents"])
    top = sorted(phases.items(), key=lambda kv: -kv[1])
    print("  peak anon by stage/leaf[:method]: " + ", ".join(f"{k} {v / mib:.0f}" for k, v in top) + " MiB")


def generation_share(result: dict) -> tuple[float, float]:
    """(seconds of the bred generations, 1 on, without setup and the end of the run; write + held-out share)."""
    bred = [g for g in result["generations"] if g["generation"] not in ("setup", "finish", 0, "0")]
    seconds = sum(g["seconds"] for g in bred)
    spent = sum(sum(sum(result["seconds"].get(str(g["generation"]), {}).get(s, {}).values())
                    for s in ("write", "heldout")) for g in bred)
    return seconds, spent / max(seconds, 1e-9)


def report_ratios(current: dict, baseline: dict) -> None:
    """current / baseline of the same run over the same parents."""
    def shares(result):
        totals = run_table(result)
        return (totals["write"] + totals["heldout"]) / result["wall"]

    written = lambda r: sum(g["write_bytes"] for g in r["generations"])  # noqa: E731
    print(f"  current / baseline: run {current['wall'] / baseline['wall']:.2f}x "
          f"({current['wall']:.0f} / {baseline['wall']:.0f} s); write + held-out share of the bred generations "
          f"{generation_share(current)[1]:.1%} vs {generation_share(baseline)[1]:.1%}, of the whole run "
          f"{shares(current):.1%} vs {shares(baseline):.1%}; bytes written {written(current) / max(written(baseline), 1):.2f}x; held-out "
          f"scorings {current['heldout']} vs {baseline['heldout']}; full folders at the peak "
          f"{current['folders_peak']} vs {baseline['folders_peak']}, at the end {current['folders_end']} vs "
          f"{baseline['folders_end']}; peak anonymous RSS "
          f"{current['memory']['RssAnon'] / max(baseline['memory']['RssAnon'], 1):.2f}x")


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="llama3,qwen2.5")
    parser.add_argument("--sizes", default="tiny")
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--finalists", type=int, default=2)
    parser.add_argument("--limit", type=int, default=8, help="examples per task (fitness and held-out)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--run", choices=["ga", "cmaes"], default=None, help="run the real loop with this strategy")
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--fitness", choices=["synthetic", "real"], default="synthetic",
                        help="--run: score by the weights after lm-eval ran (random weights score 0 on every task)")
    parser.add_argument("--merge-only", action="store_true", help="time merges into the resident model only")
    parser.add_argument("--parent-dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--baseline-code", default=None,
                        help="--run: also run the loop from this checkout (e.g. a git worktree of the code before "
                             "survivors were recipes) over the same parents, and print current/baseline ratios")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs="*", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse(argv)
    if args.child:
        paths, out = [Path(p) for p in args.paths], Path(args.out)
        if args.child == "run":
            result = one_run(paths=paths, out=out, args=args)
        elif args.child == "merge-only":
            result = merges_only(paths=paths, args=args)
        else:
            result = one_generation(mode=args.child, paths=paths, out=out, args=args)
        print(json.dumps(result))
        return
    for arch in args.archs.split(","):
        for size in args.sizes.split(","):
            if args.run:
                runs = measure_runs(arch, size, args)
                for name, result in runs.items():
                    report_run(arch, size, result, strategy=f"{args.run} ({name} code)")
                if "baseline" in runs:
                    report_ratios(runs["current"], runs["baseline"])
            elif args.merge_only:
                report_merges(arch, size, measure_merges(arch, size, args))
            else:
                report(arch, size, measure(arch, size, args), candidates=args.candidates)


if __name__ == "__main__":
    main()
