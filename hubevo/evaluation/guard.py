"""The benchmark guard (stage 2): refuse to select on well-known test sets.

Selecting on a benchmark's test split turns its score into a training signal: the evolved
model's number on that benchmark no longer measures anything. A fitness task is refused
when its name is a well-known benchmark's (lm-eval's names, with their variants such as
`mmlu_anatomy` or `gsm8k_cot`), or its dataset is one, unless the task evaluates a
training split, or `fitness.allow_test_sets` says the run does it knowingly. Held-out
tasks may be test sets (that is what they are for); they are never part of the fitness.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from hubevo.config import FitnessConfig, TaskSpec
from hubevo.errors import ConfigError

log = logging.getLogger("hubevo")

# lm-eval task (and group) names of benchmarks reported as test results; variants add "_...".
TEST_SETS = (
    "mmlu", "mmlu_pro", "mmlu_redux", "cmmlu", "kmmlu", "global_mmlu", "gsm8k", "gsm8k_platinum", "gsm_plus", "mgsm",
    "arc_easy", "arc_challenge", "ai2_arc", "hellaswag", "winogrande", "truthfulqa", "bbh", "gpqa", "ifeval",
    "humaneval", "mbpp", "hendrycks_math", "minerva_math", "leaderboard", "openllm", "piqa", "siqa", "boolq",
    "openbookqa", "commonsense_qa", "lambada", "triviaqa", "nq_open", "drop", "race", "sciq", "agieval",
    "bigbench", "musr", "mathqa", "logiqa", "xnli", "xcopa", "xstorycloze", "xwinograd", "anli", "aime",
    "japanese_leaderboard", "tinybenchmarks", "metabench",
)
# Hugging Face dataset names (the part after the org), normalised like task names.
TEST_DATASETS = (
    "mmlu", "mmlu_no_train", "mmlu_pro", "gsm8k", "mgsm", "ai2_arc", "hellaswag", "winogrande", "truthful_qa",
    "truthfulqa", "bbh", "big_bench_hard", "gpqa", "ifeval", "openai_humaneval", "humaneval", "mbpp",
    "hendrycks_math", "competition_math", "math_500", "piqa", "social_i_qa", "boolq", "openbookqa",
    "commonsense_qa", "lambada", "lambada_openai", "trivia_qa", "nq_open", "drop", "race", "sciq", "musr",
)


def _normal(name: str) -> str:
    return name.strip().lower().replace("-", "_").split("/")[-1]


def _matches(name: str, known: tuple[str, ...]) -> str | None:
    name = _normal(name)
    return next((k for k in known if name == k or name.startswith(f"{k}_")), None)


def eval_split(task_cfg: Mapping) -> str | None:
    """The split lm-eval scores a task on: its test split, else its validation split."""
    return task_cfg.get("test_split") or task_cfg.get("validation_split")


def test_set_of(spec: TaskSpec, task_cfg: Mapping | None) -> str | None:
    """The benchmark `spec` evaluates a test (or validation) split of, or None."""
    if task_cfg is not None and "train" in str(eval_split(task_cfg) or "").lower():
        return None  # a benchmark's training split is fair game (the paper evolves on GSM8K train)
    by_name = _matches(spec.name, TEST_SETS)
    dataset = (task_cfg or {}).get("dataset_path")
    by_data = _matches(str(dataset), TEST_DATASETS) if dataset else None
    if by_name or by_data:
        return f"{by_name or by_data} ({'task ' + spec.name if by_name else 'dataset ' + str(dataset)})"
    return None


def check_fitness_tasks(cfg: FitnessConfig, *, task_configs: Mapping[str, Mapping] | None = None) -> None:
    """Raise ConfigError for a fitness task on a well-known test set, unless `allow_test_sets`."""
    task_configs = task_configs or {}
    found = {s.name: hit for s in cfg.tasks if (hit := test_set_of(s, task_configs.get(s.name)))}
    if found and not cfg.allow_test_sets:
        listed = "; ".join(f"{name!r} is {hit}" for name, hit in found.items())
        raise ConfigError(
            f"fitness tasks select on well-known test sets: {listed}. Selecting on a test set makes its score "
            "meaningless as a result: evolve on a training split or your own data, keep the benchmark in "
            "fitness.heldout, or set fitness.allow_test_sets: true to optimise on it knowingly"
        )
    if found:
        log.warning("fitness.allow_test_sets: knowingly selecting on test sets %s", ", ".join(found))
