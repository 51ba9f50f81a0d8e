"""The demo zoo: tiny CPU-trained causal LMs and lm-eval tasks on which merging measurably helps.

`build_zoo()` trains (or reuses from its cache) a base model and two specialists, `digits` and
`letters`; `render_tasks()` writes the lm-eval tasks `demo_digits`, `demo_letters` (fitness)
`demo_digits_validation`, `demo_letters_validation` (the finals that pick the champion) and
`demo_digits_heldout`, `demo_letters_heldout`, `demo_combined_heldout` (held out).
"""

from hubevo.demo.zoo import (
    FITNESS_TASKS,
    HEADLINE_TASK,
    HELDOUT_TASKS,
    VALIDATION_TASKS,
    Zoo,
    build_zoo,
    default_cache_dir,
    exact_match,
    render_tasks,
)

__all__ = [
    "FITNESS_TASKS",
    "HEADLINE_TASK",
    "HELDOUT_TASKS",
    "VALIDATION_TASKS",
    "Zoo",
    "build_zoo",
    "default_cache_dir",
    "exact_match",
    "render_tasks",
]
