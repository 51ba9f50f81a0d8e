"""Stage 6, publish: the champion's lead over the incumbents, in the words every report uses.

The champion is `hubevo.selection.ranking`'s; this module turns its decision into text (terminal,
cards, `champion.json`, the Space): the lead over the best member and the best standard recipe,
with its standard error and the examples it rests on.
"""

from __future__ import annotations

from hubevo.selection import ranking
from hubevo.state.runstate import RunState


def best_in(state: RunState, ids) -> str | None:
    """The best of `ids`, all of one kind (the members, the standard recipes): by their fitness and validation
    examples pooled where all of them were finalists (as the champion rule ranks incumbents), else by fitness."""
    ids = set(ids)
    finals = {i: v for i, v in state.validation.items() if i in ids}
    return ranking.champion([e for i, e in state.evaluations.items() if i in ids], incumbents=ids,
                            validation=finals if len(finals) == len(ids & set(state.evaluations)) else None)


def standard_recipes(state: RunState) -> list[str]:
    """The standard recipes (`std-*`), apart from the merge + fine-tune baselines (`ft-std-*`)."""
    return [i for i in state.baselines if state.individuals[i].finetune is None]


def finetune_baselines(state: RunState) -> list[str]:
    """The merge + fine-tune baselines (`ft-std-*`): the best standard recipe fine-tuned in one go."""
    return [i for i in state.baselines if state.individuals[i].finetune is not None]


def baseline_bests(state: RunState) -> dict[str, str | None]:
    """The best standard recipe and, where the run fine-tunes, the best merge + fine-tune baseline."""
    bests = {"best standard recipe": best_in(state, standard_recipes(state))}
    if finetune_baselines(state):
        bests["best merge + fine-tune baseline"] = best_in(state, finetune_baselines(state))
    return bests


def comparison(state: RunState) -> dict[str, str | None]:
    """The champion, the best member, the best standard recipe (and merge + fine-tune baseline): what a summary
    compares."""
    return {"champion": state.champion(), "best member": best_in(state, state.initial), **baseline_bests(state)}


def lead(state: RunState, cid: str, other: str) -> tuple[float, float | None, str]:
    """(lead of `cid` over `other`, its standard error, on which examples). The pair the champion rule compared
    (`RunState.decision`) reads the decision's own lead; any other pair is compared on validation when both were
    finalists, with the paired error when both kept per-example values (`ranking.paired_stderr`), else on fitness."""
    decision = state.decision()
    if decision.lead is not None and {cid, other} == {decision.challenger, decision.holder}:
        sign = 1 if cid == decision.challenger else -1
        return sign * decision.lead, decision.stderr, decision_examples(decision)
    pool = state.validation if cid in state.validation and other in state.validation else state.evaluations
    a, b = pool[cid], pool[other]
    se = ranking.paired_stderr(a, b)
    if se is None and a.stderr is not None and b.stderr is not None:
        se = (a.stderr ** 2 + b.stderr ** 2) ** 0.5
    return a.fitness - b.fitness, se, "validation" if pool is state.validation else "fitness"


def decision_examples(decision: ranking.Decision) -> str:
    if decision.rule.startswith("evidence"):
        return f"{decision.examples} validation and fitness examples"
    return "validation"


def lead_text(state: RunState, cid: str, other: str) -> str:
    """A lead in the words every report uses: the lead, its error and how many standard errors it is."""
    diff, se, split = lead(state, cid, other)
    return f"{diff:+.3f} on {split}" if not se else f"{diff:+.3f} ± {se:.3f} on {split} ({diff / se:+.1f} SE)"


def decision_text(state: RunState) -> str:
    """Why the champion is champion, in the words every report uses (terminal, summaries, cards, Space)."""
    d = state.decision()
    name = lambda i: state.individuals[i].name  # noqa: E731
    if d.champion is None:
        return "no champion: no candidate was fully evaluated"
    if d.rule == "fitness":
        return f"{name(d.champion)} is the best by fitness (no finals)"
    if d.lead is None or d.holder is None or d.challenger is None:
        return f"{name(d.champion)} is the best finalist ({'no bred finalist' if d.holder else 'no incumbent'} to compare)"
    lead = f"{d.lead:+.3f} ± {d.stderr:.3f} on {decision_examples(d)}, {d.z:+.1f} SE" if d.stderr else \
        f"{d.lead:+.3f} on {decision_examples(d)}"
    shrink = f"; fitness leads shrunk by {d.shrink:.3f} for selection" if d.shrink else ""
    bar = f"an estimated lead above {d.margin:g} SE crowns a bred finalist" if d.margin else \
        "the higher estimate wins"
    resolves = f"; these finals resolve leads above {d.resolvable:.3f}" if d.resolvable else ""
    if d.crowned:
        return f"{name(d.champion)} leads the best incumbent {name(d.holder)} by {lead}{shrink} ({bar}){resolves}"
    return (f"{name(d.champion)}, the best incumbent, stays: the best bred finalist {name(d.challenger)} is "
            f"{lead} against it{shrink} ({bar}){resolves}")


DECISION_FILE = "champion.json"


def decision_record(state: RunState) -> dict:
    """The champion rule's decision as the run recorded it (what a viewer shows rather than recomputes)."""
    d = state.decision()
    name = lambda i: state.individuals[i].name if i in state.individuals else None  # noqa: E731
    return {"champion": d.champion, "champion_name": name(d.champion), "rule": d.rule, "holder": d.holder,
            "holder_name": name(d.holder), "challenger": d.challenger, "challenger_name": name(d.challenger),
            "lead": d.lead, "stderr": d.stderr, "z": d.z, "margin": d.margin, "crowned": d.crowned,
            "examples": d.examples, "shrink": d.shrink, "resolvable": d.resolvable, "text": decision_text(state)}
