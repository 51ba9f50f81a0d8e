"""Evaluation through lm-eval: per-call provenance is skipped, recorded once per run instead."""

import lm_eval.evaluator
import lm_eval.loggers.utils

from hubevo.config import FitnessConfig
from hubevo.evaluation import Evaluator, run_environment


def test_lm_eval_still_has_the_names_hubevo_replaces():
    # simple_evaluate calls these two by these module-level names; a rename upstream must fail here
    import inspect

    source = inspect.getsource(lm_eval.evaluator.simple_evaluate)
    assert "add_env_info(results)" in source and "get_git_commit_hash()" in source


def test_evaluator_skips_per_call_provenance_and_the_run_records_it_once(tmp_path):
    Evaluator(FitnessConfig(tasks=["x"]))
    assert lm_eval.evaluator.add_env_info is not lm_eval.loggers.utils.add_env_info
    record = run_environment()
    assert "transformers_version" in record and "pretty_env_info" in record


def test_fitness_samples_are_seeded_per_generation(demo_zoo):
    cfg = FitnessConfig(tasks=demo_zoo.fitness_tasks, include_path=[demo_zoo.tasks_dir], limit=16, seed=3)
    evaluator = Evaluator(cfg)
    one, again, other = (evaluator.sample_indices(g) for g in (1, 1, 2))
    assert one == again and one != other
    assert all(len(v) == 16 and len(set(v)) == 16 for v in one.values())
