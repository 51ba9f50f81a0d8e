"""Cards written only for the Hub: the champion repo's README and the results dataset's README.

A survivor's own lineage card comes from `hubevo.publish.cards.lineage_card` and is pushed as
it is. These are pure functions of the run state (no I/O), so publishing the same state
twice produces the same bytes, and the client skips the unchanged file.
"""

from __future__ import annotations

from huggingface_hub import DatasetCard, DatasetCardData, ModelCard, ModelCardData

RESULTS_TEMPLATE = """---
{{ card_data }}
---

# Results of hubevo run `{{ run_name }}`

One row per evaluated candidate in `results.parquet` (fitness, per-task scores, held-out
scores, merge method, genes, parents and the Hub repo of every pushed model), every per-example
outcome the run scored in `outcomes.parquet` (candidate, fitness or validation, task, document, value),
the family tree in `lineage.json` (networkx node-link format) and the run configuration in `config.yaml`.

- generations with survivors: {{ generations }}
- candidates evaluated: {{ evaluated }}
- champion: {{ champion }}
{% if champion_repo %}- champion history: `{{ champion_repo }}`, one commit and tag `gen-N` per change
{% endif %}
```python
import pandas as pd
from huggingface_hub import hf_hub_download

frame = pd.read_parquet(hf_hub_download("{{ repo_id }}", "results.parquet", repo_type="dataset"))
```
"""


def champion_card(
    lineage_readme: str | None,
    *,
    run_name: str,
    generation: int,
    name: str,
    fitness: float,
    also_at: str | None = None,
    seed_repo: str | None = None,
) -> str:
    """README of the champion repo at `generation`: the champion's lineage card with a header, or for a seed
    (no lineage card) a short card pointing at the member it copies."""
    where = f" It is also published as `{also_at}`." if also_at else ""
    header = (f"> **Champion of hubevo run `{run_name}` from generation {generation}**: `{name}`, "
              f"fitness {fitness:.4f}.{where} Each tag `gen-N` of this repo marks a change of champion.\n\n")
    if lineage_readme is not None:
        card = ModelCard(lineage_readme)
        card.data.tags = list(dict.fromkeys([*(card.data.tags or []), "champion"]))
        card.text = header + card.text.lstrip("\n")
        return str(card)
    data = ModelCardData(base_model=seed_repo, library_name="transformers", tags=["hubevo", "champion"])
    source = f"the initial member `{seed_repo or name}`"
    text = f"\n# {run_name} champion\n\n{header}No child has beaten {source} yet; these are its weights.\n"
    return f"---\n{data.to_yaml()}\n---\n{text}"


def results_card(
    *, repo_id: str, run_name: str, generations: list[int], evaluated: int, champion: str | None,
    champion_repo: str | None,
) -> str:
    data = DatasetCardData(
        tags=["hubevo", "model-merging", "evolution"],
        configs=[{"config_name": "default", "data_files": "results.parquet"},
                 {"config_name": "outcomes", "data_files": "outcomes.parquet"}],
    )
    card = DatasetCard.from_template(
        data, template_str=RESULTS_TEMPLATE, repo_id=repo_id, run_name=run_name,
        generations=", ".join(map(str, generations)) or "none yet", evaluated=evaluated,
        champion=f"`{champion}`" if champion else "none yet", champion_repo=champion_repo,
    )
    return str(card)
