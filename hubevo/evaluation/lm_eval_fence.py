"""Stage 2's fence around lm-evaluation-harness: every use of its private API, in one module.

hubevo scores a model it already holds, many times a run, so it changes four things lm-eval does
on every `simple_evaluate` call, only for the duration of a call (`patched()`, undone on exit):

- `lm_eval.evaluator.add_env_info` and `get_git_commit_hash`: collecting the environment
  (`torch.utils.collect_env`, subprocesses) and `git describe` took about 80% of a small
  evaluation; the run records the same provenance once (`run_environment`, `env.json`);
- `lm_eval.api.task.tqdm`: the bar lm-eval draws while it builds requests, with no switch of its
  own, follows the library-bar switch (`hubevo.terminal`);
- `lm_eval.utils.apply_template`: lm-eval compiles a task's Jinja templates again for every
  document it renders, several times per example; each template is compiled once instead
  (`compiled_template`, lm-eval's own Jinja environment), and every rendered text is the same;
- `lm_eval.api.task.Task.doc_iterator`: with `samples`, lm-eval reads every document of the task
  and keeps those whose index is in the list (a list scan per document); the stand-in reads only the
  sampled documents, in the same order with the same numbering, so scoring a fifth of a large task
  (cheap fitness, racing rungs) costs a fifth of reading it.

`patched()` counts the calls inside it, so overlapping calls (the scheduler's threads) patch once
and restore when the last one leaves. `lm_class()` is lm-eval's `HFLM` with the private members
hubevo reuses a resident model through (`_model`, `pretrained`, `_detect_batch_size`).
`tests/evaluation/test_lm_eval_fence.py` fails when lm-eval changes any of them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import threading
import weakref
from collections.abc import Iterator

log = logging.getLogger("hubevo.evaluation")

_LOCK = threading.Lock()
_INSIDE = 0
_SAVED: list[tuple[object, str, object]] = []
_ORIGINAL_DOC_ITERATOR = None  # lm-eval's own Task.doc_iterator, for calls without samples


def replacements() -> list[tuple[object, str, object]]:
    """(module, attribute, hubevo's stand-in) for every lm-eval name `patched` replaces."""
    import lm_eval.api.task as task_module
    import lm_eval.evaluator as evaluator
    from lm_eval import utils

    global _ORIGINAL_DOC_ITERATOR
    if task_module.Task.__dict__["doc_iterator"] is not _doc_iterator:
        _ORIGINAL_DOC_ITERATOR = task_module.Task.__dict__["doc_iterator"]
    return [(evaluator, "add_env_info", _no_env_info), (evaluator, "get_git_commit_hash", _no_git_hash),
            (task_module, "tqdm", _request_bar), (utils, "apply_template", _apply_template),
            (task_module.Task, "doc_iterator", _doc_iterator)]


@contextlib.contextmanager
def patched() -> Iterator[None]:
    """lm-eval with hubevo's stand-ins (see the module docstring) inside the block, as it was after the last
    block still open in this process ends."""
    global _INSIDE
    with _LOCK:
        if _INSIDE == 0:
            for module, name, stand_in in replacements():
                _SAVED.append((module, name, getattr(module, name)))
                setattr(module, name, stand_in)
        _INSIDE += 1
    try:
        yield
    finally:
        with _LOCK:
            _INSIDE -= 1
            if _INSIDE == 0:
                while _SAVED:
                    module, name, original = _SAVED.pop()
                    setattr(module, name, original)


def _no_env_info(results: dict) -> None:
    del results


def _no_git_hash() -> None:
    return None


def _request_bar(*args, **kwargs):
    from tqdm import tqdm

    from hubevo.terminal import library_bars

    return tqdm(*args, **{"disable": not library_bars(), **kwargs})


def _doc_iterator(self, *, rank: int = 0, limit: int | None = None, world_size: int = 1, samples=None):
    """lm-eval's `Task.doc_iterator`, reading only the sampled documents when `samples` is given."""
    from lm_eval import utils

    if not samples:
        return _ORIGINAL_DOC_ITERATOR(self, rank=rank, limit=limit, world_size=world_size, samples=samples)
    docs = self.eval_docs
    chosen = sorted(set(samples))
    if chosen[-1] >= len(docs) or chosen[0] < 0:
        raise ValueError(f"{self.config.task}: samples must lie in [0, {len(docs) - 1}], got {chosen[0]}..{chosen[-1]}")
    return utils.create_iterator(enumerate(docs[i] for i in chosen), rank=int(rank), limit=None,
                                 world_size=int(world_size))


def _apply_template(template: str, doc: dict) -> str:
    return compiled_template(template).render(**doc)


@functools.lru_cache(maxsize=1024)
def compiled_template(template: str):
    """`template` compiled by lm-eval's own Jinja environment (its filters and options)."""
    from lm_eval import utils

    return utils.env.from_string(template)


def run_environment() -> dict:
    """lm-eval's environment record (versions, torch environment, git), once per run."""
    from lm_eval.loggers.utils import add_env_info

    record: dict = {}
    add_env_info(record)
    return record


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
