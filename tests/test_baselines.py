"""Baselines inside every run, comparable fitness and finals on validation (the demo zoo, fixed seeds)."""

import pandas as pd
import pytest

from hubevo.baselines import baseline_individuals, standard_recipe
from hubevo.demo.runner import demo_config
from hubevo.loop import evolve
from hubevo.publish import comparison


def small(zoo, out_dir, **update):
    cfg = demo_config(zoo, out_dir=out_dir, generations=update.pop("generations", 2), population_size=4)
    fitness = cfg.fitness.model_copy(update={"limit": 32, "heldout_limit": 16, **update.pop("fitness", {})})
    return cfg.model_copy(update={"fitness": fitness, "budget": cfg.budget.model_copy(update={"wall_time_s": None}),
                                  **update})


def test_standard_recipes_are_the_fields_defaults():
    ties = standard_recipe("ties", members=["a", "b"], base="base")
    assert ties.per_parent == ({"weight": 1.0, "density": 0.5},) * 2 and ties.base == "base"
    assert standard_recipe("task_arithmetic", members=["a", "b"], base="base").shared == {"lambda": 1.0}
    assert standard_recipe("slerp", members=["a", "b", "c"], base=None) is None  # pairs only
    assert standard_recipe("ties", members=["a", "b"], base=None) is None  # needs the base
    names = [i.name for i in baseline_individuals(None, members=["a", "b"], base="base")]
    assert names == ["std-linear", "std-task_arithmetic", "std-ties", "std-dare_ties", "std-model_stock",
                     "std-slerp", "std-nuslerp"]


@pytest.fixture(scope="module")
def run(demo_zoo, tmp_path_factory):
    cfg = small(demo_zoo, tmp_path_factory.mktemp("baselines") / "run")
    return cfg, evolve(cfg, progress=False)


def test_a_run_scores_the_standard_recipes_and_cannot_end_below_the_best_of_them(run):
    cfg, state = run
    assert set(state.baselines.values()) == {"linear", "task_arithmetic", "ties", "dare_ties", "model_stock",
                                             "slerp", "nuslerp"}
    assert all(state.evaluations[i].generation == 0 and state.evaluations[i].status == "ok" for i in state.baselines)
    names = comparison(state)
    champion, best_baseline = names["champion"], names["best standard recipe"]
    assert champion in state.validation and best_baseline in state.validation  # compared in the finals
    assert state.validation[champion].fitness >= state.validation[best_baseline].fitness
    assert state.validation[champion].fitness >= state.validation[names["best member"]].fitness
    frame = pd.read_parquet(cfg.output.dir / "results.parquet").set_index("id")
    assert frame.loc[list(state.baselines), "baseline"].tolist() == list(state.baselines.values())
    assert frame["fitness_stderr"].notna().all() and (frame["fitness_stderr"] > 0).any()
    assert bool(frame.loc[champion, "champion"]) and frame["champion"].sum() == 1


def test_the_finals_pick_the_champion_on_validation_examples_no_fitness_sample_holds(run, demo_zoo):
    cfg, state = run
    finalists = {i: v.fitness for i, v in state.validation.items() if v.status == "ok"}
    assert len(finalists) >= 3
    assert state.champion() == max(finalists, key=lambda i: (finalists[i], -state.validation[i].generation))
    from hubevo.evaluation import Evaluator

    evaluator = Evaluator(cfg.fitness, device="cpu")
    validation = evaluator.validation_samples()
    for generation in range(3):
        sample = evaluator.sample_indices(generation)
        assert all(not set(sample[t]) & set(validation[t]) for t in sample)
    assert evaluator.sample_indices(0) == evaluator.sample_indices(2)  # one fixed sample by default


def test_with_resample_elites_are_scored_again_on_each_generations_sample(demo_zoo, tmp_path):
    cfg = small(demo_zoo, tmp_path / "run", fitness={"resample": True}, generations=2)
    state = evolve(cfg, progress=False)
    assert state.rescored, "no elite was scored again"
    for generation in (1, 2):
        population = [i for i, e in state.evaluations.items() if e.generation == generation]
        assert population and {state.evaluations[i].sample for i in population} == {generation}
    again = state.rescored[0]
    assert again.sample != state.evaluations[again.id].sample  # the old score is kept, the new one compares


def test_baselines_can_be_switched_off_and_are_named(demo_zoo, tmp_path):
    cfg = small(demo_zoo, tmp_path / "run", generations=0)
    none = evolve(cfg.model_copy(update={"search": cfg.search.model_copy(update={"baselines": []})}), progress=False)
    assert not none.baselines
