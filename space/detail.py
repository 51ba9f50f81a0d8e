"""The Model tab: one candidate's scores, its stored mergekit recipe and its lineage card.

The recipe is the one the core stored in the results table's `recipe` column (parents named
by Hub repo id or by a path inside the run folder); the Space renders no recipe of its own,
it only names parents by their Hub repos where the table knows them. Cards are read with
`huggingface_hub.ModelCard`, metadata apart from prose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
import yaml
from huggingface_hub import ModelCard

from space.loading import RunData, as_list, rounded


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
    )


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
