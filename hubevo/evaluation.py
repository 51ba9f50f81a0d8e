"""Stage 2, evaluate: fitness and held-out scores through lm-evaluation-harness.

The loaded (in-memory) model is wrapped in lm-eval's `HFLM` and scored with
`simple_evaluate`; local tasks come from `TaskManager(include_path=...)`. Each
generation may draw a fresh seeded sample of every fitness task (lm-eval's
`samples=`), so selection does not overfit one fixed subset.

The materialiser overwrites one resident model's weights for every candidate, so one `HFLM`
serves them all: it is built again only when the resident model is another object (a merge
with another output config, a passthrough stack). `fitness.batch_size`, `max_batch_size`,
`dtype` and `hflm_kwargs` reach it as HFLM arguments.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import io
import logging
import math
import weakref
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from hubevo import guard, taskcheck
from hubevo.config import (
    HFLM_LOADING,
    HFLM_OWN,
    FitnessConfig,
    TaskSpec,
    hflm_key_problem,
)
from hubevo.errors import CandidateError, ConfigError
from hubevo.state import TaskOutcomes

log = logging.getLogger(__name__)


@functools.cache
def compile_templates_once() -> None:
    """lm-eval 0.4 compiles a task's Jinja templates (`doc_to_text`, `doc_to_target`, ...) again for every
    document it renders, several times per example: on a small model that is half of an evaluation's time.
    Its `apply_template` is replaced, once per process, by one that takes each template compiled once
    (`compiled_template`); every rendered text is the same."""
    from lm_eval import utils

    def apply_template(template: str, doc: dict) -> str:
        return compiled_template(template).render(**doc)

    utils.apply_template = apply_template


@functools.lru_cache(maxsize=1024)
def compiled_template(template: str):
    """`template` compiled by lm-eval's own Jinja environment (its filters and options)."""
    from lm_eval import utils

    return utils.env.from_string(template)


@functools.cache
def lm_class() -> type:
    """lm-eval's `HFLM`, reusable across candidates whose weights change in place.

    It holds the model weakly: the resident model belongs to the materialiser, and one it
    replaces must not stay alive (a second model in memory) through an HFLM that will not
    score it again. It keeps the 'auto' batch sizes it found per input shape: lm-eval searches
    again on every call, with forward passes at up to `max_batch_size`, and the answer only
    depends on the model's shape, which a reused HFLM's model keeps. It draws its request bars
    only when library bars are on (`hubevo.terminal`).
    """
    from lm_eval.models.huggingface import HFLM

    from hubevo.terminal import library_bars

    class QuietHFLM(HFLM):
        @property
        def _model(self):
            return self._model_ref()

        @_model.setter
        def _model(self, model):
            self._model_ref = weakref.ref(model)

        @property
        def pretrained(self):  # HFLM keeps the model it was given here too
            return self._pretrained_ref()

        @pretrained.setter
        def pretrained(self, model):
            self._pretrained_ref = weakref.ref(model)

        def _detect_batch_size(self, requests=None, pos: int = 0):
            found = self.__dict__.setdefault("_found_batch_sizes", {})
            key = (len(requests[pos][1]), len(requests[pos][2])) if requests else None
            if key not in found:
                found[key] = super()._detect_batch_size(requests, pos)
                log.debug("lm-eval's automatic batch size for inputs %s: %d", key or "of max_length", found[key])
            return found[key]

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            with library_prints():
                return super().loglikelihood(requests, disable_tqdm=disable_tqdm or not library_bars())

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            with library_prints():
                return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm or not library_bars())

        def generate_until(self, requests, disable_tqdm: bool = False):
            with library_prints():
                return super().generate_until(requests, disable_tqdm=disable_tqdm or not library_bars())

    return QuietHFLM


class _DebugLog(io.TextIOBase):
    """A stdout for library `print`s: each line goes to the debug log instead of the terminal."""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                log.debug("lm-eval: %s", line.strip())
        return len(text)


def library_prints():
    """lm-eval `print`s what its automatic batch size search finds; with library output off, it goes to the
    debug log."""
    from hubevo.terminal import library_bars

    return contextlib.nullcontext() if library_bars() else contextlib.redirect_stdout(_DebugLog())


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def forward_dtype(setting: str | None, *, device: str, weights):
    """HFLM's `mixed_precision_dtype` for `fitness.dtype`: a torch dtype to autocast to, or None (the weights' own)."""
    import torch

    if setting == "auto":
        cuda = str(device).startswith("cuda") and torch.cuda.is_available()
        setting = "bfloat16" if cuda and torch.cuda.is_bf16_supported() else None
    if setting is None or getattr(torch, setting) == weights:
        return None
    return getattr(torch, setting)


