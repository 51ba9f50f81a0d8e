"""Stage 5, mutate by fine-tuning: reading the preference (or instruction) data a mutation trains on.

The edge with `datasets`: a local file or folder, or a Hub dataset read at a resolved
commit. `load_pairs` returns a seeded sample with our column names; `check_sources`
reads one row of each configured source so that bad paths and columns fail before a run, and
`file_problems` reads local files without `datasets`, for the run's preflight.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from hubevo.config.finetune import LOCAL_FORMATS, FinetuneSpace, PreferenceSource
from hubevo.errors import CandidateError, ConfigError
from hubevo.evaluation.taskcheck import data_content_problem
from hubevo.files import MISSING, Problem, folder_problem
from hubevo.finetune.operators import required_columns

log = logging.getLogger("hubevo")

def load_pairs(source: PreferenceSource, *, operator: str = "dpo", samples: int, seed: int):
    """A seeded sample of `samples` rows with our column names (prompt/chosen/rejected or prompt/completion).

    Rows with an empty required field are dropped after sampling. Missing columns raise a
    `ConfigError` that lists the columns found; an empty sample raises `CandidateError`.
    """
    return _load(source, operator=operator, samples=samples, seed=seed)[0]


def check_sources(space: FinetuneSpace) -> None:
    """Read one row of every dataset in `space`, so that bad paths and columns fail before a run starts; a dataset
    with fewer rows than a fine-tune draws (`samples`) is warned about, in one line."""
    for i, source in enumerate(space.datasets):
        data, _ = _open(source)
        _sample(data, source=source, operator=space.operator, samples=1, seed=0)
        if len(data) < space.samples:
            log.warning(few_rows(space, i, rows=len(data)))


def few_rows(space: FinetuneSpace, i: int, *, rows: int) -> str:
    """The warning for dataset `i` of `space`, which holds `rows` rows, fewer than `space.samples`."""
    unit = "pair" if "rejected" in required_columns(space.operator) else "row"
    batch = f", and than one batch (batch_size {space.batch_size})" if rows < space.batch_size else ""
    return (f"mutation.finetune.datasets.{i}: preference dataset {space.datasets[i].path!r} holds {rows} {unit}"
            f"{'s' if rows != 1 else ''}, fewer than the {space.samples} each fine-tune draws (samples){batch}: every "
            f"fine-tune trains on the same {rows} over and over; add {unit}s, or lower mutation.finetune.samples")


def file_problems(space: FinetuneSpace, *, field: str = "mutation.finetune.datasets") -> list[str]:
    """Local preference files and folders that cannot be read, or files that are empty or not in their format
    (missing ones: `check_sources`)."""
    wanted = ", ".join(f'"{name}"' for name in required_columns(space.operator))
    problems = []
    for i, source in enumerate(space.datasets):
        problem = local_problem(Path(source.path).expanduser())
        if problem is not None and problem != MISSING:
            problems.append(f"{field}.{i}: preference dataset {source.path!r} {problem.text}; "
                            f"{problem.fix or f'give one JSON object per line with {wanted}'}")
    return problems


def local_problem(path: Path) -> Problem | None:
    """Why a local preference source cannot be read: a file by its suffix (`LOCAL_FORMATS`) that is missing, a
    folder, unreadable, not UTF-8 or not in its format; a folder this user may not read. None otherwise."""
    if path.suffix in LOCAL_FORMATS:
        return data_content_problem(path, loader=LOCAL_FORMATS[path.suffix])
    return folder_problem(path) if path.is_dir() else None


def _load(source: PreferenceSource, *, operator: str, samples: int, seed: int):
    """(seeded sample as a `datasets.Dataset` with our column names, revision string)."""
    data, revision = _open(source)
    return _sample(data, source=source, operator=operator, samples=samples, seed=seed), revision


def _sample(data, *, source: PreferenceSource, operator: str, samples: int, seed: int):
    """A seeded sample of `samples` rows of the split `data`, as a `datasets.Dataset` with our column names."""
    from datasets import Dataset

    mapping = _mapping(source, operator=operator, found=list(data.column_names))
    count = min(samples, len(data))
    order = np.random.default_rng(seed).choice(len(data), size=count, replace=False) if count else []
    data = data.select([int(i) for i in order]).select_columns(sorted(set(mapping.values())))
    rows = [{ours: row[theirs] for ours, theirs in mapping.items()} for row in data]
    rows = [row for row in rows if all(value not in (None, "", []) for value in row.values())]
    if not rows:
        raise CandidateError(
            f"preference dataset {source.path!r} gave an empty sample ({len(data)} of {samples} rows drawn, "
            "none with every required column filled); add rows or pick another dataset"
        )
    return Dataset.from_list(rows)


def _open(source: PreferenceSource):
    """(dataset split, revision string) of a local file/folder or a Hub dataset (the whole split is fetched once)."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetGenerationError, DatasetNotFoundError

    path = Path(source.path).expanduser()
    if source.is_local() and not path.exists():
        raise ConfigError(f"preference dataset {source.path!r} does not exist; give an existing file or a Hub id")
    if path.is_file() and path.suffix not in LOCAL_FORMATS:
        raise ConfigError(f"preference dataset {source.path!r}: local files must be {', '.join(LOCAL_FORMATS)}")
    if source.is_local() and (problem := local_problem(path)) is not None:
        fix = problem.fix or "give one JSON object per line with the columns of its operator"
        raise ConfigError(f"preference dataset {source.path!r} {problem.text}; {fix}")
    try:
        if path.is_file():
            data, revision = load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split=source.split), \
                _file_digest(path)
        elif path.is_dir():
            data, revision = load_dataset(str(path), split=source.split), _file_digest(path)
        else:
            revision = _hub_revision(source)
            data = load_dataset(source.path, revision=revision, split=source.split)
    except (DatasetNotFoundError, DatasetGenerationError, FileNotFoundError, ValueError, StopIteration) as err:
        # datasets answers an empty file with a bare StopIteration and a garbage one with DatasetGenerationError
        reason = _reason(err)
        raise ConfigError(f"cannot read preference dataset {source.path!r} (split {source.split!r}): {reason}; "
                          "give a JSON Lines, JSON or Parquet file (or a Hub dataset) with rows") from None
    if len(data) == 0:
        raise ConfigError(f"preference dataset {source.path!r} (split {source.split!r}) holds no rows; add rows "
                          "or pick another dataset")
    return data, revision


