"""Cheap fitness's estimators on synthetic outcomes: the item-response fit recovers abilities, each kind picks
the same examples for a seed (inside the fitness sample, never validation), and every estimate carries an error
that covers the full-sample truth about as often as it claims."""

import numpy as np
import pytest

from hubevo.config import EstimatorConfig, FitnessConfig
from hubevo.evaluation import irt
from hubevo.evaluation.estimator import KINDS, References
from hubevo.evaluation.plan import SamplingPlan
from hubevo.evaluation.records import TaskOutcomes

CHEAP = ["subset", "anchors", "disagreement"]


def population(models=40, items=300, seed=0):
    """0/1 outcomes of a 2PL population with known abilities."""
    rng = np.random.default_rng(seed)
    theta, a, b = rng.normal(size=models), np.exp(rng.normal(0, 0.4, size=items)), rng.normal(size=items)
    return theta, (rng.random((models, items)) < irt.sigmoid(a * (theta[:, None] - b))).astype(float)


def test_the_item_response_fit_recovers_known_abilities():
    theta, outcomes = population()
    model = irt.fit(outcomes)
    assert np.corrcoef(model.theta, theta)[0, 1] > 0.95
    items = np.arange(0, 300, 3)  # a new model's ability from a third of the items, the items fixed
    new = irt.ability(model, items, outcomes[0, items])
    assert abs(new[0] - model.theta[0]) < 3 * new[1]


def plan_and_references(seed=0):
    plan = SamplingPlan(FitnessConfig(tasks=["a", "b"], seed=seed), doc_counts={"a": 200, "b": 160})
    sample = plan.sample_indices(0)
    _, outcomes = population(models=12, items=sum(len(d) for d in sample.values()))
    values = {"a": outcomes[:, :len(sample["a"])], "b": outcomes[:, len(sample["a"]):]}
    return plan, sample, References(ids=[f"r{i}" for i in range(8)], values={t: v[:8] for t, v in values.items()}), \
        {t: v[8:] for t, v in values.items()}


@pytest.mark.parametrize("kind", CHEAP)
def test_each_kind_picks_the_same_examples_for_a_seed_inside_the_fitness_sample_never_validation(kind):
    plan, sample, refs, _ = plan_and_references()
    build = lambda seed: KINDS[kind](EstimatorConfig(kind=kind), sample=sample, references=refs, seed=seed).items  # noqa: E731
    items = build(0)
    assert items == build(0) and items != build(1)
    refit = KINDS[kind](EstimatorConfig(kind=kind), sample=sample, references=refs, seed=0, epoch=1).items
    assert refit != items or kind == "disagreement"  # drawn again at a refit (disagreement: the same references)
    validation = plan.validation_samples()
    for task, docs in items.items():
        assert len(docs) == round(0.2 * len(sample[task])) and len(set(docs)) == len(docs)
        assert set(docs) <= set(sample[task]) and not set(docs) & set(validation[task])


@pytest.mark.parametrize("kind", CHEAP)
def test_an_estimate_carries_a_standard_error_and_lands_near_the_full_sample_score(kind):
    _, sample, refs, others = plan_and_references()
    est = KINDS[kind](EstimatorConfig(kind=kind), sample=sample, references=refs, seed=0)
    errors, stderrs = [], []
    for row in range(4):
        outcomes = {}
        for task, docs in sample.items():
            where = [docs.index(d) for d in est.items[task]]
            outcomes[task] = TaskOutcomes(weight=0.5, values=others[task][row, where].tolist(), docs=est.items[task])
        for task, estimate in est.estimate(outcomes).items():
            errors.append(estimate.mean - others[task][row].mean())
            stderrs.append(estimate.stderr)
    assert all(s > 0 for s in stderrs)
    assert np.mean(np.abs(errors)) < 3 * np.mean(stderrs) and np.mean(np.abs(errors)) < 0.15
