"""Run configuration: one YAML file, validated by frozen pydantic models.

Every stage of the loop reads its section of `RunConfig`; nothing else parses user
input. Paths are resolved against the YAML file's folder when loaded with
`load_config`, and a bad field becomes a `ConfigError` that names it and what is allowed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from hubevo.errors import ConfigError
from hubevo.finetune.recipe import FinetuneSpace
from hubevo.frozen import Frozen
from hubevo.methods import unknown_method_message
from hubevo.strategies.options import AUTO_STRATEGY, option_problems

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
FINETUNE_OPERATORS = ("dpo", "sft")  # mutations that train the model (hubevo.finetune's trainers)
MUTATION_OPERATORS = ("perturb", *FINETUNE_OPERATORS)  # hubevo.mutation's gene operators and the trainers
BASELINE_RECIPES = ("linear", "task_arithmetic", "ties", "dare_ties", "model_stock", "slerp", "nuslerp")


class Member(Frozen):
    """One initial member: a local model folder or a Hub repo (`org/name[@revision]`)."""

    path: Path | None = None
    repo: str | None = None
    name: str | None = Field(None, description="Display name; defaults to the folder or repo name.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value):
        if isinstance(value, (str, Path)):
            text = str(value)
            looks_local = text.startswith((".", "/", "~")) or Path(text).expanduser().exists()
            return {"path": text} if looks_local or not REPO_ID.match(text) else {"repo": text}
        return value

    @field_validator("repo")
    @classmethod
    def _repo_syntax(cls, repo):
        if repo is not None and (not REPO_ID.match(repo) or hub_id_problem(repo.split("@")[0])):
            why = hub_id_problem(repo.split("@")[0]) if REPO_ID.match(repo) else ""
            raise ValueError(f"{repo!r} is not a Hub repo id{f' ({why})' if why else ''}; "
                             "expected 'org/name' or 'org/name@revision'")
        return repo

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.repo is None):
            raise ValueError("give exactly one of 'path' (a local model folder) or 'repo' (org/name[@rev])")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return self.repo.split("@")[0] if self.repo else Path(self.path).name

    def resolved(self, root: Path) -> "Member":
        if self.path is None or Path(self.path).is_absolute():
            return self
        return self.model_copy(update={"path": (root / Path(self.path).expanduser()).resolve()})


class HubQuery(Frozen):
    """Candidates found on the Hub with `HfApi.list_models`; checked for compatibility before download."""

    author: str | None = None
    search: str | None = None
    filter: list[str] = Field(default_factory=list, description="Tags such as 'base_model:org/name'.")
    sort: Literal["trending_score", "downloads", "likes", "last_modified", "created_at"] = "downloads"
    limit: int = Field(8, gt=0, le=200)

    @field_validator("filter", mode="before")
    @classmethod
    def _listify(cls, value):
        return [value] if isinstance(value, str) else value


class PopulationConfig(Frozen):
    members: list[Member] = Field(default_factory=list, description="Initial members of the population.")
    query: HubQuery | None = Field(None, description="Add compatible Hub models found by this query.")
    base_model: Member | None = Field(
        None, description="Shared ancestor; required by ties, dare_*, task_arithmetic, breadcrumbs, della, model_stock."
    )

    @model_validator(mode="after")
    def _someone(self):
        if not self.members and self.query is None:
            raise ValueError("give population.members, population.query, or both")
        return self


class TaskSpec(Frozen):
    name: str
    weight: float = Field(1.0, gt=0)
    metric: str = "exact_match"

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value):
        return {"name": value} if isinstance(value, str) else value


class RacingConfig(Frozen):
    """Successive halving: score everyone on a small sample, promote the best fraction to larger ones."""

    rungs: list[int] = Field(
        default_factory=lambda: [8, 32], min_length=1,
        description="Examples per task at each rung before the full fitness sample; increasing.")
    keep: float = Field(0.5, gt=0, lt=1, description="Fraction promoted from one rung to the next (1/eta).")
    min_keep: int = Field(1, ge=1, description="Candidates promoted at least, however few are racing.")

    @field_validator("rungs")
    @classmethod
    def _increasing(cls, rungs):
        if any(r <= 0 for r in rungs) or any(b <= a for a, b in zip(rungs, rungs[1:])):
            raise ValueError(f"racing rungs must be positive and increasing, got {rungs}")
        return rungs


class FitnessConfig(Frozen):
    tasks: list[TaskSpec] = Field(min_length=1, description="lm-eval tasks whose weighted mean is the fitness.")
    heldout: list[TaskSpec] = Field(
        default_factory=list, description="Scored at the end of the run on the champion and the last finalists "
                                          "(and on each generation's champion when the run pushes to the Hub; others "
                                          "on request: `hubevo export --heldout`); never selects.")
    include_path: list[Path] = Field(default_factory=list, description="Folders of local lm-eval YAML tasks.")
    limit: int | None = Field(None, gt=0, description="Examples per task and generation; None = all.")
    resample: bool = Field(
        False, description="Draw a fresh seeded sample of `limit` examples every generation (elites carried into "
                           "a generation are scored again on its sample); default: one fixed sample for the run.")
    validation: list[TaskSpec] = Field(
        default_factory=list, description="Tasks the finalists are scored on to pick the champion; default: "
                                          "`validation_fraction` of each fitness task, kept out of every fitness "
                                          "sample, and (without `resample`) every example the fixed sample leaves out.")
    validation_fraction: float = Field(0.25, gt=0, lt=1, description="Share of each fitness task carved for validation.")
    validation_limit: int | None = Field(None, gt=0, description="Validation examples per task at most (the "
                                                                 "carved ones first).")
    finalists: int = Field(3, ge=0, description="The top-k by fitness scored on validation; the champion is the best "
                                                "there. 0: the champion is the best by fitness.")
    seed: int = Field(0, description="Seeds the split into fitness and validation examples and the fitness samples; "
                                     "in a run file it defaults to the run's `seed`, so every run seed draws "
                                     "its own split (the run folder's config.yaml records it).")
    batch_size: int | str = Field(
        64, description="lm-eval's batch size: a positive integer, 'auto' (lm-eval finds the largest that fits, "
                        "from max_batch_size down, once per task and model shape; for GPUs) or 'auto:N' (found "
                        "again N times across a task's requests, as lm-eval does).")
    max_batch_size: int = Field(64, gt=0, description="Where the 'auto' batch size search starts.")
    dtype: Literal["auto", "bfloat16", "float16"] | None = Field(
        "auto", description="Precision of lm-eval's forward passes, an autocast over the resident weights (whose "
                            "dtype is the run's `dtype`): auto = bfloat16 on a CUDA GPU that supports it, the "
                            "weights' own dtype elsewhere; null = always the weights' own dtype.")
    heldout_limit: int | None = Field(None, gt=0)
    lm_eval_kwargs: dict = Field(default_factory=dict, description="Passed through to lm_eval.simple_evaluate.")
    hflm_kwargs: dict = Field(
        default_factory=dict, description="Passed through to lm-eval's HFLM, which wraps the resident model "
                                          "(max_length, truncation, softmax_dtype, add_bos_token, logits_cache...).")
    racing: RacingConfig | None = Field(None, description="Race candidates over growing samples; None = full samples.")
    allow_test_sets: bool = Field(
        False, description="Knowingly select on well-known benchmark test sets (refused otherwise).")

    @model_validator(mode="after")
    def _apart_from_fitness(self):
        """Held-out and validation tasks must not repeat a fitness task: selection would have seen them."""
        for field, why, empty in (
                ("heldout", "selection would see the held-out set, so its score would not be held out", ""),
                ("validation", "the finals would pick the champion on the examples selection already saw",
                 " (then examples are carved from the fitness tasks)")):
            overlap = sorted({t.name for t in self.tasks} & {t.name for t in getattr(self, field)})
            if overlap:
                raise ValueError(
                    f"fitness.{field} repeats fitness task(s) {', '.join(map(repr, overlap))}: {why}; give "
                    f"fitness.{field} a separate task (another split or data) or leave it empty{empty}")
        return self

    @model_validator(mode="after")
    def _rungs_below_limit(self):
        if self.racing and self.limit is not None and self.racing.rungs[-1] >= self.limit:
            raise ValueError(f"racing rungs {self.racing.rungs} must stay below fitness.limit ({self.limit})")
        return self

    @field_validator("include_path", mode="before")
    @classmethod
    def _listify(cls, value):
        return [value] if isinstance(value, (str, Path)) else value

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value):
        if batch_size_problem(value):
            raise ValueError(batch_size_problem(value))
        return value

    @field_validator("hflm_kwargs")
    @classmethod
    def _hflm_kwargs(cls, kwargs):
        problems = [problem for key in kwargs if (problem := hflm_key_problem(key))]
        if problems:
            raise ValueError("; ".join(problems))
        return kwargs


AUTO_BATCH = re.compile(r"^auto(:(\d+(\.\d*)?|\.\d+))?$")
# HFLM arguments hubevo sets itself, and the field that sets each
HFLM_OWN = {"pretrained": "the resident model", "tokenizer": "the template's tokenizer", "device": "the evaluator",
            "batch_size": "fitness.batch_size", "max_batch_size": "fitness.max_batch_size",
            "mixed_precision_dtype": "fitness.dtype",
            "dtype": "fitness.dtype (forward passes) and the run's dtype (resident weights)"}
# HFLM arguments that only act when lm-eval loads the model itself, never on the resident model hubevo passes
HFLM_LOADING = ("revision", "subfolder", "parallelize", "max_memory_per_gpu", "max_cpu_memory", "offload_folder",
                "tp_plan", "peft", "delta", "autogptq", "gptqmodel", "gguf_file", "trust_remote_code",
                "use_fast_tokenizer")


def batch_size_problem(value) -> str | None:
    """Why `value` is not a batch size lm-eval's HFLM takes (a positive int, 'auto', 'auto:N'), or None."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return None
    if isinstance(value, str) and AUTO_BATCH.match(value) and float(value.partition(":")[2] or 1) > 0:
        return None
    return f"fitness.batch_size must be a positive integer, 'auto' or 'auto:N' (N > 0), got {value!r}"