def _reason(err: BaseException) -> str:
    """One line for a `datasets` error: its message, or the message of what it was raised from."""
    if isinstance(err, StopIteration):
        return "it holds no rows"
    cause = err.__cause__ or err.__context__
    text = str(err) if cause is None or isinstance(err, (FileNotFoundError, ValueError)) else f"{err} ({cause})"
    return " ".join(text.split()) or type(err).__name__


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.read_bytes())
    return f"sha256:{digest.hexdigest()[:16]}"


def _hub_revision(source: PreferenceSource) -> str | None:
    """The commit sha of a Hub dataset at `source.revision` (the revision as given when offline)."""
    from huggingface_hub import constants

    from hubevo.hub.download import dataset_sha

    if constants.HF_HUB_OFFLINE:
        return source.revision
    return dataset_sha(source.path, revision=source.revision, missing=ConfigError)


def _mapping(source: PreferenceSource, *, operator: str, found: list[str]) -> dict[str, str]:
    """Our column name -> the dataset's; sft falls back to `chosen` as the completion of a preference set."""
    mapping = {name: source.columns.get(name, name) for name in required_columns(operator)}
    chosen = source.columns.get("chosen", "chosen")
    if operator == "sft" and "completion" not in source.columns and "completion" not in found and chosen in found:
        mapping["completion"] = chosen
    missing = {ours: theirs for ours, theirs in mapping.items() if theirs not in found}
    if missing:
        wanted = ", ".join(o if o == t else f"{o} (mapped to {t!r})" for o, t in missing.items())
        raise ConfigError(
            f"preference dataset {source.path!r} lacks column(s) {wanted} for operator {operator!r}; "
            f"found columns: {', '.join(found) or 'none'}; map yours with `columns`, e.g. {{prompt: question}}"
        )
    return mapping


def require_chat_template(pairs, tokenizer, *, source: PreferenceSource) -> None:
    """Fail the child when conversational data meets a tokenizer that cannot format it."""
    from trl.data_utils import is_conversational

    if is_conversational(pairs[0]) and not getattr(tokenizer, "chat_template", None):
        raise CandidateError(
            f"preference dataset {source.path!r} is conversational (lists of messages) but the parent's tokenizer "
            "has no chat template; use plain-text prompts or a model whose tokenizer defines chat_template"
        )
