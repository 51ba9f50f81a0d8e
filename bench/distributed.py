"""Bench for stage 2 on Ray: candidates per minute and worker idle time, Ray workers against the local backend.

Runs the same evolution twice, with the local backend (one process, one torch thread) and
with the Ray backend on a local cluster of --cpus CPUs and --workers CPU workers, and prints:
  candidates/min   evaluated candidates over the wall time spent inside `backend.evaluate`
                   (the stage a backend owns), and end to end over the whole `evolve` call
                   (Ray: worker start-up and the driver's survivor writing included);
  idle             per worker, the fraction of its evaluation windows in which it neither
                   merged nor evaluated. A window runs from the worker's first merge of a
                   generation to the generation's last result, so start-up is excluded and
                   the generation's tail (waiting for the other worker's last candidate) is not;
  eval-stage idle  the same for the evaluation stage alone (merging counts as idle);
  same results     whether both runs proposed the same candidates with the same fitness.
Issue goal: idle under 10%.

    python bench/distributed.py [--zoo demo|tiny] [--generations 3] [--population 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hubevo.config import ExecutionConfig  # noqa: E402
from hubevo.demo.runner import demo_config  # noqa: E402
from hubevo.execute import backends as execution  # noqa: E402
from hubevo.run.loop import evolve  # noqa: E402

TINY_TASK = "bench_mc"


def tiny_zoo(root: Path):
    """Three noisy copies of a random tiny Llama and a 64-question multiple-choice task (`acc`)."""
    from tests.tiny_models import build_zoo

    members = build_zoo(root / "models", finetunes=3)
    tasks = root / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    docs = [{"prompt": f"{a}+{b}=", "choices": [str(a + b + d) for d in range(4)], "answer": 0}
            for a in range(8) for b in range(8)]
    (tasks / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tasks / f"{TINY_TASK}.yaml").write_text(
        f"task: {TINY_TASK}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tasks / 'docs.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: prompt\ndoc_to_choice: choices\n"
        "doc_to_target: answer\nmetric_list:\n  - metric: acc\n")
    spec = {"name": TINY_TASK, "metric": "acc"}
    return SimpleNamespace(root=root, base=members["base"], specialists={k: members[k] for k in ("ft1", "ft2", "ft3")},
                           tasks_dir=tasks, fitness_tasks=[spec], heldout_tasks=[])


def make_zoo(kind: str, root: Path):
    if kind == "tiny":
        return tiny_zoo(root / "tiny")
    from hubevo.demo.zoo import build_zoo

    return build_zoo(root / "demo", progress=False)


def timed(cls):
    """`cls` with every `evaluate` call's wall time (first request to last result) recorded."""

    class Timed(cls):
        windows: list[tuple[float, float]] = []
        instances: list = []
        startup_s = 0.0

        def __init__(self, run):
            began = time.perf_counter()
            super().__init__(run)
            if hasattr(self, "workers"):  # Ray: start-up counts end to end, not in the evaluation windows
                import ray

                ray.get([w.probe for w in self.workers])
                Timed.startup_s = time.perf_counter() - began
            Timed.instances.append(self)

        def evaluate(self, candidates, *, generation):
            begin = time.time()
            yield from super().evaluate(candidates, generation=generation)
            Timed.windows.append((begin, time.time()))

    return Timed


def run(cfg, backend: str, *, out_dir: Path) -> tuple[object, type, float]:
    """Evolve `cfg` on `backend`; returns the final state, the timed backend class and the wall time."""
    cls = timed(execution.BACKENDS[backend])
    execution.BACKENDS[backend] = cls
    cfg = cfg.model_copy(update={"execution": cfg.execution.model_copy(update={"backend": backend}),
                                 "output": cfg.output.model_copy(update={"dir": out_dir})})
    began = time.perf_counter()
    state = evolve(cfg, progress=False)
    return state, cls, time.perf_counter() - began


