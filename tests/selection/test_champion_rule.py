"""The champion rule on synthetic scores (`hubevo.selection.ranking`): every score the run has, paired, honest errors.

The scores are built example by example, the way lm-eval's logged samples reach the run state:
one fixed fitness sample of 150 examples per task and a small carved validation set of 50 per
task, as a user's own tasks of 200 examples give. The incumbent is a standard recipe; the bred
finalists are merges picked by fitness.
"""

from __future__ import annotations

import numpy as np

from hubevo.evaluation.records import Evaluation, TaskOutcomes
from hubevo.publish.decision import decision_text
from hubevo.selection import ranking
from hubevo.state.runstate import RunState

TASKS = ("digits", "letters")


def answers(rng: np.random.Generator, accuracy: float, n: int, *, like: np.ndarray | None = None,
            agree: float = 0.85) -> np.ndarray:
    """0/1 outcomes of `n` examples at `accuracy`; with `like`, the same answers on `agree` of them (merges
    of one family agree on most examples)."""
    own = (rng.uniform(size=n) < accuracy).astype(float)
    if like is None:
        return own
    return np.where(rng.uniform(size=n) < agree, like, own)


def scored(cid: str, per_task: dict[str, np.ndarray], *, generation: int = 1) -> Evaluation:
    values = {t: TaskOutcomes(weight=0.5, values=v.tolist()) for t, v in per_task.items()}
    means = {t: float(v.mean()) for t, v in per_task.items()}
    stderrs = {t: float(v.std(ddof=1) / np.sqrt(len(v))) for t, v in per_task.items()}
    return Evaluation(id=cid, generation=generation, status="ok", fitness=float(np.mean(list(means.values()))),
                      scores=means, stderrs=stderrs, stderr=float(np.sqrt(sum(s ** 2 for s in stderrs.values())) / 2),
                      examples=sum(len(v) for v in per_task.values()), outcomes=values)


def shifted(base: np.ndarray, rng: np.random.Generator, *, gain: int, churn: float = 0.12) -> np.ndarray:
    """`base` with `gain` more examples right (negative: wrong) per task, net: a `churn` share of the examples
    answered the other way in each direction besides, as two merges of one family disagree."""
    out, swaps = base.copy(), round(churn * len(base))
    wrong, right = np.flatnonzero(out == 0.0), np.flatnonzero(out == 1.0)
    up, down = swaps + max(gain, 0), swaps + max(-gain, 0)
    out[rng.choice(wrong, size=up, replace=False)] = 1.0
    out[rng.choice(right, size=down, replace=False)] = 0.0
    return out


def family(rng, *, fitness_gain: list[int], validation_gain: list[int], n_fit: int = 150, n_val: int = 50):
    """An incumbent `std` at 0.60 and bred finalists whose answers are std's plus the given gains per task."""
    fit_std = {t: answers(rng, 0.6, n_fit) for t in TASKS}
    val_std = {t: answers(rng, 0.6, n_val) for t in TASKS}
    fitness, validation = {"std": scored("std", fit_std, generation=0)}, {"std": scored("std", val_std)}
    for k, (gf, gv) in enumerate(zip(fitness_gain, validation_gain, strict=True)):
        cid = f"bred{k}"
        fitness[cid] = scored(cid, {t: shifted(fit_std[t], rng, gain=gf) for t in TASKS}, generation=k + 1)
        validation[cid] = scored(cid, {t: shifted(val_std[t], rng, gain=gv) for t in TASKS}, generation=5)
    return fitness, validation


def test_a_small_validation_set_and_a_large_consistent_fitness_lead_crown_the_bred_candidate():
    rng = np.random.default_rng(0)
    # +0.08 .. +0.06 on 300 fitness examples; +0.03 .. +0.02 on 100 validation examples (within its noise)
    fitness, validation = family(rng, fitness_gain=[12, 10, 9], validation_gain=[2, 1, 1])
    old = ranking.decide(fitness, validation=validation, incumbents={"std"}, rule="validation")
    assert old.champion == "std" and not old.crowned  # validation alone cannot resolve it
    new = ranking.decide(fitness, validation=validation, incumbents={"std"})
    assert new.rule == "evidence" and new.champion == "bred0" and new.crowned and new.z > 1  # beyond one SE too
    assert new.stderr < old.stderr  # the fitness examples add evidence
    assert new.examples == 400  # 100 validation + 300 fitness, paired
    assert 0 < new.shrink < 0.06  # the fitness leads were shrunk toward what validation saw


def test_a_fitness_lead_that_validation_contradicts_keeps_the_incumbent():
    rng = np.random.default_rng(1)
    # every bred finalist leads by +0.05 on fitness (picked as the best of many) and trails by 0.12 or more on
    # validation: beyond twice the error of the difference
    fitness, validation = family(rng, fitness_gain=[8, 8, 7], validation_gain=[-6, -7, -6])
    decision = ranking.decide(fitness, validation=validation, incumbents={"std"})
    assert decision.champion == "std" and decision.holder == "std" and not decision.crowned
    assert fitness["bred0"].fitness - fitness["std"].fitness > 0.05
    assert decision.lead < 0  # the fitness lead is not taken at its word
    assert ranking.decide(fitness, validation=validation, incumbents={"std"}, rule="fitness").champion == "bred0"


