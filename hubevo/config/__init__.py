"""The run file: one YAML file, validated by frozen pydantic models, every error at once.

Every stage of the loop reads its section of `RunConfig`; nothing else parses user input.
`load_config` resolves paths against the YAML file's folder, and a bad field becomes a
`ConfigError` that names it and what is allowed, before torch, mergekit or lm-eval is imported.

- `population`: members (local folders or Hub repos), the base model, a Hub query;
- `fitness`: the lm-eval tasks, their sampling, racing and HFLM options;
- `breeding`: selection, crossover (merge methods and gene ranges) and mutation;
- `finetune`: the ranges of the fine-tuning genes (DPO, SFT) and their datasets;
- `search`: the options of each search strategy;
- `methods`: the merge methods a run may name and the genes each takes, from mergekit's registry;
- `run`: budget, search, execution, output, publish, and `RunConfig` itself;
- `tracking`: the experiment trackers that follow a run (trackio, wandb, tensorboard; none by default);
- `load`: YAML to `RunConfig`, with every problem named at once;
- `mergekit_evolve`: a mergekit-evolve config mapped onto a run, field by field;
- `example`, `commented`: the config reference, an annotated run file, run files with comments.
"""

from hubevo.config.breeding import (
    DEFAULT_METHODS,
    DEFAULT_RANGES,
    FINETUNE_OPERATORS,
    GENE_BOUNDS,
    MUTATION_OPERATORS,
    CrossoverConfig,
    MutationConfig,
    SelectionConfig,
    range_problem,
)
from hubevo.config.fitness import (
    AUTO_BATCH,
    HFLM_LOADING,
    HFLM_OWN,
    EstimatorConfig,
    FitnessConfig,
    RacingConfig,
    TaskSpec,
    batch_size_problem,
    hflm_key_problem,
)
from hubevo.config.load import (
    UniqueKeyLoader,
    format_validation_error,
    load_config,
    parse_config,
    yaml_where,
)
from hubevo.config.population import (
    HUB_NAME_MAX,
    REPO_ID,
    HubQuery,
    Member,
    PopulationConfig,
    hub_id_problem,
)
from hubevo.config.run import (
    BASELINE_RECIPES,
    BudgetConfig,
    ExecutionConfig,
    OutputConfig,
    PublishConfig,
    RunConfig,
    SearchConfig,
)
from hubevo.config.tracking import TRACKER_PACKAGES, TrackingConfig

__all__ = [
    "AUTO_BATCH",
    "BASELINE_RECIPES",
    "BudgetConfig",
    "CrossoverConfig",
    "DEFAULT_METHODS",
    "DEFAULT_RANGES",
    "ExecutionConfig",
    "FINETUNE_OPERATORS",
    "FitnessConfig",
    "GENE_BOUNDS",
    "HFLM_LOADING",
    "HFLM_OWN",
    "HUB_NAME_MAX",
    "HubQuery",
    "MUTATION_OPERATORS",
    "Member",
    "MutationConfig",
    "OutputConfig",
    "PopulationConfig",
    "PublishConfig",
    "REPO_ID",
    "EstimatorConfig",
    "RacingConfig",
    "RunConfig",
    "SearchConfig",
    "SelectionConfig",
    "TRACKER_PACKAGES",
    "TaskSpec",
    "TrackingConfig",
    "UniqueKeyLoader",
    "batch_size_problem",
    "format_validation_error",
    "hflm_key_problem",
    "hub_id_problem",
    "load_config",
    "parse_config",
    "range_problem",
    "yaml_where",
]
