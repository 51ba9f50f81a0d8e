"""Evaluation through lm-eval: per-call provenance is skipped, recorded once per run instead."""

import lm_eval.evaluator
import lm_eval.loggers.utils
from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from transformers import AutoModelForCausalLM, AutoTokenizer

from hubevo.config import FitnessConfig
from hubevo.evaluation import Evaluator, run_environment, skip_per_call_provenance


def _evaluate_base(zoo) -> dict:
    model, tokenizer = AutoModelForCausalLM.from_pretrained(zoo.base), AutoTokenizer.from_pretrained(zoo.base)
    return simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, device="cpu", batch_size=64),
        tasks=zoo.fitness_tasks[:1],
        task_manager=TaskManager(include_path=str(zoo.tasks_dir), include_defaults=False),
        limit=4,
    )


def test_skipping_provenance_replaces_what_simple_evaluate_calls(demo_zoo, monkeypatch):
    calls = []
    monkeypatch.setattr(lm_eval.evaluator, "add_env_info", lambda results: calls.append("env info"))
    monkeypatch.setattr(lm_eval.evaluator, "get_git_commit_hash", lambda: calls.append("git hash"))
    _evaluate_base(demo_zoo)
    # unpatched, lm-eval looks both up by these module-level names on every call; a rename upstream fails here
    assert sorted(calls) == ["env info", "git hash"]
    calls.clear()
    skip_per_call_provenance()
    results = _evaluate_base(demo_zoo)
    assert calls == [] and results["git_hash"] is None
    assert "pretty_env_info" not in results and "transformers_version" not in results
    assert "exact_match,none" in results["results"][demo_zoo.fitness_tasks[0]]


def test_evaluator_skips_per_call_provenance_and_the_run_records_it_once(tmp_path):
    Evaluator(FitnessConfig(tasks=["x"]))
    assert lm_eval.evaluator.add_env_info is not lm_eval.loggers.utils.add_env_info
    record = run_environment()
    assert "transformers_version" in record and "pretty_env_info" in record


def test_fitness_samples_are_seeded_per_generation(demo_zoo):
    cfg = FitnessConfig(tasks=demo_zoo.fitness_tasks, include_path=[demo_zoo.tasks_dir], limit=16, seed=3,
                        resample=True)
    evaluator = Evaluator(cfg)
    one, again, other = (evaluator.sample_indices(g) for g in (1, 1, 2))
    assert one == again and one != other
    assert all(len(v) == 16 and len(set(v)) == 16 for v in one.values())


def test_lm_evals_request_building_bar_follows_the_library_bar_switch(demo_zoo, capsys, monkeypatch):
    """lm-eval builds requests under an unconditional tqdm bar; hubevo's stand-in honours the switch."""
    import lm_eval.api.task as task_module
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    from hubevo.evaluation import quiet_request_building

    import sys

    monkeypatch.setattr(sys.modules["huggingface_hub.utils.tqdm"], "HF_HUB_DISABLE_PROGRESS_BARS", None)  # the tests' environment pins it off
    quiet_request_building()
    disable_progress_bars()
    try:
        _evaluate_base(demo_zoo)  # a plain HFLM: its own "Running ... requests" bar is not hubevo's to hide
        err = capsys.readouterr().err.replace("\r", "\n").splitlines()
        assert [line for line in err if "it/s]" in line and "Running" not in line] == []
        enable_progress_bars()
        list(task_module.tqdm(range(3), total=3))
        assert "3/3" in capsys.readouterr().err  # the switch on: lm-eval's bar is back
    finally:
        enable_progress_bars()
