"""Each search strategy's `search.options`, validated here without importing any strategy.

The schemas are light (pydantic only), so a run config is checked (every error at once)
before mergekit, torch or lm-eval is imported. `STRATEGY_OPTIONS` names every registered
strategy; `hubevo.search` maps the same names to their classes.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator

from hubevo.config.breeding import range_problem
from hubevo.config.frozen import Frozen
from hubevo.config.methods import unknown_method_message
from hubevo.registry import unknown_name

PAPER_SIGMA = 1 / 6
Scale = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def known_method(name: str) -> str:
    problem = unknown_method_message(name)
    if problem:
        raise ValueError(problem)
    return name


class GAOptions(Frozen):
    """The GA's own options (its genes live in selection, crossover and mutation)."""

    archive: bool | None = Field(
        None, description="Per-task elite archive: the best candidate on each fitness task is carried unchanged "
                          "and mates are picked for complementary strengths; default on for open-ended populations "
                          "(population.query: immigrants), off otherwise.")
    soup: bool = Field(
        True, description="With fine-tuning among the mutation operators: one slot per generation for a uniform "
                          "linear merge of the two best fine-tuned candidates not yet merged (a model soup).")


class SpaceOptions(Frozen):
    """Which genes a parameter-space search evolves (`search.options` of `cmaes` and `random`)."""

    method: str = Field("dare_ties", description="mergekit merge method; the paper's PS uses TIES with DARE.")
    genes: list[str] | None = Field(
        None, description="Genes to evolve; default: the method's weight and density per parent, and slerp's t.")
    layer_granularity: int = Field(
        1, ge=0, description="Layers per gene group (1 = per layer, as in the paper; 0 = one group for the model).")
    modules: list[str] = Field(
        default_factory=list, description="Split genes by module: tensor-name substrings such as self_attn, mlp.")
    ranges: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="Gene ranges overriding crossover.ranges; [0, 1] maps onto them.")
    evaluate_seeds: bool = Field(True, description="Score the population members in generation 0, for reference.")

    @field_validator("method")
    @classmethod
    def _known_method(cls, name):
        return known_method(name)

    @field_validator("ranges")
    @classmethod
    def _in_domain(cls, ranges):
        problems = [p for name, bounds in ranges.items()
                    if (p := range_problem(name, *bounds, field="search.options.ranges"))]
        if problems:
            raise ValueError("; ".join(problems))
        return ranges


class CMAESOptions(SpaceOptions):
    method: str = Field(
        "auto", description="mergekit merge method, or auto: the method of the best standard recipe of generation 0 "
                            "(search.baselines), CMA-ES starting at its genes (model_stock, which has none: task "
                            "arithmetic at the weights closest to it per layer); dare_ties from x0 if there is none.")
    x0: float = Field(0.5, ge=0, le=1, description="Start of every coordinate in [0, 1] (unless started at a recipe).")
    sigma0: float = Field(PAPER_SIGMA, gt=0, allow_inf_nan=False, description="Initial step size in [0, 1] "
                                                                               "coordinates.")
    popsize: int | None = Field(None, ge=2, description="Candidates per generation; default 4 + floor(3 ln n).")
    restarts: int = Field(4, ge=0, description="IPOP restarts: when pycma stops, start again from the best point "
                                                "with twice the population.")
    soup: int = Field(5, ge=0, description="Each generation, one more candidate: the average recipe of this search's "
                                           "best `soup` finalists on validation (a recipe soup; with task arithmetic, "
                                           "the average of their models), itself a finalist; 0 or 1: none.")

    @field_validator("method")
    @classmethod
    def _known_method(cls, name):
        return name if name == "auto" else known_method(name)


