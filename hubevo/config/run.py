"""Run configuration: one YAML file, validated by frozen pydantic models.

Every stage of the loop reads its section of `RunConfig`; nothing else parses user
input. Paths are resolved against the YAML file's folder when loaded with
`load_config`, and a bad field becomes a `ConfigError` that names it and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hubevo.config.breeding import CrossoverConfig, MutationConfig, SelectionConfig
from hubevo.config.fitness import SEED_MAX, FitnessConfig
from hubevo.config.frozen import Frozen
from hubevo.config.paths import local_path
from hubevo.config.population import HUB_NAME_MAX, PopulationConfig
from hubevo.config.search import AUTO_STRATEGY, option_problems
from hubevo.config.tracking import TrackingConfig
from hubevo.registry import unknown_name

BASELINE_RECIPES = ("linear", "task_arithmetic", "ties", "dare_ties", "model_stock", "slerp", "nuslerp")


class BudgetConfig(Frozen):
    generations: int = Field(3, ge=0, description="Generations after generation 0 (the members and the standard "
                                                  "recipes scored): a run scores generations 0 to N.")
    population_size: int = Field(6, ge=2, description=(
        "The GA's, NSGA-II's and random search's population: candidates per generation, the elites carried over "
        "plus the new children. CMA-ES and DFS size their own (search.options.popsize). The baselines (standard "
        "recipes in generation 0, merge + fine-tune baselines in generation 1) come on top."))
    max_evaluations: int | None = Field(None, gt=0, description="Fitness scores in all, baselines included.")
    wall_time_s: float | None = Field(None, gt=0, allow_inf_nan=False,
                                      description="Stop after this much of the run's clock (elapsed_s).")


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
        unknown = [unknown_name("baseline recipe", n, BASELINE_RECIPES) for n in names or [] if n not in BASELINE_RECIPES]
        if unknown:
            raise ValueError("; ".join(unknown))
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
    gpus_per_worker: float = Field(1.0, ge=0, allow_inf_nan=False, description="GPUs each Ray worker asks for "
                                                                                "(a fraction shares one); 0 on CPU.")


class OutputConfig(Frozen):
    dir: Path = Path("runs/hubevo")


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
    tracking: TrackingConfig = TrackingConfig()
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seeds every draw of the run (splits, samples, "
                                                         "operators, training); 0 to 2**32 - 1.")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    @model_validator(mode="before")
    @classmethod
    def _split_follows_seed(cls, data):
        """`fitness.seed` not given: the run's seed, so each run seed draws its own fitness/validation split."""
        if isinstance(data, dict) and isinstance(data.get("fitness"), dict) and "seed" not in data["fitness"]:
            seed = data.get("seed", 0)
            valid = isinstance(seed, int) and 0 <= seed <= SEED_MAX  # a bad run seed is named once, as `seed`
            data = {**data, "fitness": {**data["fitness"], "seed": seed if valid else 0}}
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
        from hubevo.config.methods import get_method

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

    def resolved(self, root: Path, *, expand_vars: bool = True) -> "RunConfig":
        """Every path field expanded (`~`, `$VAR`) and read relative to `root` (the YAML file's folder), by the one
        rule of `hubevo.config.paths.local_path`; an unset variable is a ConfigError naming the field. Without
        `expand_vars` (a run file from someone else) a `$VAR` is refused instead."""
        pop, fit, expand = self.population, self.fitness, {"root": root, "expand_vars": expand_vars}
        out_dir = local_path(self.output.dir, field="output.dir", **expand)
        include = [local_path(p, field=f"fitness.include_path.{i}", **expand) for i, p in enumerate(fit.include_path)]
        warm = [local_path(p, field=f"fitness.estimator.references.{i}", **expand)
                for i, p in enumerate(fit.estimator.references)]
        return self.model_copy(
            update={
                "population": pop.model_copy(
                    update={
                        "members": [m.resolved(field=f"population.members.{i}", **expand)
                                    for i, m in enumerate(pop.members)],
                        "base_model": pop.base_model.resolved(field="population.base_model", **expand)
                        if pop.base_model else None,
                    }
                ),
                "fitness": fit.model_copy(update={
                    "include_path": include, "estimator": fit.estimator.model_copy(update={"references": warm})}),
                "output": self.output.model_copy(update={"dir": out_dir}),
                "mutation": self.mutation.model_copy(update={"finetune": self._resolved_finetune(**expand)}),
            }
        )

    def _resolved_finetune(self, *, root: Path, expand_vars: bool):
        """Local preference files named relative to the YAML file (Hub dataset ids stay as they are)."""
        return self.mutation.finetune.resolved(root, expand_vars=expand_vars) if self.mutation.finetune else None
