"""Baselines inside every run, comparable fitness and finals on validation (the demo zoo, fixed seeds)."""

import pandas as pd
import pytest

from hubevo.breed.baselines import baseline_individuals, standard_recipe
from hubevo.demo.runner import demo_config
from hubevo.publish.decision import comparison
from hubevo.run.loop import evolve


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
    cfg = small(demo_zoo, tmp_path_factory.mktemp("baselines") / "run", fitness={"validation": []})  # carved
    return cfg, evolve(cfg, progress=False)


def test_a_run_scores_the_standard_recipes_and_cannot_end_below_the_best_of_them(run):
    cfg, state = run
    assert set(state.baselines.values()) == {"linear", "task_arithmetic", "ties", "dare_ties", "model_stock",
                                             "slerp", "nuslerp"}
    assert all(state.evaluations[i].generation == 0 and state.evaluations[i].status == "ok" for i in state.baselines)
    names = comparison(state)
    champion, best_baseline = names["champion"], names["best standard recipe"]
    assert champion in state.validation and best_baseline in state.validation  # compared in the finals
    assert champion not in state.initial  # merges are clearly better than either specialist (0.5 each)
    decision = state.decision()
    incumbents = set(state.initial) | set(state.baselines)  # the finals hold the best of each kind by fitness
    assert decision.holder in incumbents and decision.holder in state.validation
    if champion in incumbents:  # no bred finalist's estimated lead over the best incumbent was above 0
        assert champion == decision.holder == best_baseline and not decision.crowned and decision.lead <= 0
    else:  # a bred champion's estimated lead over the best incumbent was above 0
        assert decision.crowned and decision.lead > 0 and decision.challenger == champion
    frame = pd.read_parquet(cfg.output.dir / "results.parquet").set_index("id")
    assert frame.loc[list(state.baselines), "baseline"].tolist() == list(state.baselines.values())
    assert frame["fitness_stderr"].notna().all() and (frame["fitness_stderr"] > 0).any()
    assert bool(frame.loc[champion, "champion"]) and frame["champion"].sum() == 1


def test_the_finals_pick_the_champion_on_validation_examples_no_fitness_sample_holds(run, demo_zoo):
    cfg, state = run
    finalists = {i: v.fitness for i, v in state.validation.items() if v.status == "ok"}
    assert len(finalists) >= 3
    simple = [i for i in finalists if i in state.initial or i in state.baselines]

    def pooled(i):  # an incumbent's fitness and validation examples count alike
        f, v = state.evaluations[i], state.validation[i]
        return (f.examples * f.fitness + v.examples * v.fitness) / (f.examples + v.examples)

    decision = state.decision()
    assert decision.holder == max(simple, key=pooled)
    assert state.champion() == decision.champion in finalists
    assert decision.champion == (decision.challenger if decision.lead > 0 else decision.holder)
    from hubevo.evaluation.evaluator import Evaluator

    evaluator = Evaluator(cfg.fitness, device="cpu")
    validation = evaluator.plan.validation_samples()
    for generation in range(3):
        sample = evaluator.plan.sample_indices(generation)
        assert all(not set(sample[t]) & set(validation[t]) for t in sample)
    assert evaluator.plan.sample_indices(0) == evaluator.plan.sample_indices(2)  # one fixed sample by default
    for task, count in evaluator.plan.doc_counts.items():  # every example the fixed sample leaves out validates
        assert sorted([*validation[task], *evaluator.plan.sample_indices(0)[task]]) == list(range(count))
    resampled = Evaluator(cfg.fitness.model_copy(update={"resample": True}), device="cpu").plan.validation_samples()
    assert resampled == {t: carved for t, (_, carved) in evaluator.plan.split.items()}  # resampling: the carved ones
    assert all(len(resampled[t]) == round(0.25 * c) < len(validation[t]) for t, c in evaluator.plan.doc_counts.items())
    for cid in finalists:  # each finalist keeps its per-example values, for paired comparisons
        outcomes = state.validation[cid].outcomes
        assert {t: len(o.values) for t, o in outcomes.items()} == {t: len(v) for t, v in validation.items()}
        for task, o in outcomes.items():
            assert sum(o.values) / len(o.values) == pytest.approx(state.validation[cid].scores[task])