def hflm_kwargs_problems(kwargs: Mapping) -> list[str]:
    """`fitness.hflm_kwargs` keys that HFLM would not use on the resident model.

    HFLM hands keys it does not name to `from_pretrained`, which never runs for a model
    passed in, so a misspelt option would be dropped without a word.
    """
    from lm_eval.models.huggingface import HFLM

    named = inspect.signature(HFLM.__init__).parameters.values()
    accepted = {p.name for p in named if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD}
    accepted -= {"self", *HFLM_OWN, *HFLM_LOADING}
    problems = [problem for key in kwargs if (problem := hflm_key_problem(key))]
    for key in sorted(set(kwargs) - accepted - set(HFLM_OWN) - set(HFLM_LOADING)):
        close = difflib.get_close_matches(key, accepted, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(accepted))}"
        problems.append(f"fitness.hflm_kwargs.{key}: not an argument of lm-eval's HFLM; {hint}")
    return problems


def weighted_fitness(scores: dict[str, float], tasks: Sequence[TaskSpec]) -> float:
    total = sum(t.weight for t in tasks)
    return sum(t.weight * scores[t.name] for t in tasks) / total


def weighted_stderr(stderrs: dict[str, float], tasks: Sequence[TaskSpec]) -> float | None:
    """Standard error of the weighted mean of independent task scores (None if a task has none)."""
    if any(t.name not in stderrs for t in tasks):
        return None
    total = sum(t.weight for t in tasks)
    return math.sqrt(sum((t.weight / total * stderrs[t.name]) ** 2 for t in tasks))


@dataclass(frozen=True)
class Scored:
    """A candidate's score on one sample: what an Evaluation records."""

    fitness: float
    scores: dict[str, float]
    stderrs: dict[str, float]
    stderr: float | None
    examples: int
    outcomes: dict[str, TaskOutcomes] = field(default_factory=dict)


def metric_value(task_results: dict, metric: str) -> float | None:
    key = metric_key(task_results, metric)
    value = task_results.get(key) if key else None
    return None if value in (None, "N/A") else float(value)


def metric_key(task_results: dict, metric: str) -> str | None:
    """The key of `metric` in lm-eval's results of a task ('exact_match' -> 'exact_match,none')."""
    return next((k for k in task_results if k == metric or k.startswith(f"{metric},")), None)


def task_outcomes(samples: list[dict], *, key: str, weight: float) -> TaskOutcomes | None:
    """Per-example values of the metric `key` ('name,filter') from lm-eval's logged samples, in document
    order; None when the samples do not carry it."""
    name, _, filter_key = key.partition(",")
    rows = sorted((s["doc_id"], s[name]) for s in samples if name in s and (not filter_key or s.get("filter") == filter_key))
    values = [float(v) for _, v in rows]
    return TaskOutcomes(weight=weight, values=values) if values else None


def skip_per_call_provenance() -> None:
    """Stop `simple_evaluate` from collecting environment info and the git hash on every call.

    That collection runs `torch.utils.collect_env` (subprocesses) and `git describe` and took
    about 80% of a small evaluation; hubevo records the same provenance once per run instead
    (`run_environment`, written to the run directory). Idempotent; the only private lm-eval
    names hubevo touches, checked by tests/test_evaluation.py.
    """
    import lm_eval.evaluator as evaluator

    evaluator.add_env_info = _no_env_info
    evaluator.get_git_commit_hash = _no_git_hash
    quiet_request_building()


def quiet_request_building() -> None:
    """lm-eval draws a bar per task while it builds requests, with no switch to turn it off: hubevo
    hands it a bar that follows the library-bar switch (`hubevo.terminal`)."""
    import lm_eval.api.task as task_module

    task_module.tqdm = _request_bar


def _request_bar(*args, **kwargs):
    from tqdm import tqdm

    from hubevo.terminal import library_bars

    return tqdm(*args, **{"disable": not library_bars(), **kwargs})


def _no_env_info(results: dict) -> None:
    del results


def _no_git_hash() -> None:
    return None


def run_environment() -> dict:
    """lm-eval's environment record (versions, torch environment, git), once per run."""
    from lm_eval.loggers.utils import add_env_info

    record: dict = {}
    add_env_info(record)
    return record


