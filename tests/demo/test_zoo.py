"""The demo zoo builds once, loads with Auto* classes, is reused from its cache, and its
lm-eval tasks load from any working directory; specialists and merges behave as the demo needs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from transformers import AutoModelForCausalLM, AutoTokenizer

from hubevo.demo import FITNESS_TASKS, HEADLINE_TASK, HELDOUT_TASKS, Zoo, build_zoo, data, render_tasks
from hubevo.demo import zoo as zoo_module
from hubevo.demo.tokenizer import build_tokenizer


@pytest.fixture(scope="session")
def zoo_cache(demo_zoo_cache: Path) -> Path:
    return demo_zoo_cache


@pytest.fixture(scope="session")
def zoo(demo_zoo: Zoo) -> Zoo:
    return demo_zoo


def _members(zoo: Zoo) -> dict[str, Path]:
    return {"base": zoo.base, **zoo.specialists}


def _lm_eval_scores(path: Path, zoo: Zoo, tasks: list[str], *, limit: int) -> dict[str, float]:
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    results = simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, device="cpu", batch_size=64),
        tasks=tasks,
        task_manager=TaskManager(include_path=str(zoo.tasks_dir), include_defaults=False),
        limit=limit,
    )
    return {task: results["results"][task]["exact_match,none"] for task in tasks}


def test_tokenizer_prepends_bos_and_round_trips() -> None:
    tokenizer = build_tokenizer()
    ids = tokenizer("5213#")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and len(ids) == 6
    assert tokenizer.decode(ids, skip_special_tokens=True) == "5213#"
    chat = [{"role": "user", "content": "dbca>"}, {"role": "assistant", "content": "abcd"}]
    assert tokenizer.apply_chat_template(chat, tokenize=False) == "dbca>abcd</s>"


def test_training_encoding_matches_the_tokenizer() -> None:
    tokenizer = build_tokenizer()
    examples = data.skill_splits("digits")["heldout"][:3] + data.general_examples("copy_letters")[:3]
    ids, labels = zoo_module._encode(tokenizer, examples, length=20)
    for example, row, row_labels in zip(examples, ids.tolist(), labels.tolist(), strict=True):
        expected = tokenizer(example["prompt"] + example["answer"])["input_ids"] + [tokenizer.eos_token_id]
        assert row[: len(expected)] == expected and set(row[len(expected) :]) == {tokenizer.pad_token_id}
        scored = [token for token in row_labels if token != -100]
        assert tokenizer.decode(scored) == example["answer"] + tokenizer.eos_token


def test_splits_are_disjoint_and_shipped_data_matches_the_generator() -> None:
    for skill in data.SKILLS:
        splits = {split: {ex["prompt"] for ex in examples} for split, examples in data.skill_splits(skill).items()}
        assert len(splits["fitness"]) == len(splits["heldout"]) == len(splits["validation"]) == data.EVAL_SIZE
        for first, second in itertools.combinations(splits.values(), 2):
            assert not first & second
    for name, examples in data.eval_files().items():
        shipped = data.read_jsonl(zoo_module.TEMPLATES_DIR / name)
        assert shipped == examples, f"{name} is stale: regenerate with python -m hubevo.demo.data"


def test_near_misses_are_wrong_but_plausible() -> None:
    rng = np.random.default_rng(0)
    for skill in data.SKILLS:
        for example in data.skill_splits(skill)["train"][:200]:
            misses = data.near_misses(example, rng=rng)
            assert misses and example["answer"] not in misses
            assert all(len(miss) >= len(example["answer"]) - 1 for miss in misses)


def test_task_templates_leave_room_for_the_longest_answer_and_eos() -> None:
    for template in zoo_module.TEMPLATES_DIR.glob("*.yaml"):
        config = yaml.safe_load(template.read_text())
        assert config["generation_kwargs"]["max_gen_toks"] >= data.MAX_ANSWER_LENGTH + 1, template.name
        assert config["generation_kwargs"]["until"] == ["\n"] and config["num_fewshot"] == 0


def test_every_member_loads_with_auto_classes(zoo: Zoo) -> None:
    for name, path in _members(zoo).items():
        model = AutoModelForCausalLM.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        assert (path / "model.safetensors").is_file(), name
        assert model.dtype == torch.float32 and model.config.vocab_size == len(tokenizer)
        assert tokenizer.chat_template and tokenizer("ab")["input_ids"][0] == tokenizer.bos_token_id


def test_specialists_beat_the_base_on_their_own_skill_in_lm_eval(zoo: Zoo) -> None:
    scores = {name: _lm_eval_scores(path, zoo, FITNESS_TASKS, limit=100) for name, path in _members(zoo).items()}
    for skill in zoo.specialists:
        task = f"demo_{skill}"
        assert scores[skill][task] >= scores["base"][task] + 0.2, scores


def test_a_linear_merge_beats_every_specialist_on_the_headline_task(zoo: Zoo, tmp_path: Path) -> None:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    config = {
        "merge_method": "linear",
        "models": [{"model": str(path), "parameters": {"weight": 0.5}} for path in zoo.specialists.values()],
        "dtype": "float32",
    }
    options = MergeOptions(write_model_card=False, quiet=True)
    run_merge(MergeConfiguration.model_validate(config), str(tmp_path / "merged"), options=options)
    merged = _lm_eval_scores(tmp_path / "merged", zoo, [HEADLINE_TASK], limit=200)[HEADLINE_TASK]
    for skill, path in zoo.specialists.items():
        assert merged >= _lm_eval_scores(path, zoo, [HEADLINE_TASK], limit=200)[HEADLINE_TASK] + 0.1, skill


def test_second_build_reuses_the_cache_without_training(
    zoo: Zoo, zoo_cache: Path | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = [path / "model.safetensors" for path in _members(zoo).values()]
    mtimes = [path.stat().st_mtime_ns for path in weights]

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("build_zoo retrained a complete cached zoo")

    monkeypatch.setattr(zoo_module, "_train_zoo", fail)
    again = build_zoo(zoo_cache, progress=False)  # how much faster than a build: bench/zoo_cache.py
    assert again == zoo
    assert [path.stat().st_mtime_ns for path in weights] == mtimes


def test_a_folder_without_its_marker_is_not_complete(tmp_path: Path) -> None:
    (tmp_path / "seed-0" / "base").mkdir(parents=True)
    assert not zoo_module._is_complete(tmp_path / "seed-0", zoo_module.ZOO_RECIPES["fast"])


def test_the_cache_lives_in_the_users_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HUBEVO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert zoo_module.default_cache_dir() == tmp_path / "xdg" / "hubevo" / "zoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert zoo_module.default_cache_dir() == Path.home() / ".cache" / "hubevo" / "zoo"
    monkeypatch.setenv("HUBEVO_CACHE", str(tmp_path / "mine"))
    assert zoo_module.default_cache_dir() == tmp_path / "mine"


def test_a_changed_recipe_or_training_code_names_a_new_cache_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fast = zoo_module.ZOO_RECIPES["fast"]
    folder = fast.folder(0)
    assert folder.startswith("fast-seed-0-") and fast.folder(0) == folder  # the same recipe: the same folder
    assert fast.folder(1) != folder and zoo_module.ZOO_RECIPES["hard"].folder(0) != folder
    longer = fast.model_copy(update={"base": fast.base.model_copy(update={"steps": fast.base.steps + 1})})
    assert longer.folder(0) != folder
    copies = [tmp_path / source.name for source in zoo_module.TRAINING_CODE]
    for source, copy in zip(zoo_module.TRAINING_CODE, copies, strict=True):
        copy.write_bytes(source.read_bytes())
    monkeypatch.setattr(zoo_module, "TRAINING_CODE", copies)
    assert fast.folder(0) == folder  # the key is the code's content, wherever it lies
    (tmp_path / "data.py").write_text((tmp_path / "data.py").read_text() + "\n# an edit\n")
    assert fast.folder(0) != folder


def test_a_fresh_build_has_the_weights_of_the_cached_zoo(zoo: Zoo, tmp_path: Path) -> None:
    """Training is deterministic, and the cache key covers what decides the weights: the zoo the tests share
    from the user's cache equals one trained now from nothing."""
    fresh = build_zoo(tmp_path, progress=False)
    assert fresh.root.name == zoo.root.name
    recorded = json.loads((zoo.root / zoo_module.MARKER).read_text())["weights_sha256"]
    assert fresh.weights_hash() == zoo.weights_hash() == recorded