def test_an_unbiased_incumbent_is_judged_on_its_fitness_examples_too():
    """The holder is the incumbent with the best score over fitness and validation examples pooled: a
    member lucky on 100 validation examples does not outrank a standard recipe 0.1 better on 300 fitness."""
    rng = np.random.default_rng(2)
    member_fit = {"digits": np.ones(150), "letters": answers(rng, 0.02, 150)}
    member_val = {"digits": np.ones(50), "letters": np.r_[np.ones(5), np.zeros(45)]}  # 0.55
    std_fit = {t: answers(rng, 0.6, 150) for t in TASKS}
    std_val = {t: np.r_[np.ones(25), np.zeros(25)] for t in TASKS}  # 0.50 here: an unlucky draw
    fitness = {"member": scored("member", member_fit, generation=0), "std": scored("std", std_fit, generation=0)}
    validation = {"member": scored("member", member_val), "std": scored("std", std_val)}
    assert validation["member"].fitness > validation["std"].fitness
    decision = ranking.decide(fitness, validation=validation, incumbents={"member", "std"})
    assert decision.champion == "std" == decision.holder


def test_a_specialist_near_0_and_1_per_task_gets_an_honest_error():
    """lm-eval's error of a member that is right on every digit and wrong on every letter is near 0; the
    error of a lead over it must still carry the challenger's own noise."""
    rng = np.random.default_rng(3)
    member = {"digits": np.ones(50), "letters": np.zeros(50)}
    merge = {"digits": answers(rng, 0.7, 50), "letters": answers(rng, 0.45, 50)}
    fitness = {"member": scored("member", {"digits": np.ones(150), "letters": np.zeros(150)}, generation=0),
               "merge": scored("merge", {"digits": answers(rng, 0.7, 150), "letters": answers(rng, 0.45, 150)})}
    validation = {"member": scored("member", member), "merge": scored("merge", merge)}
    assert validation["member"].stderr < 1e-9
    decision = ranking.decide(fitness, validation=validation, incumbents={"member"})
    own = np.sqrt(sum(v.var(ddof=1) / len(v) for v in merge.values())) / 2  # the merge's own error, validation
    assert decision.stderr > 0.5 * own / np.sqrt(4)  # not the member's 0 (4: 400 pooled examples vs 100)
    assert decision.stderr > 0.01


def test_the_reports_words_match_the_decision():
    for seed, gains in ((0, ([12, 10, 9], [2, 1, 1])), (1, ([8, 8, 7], [-6, -7, -6]))):
        fitness, validation = family(np.random.default_rng(seed), fitness_gain=gains[0], validation_gain=gains[1])
        state = _named(RunState(config_hash="x", evaluations=fitness, validation=validation, baselines={"std": "ties"}))
        decision = state.decision()
        text = decision_text(state)
        assert decision.crowned == (decision.champion != "std") == (decision.lead > 0)
        assert text.startswith(f"{decision.champion} leads the best incumbent std by" if decision.crowned else
                               "std, the best incumbent, stays: the best bred finalist")
        assert f"{decision.lead:+.3f} ± {decision.stderr:.3f} on 400 validation and fitness examples, " \
               f"{decision.z:+.1f} SE" in text and "the higher estimate wins" in text
        assert f"resolve leads above {decision.resolvable:.3f}" in text


def test_a_decision_is_reproducible_and_the_old_rule_still_answers_without_per_example_values():
    rng = np.random.default_rng(4)
    fitness, validation = family(rng, fitness_gain=[12, 10, 9], validation_gain=[2, 1, 1])
    first = ranking.decide(fitness, validation=validation, incumbents={"std"})
    assert ranking.decide(fitness, validation=validation, incumbents={"std"}) == first
    bare = {i: v.model_copy(update={"outcomes": {}}) for i, v in validation.items()}
    assert ranking.decide(fitness, validation=bare, incumbents={"std"}).champion == \
        ranking.decide(fitness, validation=bare, incumbents={"std"}, rule="validation").champion


def _named(state: RunState) -> RunState:
    from hubevo.breed.genome import seed_individual

    individuals = {i: seed_individual(name=i, source=i).model_copy(update={"id": i}) for i in state.evaluations}
    return state.model_copy(update={"individuals": individuals})


def test_a_tie_goes_to_the_better_estimate_and_a_margin_keeps_the_holder():
    """The default crowns the higher estimate; the one-SE margin (measured against, kept for the benches)
    keeps the holder on a lead that small."""
    rng = np.random.default_rng(5)
    fitness, validation = family(rng, fitness_gain=[3, 2, 2], validation_gain=[1, 1, 0])
    default = ranking.decide(fitness, validation=validation, incumbents={"std"})
    strict = ranking.decide(fitness, validation=validation, incumbents={"std"}, rule="evidence-margin1")
    assert 0 < default.lead < default.stderr and default.champion == default.challenger
    assert strict.lead == default.lead and strict.champion == "std"


def test_the_status_file_names_the_best_fitness_beside_the_champions():
    """The champion is decided in the finals: the best fitness is another candidate's here, and says so."""
    from hubevo.state.runstate import run_status

    fitness, validation = family(np.random.default_rng(1), fitness_gain=[8, 8, 7], validation_gain=[-6, -7, -6])
    state = _named(RunState(config_hash="x", evaluations=fitness, validation=validation, baselines={"std": "ties"}))
    status = run_status(state)
    assert status.champion == "std" and status.champion_fitness == fitness["std"].fitness
    assert status.best_fitness == max(e.fitness for e in fitness.values()) > status.champion_fitness