class Evaluator:
    """Scores loaded models on the configured lm-eval tasks."""

    def __init__(self, cfg: FitnessConfig, *, device: str | None = None):
        self.cfg = cfg
        self.device = device or default_device()
        self._lms = weakref.WeakKeyDictionary()  # resident model -> the HFLM over it (a Ray worker has two)
        self._doc_count: dict[str, int] = {}  # task name -> its documents, loaded once
        skip_per_call_provenance()

    def lm(self, model, tokenizer):
        """lm-eval's HFLM over `model`: the one that scored earlier candidates in the same model object
        (weights changed in place), else a new one. ConfigError if `fitness.hflm_kwargs` does not fit HFLM."""
        lm = self._lms.get(model)
        if lm is None or lm.tokenizer is not tokenizer:
            lm = self._lms[model] = self._new_lm(model, tokenizer)
        return lm

    def _new_lm(self, model, tokenizer):
        problems = hflm_kwargs_problems(self.cfg.hflm_kwargs)
        if problems:
            raise ConfigError("lm-eval's HFLM cannot take fitness.hflm_kwargs:\n  " + "\n  ".join(problems))
        options = {"batch_size": self.cfg.batch_size, "max_batch_size": self.cfg.max_batch_size,
                   "mixed_precision_dtype": forward_dtype(self.cfg.dtype, device=self.device, weights=model.dtype),
                   **self.cfg.hflm_kwargs}
        try:
            return lm_class()(pretrained=model, tokenizer=tokenizer, device=self.device, **options)
        except (TypeError, ValueError, AssertionError) as err:  # HFLM checks its arguments with assert
            raise ConfigError(f"lm-eval's HFLM refused fitness.hflm_kwargs {self.cfg.hflm_kwargs}: {err}") from err

    @cached_property
    def task_manager(self):
        from lm_eval.tasks import TaskManager

        include = [str(p) for p in self.cfg.include_path] or None
        names = {t.name for t in (*self.cfg.tasks, *self.cfg.heldout, *self.cfg.validation)}
        if include:
            local = TaskManager(include_path=include, include_defaults=False)
            if names <= set(local.all_tasks) | set(local.all_groups):
                return local
        return TaskManager(include_path=include)

    def check_tasks(self) -> None:
        """Raise ConfigError naming any task lm-eval does not know, with close matches."""
        for path in self.cfg.include_path:
            if not path.is_dir():
                raise ConfigError(f"fitness.include_path {str(path)!r} is not a folder of lm-eval task YAML files")
        known = set(self.task_manager.all_tasks) | set(self.task_manager.all_groups) | set(self.task_manager.all_tags)
        kinds = {"tasks": "fitness task", "heldout": "held-out task", "validation": "validation task"}
        for field, spec in ((f, s) for f in kinds for s in getattr(self.cfg, f)):
            if spec.name not in known:
                close = difflib.get_close_matches(spec.name, known, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                broken = taskcheck.yaml_problems(self.cfg.include_path)
                unparsed = f"; these task files do not parse: {'; '.join(broken)}" if broken else ""
                raise ConfigError(
                    f"{kinds[field]} {spec.name!r} is unknown to lm-eval{hint} "
                    f"(fix fitness.{field}, or add its YAML folder to fitness.include_path){unparsed}"
                )
        index = self.task_manager.task_index
        configs = {t.name: index[t.name].cfg for t in self.cfg.tasks if t.name in index and index[t.name].cfg}
        guard.check_fitness_tasks(self.cfg, task_configs=configs)
        self.check_task_files(index)

    def check_task_files(self, index) -> None:
        """Data files, metrics and lm-eval arguments, all problems at once."""
        problems = taskcheck.kwargs_problems(self.cfg.lm_eval_kwargs) + hflm_kwargs_problems(self.cfg.hflm_kwargs)
        for field in ("tasks", "heldout", "validation"):
            for i, spec in enumerate(getattr(self.cfg, field)):
                cfg = index[spec.name].cfg if spec.name in index and index[spec.name].cfg else {}
                problems += taskcheck.data_file_problems(spec.name, cfg)
                problems.append(taskcheck.metric_problem(spec.name, spec.metric, cfg, field=f"fitness.{field}.{i}"))
        problems = list(dict.fromkeys(p for p in problems if p))
        if problems:
            raise ConfigError("lm-eval tasks cannot run as configured:\n  " + "\n  ".join(problems))

    def check_racing(self) -> None:
        """Racing reads example prefixes per task: a group has none (ConfigError, before any state is written)."""
        groups = [name for name, count in self.doc_counts.items() if count == 0]
        if groups:
            raise ConfigError(f"fitness.racing needs tasks, not groups ({', '.join(groups)}): "
                              "name the group's tasks in fitness.tasks")
        top = self.cfg.racing.rungs[-1]
        small = {name: count for name, count in self.doc_counts.items() if top >= count}
        if small:
            sizes = ", ".join(f"{name!r} has {count}" for name, count in small.items())
            raise ConfigError(f"fitness.racing.rungs {self.cfg.racing.rungs} reach {top} examples but {sizes}: "
                              "every rung must be smaller than each task; lower the rungs or drop racing")

    @cached_property
    def doc_counts(self) -> dict[str, int]:
        """Documents per fitness task (0 for a group)."""
        return {spec.name: self.doc_count(spec.name) for spec in self.cfg.tasks}

    def doc_count(self, name: str) -> int:
        """Documents of one task (0 for a group: its documents are not known one by one), loaded once."""
        if name not in self._doc_count:
            task = self.task_manager.load([name])["tasks"].get(name)  # None for a group
            self._doc_count[name] = len(task.eval_docs) if task is not None else 0
        return self._doc_count[name]

    @cached_property
    def split(self) -> dict[str, tuple[list[int], list[int]]] | None:
        """Per fitness task: (fitness pool, validation examples), a fixed seeded split of its documents.

        The validation examples are carved from the fitness task only when `fitness.validation`
        names no tasks of its own; they never appear in a fitness sample. None for a group task
        (its documents are not known one by one): then lm-eval's `limit` applies.
        """
        if 0 in self.doc_counts.values():
            return None
        carve = self.cfg.finalists > 0 and not self.cfg.validation
        out = {}
        for name, count in self.doc_counts.items():
            order = [int(i) for i in np.random.default_rng([self.cfg.seed, 7919, zlib.crc32(name.encode())])
                     .permutation(count)]
            held = min(count - 1, round(self.cfg.validation_fraction * count)) if carve else 0
            if self.cfg.validation_limit:
                held = min(held, self.cfg.validation_limit)
            out[name] = (order[held:], sorted(order[:held]))
        return out

    def sample_indices(self, generation: int) -> dict[str, list[int]] | None:
        """The examples every candidate of `generation` is scored on (None = lm-eval's `limit`).

        A fixed seeded sample of each task's fitness pool by default, so every score a selection
        compares is on the same examples; with `resample`, a fresh one every generation.
        """
        if self.split is None:
            return None
        rng = np.random.default_rng([self.cfg.seed, generation])
        samples = {}
        for name, (pool, _) in self.split.items():
            size = min(self.cfg.limit or len(pool), len(pool))
            chosen = rng.choice(pool, size=size, replace=False) if self.cfg.resample else pool[:size]
            samples[name] = sorted(int(i) for i in chosen)
        return samples

    def sample_key(self, generation: int) -> int | None:
        """Which sample a score of `generation` is on: the generation when resampling, else None (the fixed one)."""
        return generation if self.cfg.resample and self.split is not None else None

    def validation_samples(self) -> dict[str, list[int]] | None:
        """The validation examples per fitness task (None when `fitness.validation` names tasks): the carved
        ones and, with one fixed fitness sample (no `resample`), every pool example that sample leaves out;
        no fitness score ever saw them, and the more there are, the smaller a lead the finals can resolve.
        `validation_limit` caps them per task, carved ones first."""
        if self.cfg.validation or self.split is None:
            return None
        fixed = self.sample_indices(0) if not self.cfg.resample else None
        out = {}
        for name, (pool, carved) in self.split.items():
            sampled = set(fixed[name]) if fixed else set(pool)
            unseen = [i for i in pool if i not in sampled]
            chosen = [*carved, *unseen][:self.cfg.validation_limit] if carved else []
            if chosen:
                out[name] = sorted(chosen)
        return out

    def can_validate(self) -> bool:
        return self.cfg.finalists > 0 and bool(self.cfg.validation or self.validation_samples())

    def racing_order(self, generation: int) -> dict[str, list[int]]:
        """This generation's whole fitness sample, per task, in a seeded order; racing rungs read prefixes."""
        samples = self.sample_indices(generation)
        if samples is None:  # lm-eval's `limit`: the first documents of each task
            if 0 in self.doc_counts.values():
                raise ConfigError("fitness.racing needs tasks, not groups: name the group's tasks in fitness.tasks")
            samples = {t: list(range(min(self.cfg.limit or c, c))) for t, c in self.doc_counts.items()}
        rng = np.random.default_rng([self.cfg.seed, generation, 1])
        return {t: [idx[i] for i in rng.permutation(len(idx))] for t, idx in samples.items()}

    def score(self, model, tokenizer, *, tasks: Sequence[TaskSpec], samples=None, limit=None) -> dict[str, float]:
        """Per-task metric values for a loaded model; CandidateError if lm-eval fails or yields no metric."""
        return self.score_with_stderr(model, tokenizer, tasks=tasks, samples=samples, limit=limit)[0]

    def score_with_stderr(self, model, tokenizer, *, tasks: Sequence[TaskSpec], samples=None,
                          limit=None) -> tuple[dict[str, float], dict[str, float]]:
        """(per-task metric values, their standard errors as lm-eval computes them; missing where it has none)."""
        scores, stderrs, _ = self.score_outcomes(model, tokenizer, tasks=tasks, samples=samples, limit=limit)
        return scores, stderrs

    def score_outcomes(self, model, tokenizer, *, tasks: Sequence[TaskSpec], samples=None, limit=None,
                       outcomes: bool = False) -> tuple[dict[str, float], dict[str, float], dict[str, TaskOutcomes]]:
        """`score_with_stderr`, and with `outcomes` each task's per-example values (for paired comparisons)."""
        import lm_eval

        compile_templates_once()
        lm = self.lm(model, tokenizer)
        # bootstrap_iters > 0 lets lm-eval give mean metrics (accuracy, exact match) their closed-form stderr
        kwargs = {"bootstrap_iters": 100, "log_samples": outcomes, "verbosity": "ERROR", **self.cfg.lm_eval_kwargs}
        try:
            out = lm_eval.simple_evaluate(
                model=lm, tasks=[t.name for t in tasks], task_manager=self.task_manager,
                samples=samples, limit=None if samples else limit, **kwargs,
            )
        except (RuntimeError, ValueError) as err:  # torch OOM is a RuntimeError
            raise CandidateError(f"lm-eval failed: {type(err).__name__}: {err}") from err
        scores, stderrs = {}, {}
        for spec in tasks:
            results = out["results"].get(spec.name, {})
            value = metric_value(results, spec.metric)
            if value is None or math.isnan(value):
                raise CandidateError(f"lm-eval returned no {spec.metric!r} for task {spec.name!r}")
            scores[spec.name] = value
            stderr = metric_value(results, f"{spec.metric}_stderr")
            if stderr is not None and not math.isnan(stderr):
                stderrs[spec.name] = stderr
        weights = sum(t.weight for t in tasks)
        per_example = {spec.name: task_outcomes(out["samples"][spec.name], key=metric_key(out["results"][spec.name],
                                                                                           spec.metric),
                                                weight=spec.weight / weights)
                       for spec in tasks if outcomes and spec.name in out.get("samples", {})}
        return scores, stderrs, {t: v for t, v in per_example.items() if v is not None}

    def fitness(self, model, tokenizer, *, generation: int) -> "Scored":
        """Fitness, per-task scores, standard errors and examples used on this generation's sample."""
        samples = self.sample_indices(generation)
        return self.scored(model, tokenizer, tasks=self.cfg.tasks, samples=samples, limit=self.cfg.limit,
                           outcomes=True)

    def validate(self, model, tokenizer) -> "Scored":
        """The finals' score: the validation tasks, or the examples carved from the fitness tasks."""
        if self.cfg.validation:
            return self.scored(model, tokenizer, tasks=self.cfg.validation, limit=self.cfg.validation_limit,
                               outcomes=True)
        samples = self.validation_samples()
        return self.scored(model, tokenizer, tasks=[t for t in self.cfg.tasks if t.name in samples], samples=samples,
                           outcomes=True)

    def scored(self, model, tokenizer, *, tasks: Sequence[TaskSpec], samples=None, limit=None,
               outcomes: bool = False) -> "Scored":
        """Fitness and validation scores keep their per-example values (`outcomes`), so that two candidates
        are compared example by example on what both saw (`hubevo.ranking`)."""
        scores, stderrs, per_example = self.score_outcomes(model, tokenizer, tasks=tasks, samples=samples,
                                                           limit=limit, outcomes=outcomes)
        used = sum(len(v) for v in samples.values()) if samples else self._examples(limit, tasks)
        return Scored(fitness=weighted_fitness(scores, tasks), scores=scores, stderrs=stderrs,
                      stderr=weighted_stderr(stderrs, tasks), examples=used, outcomes=per_example)

    def heldout(self, model, tokenizer) -> dict[str, float]:
        if not self.cfg.heldout:
            return {}
        return self.score(model, tokenizer, tasks=self.cfg.heldout, limit=self.cfg.heldout_limit)

    def _examples(self, limit: int | None, tasks: Sequence[TaskSpec]) -> int:
        counts = {t.name: self.doc_count(t.name) for t in tasks}
        return sum(min(limit, c) if limit else c for c in counts.values())
