"""Stage 6, publish: a survivor's lineage card.

A lineage card is a `huggingface_hub.ModelCard`: the model-tree fields (`base_model`,
`base_model_relation`) in its YAML, the mergekit-multi document that rebuilds the weights from the
members (`hubevo.publish.lineage_recipe`), where to load it from and with which prompt, the
generation, its fitness and held-out scores as evaluation results (every number the results
table's), the comparison with its parents and the baselines, and why it is or is not the champion.
Pushing it happens in `hubevo.publish.hub`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hubevo.breed.genome import Individual
from hubevo.config import REPO_ID
from hubevo.evaluation.records import Evaluation
from hubevo.publish.decision import baseline_bests, decision_text
from hubevo.publish.lineage_recipe import REBUILD_COMMAND, LineageRecipe
from hubevo.registry import Registry
from hubevo.selection.niches import niches
from hubevo.state.runstate import RunState

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

Bred by hubevo in run `{{ run_name }}`, generation {{ generation }}:
{% if not finetuned %}a **{{ method }}** merge{% else %}a **{{ method }}** fine-tune{% endif %}{% if paper %} ([{{ paper[0] }}]({{ paper[1] }})){% endif %} of {{ parent_list }}.

## Use it

{% if fetch_note %}{{ fetch_note }}

{% endif %}```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model_id = {{ load_from }}
tokenizer = AutoTokenizer.from_pretrained(model_id)
model = AutoModelForCausalLM.from_pretrained(model_id)
{% if prompt_task %}# a prompt of the fitness task {{ prompt_task }}, as lm-eval gives it to the model
{% endif %}inputs = tokenizer({{ prompt }}, return_tensors="pt")
print(tokenizer.decode(model.generate(**inputs, max_new_tokens=32)[0], skip_special_tokens=True))
```

## Scores

| task | split | score |
| --- | --- | --- |
{% for row in score_rows %}| {{ row[0] }} | {{ row[1] }} | {{ "%.4f"|format(row[2]) }} |
{% endfor %}
Fitness (weighted mean of the fitness tasks): **{{ "%.4f"|format(fitness) }}**. Held-out tasks never
took part in selection.
{% if niche %}
Its niche in the search's archive (M2N2's resource competition): of the fitness examples, it alone solves
{{ niche }}; that is why it was kept beside models with a higher mean.
{% endif %}{% if verdict %}
## Champion

{{ verdict }}
{% endif %}{% if compare_table %}
## Against its parents and the baselines

Scores from this run's results table (`results.parquet`); `-` where a model was not scored on the
held-out tasks. Roles as the run names them: members, standard recipes (`std-*`), the merge +
fine-tune baseline (`ft-std-*`).

{{ compare_table }}
{% endif %}
## Lineage

{% for p in parent_links %}- {{ p }}
{% endfor %}
{% if rebuild_yaml %}## Rebuild it with mergekit

`recipe.yaml` beside this card rebuilds the weights with mergekit alone, from the members: a
`mergekit-multi` document of {{ rebuild_stages }} stage(s), one per merge and per LoRA fine-tune of the
lineage, parents first, each intermediate named after its model, this model the last document.
Run, in a folder holding `recipe.yaml`{% if rebuild_adapters %} and `adapters/`{% endif %}:

```bash
{{ rebuild_command }}
```

{% for note in rebuild_notes %}- {{ note }}
{% endfor %}
The seed fixes the random masks of DARE and DELLA; mergekit seeds every stage with it, as the run
did, so the weights come out bit for bit on the same device.

<details><summary>recipe.yaml</summary>

```yaml
{{ rebuild_yaml }}```

</details>
{% endif %}{% if mutation %}## Mutation

Fine-tuned from `{{ parents[0] }}` with trl; the sampled hyper-parameters and the training outcome:

```yaml
{{ mutation }}```
{% endif %}"""


HUB_URL = "https://huggingface.co"


# merge method (or fine-tuning operator) -> (paper, link): what a card cites next to the method
METHOD_PAPERS = Registry("method with a paper", {
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
}, plural="methods with a paper")


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


@dataclass(frozen=True)
class Usage:
    """Where a card's "Use it" snippet loads the model from, and the prompt it tries."""

    load_from: str  # a Hub repo id, or an absolute folder
    prompt: str = "Hello"
    task: str | None = None  # the fitness task the prompt is an example of
    fetch_note: str | None = None  # how to get the weights there first, when the folder holds none


