"""Stage 6, publish: survivor folders with lineage cards, the results table and the lineage graph.

A lineage card is a `huggingface_hub.ModelCard`: the model-tree fields
(`base_model`, `base_model_relation`) in its YAML, the exact mergekit YAML that
rebuilds the weights, the generation, and fitness and held-out scores as
evaluation results. Pushing to the Hub happens in `hubevo.hub`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hubevo import pareto, ranking
from hubevo.config import REPO_ID
from hubevo.fsio import atomic_write_bytes, atomic_write_text
from hubevo.genome import DEFAULT_SEED, Individual
from hubevo.state import Evaluation, RunState

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

Bred by hubevo in run `{{ run_name }}`, generation {{ generation }}:
{% if merge_yaml %}a **{{ method }}** merge{% else %}a **{{ method }}** fine-tune{% endif %}{% if paper %} ([{{ paper[0] }}]({{ paper[1] }})){% endif %} of {{ parent_list }}.

## Use it

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{{ repo }}")
model = AutoModelForCausalLM.from_pretrained("{{ repo }}")
inputs = tokenizer("Hello", return_tensors="pt")
print(tokenizer.decode(model.generate(**inputs, max_new_tokens=32)[0], skip_special_tokens=True))
```

## Scores

| task | split | score |
| --- | --- | --- |
{% for row in score_rows %}| {{ row[0] }} | {{ row[1] }} | {{ "%.4f"|format(row[2]) }} |
{% endfor %}
Fitness (weighted mean of the fitness tasks): **{{ "%.4f"|format(fitness) }}**. Held-out tasks never
took part in selection.
{% if verdict %}
## Champion

{{ verdict }}
{% endif %}{% if compare_table %}
## Against its parents and the best standard recipe

Scores from this run's evaluations; `-` where a model was not scored on the held-out tasks.

{{ compare_table }}
{% endif %}
## Lineage

{% for p in parent_links %}- {{ p }}
{% endfor %}
{% if merge_yaml %}## Recipe

Parents are named by Hub repo id or by their path relative to the run folder. The recipe ships
beside this card as `recipe.yaml`.
Running `mergekit-yaml recipe.yaml out --random-seed {{ merge_seed }}` on this configuration (from
the run folder, for relative paths) rebuilds the weights (the seed fixes the random masks of DARE
and DELLA):

```yaml
{{ merge_yaml }}```
{% endif %}{% if mutation %}## Mutation

Fine-tuned from `{{ parents[0] }}` with trl; the sampled hyper-parameters and the training outcome:

```yaml
{{ mutation }}```
{% endif %}"""

HUB_URL = "https://huggingface.co"
# merge method (or fine-tuning operator) -> (paper, link): what a card cites next to the method
METHOD_PAPERS: dict[str, tuple[str, str]] = {
    "linear": ("Model soups, Wortsman et al. 2022", "https://arxiv.org/abs/2203.05482"),
    "task_arithmetic": ("Task arithmetic, Ilharco et al. 2022", "https://arxiv.org/abs/2212.04089"),
    "ties": ("TIES-Merging, Yadav et al. 2023", "https://arxiv.org/abs/2306.01708"),
    "dare_ties": ("DARE, Yu et al. 2023", "https://arxiv.org/abs/2311.03099"),
    "dare_linear": ("DARE, Yu et al. 2023", "https://arxiv.org/abs/2311.03099"),
    "breadcrumbs": ("Model Breadcrumbs, Davari and Belilovsky 2023", "https://arxiv.org/abs/2312.06795"),
    "breadcrumbs_ties": ("Model Breadcrumbs, Davari and Belilovsky 2023", "https://arxiv.org/abs/2312.06795"),
    "della": ("DELLA-Merging, Deep et al. 2024", "https://arxiv.org/abs/2406.11617"),
    "della_linear": ("DELLA-Merging, Deep et al. 2024", "https://arxiv.org/abs/2406.11617"),
    "model_stock": ("Model Stock, Jang et al. 2024", "https://arxiv.org/abs/2403.19522"),
    "slerp": ("SLERP, Shoemake 1985", "https://doi.org/10.1145/325165.325242"),
    "nuslerp": ("SLERP, Shoemake 1985 (mergekit's nuslerp)", "https://doi.org/10.1145/325165.325242"),
    "multislerp": ("SLERP, Shoemake 1985 (mergekit's multislerp)", "https://doi.org/10.1145/325165.325242"),
    "passthrough": ("Evolutionary model merge (data-flow space), Akiba et al. 2024",
                    "https://arxiv.org/abs/2403.13187"),
    "dpo": ("DPO, Rafailov et al. 2023", "https://arxiv.org/abs/2305.18290"),
    "sft": ("supervised fine-tuning with trl", "https://huggingface.co/docs/trl/sft_trainer"),
}