def hflm_key_problem(key: str) -> str | None:
    """Why `fitness.hflm_kwargs` may not hold `key` (hubevo sets it, or it only acts on loading), or None."""
    if key in HFLM_OWN:
        return f"fitness.hflm_kwargs.{key}: set by hubevo itself ({HFLM_OWN[key]}); remove it"
    if key in HFLM_LOADING:
        return (f"fitness.hflm_kwargs.{key}: only acts when lm-eval loads the model itself; hubevo evaluates "
                "its resident model, so remove it")
    return None


class SelectionConfig(Frozen):
    method: Literal["roulette", "tournament"] = "roulette"
    keep_top_k: int = Field(1, ge=0, description="Elites carried unchanged into the next generation.")
    random_pick_prob: float = Field(0.1, ge=0, le=1, description="Chance that a parent is picked uniformly.")
    tournament_size: int = Field(3, ge=2)
    parents_per_child: int = Field(2, ge=2)


DEFAULT_METHODS = (
    "linear", "slerp", "nuslerp", "ties", "dare_ties", "dare_linear",
    "task_arithmetic", "breadcrumbs", "della", "model_stock",
)
DEFAULT_RANGES = {
    "weight": (0.0, 1.0),
    "density": (0.2, 1.0),
    "t": (0.0, 1.0),
    "lambda": (0.5, 1.5),
    "epsilon": (0.05, 0.2),
    "gamma": (0.0, 0.05),
}


