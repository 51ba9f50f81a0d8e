"""Lineage cards (`hubevo.publish.cards.lineage_card`) as good as the best merged-model cards on the Hub:
license and pipeline tag, a usage snippet that loads the model, scores against the parents and the
best standard recipe, parent and paper links, the recipe and the command that rebuilds it."""

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard

from hubevo.breed.genome import Individual, MergeGenome, child_individual, seed_individual, to_merge_dict
from hubevo.config import PublishConfig
from hubevo.evaluation.records import Evaluation
from hubevo.finetune.recipe import FinetuneRecipe
from hubevo.publish.cards import METHOD_PAPERS, Usage, card_comparison, lineage_card
from hubevo.publish.lineage_recipe import REBUILD_COMMAND, lineage_recipe
from hubevo.publish.resolver import Resolver
from hubevo.state.runstate import RunState
from tests.tiny_models import build_llama

torch.set_num_threads(1)
HUB_PARENT = "alice/seed-one"


def scored(cid: str, fitness: float, *, a: float, b: float) -> Evaluation:
    return Evaluation(id=cid, generation=0, status="ok", fitness=fitness, scores={"task_a": a, "task_b": b})


@pytest.fixture
def run():
    """A run state: a Hub seed and a local seed, a standard recipe and a bred TIES child of both seeds."""
    hub, local = seed_individual(name=HUB_PARENT, source=HUB_PARENT), seed_individual(name="local", source="/m/l")
    std = child_individual(MergeGenome(method="linear", parents=(hub.id, local.id),
                                       per_parent=({"weight": 0.5}, {"weight": 0.5})), generation=0)
    std = std.model_copy(update={"name": "std-linear"})
    child = child_individual(MergeGenome(method="ties", parents=(hub.id, local.id), base=None,
                                         per_parent=({"weight": 0.6, "density": 0.5}, {"weight": 0.4, "density": 0.5})),
                             generation=1)
    state = RunState(config_hash="x", individuals={i.id: i for i in (hub, local, std, child)}, baselines={std.id: "linear"},
                     initial=[hub.id, local.id])
    for ind, fit, a, b in ((hub, 0.4, 0.7, 0.1), (local, 0.45, 0.1, 0.8), (std, 0.6, 0.6, 0.6), (child, 0.7, 0.7, 0.7)):
        state.evaluations[ind.id] = scored(ind.id, fit, a=a, b=b).model_copy(update={"generation": ind.generation})
    state.heldout[child.id] = {"heldout_x": 0.65}
    names = {hub.id: HUB_PARENT, local.id: "local", std.id: "std-linear", child.id: child.name}
    state.recipes[child.id] = to_merge_dict(child.genome, refs={hub.id: HUB_PARENT, local.id: "../models/local"})
    return state, child, names


def resolver_of(state) -> Resolver:
    state.members.update({i: {"label": ind.name, "source": ind.source, "path": ind.source,
                              "revision": "abc123" if ind.source == HUB_PARENT else None}
                          for i, ind in state.individuals.items() if ind.kind == "seed"})
    return Resolver(state=state, run_dir=Path("/runs/r"), run_name="r", publish=PublishConfig(), member_paths={})


def card_of(state, child, names, **extra) -> ModelCard:
    return lineage_card(child, run_name="r", parent_refs=names, rebuild=lineage_recipe(resolver_of(state), child.id),
                        evaluation=state.evaluations[child.id], heldout=state.heldout[child.id],
                        compare=card_comparison(state, child.id, names=names), **extra)


def test_card_metadata_has_license_and_pipeline_tag(run):
    card = card_of(*run, license="apache-2.0")
    assert card.data.license == "apache-2.0" and card.data.pipeline_tag == "text-generation"
    assert ModelCard(str(card)).data.pipeline_tag == "text-generation"  # survives a save and a reload


def test_card_links_hub_parents_and_the_method_paper(run):
    text = card_of(*run).text
    assert f"[{HUB_PARENT}](https://huggingface.co/{HUB_PARENT})" in text
    assert "`local`" in text and "huggingface.co/local" not in text  # a local parent is not a Hub link
    assert "https://arxiv.org/abs/2306.01708" in text  # TIES
    assert METHOD_PAPERS["dare_ties"][1].endswith("2311.03099")


def test_card_compares_the_child_with_its_parents_and_the_best_standard_recipe(run):
    table = re.search(r"## Against its parents and the baselines\n(.*?)\n## ", card_of(*run).text, re.S)
    rows = [line for line in table.group(1).splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[1] for r in rows] == ["this model", "parent (member)", "parent (member)",
                                                  "best standard recipe"]
    assert rows[0].split(" | ")[2:] == ["0.7000", "0.7000", "0.7000", "0.6500 |"]
    assert rows[3].startswith("| `std-linear` | best standard recipe | 0.6000") and rows[3].endswith("| - |")


def test_card_shows_the_recipe_and_the_command_that_rebuilds_it(run):
    text = card_of(*run).text
    assert REBUILD_COMMAND in text and "merge_method: ties" in text
    assert f"- model: {HUB_PARENT}@abc123" in text  # a Hub member pinned to the revision the run used
    assert "- model: local\n" in text and "`local`: local members, named as the run file named them" in text


def test_a_finetuned_childs_recipe_is_its_parent_plus_its_adapter_in_mergekit_multi_stages(run):
    """Every ancestor a stage, parents first, named; a LoRA fine-tune is mergekit's `parent+adapter`."""
    state, child, names = run
    tuned = Individual(id="ft-1", kind="finetune", generation=2, name="g2-dpo-1",
                       finetune=FinetuneRecipe(operator="dpo", parent=child.id, dataset={"path": "p.jsonl"},
                                               learning_rate=1e-4, steps=3, lora_rank=4, samples=8, seed=0,
                                               batch_size=2))
    state.individuals[tuned.id] = tuned
    grandchild = child_individual(MergeGenome(method="linear", parents=(tuned.id, child.id),
                                              per_parent=({"weight": 0.5}, {"weight": 0.5})), generation=3)
    state.individuals[grandchild.id] = grandchild
    rebuild = lineage_recipe(resolver_of(state), grandchild.id)
    docs = list(yaml.safe_load_all(rebuild.to_yaml()))
    assert [d.get("name") for d in docs] == [child.name, "g2-dpo-1", None]
    assert docs[1]["models"] == [{"model": f"{child.name}+./adapters/g2-dpo-1", "parameters": {"weight": 1.0}}]
    assert [m["model"] for m in docs[2]["models"]] == ["g2-dpo-1", child.name]
    assert rebuild.adapters == {"g2-dpo-1": "ft-1"} and rebuild.local_members == ["local"]


def test_card_usage_snippet_loads_and_runs_the_model(run, tmp_path):
    state, child, names = run
    folder = build_llama(tmp_path / "model")
    usage = Usage(load_from=str(folder), prompt="12+3=", task="task_a")
    snippet = re.search(r"## Use it\n\n```python\n(.*?)```", card_of(state, child, names, usage=usage).text,
                        re.S).group(1)
    assert f'model_id = "{folder}"' in snippet and 'tokenizer("12+3="' in snippet and "task_a" in snippet
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(snippet, {})
    assert printed.getvalue().strip()
    shutil.rmtree(folder)