def eval_results(scores: Mapping[str, float], *, split: str, metric: str = "exact_match") -> list[EvalResult]:
    return [
        EvalResult(
            task_type="text-generation", dataset_type=task, dataset_name=task, dataset_split=split,
            metric_type=metric, metric_value=float(value), metric_name=f"{metric} ({split})",
        )
        for task, value in scores.items()
    ]


def hub_link(name: str) -> str:
    """A parent as a card lists it: a Hub repo id links to its page, a local name stays code."""
    repo = name.split("@")[0]
    return f"[{name}]({HUB_URL}/{repo})" if "/" in repo and REPO_ID.match(repo) else f"`{name}`"


def lineage_card(
    ind: Individual,
    *,
    run_name: str,
    parent_refs: Mapping[str, str],
    recipe: Mapping | None,
    evaluation: Evaluation,
    heldout: Mapping[str, float],
    hub_only: bool = False,
    training: Mapping | None = None,
    compare: list[Mapping] | None = None,
    license: str | None = None,
    repo_id: str | None = None,
    verdict: str | None = None,
) -> ModelCard:
    """The model card of a survivor; `parent_refs` name parents as the Hub should show them.

    `recipe` is the individual's stored mergekit recipe (parents by Hub id or run-relative path).
    `compare` holds the rows of `card_comparison` (this model, its parents, the best standard
    recipe); `license` goes into the card's metadata; `repo_id` is where the usage snippet
    loads the model from (default: a folder named like the model).

    With `hub_only`, `base_model` keeps only parents that are Hub repo ids (the Hub rejects
    local names); the lineage section still lists every parent.
    """
    scores, fitness = evaluation.scores, evaluation.fitness
    parents = [parent_refs[p] for p in ind.parents]
    tree = [p for p in parents if REPO_ID.match(p)] if hub_only else parents
    method = ind.finetune.operator if ind.finetune else getattr(ind.genome, "method", "passthrough")
    data = ModelCardData(
        model_name=ind.name,
        license=license,
        pipeline_tag="text-generation",
        base_model=(tree if len(tree) > 1 else tree[0]) if tree else None,
        base_model_relation=("finetune" if ind.finetune else "merge") if tree else None,
        library_name="transformers",
        tags=["hubevo", *(["finetune", "trl"] if ind.finetune else ["merge", "mergekit"]), method,
              f"gen-{ind.generation}"],
        eval_results=eval_results(scores, split="fitness") + eval_results(heldout, split="heldout"),
    )
    merge_yaml = yaml.safe_dump(dict(recipe), sort_keys=False) if recipe else None
    mutation = yaml.safe_dump(mutation_record(ind, training), sort_keys=False) if ind.finetune else None
    rows = [(t, "fitness", v) for t, v in scores.items()] + [(t, "held-out", v) for t, v in heldout.items()]
    return ModelCard.from_template(
        data, template_str=CARD_TEMPLATE, model_name=ind.name, run_name=run_name, generation=ind.generation,
        method=method, paper=METHOD_PAPERS.get(method), parent_list=", ".join(map(hub_link, parents)),
        parents=parents, parent_links=list(map(hub_link, parents)), score_rows=rows, fitness=fitness,
        merge_yaml=merge_yaml, merge_seed=DEFAULT_SEED, mutation=mutation, repo=repo_id or ind.name,
        compare_table=compare_markdown(compare, tasks=list(scores)) if compare else None, verdict=verdict,
    )


