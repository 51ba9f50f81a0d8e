"""Stage 6 at the Hub edge: a model's scores as `.eval_results/*.yaml`, the Hub's format for model pages.

The format is the one `huggingface_hub` 2.4.0 writes and parses (`EvalResultEntry`,
`eval_result_entries_to_yaml`; spec: hub-docs `eval_results.yaml`, guide: hub docs
"eval-results"): each file is a YAML list of entries
`{dataset: {id, task_id}, value, source?: {url, name}, notes?}`, and the Hub lists them on
the model page (`model_info(..., expand=["evalResults"])`).

The three kinds of score never mix: one file per split, and each entry's `notes` says which:
- `fitness.yaml`: the selection sample, the scores that chose this model;
- `validation.yaml`: the validation examples the champion is picked on;
- `heldout.yaml`: held-out tasks, scored on survivors only and never used for selection.

`dataset.id` is the task's Hub benchmark dataset when the caller knows it (`datasets`);
local lm-eval tasks have none, so they point at the run's results dataset, which holds the
scores per candidate. Entries carry no date, so the same scores always give the same bytes
(the client then skips the unchanged files).
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

FOLDER = ".eval_results"
NOTES = {
    "fitness": "hubevo fitness split: the selection sample these scores chose the model on",
    "validation": "hubevo validation split: examples the champion is picked on, apart from the fitness sample",
    "heldout": "hubevo heldout split: held-out tasks, never used for selection",
}


def eval_result_files(
    *, fitness: Mapping[str, float], validation: Mapping[str, float] | None = None,
    heldout: Mapping[str, float] | None = None, datasets: Mapping[str, str] | None = None,
    fallback_dataset: str, source_url: str | None = None, source_name: str | None = None,
) -> dict[str, bytes]:
    """Path in repo -> YAML bytes, one file per non-empty split."""
    splits = {"fitness": fitness, "validation": validation or {}, "heldout": heldout or {}}
    return {f"{FOLDER}/{split}.yaml": _yaml(entries(scores, split=split, datasets=datasets or {},
                                                    fallback_dataset=fallback_dataset, source_url=source_url,
                                                    source_name=source_name))
            for split, scores in splits.items() if scores}


def entries(
    scores: Mapping[str, float], *, split: str, datasets: Mapping[str, str], fallback_dataset: str,
    source_url: str | None, source_name: str | None,
) -> list:
    from huggingface_hub import EvalResultEntry

    return [EvalResultEntry(dataset_id=datasets.get(task, fallback_dataset), task_id=task, value=round(float(v), 6),
                            source_url=source_url, source_name=source_name if source_url else None,
                            notes=NOTES[split])
            for task, v in sorted(scores.items())]


def _yaml(items: list) -> bytes:
    from huggingface_hub import eval_result_entries_to_yaml

    return yaml.safe_dump(eval_result_entries_to_yaml(items), sort_keys=False).encode()
