"""Stage 5, mutate by fine-tuning: one child trained from one parent with trl (`dpo` or `sft`).

- `recipe`: the config section (`FinetuneSpace`) and the genes of one mutation
  (`FinetuneRecipe`), drawn by `sample_recipe` (pure);
- `operators`: the registry of fine-tuning operators and the columns each one needs;
- `data`: a seeded sample of a preference (or instruction) dataset (`load_pairs`,
  `check_sources`);
- `training`: `finetune`, the edge that trains with trl and writes the child folder.

Importing this package imports neither torch nor trl, transformers, peft or datasets: the
config schema embeds `FinetuneSpace`, and the functions import those when they run.
"""

from hubevo.finetune.data import _load, check_sources, load_pairs
from hubevo.finetune.operators import OPERATORS, Operator, get_operator, required_columns
from hubevo.finetune.recipe import (
    DPO_LOSSES,
    LOCAL_FORMATS,
    FinetuneRecipe,
    FinetuneSpace,
    PreferenceSource,
    sample_recipe,
)
from hubevo.finetune.training import (
    MAX_LENGTH,
    Placement,
    _load_parent,
    _load_tokenizer,
    _no_progress_bars,
    _train,
    finetune,
)

__all__ = [
    "DPO_LOSSES",
    "LOCAL_FORMATS",
    "MAX_LENGTH",
    "OPERATORS",
    "FinetuneRecipe",
    "FinetuneSpace",
    "Operator",
    "Placement",
    "PreferenceSource",
    "check_sources",
    "finetune",
    "get_operator",
    "load_pairs",
    "required_columns",
    "sample_recipe",
]