def lineage_card(
    ind: Individual,
    *,
    run_name: str,
    parent_refs: Mapping[str, str],
    evaluation: Evaluation,
    heldout: Mapping[str, float],
    rebuild: LineageRecipe | None = None,
    usage: Usage | None = None,
    hub_only: bool = False,
    training: Mapping | None = None,
    compare: list[Mapping] | None = None,
    license: str | None = None,
    verdict: str | None = None,
    niche: str | None = None,
) -> ModelCard:
    """The model card of a survivor; `parent_refs` name parents as the Hub should show them.

    `rebuild` is the mergekit-multi document that rebuilds it from the members
    (`hubevo.publish.lineage_recipe`). `compare` holds the rows of `card_comparison` (this model,
    its parents, the best standard recipe and merge + fine-tune baseline); `license` goes into the
    card's metadata; `niche` the examples it alone solves in an m2n2 archive (`niche_texts`); `usage`
    says where the usage snippet loads the model from (default: a folder named like the model) and with
    which prompt.

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
    usage = usage or Usage(load_from=ind.name)
    mutation = yaml.safe_dump(mutation_record(ind, training), sort_keys=False) if ind.finetune else None
    rows = [(t, "fitness", v) for t, v in scores.items()] + [(t, "held-out", v) for t, v in heldout.items()]
    return ModelCard.from_template(
        data, template_str=CARD_TEMPLATE, model_name=ind.name, run_name=run_name, generation=ind.generation,
        method=method, paper=METHOD_PAPERS.get(method), parent_list=", ".join(map(hub_link, parents)),
        parents=parents, parent_links=list(map(hub_link, parents)), score_rows=rows, fitness=fitness,
        finetuned=ind.finetune is not None, mutation=mutation,
        load_from=json.dumps(usage.load_from), prompt=json.dumps(usage.prompt), prompt_task=usage.task,
        fetch_note=usage.fetch_note,
        rebuild_yaml=rebuild.to_yaml() if rebuild else None, rebuild_stages=rebuild.stages if rebuild else 0,
        rebuild_notes=rebuild.notes() if rebuild else [], rebuild_adapters=bool(rebuild and rebuild.adapters),
        rebuild_command=REBUILD_COMMAND,
        compare_table=compare_markdown(compare, tasks=list(scores)) if compare else None, verdict=verdict,
        niche=niche,
    )


def card_comparison(state: RunState, cid: str, *, names: Mapping[str, str] | None = None) -> list[dict]:
    """Rows for a card's comparison table: the model, each scored parent, the best standard recipe and the best
    merge + fine-tune baseline, each with the role the README gives it."""
    roles = {cid: "this model"}
    for parent in state.individuals[cid].parents:
        roles.setdefault(parent, role_of(state, parent, default="parent"))
    for role, best in baseline_bests(state).items():
        if best is not None:
            roles.setdefault(best, role)
    return [comparison_row(state, i, role=role, name=(names or {}).get(i)) for i, role in roles.items()
            if i in state.evaluations and state.evaluations[i].status == "ok"]


def role_of(state: RunState, cid: str, *, default: str) -> str:
    """`default`, said more exactly for a member or a baseline: "parent (member)", "parent (standard recipe)"."""
    if cid in state.initial:
        return f"{default} (member)"
    if cid in state.baselines:
        kind = "merge + fine-tune baseline" if state.individuals[cid].finetune else "standard recipe"
        return f"{default} ({kind})"
    return default


def comparison_row(state: RunState, cid: str, *, role: str, name: str | None = None) -> dict:
    ev, heldout = state.evaluations[cid], state.heldout.get(cid)
    return {"model": name or state.individuals[cid].name, "role": role, "fitness": ev.fitness, **ev.scores,
            "held-out mean": mean_score(heldout)}


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


def mean_score(scores: Mapping[str, float] | None) -> float | None:
    return sum(scores.values()) / len(scores) if scores else None


def mutation_record(ind: Individual, training: Mapping | None) -> dict:
    """The fine-tuning recipe (dataset, revision, sampled genes) and its outcome, as cards and tables show it."""
    recipe = ind.finetune.model_dump(mode="json", exclude={"parent"})
    return {"recipe": recipe, "outcome": dict(training or {})}


def card_verdict(state: RunState, cid: str) -> str | None:
    """A card's word on the champion rule: for the champion and every finalist, the run's decision."""
    if cid == state.champion():
        return f"The run's champion: {decision_text(state)}."
    if cid in state.validation:
        return f"A finalist, not the champion: {decision_text(state)}."
    return None


def niche_texts(state: RunState, *, shown: int = 3) -> dict[str, str]:
    """For each model of an `m2n2` archive, the fitness examples it alone solves among the archive: "2
    (user_digits_100:17, user_shift_100:4)", `task:document`. Empty for other strategies."""
    archive = state.strategy_state.get("archive")
    if not isinstance(archive, list):  # the GA's per-task archive is a mapping: no niches there
        return {}
    found = niches(state.evaluations, [i for i in archive if i in state.evaluations], shown=shown)
    more = lambda n: ", ..." if n["alone"] > len(n["examples"]) else ""  # noqa: E731
    return {cid: f"{n['alone']}" + (f" ({', '.join(n['examples'])}{more(n)})" if n["examples"] else "")
            for cid, n in found.items()}