def test_rendered_tasks_use_absolute_paths_and_load_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks_dir = render_tasks(tmp_path / "tasks")
    assert tasks_dir.is_absolute()
    for config_path in tasks_dir.glob("*.yaml"):
        for data_file in yaml.safe_load(config_path.read_text())["dataset_kwargs"]["data_files"].values():
            assert Path(data_file).is_absolute() and Path(data_file).is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    manager = TaskManager(include_path=str(tasks_dir), include_defaults=False)
    assert set(FITNESS_TASKS + HELDOUT_TASKS + zoo_module.VALIDATION_TASKS) <= set(manager.all_tasks)
    task = manager.load([HEADLINE_TASK])["tasks"][HEADLINE_TASK]
    assert len(list(task.test_docs())) == 2 * data.EVAL_SIZE


def test_zoo_tasks_dir_points_at_its_own_data(zoo: Zoo) -> None:
    config = yaml.safe_load((zoo.tasks_dir / f"{HEADLINE_TASK}.yaml").read_text())
    (data_file,) = config["dataset_kwargs"]["data_files"].values()
    assert Path(data_file).parent == zoo.tasks_dir and Path(data_file).is_file()


def test_a_cached_zoo_missing_a_shipped_task_gets_it_on_reuse(
    zoo: Zoo, zoo_cache: Path | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zoo cached before the validation tasks shipped is reused, with its tasks rendered again, not retrained."""
    missing = zoo.tasks_dir / f"{zoo.validation_tasks[0]}.yaml"
    missing.unlink()
    monkeypatch.setattr(zoo_module, "_train_zoo", lambda *a, **k: pytest.fail("build_zoo retrained a cached zoo"))
    again = build_zoo(zoo_cache, progress=False)
    assert missing.is_file() and again.validation_tasks == list(zoo_module.VALIDATION_TASKS)
    manager = TaskManager(include_path=str(again.tasks_dir), include_defaults=False)
    for name in again.validation_tasks:
        assert len(list(manager.load([name])["tasks"][name].test_docs())) == data.EVAL_SIZE
