"""The Model tab: one candidate's scores, why it is or is not the champion, how to use it, its stored mergekit
recipe and its lineage card.

The recipe is the one the core stored in the results table's `recipe` column (parents named
by Hub repo id or by a path inside the run folder); the Space renders no recipe of its own,
it only names parents by their Hub repos where the table knows them. Why the model is or is not
the champion is the run's recorded decision (`space.data.verdict`). "Use it" loads the model with
`from_pretrained` only where weights exist (its Hub repo, or a folder holding them); a model kept
only as a recipe is rebuilt with `hubevo export` or `mergekit-yaml`. Cards are read with
`huggingface_hub.ModelCard`, metadata apart from prose; the sections the page shows itself (use,
scores, recipe, champion, comparisons) are left out of the card's prose, so each is printed once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from huggingface_hub import ModelCard

from hubevo.breed.genome import DEFAULT_SEED
from hubevo.fsio import has_weights
from space.data.loading import RunData, as_list, rounded
from space.data.verdict import model_verdict

OWN_SECTIONS = ("Use it", "Scores", "Champion", "Recipe", "Rebuild it with mergekit",
                "Against its parents and the best standard recipe", "Against its parents and the baselines")


@dataclass(frozen=True)
class ModelDetail:
    run: str
    id: str
    name: str
    kind: str
    generation: int
    method: str
    parents: list[str]
    status: str
    fitness: float | None
    heldout: float | None
    scores: dict[str, float]
    repo: str | None
    recipe: str  # mergekit YAML ("" for a seed, or a table that stored none)
    card: str | None  # the lineage card (README.md), when there is one
    fitness_stderr: float | None = None
    validation: float | None = None
    validation_stderr: float | None = None
    verdict: str | None = None  # why it is or is not the champion, as the run recorded it; None: no record
    weights: str | None = None  # where `from_pretrained` finds it: its Hub repo or a folder holding weights
    run_folder: str | None = None  # the local run folder (`hubevo export` rebuilds from it); None for a Hub run


def model_detail(run: RunData, model_id: str, *, card: str | None = None) -> ModelDetail:
    """Everything known about one candidate; `card` overrides the local README (e.g. fetched from the Hub)."""
    row = run.row(model_id)
    if row is None:
        raise KeyError(f"model {model_id!r} is not in run {run.name!r}")
    scores = {k: float(v) for k, v in row.items() if "/" in str(k) and isinstance(v, (int, float)) and not pd.isna(v)}
    local = run.cards.get(model_id)
    return ModelDetail(
        run=run.name, id=model_id, name=str(row["model"]), kind=str(row["kind"]), generation=int(row["generation"]),
        method=str(row["method"]), parents=as_list(row["parents"]), status=str(row["status"]),
        fitness=rounded(row["fitness"]), heldout=rounded(row["heldout"]), scores=scores,
        repo=row["repo"] if isinstance(row["repo"], str) else None, recipe=recipe_yaml(run, model_id),
        card=card if card is not None else (local.read_text() if local else None),
        fitness_stderr=rounded(row.get("fitness_stderr")), validation=rounded(row.get("validation")),
        validation_stderr=rounded(row.get("validation_stderr")), verdict=model_verdict(run, model_id),
        weights=weights_at(run, model_id), run_folder=run.where if run.source == "local" else None,
    )


def weights_at(run: RunData, model_id: str) -> str | None:
    """Where the model's weights can be loaded from: its Hub repo, the run folder it was saved in, or a member's
    own folder; None when it exists only as a recipe (a survivor's folder may hold only its card and recipe)."""
    row = run.row(model_id)
    if isinstance(row.get("repo"), str) and row["repo"]:
        return row["repo"]
    node = next((n for n in run.lineage.get("nodes", []) if n.get("id") == model_id), {})
    folders = [row.get("path"), node.get("source") if row.get("kind") == "seed" else None]
    return next((f for f in folders if isinstance(f, str) and Path(f).is_absolute() and has_weights(Path(f))), None)


def use_it(detail: ModelDetail) -> str:
    """Markdown: how to load the model, or how to rebuild it when it exists only as a recipe."""
    if detail.weights:
        return (f"Load it with transformers:\n\n```python\nfrom transformers import AutoModelForCausalLM, "
                f"AutoTokenizer\n\ntokenizer = AutoTokenizer.from_pretrained({detail.weights!r})\n"
                f"model = AutoModelForCausalLM.from_pretrained({detail.weights!r})\n```")
    run = detail.run_folder or f"<the folder of run {detail.run}>"
    export = f"```bash\nhubevo export {_shell(run)} {detail.id} out\n```"
    if not detail.recipe:
        return f"Its weights are not kept here. Rebuild it from its run (with its card):\n\n{export}"
    return ("Its weights are not kept: it exists as the recipe below. Rebuild it from its run (parents that are "
            f"recipes too are rebuilt first, and its card is written):\n\n{export}\n\nor save the recipe as "
            "`recipe.yaml` and, where its parents are at hand (Hub ids, or paths relative to the run folder), "
            f"merge it:\n\n```bash\nmergekit-yaml recipe.yaml out --random-seed {DEFAULT_SEED}\n```\n\n"
            "Either way the folder `out` then loads with transformers.")


def _shell(text: str) -> str:
    return text if re.fullmatch(r"[\w@%+=:,./-]+", text) else "'" + text.replace("'", "'\\''") + "'"


def recipe_yaml(run: RunData, model_id: str) -> str:
    """The stored mergekit YAML of a candidate, parents named by Hub repo where known; "" when none is stored."""
    stored = run.recipe(model_id)
    if stored is None:
        return ""
    table = run.results
    repos = {m: r for m, r in zip(table["model"], table["repo"], strict=True) if isinstance(r, str) and r != m}
    recipe = yaml.safe_load(stored)
    renamed = _renamed(recipe, repos)
    return stored if renamed == recipe else yaml.safe_dump(renamed, sort_keys=False)


def _renamed(node, refs: Mapping[str, str]):
    """A recipe with every model reference (`model`, `base_model`) renamed through `refs`."""
    if isinstance(node, dict):
        return {k: (refs.get(v, v) if k in ("model", "base_model") and isinstance(v, str) else _renamed(v, refs))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed(v, refs) for v in node]
    return node


def card_sections(text: str) -> tuple[str, str]:
    """(YAML metadata, markdown prose) of a model card; metadata "" when it has none."""
    card = ModelCard(text, ignore_metadata_errors=True)
    metadata = card.data.to_dict()
    return (card.data.to_yaml() if metadata else ""), card.text


def card_prose(prose: str) -> str:
    """A card's prose without its title and the sections the Model page shows itself (`OWN_SECTIONS`): a card
    written during the run may also be older than the run's final decision."""
    parts = re.split(r"(?m)^(?=## )", re.sub(r"\A\s*# [^\n]*\n", "", prose))  # the page has the title
    kept = [part for part in parts if not any(part.startswith(f"## {title}\n") or part.rstrip() == f"## {title}"
                                              for title in OWN_SECTIONS)]
    return "".join(kept).strip() + "\n"
