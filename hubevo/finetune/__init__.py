"""Stage 5, mutate by fine-tuning: one child trained from one parent with trl (`dpo` or `sft`).

- `recipe`: the genes of one mutation (`FinetuneRecipe`), drawn by `sample_recipe` (pure) from
  the config section's ranges (`hubevo.config.finetune.FinetuneSpace`);
- `operators`: the registry of fine-tuning operators and the columns each one needs;
- `data`: a seeded sample of a preference (or instruction) dataset (`load_pairs`,
  `check_sources`);
- `training`: `finetune`, the edge that trains with trl and writes the child folder.

Importing this package imports neither torch nor trl, transformers, peft or datasets: the
functions import those when they run.
"""
