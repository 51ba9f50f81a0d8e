"""Evaluation through lm-eval: per-call provenance is skipped (recorded once per run); HFLM options pass
through, are checked before any candidate, and one HFLM serves every candidate of the resident model.
What the lm-eval fence changes, and that it is undone, is `test_lm_eval_fence.py`'s."""

import gc
import re
import weakref
from pathlib import Path

import lm_eval.evaluator
import lm_eval.loggers.utils
import pytest
import torch
from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from transformers import AutoModelForCausalLM, AutoTokenizer

from hubevo.config import FitnessConfig, parse_config
from hubevo.errors import ConfigError
from hubevo.evaluation import lm_eval_fence
from hubevo.evaluation.evaluator import Evaluator
from hubevo.evaluation.lm_eval_fence import run_environment


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
    with lm_eval_fence.patched():
        results = _evaluate_base(demo_zoo)
    assert calls == [] and results["git_hash"] is None
    assert "pretty_env_info" not in results and "transformers_version" not in results
    assert "exact_match,none" in results["results"][demo_zoo.fitness_tasks[0]]


def test_the_run_records_the_provenance_once_that_each_evaluation_skips(tmp_path):
    with lm_eval_fence.patched():
        assert lm_eval.evaluator.add_env_info is not lm_eval.loggers.utils.add_env_info
    assert lm_eval.evaluator.add_env_info is lm_eval.loggers.utils.add_env_info  # undone on exit
    record = run_environment()
    assert "transformers_version" in record and "pretty_env_info" in record


def test_fitness_samples_are_seeded_per_generation(demo_zoo):
    cfg = FitnessConfig(tasks=demo_zoo.fitness_tasks, include_path=[demo_zoo.tasks_dir], limit=16, seed=3,
                        resample=True)
    evaluator = Evaluator(cfg)
    one, again, other = (evaluator.plan.sample_indices(g) for g in (1, 1, 2))
    assert one == again and one != other
    assert all(len(v) == 16 and len(set(v)) == 16 for v in one.values())


def test_lm_evals_request_building_bar_follows_the_library_bar_switch(demo_zoo, capsys, monkeypatch):
    """lm-eval builds requests under an unconditional tqdm bar; hubevo's stand-in honours the switch."""
    import sys

    import lm_eval.api.task as task_module
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    monkeypatch.setattr(sys.modules["huggingface_hub.utils.tqdm"], "HF_HUB_DISABLE_PROGRESS_BARS", None)  # the tests' environment pins it off
    disable_progress_bars()
    try:
        with lm_eval_fence.patched():
            _evaluate_base(demo_zoo)  # a plain HFLM: its own "Running ... requests" bar is not hubevo's to hide
            err = capsys.readouterr().err.replace("\r", "\n").splitlines()
            assert [line for line in err if "it/s]" in line and "Running" not in line] == []
            enable_progress_bars()
            list(task_module.tqdm(range(3), total=3))
            assert "3/3" in capsys.readouterr().err  # the switch on: lm-eval's bar is back
    finally:
        enable_progress_bars()


def _scored(zoo, **fitness):
    """Fitness of the zoo's base model under `fitness` options, and the HFLM that scored it."""
    cfg = FitnessConfig(tasks=zoo.fitness_tasks[:1], include_path=[zoo.tasks_dir], limit=8, finalists=0, **fitness)
    evaluator = Evaluator(cfg, device="cpu")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(zoo.base), AutoTokenizer.from_pretrained(zoo.base)
    return evaluator.fitness(model, tokenizer, generation=0), evaluator.scorer.lm(model, tokenizer)


def test_automatic_batch_size_reaches_hflm_and_scores_as_batch_size_one(demo_zoo, capsys):
    auto, lm = _scored(demo_zoo, batch_size="auto", max_batch_size=8)
    one, _ = _scored(demo_zoo, batch_size=1)
    assert lm.batch_size == "auto" and lm.max_batch_size == 8
    assert auto.scores == one.scores and auto.examples == one.examples == 8
    assert "batch size" not in capsys.readouterr().out.lower()  # lm-eval's prints go to the debug log


def test_the_automatic_batch_size_is_searched_once_for_every_candidate_of_the_resident_model(demo_zoo, monkeypatch):
    searches = []
    search = HFLM._detect_batch_size
    monkeypatch.setattr(HFLM, "_detect_batch_size", lambda lm, *args: searches.append(args) or search(lm, *args))
    cfg = FitnessConfig(tasks=demo_zoo.fitness_tasks[:1], include_path=[demo_zoo.tasks_dir], limit=4,
                        batch_size="auto", max_batch_size=4)
    evaluator = Evaluator(cfg, device="cpu")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(demo_zoo.base), AutoTokenizer.from_pretrained(demo_zoo.base)
    for generation in range(3):  # three candidates written into the same resident model
        evaluator.fitness(model, tokenizer, generation=generation)
    assert len(searches) == 1