GENE_BOUNDS = {"density": (0.0, 1.0), "t": (0.0, 1.0), "epsilon": (0.0, 1.0), "gamma": (0.0, 1.0),
               "weight": (-math.inf, math.inf), "lambda": (-math.inf, math.inf)}


def range_problem(name: str, low: float, high: float) -> str | None:
    """Why `crossover.ranges[name]` cannot be sampled (not finite, empty, outside the gene's domain), or None."""
    where = f"crossover.ranges.{name}"
    if name not in GENE_BOUNDS:
        return f"{where}: unknown gene; known: {', '.join(GENE_BOUNDS)}"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{where}: bounds must be finite numbers, got [{low}, {high}]"
    if low > high:
        return f"range for {name!r} is empty: {low} > {high}; give [low, high] with low <= high"
    lo, hi = GENE_BOUNDS[name]
    if low < lo or high > hi:
        return f"{where}: [{low}, {high}] leaves the gene's domain [{lo:g}, {hi:g}]; keep both bounds inside it"
    return None


def hub_id_problem(repo_id: str) -> str | None:
    """What the Hub client would reject in `repo_id` ('--', '..', a '.git' ending...), or None."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        return str(err).replace(f": {repo_id!r}", "").rstrip(".")
    return None


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (not the last one winning)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` keys may be overridden on purpose
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"key {key!r} is given twice (first at line {seen[key] + 1})", key_node.start_mark)
            seen.setdefault(key, key_node.start_mark.line)
        return super().construct_mapping(node, deep=deep)


def yaml_where(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


class CrossoverConfig(Frozen):
    methods: list[str] = Field(default_factory=lambda: list(DEFAULT_METHODS), min_length=1)
    ranges: dict[str, tuple[float, float]] = Field(default_factory=lambda: dict(DEFAULT_RANGES))
    inherit_prob: float = Field(0.7, ge=0, le=1, description="Chance a child inherits its method and genes.")

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods):
        problems = [p for p in map(unknown_method_message, methods) if p]
        if problems:
            raise ValueError("; ".join(problems))
        return methods

    @field_validator("ranges")
    @classmethod
    def _ordered(cls, ranges):
        problems = [p for name, bounds in ranges.items() if (p := range_problem(name, *bounds))]
        if problems:
            raise ValueError("; ".join(problems))
        return {**DEFAULT_RANGES, **ranges}


class MutationConfig(Frozen):
    probability: float = Field(0.8, ge=0, le=1, description="Chance that a child is mutated.")
    operators: list[str] = Field(
        default_factory=lambda: ["perturb"], min_length=1,
        description="Drawn per mutated child: perturb (merge genes), dpo or sft (fine-tune a selected parent).",
    )
    strength: float = Field(0.15, ge=0, description="Gaussian sigma as a fraction of each gene's range.")
    method_flip_prob: float = Field(0.1, ge=0, le=1, description="Chance to switch to another merge method.")
    finetune: FinetuneSpace | None = Field(None, description="Ranges of the fine-tuning genes (dpo, sft).")

    @field_validator("operators")
    @classmethod
    def _known_operators(cls, operators):
        unknown = [op for op in operators if op not in MUTATION_OPERATORS]
        if unknown:
            raise ValueError(f"unknown mutation operator(s) {unknown}; known: {', '.join(MUTATION_OPERATORS)}")
        return operators

    @property
    def trained(self) -> list[str]:
        """The operators that fine-tune (dpo, sft)."""
        return [op for op in self.operators if op in FINETUNE_OPERATORS]

    @model_validator(mode="after")
    def _finetune_space(self):
        if (trained := self.trained) and self.finetune is None:
            raise ValueError(f"mutation.operators names {trained} but mutation.finetune (datasets, ranges) is not set")
        return self


class BudgetConfig(Frozen):
    generations: int = Field(3, ge=0)
    population_size: int = Field(6, ge=2)
    max_evaluations: int | None = Field(None, gt=0)
    wall_time_s: float | None = Field(None, gt=0)


class SearchConfig(Frozen):
    strategy: str = Field(
        "auto", description="Search strategy: auto (the default: cmaes for a fixed set of parents merged only; ga "
                            "when the run fine-tunes or its population is open-ended, population.query), ga "
                            "(EvoMerge population GA), cmaes (Sakana's parameter space) or another registered one.")
    options: dict = Field(default_factory=dict, description="Strategy-specific options.")
    baselines: list[str] | None = Field(
        None, description="Standard recipes scored in generation 0 beside the members (they can win and be parents): "
                          f"any of {', '.join(BASELINE_RECIPES)}; default all that fit the population; [] for none.")

    @field_validator("baselines")
    @classmethod
    def _known_baselines(cls, names):
        unknown = [n for n in names or [] if n not in BASELINE_RECIPES]
        if unknown:
            raise ValueError(f"unknown baseline recipe(s) {unknown}; known: {', '.join(BASELINE_RECIPES)}")
        return names

    @model_validator(mode="after")
    def _options_fit_strategy(self):
        if self.strategy == AUTO_STRATEGY:
            return self  # checked against the strategy it stands for, once the run is known (RunConfig)
        problems = option_problems(self.strategy, self.options)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ExecutionConfig(Frozen):
    backend: Literal["local", "ray"] = "local"
    address: str = Field("auto", description="Ray cluster address: auto, local or ray://host:port.")
    workers: int | None = Field(None, gt=0, description="Ray evaluation workers; default: one per GPU, or 2 on CPU.")
    gpus_per_worker: float = Field(1.0, ge=0)


class OutputConfig(Frozen):
    dir: Path = Path("runs/hubevo")


HUB_NAME_MAX = 96  # characters in a Hub user, org or repo name


class PublishConfig(Frozen):
    """Where survivors go on the Hub: `{namespace}/{run}-{id}` repos, a champion repo and a results dataset."""

    namespace: str | None = Field(None, pattern=r"^[A-Za-z0-9][\w.-]*$")
    private: bool = True
    push: Literal["survivors", "champion", "none"] = "none"
    license: str | None = Field(None, description="License of every published child, replacing the one derived "
                                                  "from its parents' (refused when theirs conflict or are unknown).")
    derive_licenses: bool = Field(False, description="Derive each child's license from its parents' cards; "
                                                     "conflicting or unknown licenses stop publishing unless "
                                                     "`license` is set.")
    state: Literal["local", "hub"] = Field("local", description="Where the run state lives: 'local' (output.dir "
                                                                 "only) or 'hub' (also the results dataset, so a "
                                                                 "worker on an empty disk resumes from it).")
    state_every: int = Field(4, ge=1, description="With state 'hub': push the state after this many candidates, "
                                                  "besides the end of every generation.")

    @field_validator("namespace")
    @classmethod
    def _namespace_length(cls, namespace):
        if namespace is not None and len(namespace) > HUB_NAME_MAX:
            raise ValueError(f"{len(namespace)} characters ({namespace[:24]}...); the Hub allows at most "
                             f"{HUB_NAME_MAX}: name an existing user or org")
        return namespace

    @model_validator(mode="after")
    def _namespace_when_pushing(self):
        if self.push != "none" and not self.namespace:
            raise ValueError(f"publish.push is {self.push!r} but publish.namespace is not set; name a user or org")
        if self.state == "hub" and not self.namespace:
            raise ValueError("publish.state is 'hub' but publish.namespace is not set; name the user or org whose "
                             "results dataset keeps the run state")
        return self

    def survivor_repo(self, run_name: str, individual_id: str) -> str:
        return f"{self.namespace}/{run_name}-{individual_id}"

    def champion_repo(self, run_name: str) -> str:
        return f"{self.namespace}/{run_name}"

    def results_repo(self, run_name: str) -> str:
        return f"{self.namespace}/{run_name}-results"


class RunConfig(Frozen):
    name: str = Field("hubevo", pattern=r"^[\w.-]+$")
    population: PopulationConfig
    fitness: FitnessConfig
    selection: SelectionConfig = SelectionConfig()
    crossover: CrossoverConfig = CrossoverConfig()
    mutation: MutationConfig = MutationConfig()
    budget: BudgetConfig = BudgetConfig()
    search: SearchConfig = SearchConfig()
    execution: ExecutionConfig = ExecutionConfig()
    output: OutputConfig = OutputConfig()
    publish: PublishConfig = PublishConfig()
    seed: int = 0
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    @model_validator(mode="before")
    @classmethod
    def _split_follows_seed(cls, data):
        """`fitness.seed` not given: the run's seed, so each run seed draws its own fitness/validation split."""
        if isinstance(data, dict) and isinstance(data.get("fitness"), dict) and "seed" not in data["fitness"]:
            seed = data.get("seed", 0)
            data = {**data, "fitness": {**data["fitness"], "seed": seed if isinstance(seed, int) else 0}}
        return data

    @model_validator(mode="after")
    def _elites_fit(self):
        if self.selection.keep_top_k >= self.budget.population_size:
            raise ValueError(
                f"selection.keep_top_k ({self.selection.keep_top_k}) must be smaller than "
                f"budget.population_size ({self.budget.population_size}) to leave room for children"
            )
        return self

    @model_validator(mode="after")
    def _methods_have_their_base(self):
        from hubevo.methods import get_method

        if self.population.base_model is not None or "methods" not in self.crossover.model_fields_set:
            return self  # the default list keeps what fits the population
        needy = [m for m in self.crossover.methods if get_method(m).needs_base]
        if needy:
            raise ValueError(f"crossover.methods {needy} need population.base_model (the shared ancestor), which is "
                             "not set; add population.base_model or remove them")
        return self

    @property
    def fine_tunes(self) -> bool:
        return bool(self.mutation.trained)

    @property
    def search_strategy(self) -> str:
        """The strategy that runs: `search.strategy`, with `auto` read as cmaes for a fixed set of parents merged
        only (measured best there, bench/quality.py) and as the GA when the run fine-tunes (its DPO/SFT
        mutations) or draws immigrants from the Hub (population.query)."""
        if self.search.strategy != AUTO_STRATEGY:
            return self.search.strategy
        return "ga" if self.fine_tunes or self.population.query is not None else "cmaes"

    @model_validator(mode="after")
    def _options_fit_auto_strategy(self):
        if self.search.strategy == AUTO_STRATEGY:
            problems = option_problems(self.search_strategy, self.search.options)
            if problems:
                raise ValueError(f"search.strategy auto stands for {self.search_strategy!r} in this run: "
                                 + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _someone_to_merge(self):
        if len(self.population.members) == 1 and self.population.query is None and not self.fine_tunes:
            raise ValueError("population.members has 1 member and no population.query: merging needs two parents, "
                             "so the run would stop after evaluating it; add members (or a query), or mutate with "
                             "dpo/sft in mutation.operators")
        return self

    def resolved(self, root: Path) -> "RunConfig":
        """Resolve every relative path against `root` (the YAML file's folder)."""
        pop = self.population
        fit = self.fitness
        out_dir = self.output.dir if self.output.dir.is_absolute() else (root / self.output.dir).resolve()
        return self.model_copy(
            update={
                "population": pop.model_copy(
                    update={
                        "members": [m.resolved(root) for m in pop.members],
                        "base_model": pop.base_model.resolved(root) if pop.base_model else None,
                    }
                ),
                "fitness": fit.model_copy(
                    update={"include_path": [p if p.is_absolute() else (root / p).resolve() for p in fit.include_path]}
                ),
                "output": self.output.model_copy(update={"dir": out_dir}),
                "mutation": self.mutation.model_copy(update={"finetune": self._resolved_finetune(root)}),
            }
        )

    def _resolved_finetune(self, root: Path):
        """Local preference files named relative to the YAML file (Hub dataset ids stay as they are)."""
        return self.mutation.finetune.resolved(root) if self.mutation.finetune else None


def format_validation_error(err: ValidationError, *, source: str) -> str:
    """Every field error of `err`: one line when there is one, else a header and one line per field."""
    header = f"invalid run config {source}".rstrip()
    fields = [f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}" for item in err.errors()]
    if len(fields) == 1:
        return f"{header}: {fields[0]}"
    return "\n".join([f"{header}:", *(f"  {field}" for field in fields)])


def parse_config(data: dict, *, root: Path, source: str = "") -> RunConfig:
    try:
        return RunConfig.model_validate(data).resolved(root)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source=source)) from None


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"run config {str(path)!r} does not exist; pass the path of a YAML file")
    try:
        data = yaml.load(path.read_text(), Loader=UniqueKeyLoader) or {}  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        raise ConfigError(f"run config {str(path)!r} is not valid YAML{yaml_where(err)}: "
                          f"{getattr(err, 'problem', None) or err}; fix the YAML syntax there") from None
    if not isinstance(data, dict):
        raise ConfigError(f"run config {str(path)!r} must be a YAML mapping, got {type(data).__name__}")
    return parse_config(data, root=path.resolve().parent, source=repr(str(path)))
