"""The benchmark guard (stage 2): refuse to select on well-known test sets.

Selecting on a benchmark's test split turns its score into a training signal: the evolved
model's number on that benchmark no longer measures anything. A fitness task is refused
when its name is a well-known benchmark's (lm-eval's names, with their variants such as
`mmlu_anatomy` or `gsm8k_cot`), or its dataset is one, unless the task evaluates a
training split, or `fitness.allow_test_sets` says the run does it knowingly. Held-out
tasks may be test sets (that is what they are for); they are never part of the fitness.
Groups and tags are expanded to their tasks first (`leaf_tasks`): a fitness group holding a
test set is refused like the test set, and a held-out or validation group that holds a
fitness task (or a fitness group that holds one of theirs) is refused by `check_apart`.
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


def check_fitness_tasks(cfg: FitnessConfig, *, task_configs: Mapping[str, Mapping] | None = None,
                        leaves: Mapping[str, set[str]] | None = None) -> None:
    """Raise ConfigError for a fitness task on a well-known test set, unless `allow_test_sets`; a group (or tag)
    is checked through its tasks, `leaves` (fitness name -> the tasks it stands for, `leaf_tasks`)."""
    task_configs, leaves = task_configs or {}, leaves or {}
    found = {s.name: hit for s in cfg.tasks if (hit := test_set_of(s, task_configs.get(s.name))
                                                 or _group_test_set(s.name, leaves, task_configs))}
    if found and not cfg.allow_test_sets:
        listed = "; ".join(f"{name!r} is {hit}" for name, hit in found.items())
        raise ConfigError(
            f"fitness tasks select on well-known test sets: {listed}. Selecting on a test set makes its score "
            "meaningless as a result: evolve on a training split or your own data, keep the benchmark in "
            "fitness.heldout, or set fitness.allow_test_sets: true to optimise on it knowingly"
        )
    if found:
        log.warning("fitness.allow_test_sets: knowingly selecting on test sets %s", ", ".join(found))


def _group_test_set(name: str, leaves: Mapping[str, set[str]], task_configs: Mapping[str, Mapping]) -> str | None:
    """The first test set among the tasks of group `name`, as `test_set_of` names it, with the group."""
    for leaf in sorted(leaves.get(name, set()) - {name}):
        if hit := test_set_of(TaskSpec(name=leaf), task_configs.get(leaf)):
            return f"{hit} in group {name}"
    return None


def leaf_tasks(name: str, index: Mapping, *, seen: frozenset[str] = frozenset()) -> set[str]:
    """The tasks `name` stands for in lm-eval's task index (name -> entry with `kind`, `cfg`, `tags`): a task
    itself, a tag its tasks, a group the tasks of its `task:` list, nested groups and tags expanded."""
    entry = index.get(name)
    kind = getattr(getattr(entry, "kind", None), "name", None)
    if name in seen or kind not in ("GROUP", "TAG"):
        return {name}
    seen = seen | {name}
    children = sorted(entry.tags) if kind == "TAG" else (entry.cfg or {}).get("task") or []
    return set().union(*(_child_tasks(child, index, seen=seen) for child in
                          (children if isinstance(children, list) else [children])))


def _child_tasks(child, index: Mapping, *, seen: frozenset[str]) -> set[str]:
    """The tasks of one item of a group's `task:` list: a name, `{task: name, ...}`, or `{group: name, task: [...]}`
    (a group of the index, or one defined inline)."""
    if isinstance(child, str):
        return leaf_tasks(child, index, seen=seen)
    if not isinstance(child, Mapping):
        return set()
    if "group" in child and child["group"] not in index:
        inner = child.get("task") or []
        return set().union(*(_child_tasks(c, index, seen=seen) for c in (inner if isinstance(inner, list)
                                                                          else [inner])))
    name = child.get("group", child.get("task"))
    return leaf_tasks(name, index, seen=seen) if isinstance(name, str) else set()


APART = {"heldout": "selection would see the held-out set, so its score would not be held out",
         "validation": "the finals would pick the champion on the examples selection already saw"}


def check_apart(cfg: FitnessConfig, *, index: Mapping) -> None:
    """Raise ConfigError when a held-out or validation entry and a fitness entry share a task once groups and tags
    are expanded (equal names are refused by the config itself), naming both and the task."""
    fitness = {spec.name: leaf_tasks(spec.name, index) for spec in cfg.tasks}
    for field, why in APART.items():
        for spec in getattr(cfg, field):
            mine = leaf_tasks(spec.name, index)
            for name, theirs in fitness.items():
                if shared := sorted(mine & theirs):
                    raise ConfigError(
                        f"fitness.{field} {_kind(spec.name, mine)} {spec.name!r} and fitness.tasks "
                        f"{_kind(name, theirs)} {name!r} share task {', '.join(map(repr, shared))}: {why}; give "
                        f"fitness.{field} tasks apart from the fitness tasks (another split or data), or leave it "
                        "empty")


def _kind(name: str, leaves: set[str]) -> str:
    return "task" if leaves == {name} else "group"