def test_hflm_kwargs_and_dtype_reach_hflm(demo_zoo):
    _, lm = _scored(demo_zoo, hflm_kwargs={"max_length": 96, "logits_cache": False}, dtype="bfloat16")
    assert lm.max_length == 96 and lm.logits_cache is False
    assert lm.mixed_precision_dtype == torch.bfloat16  # an autocast over the float32 weights
    _, lm = _scored(demo_zoo)
    assert lm.mixed_precision_dtype is None  # "auto" on a CPU: the weights' own dtype


def test_one_hflm_serves_every_candidate_of_the_resident_model_and_never_keeps_a_replaced_one(demo_zoo):
    cfg = FitnessConfig(tasks=demo_zoo.fitness_tasks[:1], include_path=[demo_zoo.tasks_dir], limit=4)
    evaluator = Evaluator(cfg, device="cpu")
    tokenizer = AutoTokenizer.from_pretrained(demo_zoo.base)
    model = AutoModelForCausalLM.from_pretrained(demo_zoo.base)
    first = evaluator.scorer.lm(model, tokenizer)
    evaluator.fitness(model, tokenizer, generation=0)
    specialist = AutoModelForCausalLM.from_pretrained(next(iter(demo_zoo.specialists.values())))
    model.load_state_dict(specialist.state_dict())  # the next candidate, written into the same model
    reused = evaluator.fitness(model, tokenizer, generation=0)
    assert evaluator.scorer.lm(model, tokenizer) is first
    assert reused == Evaluator(cfg, device="cpu").fitness(specialist, tokenizer, generation=0)  # as a fresh HFLM
    replaced = weakref.ref(model)
    model = AutoModelForCausalLM.from_pretrained(demo_zoo.base)
    gc.collect()
    assert replaced() is None  # the evaluator's HFLM did not keep the replaced model alive
    assert evaluator.scorer.lm(model, tokenizer) is not first


@pytest.mark.parametrize(("fitness", "named"), [
    ({"batch_size": "fast"}, "fitness.batch_size"),
    ({"batch_size": "auto:0"}, "fitness.batch_size"),
    ({"batch_size": 0}, "fitness.batch_size"),
    ({"hflm_kwargs": {"batch_size": 8}}, "fitness.hflm_kwargs.batch_size: set by hubevo itself (fitness.batch_size)"),
    ({"hflm_kwargs": {"peft": "adapter"}}, "fitness.hflm_kwargs.peft: only acts when lm-eval loads the model"),
    ({"dtype": "float64"}, "fitness.dtype"),
])
def test_bad_evaluation_options_are_refused_with_the_field_named(fitness, named):
    data = {"population": {"members": ["./a", "./b"]}, "fitness": {"tasks": ["t"], **fitness}}
    with pytest.raises(ConfigError, match=re.escape(named)):
        parse_config(data, root=Path("."))


def test_an_unknown_hflm_option_is_refused_before_any_candidate_with_close_matches(demo_zoo):
    cfg = FitnessConfig(tasks=demo_zoo.fitness_tasks[:1], include_path=[demo_zoo.tasks_dir],
                        hflm_kwargs={"max_lenght": 96})
    with pytest.raises(ConfigError, match=r"fitness\.hflm_kwargs\.max_lenght: .*did you mean max_length"):
        Evaluator(cfg, device="cpu").tasks.check()


def test_each_task_template_is_compiled_once_and_renders_what_lm_eval_renders(demo_zoo, tmp_path):
    """lm-eval compiles a Jinja template per document; hubevo compiles each once, and a task written with
    templates scores exactly as the shipped task that names its columns."""
    from lm_eval import utils

    from hubevo.config import TaskSpec
    from hubevo.evaluation.lm_eval_fence import compiled_template

    compiled_template.cache_clear()
    docs = [{"q": f"{k}#", "a": str(k)[::-1], "n": k} for k in range(40)]
    templates = ["{{q}}", "Q: {{ q | upper }} {% if n > 3 %}big{% endif %}\n", "{{a}}"]
    with lm_eval_fence.patched():
        for template in templates:
            for doc in docs:
                assert utils.apply_template(template, doc) == utils.env.from_string(template).render(**doc)
    info = compiled_template.cache_info()
    assert (info.misses, info.hits) == (len(templates), len(templates) * (len(docs) - 1))

    task = demo_zoo.fitness_tasks[0]
    shipped = (demo_zoo.tasks_dir / f"{task}.yaml").read_text()
    assert "doc_to_text: prompt" in shipped
    templated = tmp_path / "templated"
    templated.mkdir()
    (templated / "templated.yaml").write_text(shipped.replace(f"task: {task}", "task: templated").replace(
        "doc_to_text: prompt", 'doc_to_text: "{{prompt}}"').replace("doc_to_target: answer", 'doc_to_target: "{{answer}}"'))
    model, tokenizer = AutoModelForCausalLM.from_pretrained(demo_zoo.base), AutoTokenizer.from_pretrained(demo_zoo.base)
    evaluator = Evaluator(FitnessConfig(tasks=[task, "templated"], include_path=[demo_zoo.tasks_dir, templated],
                                        limit=48))
    scores = evaluator.scorer.score(model, tokenizer, tasks=[TaskSpec(name=task), TaskSpec(name="templated")],
                                    limit=48).scores
    assert scores[task] == scores["templated"] and 0 < scores[task] < 1
