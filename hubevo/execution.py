"""Stage 2's engine: where candidates are materialised and scored.

`local` evaluates one candidate at a time in this process with one resident model.
Other backends (a Ray cluster) implement the same `evaluate` and yield evaluations
as they finish; the driver's run state stays the single source of truth.
"""

from __future__ import annotations

import importlib
import json
import logging
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hubevo.errors import CandidateError, ConfigError, UnknownNameError
from hubevo.genome import Individual
from hubevo.state import Evaluation

if TYPE_CHECKING:
    from hubevo.loop import Run

log = logging.getLogger("hubevo")


def score_candidate(run: "Run", ind: Individual, *, generation: int) -> Evaluation:
    """Materialise `ind` in the resident model and score it; a failure becomes a failed Evaluation."""
    started = time.perf_counter()
    try:
        if ind.finetune is not None:
            train_candidate(run, ind)
        model = run.materializer.materialize(run.merge_config(ind))
        fitness, scores, used = run.evaluator.fitness(model, run.tokenizer, generation=generation)
    except CandidateError as err:
        log.warning("candidate %s failed: %s", ind.name, err)
        return Evaluation(id=ind.id, generation=generation, status="failed", reason=str(err),
                          seconds=time.perf_counter() - started)
    return Evaluation(id=ind.id, generation=generation, status="ok", fitness=fitness, scores=scores,
                      examples=used, seconds=time.perf_counter() - started)


def train_candidate(run: "Run", ind: Individual) -> None:
    """Fine-tune `ind`'s parent into `candidates/<id>` (once: a finished folder is reused on resume)."""
    from hubevo.finetune import finetune

    folder = run.run_dir / "candidates" / ind.id
    if not (folder / "config.json").is_file():
        tmp = folder.with_name(f".{ind.id}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        metrics = finetune(Path(run.paths[ind.finetune.parent]), ind.finetune, out_dir=tmp,
                           device=run.evaluator.device)
        (tmp / "training.json").write_text(json.dumps(metrics, indent=1))
        tmp.rename(folder)
    run.state.training[ind.id] = json.loads((folder / "training.json").read_text())
    run.paths[ind.id] = str(folder)


class LocalBackend:
    """One candidate at a time, in this process."""

    name = "local"

    def __init__(self, run: "Run"):
        self.run = run

    def evaluate(self, candidates: Iterable[Individual], *, generation: int) -> Iterator[Evaluation]:
        for ind in candidates:
            yield score_candidate(self.run, ind, generation=generation)

    def close(self) -> None:
        pass


# A string entry ("module:Class") is imported on first use, so `local` runs without Ray installed.
BACKENDS = {"local": LocalBackend, "ray": "hubevo.execution_ray:RayBackend"}


def get_backend(name: str):
    if name not in BACKENDS:
        raise UnknownNameError(f"unknown execution backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    backend = BACKENDS[name]
    if isinstance(backend, str):
        module, _, attr = backend.partition(":")
        try:
            backend = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as err:
            raise ConfigError(
                f"execution.backend {name!r} needs {err.name!r}, which is not installed; "
                f"pip install 'hubevo[{name}]' (or set execution.backend: local)"
            ) from err
    return backend