class DFSOptions(Frozen):
    models: list[str] = Field(default_factory=list, description="Member names whose layers are laid out; default all.")
    repeats: int = Field(2, ge=1, description="r: how many times the layout of all source layers is repeated.")
    margin: float = Field(0.25, gt=0, le=0.5, description="Start indicators at 0.5 +- margin (on / off).")
    sigma0: float = Field(PAPER_SIGMA, gt=0, allow_inf_nan=False, description="Initial step size in [0, 1] "
                                                                               "coordinates.")
    popsize: int | None = Field(None, ge=2, description="Candidates per generation; default 4 + floor(3 ln n).")
    scales: bool = Field(True, description="Evolve a scale of each slot's input (otherwise every scale is 1).")
    scale_range: tuple[Scale, Scale] = Field((0.5, 2.0), description="Input scales, log-uniform over [0, 1].")
    max_layers: int | None = Field(None, ge=1, description="Keep at most this many layers (highest indicators).")
    residual_outputs: list[str] = Field(
        default_factory=lambda: ["o_proj", "down_proj"],
        description="Tensor-name substrings of the projections writing the residual stream (Llama/Mistral names).")
    evaluate_seeds: bool = Field(True, description="Score the population members in generation 0, for reference.")

    @model_validator(mode="after")
    def _scale_range_holds_one(self):
        low, high = self.scale_range
        if not 0 < low <= 1 <= high:
            raise ValueError(f"scale_range {self.scale_range} must satisfy 0 < low <= 1 <= high")
        return self


class PSDFSOptions(Frozen):
    ps: CMAESOptions = Field(default_factory=CMAESOptions, description="Options of the parameter-space phase.")
    dfs: DFSOptions = Field(default_factory=DFSOptions, description="Options of the data-flow phase.")
    ps_generations: int = Field(3, ge=1, description="Generations of parameter-space search before DFS starts.")


class NSGA2Options(Frozen):
    parents: int | None = Field(None, ge=2, description="Candidates kept each generation; default half the population.")


class M2N2Options(Frozen):
    """Natural niches (M2N2): an archive under resource competition, attraction mating, split-point SLERP."""

    archive: int = Field(8, ge=2, description="Models kept: a child replaces the archive's weakest by competition "
                                              "fitness, unless it is itself the weakest.")
    children: int | None = Field(None, ge=1, description="Children per generation; default budget.population_size.")
    alpha: float = Field(1.0, ge=0, allow_inf_nan=False, description="Competition's intensity: an example's reward is "
                                                                      "shared as 1 / (models solving it)^alpha; 0 = none.")
    split: bool = Field(True, description="Split-point crossover: SLERP at w below a drawn split point and 1 - w "
                                          "above; false: a plain SLERP at w (the paper's ablation).")
    modules: list[str] = Field(
        default_factory=lambda: ["self_attn", "mlp"],
        description="A layer's parameter groups the split point may fall between (tensor-name substrings, in "
                    "order; the rest of the layer comes last); []: split between layers only.")
    finalists: int = Field(2, ge=0, description="The archive's best by competition fitness scored on validation "
                                                "(they can then be champion).")


STRATEGY_OPTIONS: dict[str, type[Frozen]] = {
    "ga": GAOptions, "cmaes": CMAESOptions, "dfs": DFSOptions, "psdfs": PSDFSOptions, "nsga2": NSGA2Options,
    "random": SpaceOptions, "m2n2": M2N2Options,
}


AUTO_STRATEGY = "auto"  # cmaes or ga, by the run (RunConfig.search_strategy)


def option_problems(strategy: str, options: dict) -> list[str]:
    """Every problem with `search.strategy` and `search.options`, one line each (empty = valid)."""
    schema = STRATEGY_OPTIONS.get(strategy)
    if schema is None:
        return [f"search.strategy: {unknown_name('search strategy', strategy, [AUTO_STRATEGY, *STRATEGY_OPTIONS], plural='search strategies')}"]
    try:
        schema.model_validate(options)
    except ValidationError as err:
        return [f"search.options.{'.'.join(map(str, e['loc'])) or '(options)'}: {e['msg']} "
                f"(options of strategy {strategy!r})" for e in err.errors()]
    return []