def union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def idle_fractions(spans, windows, *, stages: set[str], tail: bool = True) -> dict[int, float]:
    """Per worker: 1 - (time in `stages`) / (its windows).

    A worker's window in a generation starts at its first span there and ends at the
    generation's last result (`tail`) or at its own last span (gaps between candidates only).
    """
    result = {}
    for worker in sorted({span[0] for span in spans}):
        busy = total = 0.0
        for begin, end in windows:
            mine = [(stage, max(s, begin), min(e, end))
                    for w, stage, s, e in spans if w == worker and s < end and e > begin]
            if mine:
                total += (end if tail else max(e for *_, e in mine)) - min(s for _, s, _ in mine)
                busy += union([(s, e) for stage, s, e in mine if stage in stages])
        result[worker] = 1 - busy / total if total else float("nan")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", choices=["demo", "tiny"], default=None,
                        help="demo: hubevo.demo.zoo (the default where it exists); tiny: random tiny Llamas")
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--population", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    if args.zoo is None:
        args.zoo = "demo" if importlib.util.find_spec("hubevo.demo.zoo") else "tiny"
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    import ray

    with tempfile.TemporaryDirectory(prefix="hubevo-bench-distributed-") as tmp:
        root = Path(tmp)
        zoo = make_zoo(args.zoo, root)
        cfg = demo_config(zoo, out_dir=root / "run", generations=args.generations, population_size=args.population)
        cfg = cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"wall_time_s": None}),
                                     "execution": ExecutionConfig(backend="local", workers=args.workers)})
        local = run(cfg, "local", out_dir=root / "local")
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
        try:
            remote = run(cfg, "ray", out_dir=root / "ray")
        finally:
            ray.shutdown()
    report(args, local=local, remote=remote)


def report(args, *, local, remote) -> None:
    (lstate, lcls, ltotal), (rstate, rcls, rtotal) = local, remote
    count = len(lstate.evaluations)
    leval = sum(e - b for b, e in lcls.windows)
    reval = sum(e - b for b, e in rcls.windows)
    spans = [span for backend in rcls.instances for span in backend.spans]
    idle = idle_fractions(spans, rcls.windows, stages={"merge", "evaluate"})
    eval_idle = idle_fractions(spans, rcls.windows, stages={"evaluate"})
    same = {i: (e.status, e.fitness) for i, e in lstate.evaluations.items()} == \
           {i: (e.status, e.fitness) for i, e in rstate.evaluations.items()}
    print(f"zoo {args.zoo}: {args.generations} generations of {args.population}, {count} candidates evaluated; "
          f"ray: {args.workers} CPU workers on a {args.cpus}-CPU local cluster; host load {os.getloadavg()[0]:.1f}")
    print(f"{'':>22}{'local':>10}{'ray':>10}{'ray/local':>11}")
    print(f"{'candidates/min (eval)':>22}{60 * count / leval:>10.1f}{60 * count / reval:>10.1f}{leval / reval:>10.2f}x")
    print(f"{'candidates/min (e2e)':>22}{60 * count / ltotal:>10.1f}{60 * count / rtotal:>10.1f}"
          f"{ltotal / rtotal:>10.2f}x")
    gaps = idle_fractions(spans, rcls.windows, stages={"merge", "evaluate"}, tail=False)
    for worker in sorted(idle):
        print(f"worker {worker}: idle {100 * idle[worker]:.1f}% (goal < 10%); between its candidates "
              f"{100 * gaps[worker]:.1f}%; evaluation stage idle {100 * eval_idle[worker]:.1f}%")
    print(f"ray workers started in {rcls.startup_s:.1f} s (in e2e, not in eval)")
    sent = [d for backend in rcls.instances for d in backend.dispatched]
    retried = sum(len(backend.retried) for backend in rcls.instances)
    print(f"tail back-up copies sent: {len(sent) - len({i for i, _ in sent}) - retried} for {count} candidates")
    local_each = sum(e.seconds for e in lstate.evaluations.values()) / count
    print(f"per candidate, local: {1000 * local_each:.0f} ms (merge + evaluate)")
    merges = [e - s for _, stage, s, e in spans if stage == "merge"]
    evals = [e - s for _, stage, s, e in spans if stage == "evaluate"]
    print(f"per candidate on ray: merge {1000 * sum(merges) / max(len(merges), 1):.0f} ms, "
          f"evaluate {1000 * sum(evals) / max(len(evals), 1):.0f} ms")
    print(f"same candidates and fitness as local: {same}")


if __name__ == "__main__":
    main()