def test_with_resample_elites_are_scored_again_on_each_generations_sample(demo_zoo, tmp_path):
    cfg = small(demo_zoo, tmp_path / "run", fitness={"resample": True}, generations=2,
                search={"strategy": "ga"})  # the GA carries elites into the next generation
    cfg = cfg.model_validate(cfg.model_dump(mode="json"))
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


def test_the_archive_keeps_a_carrier_of_every_task_across_generations(demo_zoo, tmp_path):
    cfg = small(demo_zoo, tmp_path / "run", generations=3,
                search={"strategy": "ga", "options": {"archive": True}, "baselines": []})
    cfg = cfg.model_validate(cfg.model_dump(mode="json"))
    state = evolve(cfg, progress=False)
    archive = state.strategy_state["archive"]
    tasks = [t.name for t in cfg.fitness.tasks]
    assert set(archive) == set(tasks)
    for task, holder in archive.items():  # the best score on each task of the whole run
        best = max(e.scores[task] for e in state.evaluations.values() if e.status == "ok")
        assert state.evaluations[holder].scores[task] == best
    specialists = {t: max(state.initial, key=lambda i: state.evaluations[i].scores[t]) for t in tasks}
    for generation in range(1, 4):  # every generation carries a model at least as good as each specialist
        members = [i for i, e in state.evaluations.items() if e.generation <= generation
                   and i in state.survivors[generation]]
        for task, specialist in specialists.items():
            assert max(state.evaluations[i].scores[task] for i in members) >= state.evaluations[specialist].scores[task]


def test_mates_are_drawn_for_complementary_strengths():
    from hubevo.evaluation.records import Evaluation
    from hubevo.search.ga import complement, update_archive

    digits = Evaluation(id="d", generation=0, status="ok", fitness=0.5, scores={"a": 1.0, "b": 0.0})
    letters = Evaluation(id="l", generation=0, status="ok", fitness=0.5, scores={"a": 0.0, "b": 1.0})
    twin = Evaluation(id="t", generation=1, status="ok", fitness=0.55, scores={"a": 1.0, "b": 0.1})
    assert complement(digits, letters) == 1.0 and complement(digits, twin) == pytest.approx(0.1)
    evaluations = {e.id: e for e in (digits, letters, twin)}
    assert update_archive({}, [digits, letters, twin], evaluations) == {"a": "t", "b": "l"}  # tie: the fitter


def test_the_merge_and_finetune_baseline_is_a_candidate_when_finetuning_is_configured(demo_zoo, tmp_path):
    from hubevo.demo.runner import dpo_mutation

    mutation = {**dpo_mutation(demo_zoo), "operators": ["perturb"]}
    mutation["finetune"] |= {"baseline_steps": [4, 8], "samples": 16}
    cfg = small(demo_zoo, tmp_path / "run", generations=1)
    cfg = cfg.model_validate({**cfg.model_dump(mode="json"), "mutation": mutation})
    state = evolve(cfg, progress=False)
    tuned = {i: n for i, n in state.baselines.items() if state.individuals[i].kind == "finetune"}
    plain = [i for i in state.baselines if i not in tuned]
    best_std = max(plain, key=lambda i: (state.evaluations[i].fitness, -state.evaluations[i].generation))
    recipe = state.baselines[best_std]
    assert sorted(tuned.values()) == [f"ft-std-{recipe}-4", f"ft-std-{recipe}-8"]
    for cid in tuned:
        ind = state.individuals[cid]
        assert ind.finetune.parent == best_std and ind.generation == 1
        assert state.evaluations[cid].status == "ok" and cid in state.training and ind.finetune.steps in (4, 8)
