"""The benchmark guard: well-known test sets are refused as fitness unless the config knowingly allows them."""

import logging

import pytest
from pydantic import ValidationError

from hubevo.config import FitnessConfig
from hubevo.errors import ConfigError
from hubevo.evaluation.evaluator import Evaluator
from hubevo.evaluation.guard import check_fitness_tasks

TASK_YAML = """task: {name}
dataset_path: {dataset}
{data_files}test_split: {split}
output_type: generate_until
doc_to_text: "{{{{q}}}}"
doc_to_target: "{{{{a}}}}"
generation_kwargs:
  until: ["\\n"]
metric_list:
  - metric: exact_match
"""


def write_task(folder, name, *, dataset="json", split="test"):
    data = f"dataset_kwargs:\n  data_files:\n    {split}: {folder / 'data.jsonl'}\n" if dataset == "json" else ""
    (folder / "data.jsonl").write_text('{"q": "1+1=", "a": "2"}\n')
    (folder / f"{name}.yaml").write_text(TASK_YAML.format(name=name, dataset=dataset, data_files=data, split=split))


@pytest.mark.parametrize("name", ["mmlu", "mmlu_anatomy", "gsm8k", "gsm8k_cot", "arc_challenge", "hellaswag",
                                  "winogrande", "truthfulqa_mc2", "leaderboard_bbh", "MMLU-Pro"])
def test_well_known_test_sets_are_refused_by_name(name):
    with pytest.raises(ConfigError, match="allow_test_sets") as err:
        check_fitness_tasks(FitnessConfig(tasks=[name, "my_own_task"]))
    assert name in str(err.value) and "my_own_task" not in str(err.value)


def test_own_tasks_pass_and_allow_test_sets_lets_a_benchmark_through(caplog):
    check_fitness_tasks(FitnessConfig(tasks=["demo_add_fitness", "arcade_questions", "gsm_like_mine"]))
    with caplog.at_level(logging.WARNING, logger="hubevo"):
        check_fitness_tasks(FitnessConfig(tasks=["gsm8k"], allow_test_sets=True))
    assert "knowingly" in caplog.text


def test_a_renamed_task_over_a_benchmark_dataset_is_refused_unless_it_reads_the_train_split():
    cfg = FitnessConfig(tasks=["my_math"])
    with pytest.raises(ConfigError, match="openai/gsm8k"):
        check_fitness_tasks(cfg, task_configs={"my_math": {"dataset_path": "openai/gsm8k", "test_split": "test"}})
    check_fitness_tasks(cfg, task_configs={"my_math": {"dataset_path": "openai/gsm8k", "test_split": "train"}})


def test_heldout_tasks_may_be_test_sets_but_never_fitness_tasks():
    check_fitness_tasks(FitnessConfig(tasks=["my_task"], heldout=["mmlu", "gsm8k"]))
    with pytest.raises(ValidationError, match="fitness.heldout repeats fitness task.*'my_task'.*separate task"):
        FitnessConfig(tasks=["my_task", "other"], heldout=["mmlu", "my_task"])


def test_the_evaluator_refuses_before_any_merge(tmp_path):
    write_task(tmp_path, "hellaswag_mini")
    write_task(tmp_path, "own_train_view", dataset="Rowan/hellaswag", split="train")
    write_task(tmp_path, "own_view", dataset="Rowan/hellaswag", split="validation")
    with pytest.raises(ConfigError, match="hellaswag_mini"):
        Evaluator(FitnessConfig(tasks=["hellaswag_mini"], include_path=[tmp_path])).tasks.check()
    with pytest.raises(ConfigError, match="Rowan/hellaswag"):
        Evaluator(FitnessConfig(tasks=["own_view"], include_path=[tmp_path])).tasks.check()
    Evaluator(FitnessConfig(tasks=["own_train_view"], include_path=[tmp_path])).tasks.check()
    Evaluator(FitnessConfig(tasks=["hellaswag_mini"], include_path=[tmp_path], allow_test_sets=True)).tasks.check()