def card_comparison(state: RunState, cid: str, *, names: Mapping[str, str] | None = None) -> list[dict]:
    """Rows for a card's comparison table: the model, each scored parent and the best standard recipe."""
    best_std = best_in(state, state.baselines)
    roles = {cid: "this model"}
    for parent in state.individuals[cid].parents:
        roles.setdefault(parent, "parent")
    if best_std is not None:
        roles.setdefault(best_std, "best standard recipe")
    return [comparison_row(state, i, role=role, name=(names or {}).get(i)) for i, role in roles.items()
            if i in state.evaluations and state.evaluations[i].status == "ok"]


def comparison_row(state: RunState, cid: str, *, role: str, name: str | None = None) -> dict:
    ev, heldout = state.evaluations[cid], state.heldout.get(cid)
    return {"model": name or state.individuals[cid].name, "role": role, "fitness": ev.fitness, **ev.scores,
            "held-out mean": _mean(heldout)}


def compare_markdown(rows: list[Mapping], *, tasks: list[str]) -> str:
    """A markdown table of comparison rows: model, role, fitness, each fitness task, held-out mean."""
    columns = ["fitness", *tasks, "held-out mean"]
    head = ["model", "role", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        cells = [hub_link(row["model"]), row["role"], *(_cell(row.get(c)) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.4f}"


def mutation_record(ind: Individual, training: Mapping | None) -> dict:
    """The fine-tuning recipe (dataset, revision, sampled genes) and its outcome, as cards and tables show it."""
    recipe = ind.finetune.model_dump(mode="json", exclude={"parent"})
    return {"recipe": recipe, "outcome": dict(training or {})}


def best_in(state: RunState, ids) -> str | None:
    """The best of `ids`, all of one kind (the members, the standard recipes): by their fitness and validation
    examples pooled where all of them were finalists (as the champion rule ranks incumbents), else by fitness."""
    ids = set(ids)
    finals = {i: v for i, v in state.validation.items() if i in ids}
    return ranking.champion([e for i, e in state.evaluations.items() if i in ids], incumbents=ids,
                            validation=finals if len(finals) == len(ids & set(state.evaluations)) else None)


def comparison(state: RunState) -> dict[str, str | None]:
    """The champion, the best member and the best standard recipe: the three a summary compares."""
    return {"champion": state.champion(), "best member": best_in(state, state.initial),
            "best standard recipe": best_in(state, state.baselines)}


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


def card_verdict(state: RunState, cid: str) -> str | None:
    """A card's word on the champion rule: for the champion and every finalist, the run's decision."""
    if cid == state.champion():
        return f"The run's champion: {decision_text(state)}."
    if cid in state.validation:
        return f"A finalist, not the champion: {decision_text(state)}."
    return None


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


def results_frame(state: RunState, *, recipes: bool = True) -> pd.DataFrame:
    """One row per evaluated candidate: the table the leaderboard and the Hub results dataset hold.

    `recipes=False` leaves the `recipe` column empty (a viewer renders one from `state.recipes` when asked)."""
    rows, front, champion = [], pareto.run_front(state), state.champion()
    reigns, survivors = champion_reigns(state), survivor_ids(state)
    for ev in state.evaluations.values():
        ind = state.individuals[ev.id]
        g = ind.genome
        rows.append({
            "generation": ind.generation,
            "evaluated_in": ev.generation,
            "id": ind.id,
            "model": ind.name,
            "kind": ind.kind,
            "method": ind.finetune.operator if ind.finetune else getattr(g, "method", "seed"),
            "parents": [state.individuals[p].name for p in ind.parents],
            "genes": genes_text(ind),
            "mutation": json.dumps(mutation_record(ind, state.training.get(ind.id))) if ind.finetune else None,
            "recipe": recipe_text(state.recipes[ind.id]) if recipes and ind.id in state.recipes else None,
            "status": ev.status,
            "reason": ev.reason,
            "baseline": state.baselines.get(ev.id),
            "fitness": ev.fitness,
            "fitness_stderr": ev.stderr,
            "validation": state.validation[ev.id].fitness if ev.id in state.validation else None,
            "validation_stderr": state.validation[ev.id].stderr if ev.id in state.validation else None,
            **{f"fitness/{k}": v for k, v in ev.scores.items()},
            **{f"heldout/{k}": v for k, v in state.heldout.get(ev.id, {}).items()},
            "heldout": _mean(state.heldout.get(ev.id)),
            "examples": ev.examples,
            "seconds": ev.seconds,
            "survivor": ev.id in survivors,
            "pareto": ev.id in front,
            "champion": ev.id == champion,
            "champion_in": reigns.get(ev.id, []),
            "path": state.saved.get(ev.id),
        })
    return pd.DataFrame(rows)


def survivor_ids(state: RunState) -> set[str]:
    """Everyone who survived some generation (one set, not a scan of every generation per row)."""
    return {cid for ids in state.survivors.values() for cid in ids}


_GENES_TEXTS: dict[str, str] = {}  # an id is its genome's hash, so its genes never change


def genes_text(individual: Individual) -> str:
    """An individual's genes as the results table stores them (JSON), dumped once per id in this process."""
    text = _GENES_TEXTS.get(individual.id)
    if text is None:
        if len(_GENES_TEXTS) >= 200_000:
            _GENES_TEXTS.clear()
        genome = individual.genome
        text = _GENES_TEXTS[individual.id] = json.dumps(genome.genes() if genome else {})
    return text


_RECIPE_TEXTS: dict[str, str] = {}  # a recipe never changes: the Space rebuilds a live run's table from memory


def recipe_text(recipe: Mapping) -> str:
    """A recipe as the results table stores it (YAML), dumped once per distinct recipe in this process."""
    key = json.dumps(recipe, default=str)
    text = _RECIPE_TEXTS.get(key)
    if text is None:
        if len(_RECIPE_TEXTS) >= 200_000:
            _RECIPE_TEXTS.clear()
        text = _RECIPE_TEXTS[key] = yaml.dump(recipe, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                                             sort_keys=False)
    return text


def champion_reigns(state: RunState) -> dict[str, list[int]]:
    """Individual id -> the finished generations after which it was the champion."""
    reigns: dict[str, list[int]] = {}
    champions = ranking.champions_upto(state.evaluations.values(), state.survivors, validation=state.validation,
                                       incumbents={*state.initial, *state.baselines})
    for generation, cid in champions.items():
        if cid is not None:
            reigns.setdefault(cid, []).append(generation)
    return reigns


def _mean(scores: Mapping[str, float] | None) -> float | None:
    return sum(scores.values()) / len(scores) if scores else None


def lineage_graph(state: RunState) -> dict:
    """Node-link JSON of the family tree (networkx's format); edges carry the parent's role and merge weight,
    data-flow children the parent of each layer of their path."""
    nodes = [
        {"id": i.id, "name": i.name, "kind": i.kind, "generation": i.generation, "source": i.source,
         "revision": i.revision,
         "method": i.finetune.operator if i.finetune else getattr(i.genome, "method", None),
         "fitness": state.evaluations[i.id].fitness if i.id in state.evaluations else None}
        | ({"layers": [step.parent for step in i.genome.path]} if hasattr(i.genome, "path") else {})
        for i in state.individuals.values()
    ]
    edges = [edge for i in state.individuals.values() for edge in child_edges(i)]
    return {"directed": True, "multigraph": False, "graph": {}, "nodes": nodes, "edges": edges}


def parent_weights(individual: Individual) -> dict[str, float]:
    """Each merge parent's weight: its `weight` gene (averaged over layer blocks), or slerp's 1 - t and t."""
    genome = individual.genome
    if genome is None or not hasattr(genome, "per_parent"):
        return {}
    if genome.method == "slerp" and "t" in genome.shared and len(genome.parents) == 2:
        t = float(genome.shared["t"])
        return {genome.parents[0]: 1 - t, genome.parents[1]: t}
    tables = [genome.per_parent] + [block.per_parent for block in genome.blocks if block.module is None]
    weights: dict[str, list[float]] = {}
    for table in tables:
        for pid, genes in zip(genome.parents, table, strict=False):
            if "weight" in genes:
                weights.setdefault(pid, []).append(float(genes["weight"]))
    return {pid: sum(values) / len(values) for pid, values in weights.items()}


def child_edges(individual: Individual) -> list[dict]:
    """The lineage edges into `individual`, one per parent (`edge_genes`), its weights worked out once."""
    weights = parent_weights(individual) if individual.parents else {}
    return [{"source": p, "target": individual.id, **edge_genes(individual, p, weights=weights)}
            for p in individual.parents]


def edge_genes(individual: Individual, parent: str, *, weights: Mapping[str, float]) -> dict:
    """What the lineage edge parent -> child carries: its role (parent or base) and the parent's weight
    (`weights`: the child's `parent_weights`)."""
    genome = individual.genome
    role = "base" if genome is not None and parent == genome.base and parent not in genome.parents else "parent"
    weight = weights.get(parent)
    return {"role": role, **({"weight": round(weight, 4)} if weight is not None else {})}


def write_tables(state: RunState, run_dir: Path) -> None:
    frame = results_frame(state)
    atomic_write_bytes(run_dir / "results.parquet", frame.to_parquet(index=False))
    if state.finished:
        pareto.plot_front(frame, run_dir / "pareto.png")
    atomic_write_text(run_dir / "lineage.json", json.dumps(lineage_graph(state), indent=1))
    atomic_write_text(run_dir / DECISION_FILE, json.dumps(decision_record(state), indent=1))


DECISION_FILE = "champion.json"


def decision_record(state: RunState) -> dict:
    """The champion rule's decision as the run recorded it (what a viewer shows rather than recomputes)."""
    d = state.decision()
    name = lambda i: state.individuals[i].name if i in state.individuals else None  # noqa: E731
    return {"champion": d.champion, "champion_name": name(d.champion), "rule": d.rule, "holder": d.holder,
            "holder_name": name(d.holder), "challenger": d.challenger, "challenger_name": name(d.challenger),
            "lead": d.lead, "stderr": d.stderr, "z": d.z, "margin": d.margin, "crowned": d.crowned,
            "examples": d.examples, "shrink": d.shrink, "resolvable": d.resolvable, "text": decision_text(state)}


def ranked_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows best first by `hubevo.ranking.rank_key`; rows without a fitness last, in table order."""
    scored = frame[frame["fitness"].notna() & (frame["status"] == "ok")]
    order = sorted(scored.index, key=lambda i: ranking.rank_key(
        frame.at[i, "fitness"], frame.at[i, "evaluated_in"], frame.at[i, "id"]))
    return frame.loc[order + [i for i in frame.index if i not in set(order)]]


def leaderboard(state: RunState, *, top: int | None = None) -> str:
    frame = results_frame(state)
    if frame.empty:
        return "(no candidates evaluated)"
    frame = ranked_frame(frame)
    frame = pd.concat([frame[frame["champion"]], frame[~frame["champion"]]])  # the one champion heads the table
    frame["parents"] = frame["parents"].map(lambda ps: "+".join(ps) if len(ps) else "-")
    frame[""] = frame["champion"].map(lambda c: "<- champion" if c else "")
    cols = ["generation", "model", "parents", "method", "fitness", "heldout", "status", ""]
    shown = frame[cols].head(top) if top else frame[cols]
    return shown.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")
