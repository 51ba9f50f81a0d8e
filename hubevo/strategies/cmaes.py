"""CMA-ES in parameter space (Akiba et al. 2024, "PS"): merge-recipe genes as one real vector.

`ParameterSpace` lays the genes of one merge method out as a vector in [0, 1]^n: for
every layer group (`layer_granularity` layers; 0 = the whole model), every module set
(`modules`, e.g. attention and MLP, plus a catch-all for norms and embeddings) and every
parent, the method's per-parent genes (weight, density), then the group's shared genes
(slerp's t). A coordinate maps linearly onto the gene's range. The paper's defaults:
start at 0.5, sigma 1/6, population 4 + floor(3 ln n).

`CMASearch` is the ask/tell loop around pycma shared with the data-flow search (`dfs.py`):
its whole state (the pickled `cma.CMAEvolutionStrategy`, whose Gaussian source is a
seeded numpy Generator pickled with it, and the solutions awaiting `tell`) goes into
the run state, so after `--resume` the next `ask()` returns what it would have returned.
"""

from __future__ import annotations

import base64
import contextlib
import json
import pickle
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from hubevo.config import Frozen
from hubevo.errors import ConfigError, UnknownNameError
from hubevo.genome import GeneBlock, Individual, MergeGenome, child_individual
from hubevo.methods import get_method
from hubevo.racing import ranked_losses
from hubevo.state import Evaluation, rng_for
from hubevo.strategies.base import Strategy

PAPER_SIGMA = 1 / 6


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
        try:
            get_method(name)
        except UnknownNameError as err:
            raise ValueError(str(err)) from None
        return name


class CMAESOptions(SpaceOptions):
    x0: float = Field(0.5, ge=0, le=1, description="Start of every coordinate in [0, 1].")
    sigma0: float = Field(PAPER_SIGMA, gt=0, description="Initial step size in [0, 1] coordinates.")
    popsize: int | None = Field(None, ge=2, description="Candidates per generation; default 4 + floor(3 ln n).")


def num_layers(model_dir: str | Path) -> int:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return int(config.get("text_config", config)["num_hidden_layers"])


def layer_groups(n_layers: int, granularity: int) -> list[tuple[int, int]]:
    if granularity == 0:
        return [(0, n_layers)]
    return [(start, min(start + granularity, n_layers)) for start in range(0, n_layers, granularity)]


class ParameterSpace:
    """[0, 1]^dim <-> merge recipes of one method over fixed parents (pure)."""

    def __init__(self, *, method: str, parents: Sequence[str], base: str | None, n_layers: int,
                 options: SpaceOptions, ranges: Mapping[str, tuple[float, float]]):
        info = get_method(method)
        if not info.accepts(len(parents)):
            raise ConfigError(f"merge method {method!r} cannot merge {len(parents)} parents "
                              f"(it takes {info.min_parents} to {info.max_parents or 'any number of'})")
        if info.needs_base and base is None:
            raise ConfigError(f"merge method {method!r} needs population.base_model")
        wanted = options.genes or [g for g in (*info.input_genes, *info.shared_genes) if g in ("weight", "density", "t")]
        unknown = sorted(set(wanted) - set(info.input_genes) - set(info.shared_genes))
        if unknown:
            raise ConfigError(f"search.options.genes {unknown} are not genes of {method!r}; "
                              f"it has {list(info.input_genes) + list(info.shared_genes)}")
        self.method, self.parents = method, tuple(parents)
        self.base = base if info.base != "ignored" else None
        self.input_genes = [g for g in info.input_genes if g in wanted]
        self.shared_genes = [g for g in info.shared_genes if g in wanted]
        self.groups = layer_groups(n_layers, options.layer_granularity)
        self.modules: list[str | None] = [*options.modules, None]
        self.ranges = {g: tuple(ranges.get(g, (0.0, 1.0))) for g in wanted}
        self.per_set = len(self.parents) * len(self.input_genes) + len(self.shared_genes)

    @property
    def dim(self) -> int:
        return len(self.groups) * len(self.modules) * self.per_set

    def value(self, gene: str, x: float) -> float:
        low, high = self.ranges[gene]
        return float(low + (high - low) * min(max(x, 0.0), 1.0))

    def decode(self, x: Sequence[float]) -> MergeGenome:
        values = iter(x)
        blocks = []
        for start, end in self.groups:
            for module in self.modules:
                per_parent = tuple({g: self.value(g, next(values)) for g in self.input_genes} for _ in self.parents)
                shared = {g: self.value(g, next(values)) for g in self.shared_genes}
                blocks.append(GeneBlock(start=start, end=end, module=module, shared=shared, per_parent=per_parent))
        if len(blocks) == 1:  # one group, no module split: the plain whole-model recipe
            return MergeGenome(method=self.method, parents=self.parents, base=self.base,
                               shared=blocks[0].shared, per_parent=blocks[0].per_parent)
        return MergeGenome(method=self.method, parents=self.parents, base=self.base, blocks=tuple(blocks))


def parameter_space(run, options: SpaceOptions) -> ParameterSpace:
    """The parameter space of `run`: its population members merged, over the config's gene ranges."""
    ranges = {**run.cfg.crossover.ranges, **options.ranges}
    return ParameterSpace(method=options.method, parents=run.seed_ids, base=run.base_id,
                          n_layers=num_layers(run.template), options=options, ranges=ranges)


class GaussianSource:
    """pycma's `randn` option: a seeded Generator that is pickled with the optimizer (no global state)."""

    def __init__(self, seed: Sequence[int]):
        self.rng = np.random.default_rng(list(seed))

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


@contextlib.contextmanager
def _numpy_global_state_kept():
    """pycma seeds numpy's global generator when it starts; leave the caller's untouched."""
    saved = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(saved)


def new_optimizer(x0: Sequence[float], *, sigma0: float, popsize: int | None, seed: int, stream: str = "cma"):
    """A bounded pycma optimizer on [0, 1]^n whose every random draw derives from (seed, stream)."""
    import cma

    seed_words = [int(w) for w in rng_for(seed, 0, stream).integers(0, 2**31 - 1, size=2)]
    options = {
        "bounds": [0.0, 1.0], "seed": seed_words[0], "randn": GaussianSource(seed_words),
        "verbose": -9, "verb_log": 0, "verb_disp": 0, "verb_filenameprefix": "",
    }
    if popsize is not None:
        options["popsize"] = popsize
    with _numpy_global_state_kept():
        return cma.CMAEvolutionStrategy(list(x0), sigma0, options)


def dump_optimizer(es) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(es))).decode()


def load_optimizer(text: str):
    # The run state is the user's own file; pycma offers no other complete serialisation.
    return pickle.loads(zlib.decompress(base64.b64decode(text)))


def leader(state, *, merges_only: bool = False) -> str | None:
    """The fittest fully evaluated individual so far; ties as in `RunState.champion`."""
    ok = [e for e in state.evaluations.values()
          if e.status == "ok" and (not merges_only or state.individuals[e.id].kind != "seed")]
    return max(ok, key=lambda e: (e.fitness, e.id)).id if ok else None


def leaders(state) -> list[str]:
    """What a recipe search keeps on disk: the best so far and the best recipe it found (if not the same)."""
    return [i for i in dict.fromkeys([leader(state), leader(state, merges_only=True)]) if i]


class CMASearch(Strategy):
    """Ask/tell around pycma over `self.space` (with `decode(x)`); see `CMAES` and `dfs.DFS`."""

    def __init__(self, run, *, options=None):
        super().__init__(run)
        self.options = options or self.Options.model_validate(run.cfg.search.options)
        self.es = None
        self.pending: list[list[float]] = []  # solutions asked and not yet told
        self.pending_ids: list[str] = []

    def start_point(self) -> list[float]:
        raise NotImplementedError

    def optimizer(self):
        if self.es is None:
            self.es = new_optimizer(self.start_point(), sigma0=self.options.sigma0, popsize=self.options.popsize,
                                    seed=self.run.cfg.seed, stream=self.name)
        return self.es

    def ask(self) -> list[Individual]:
        state = self.run.state
        self.pending = [[float(v) for v in x] for x in self.optimizer().ask()]
        children = [child_individual(self.space.decode(x), generation=state.generation) for x in self.pending]
        self.pending_ids = [ind.id for ind in children]
        seeds = [state.individuals[i] for i in self.run.seed_ids] if self.evaluates_seeds() else []
        return list({ind.id: ind for ind in [*seeds, *children]}.values())

    def evaluates_seeds(self) -> bool:
        return self.run.state.generation == 0 and self.options.evaluate_seeds

    def tell(self, results: Mapping[str, Evaluation]) -> None:
        if self.pending:
            losses = ranked_losses([results.get(i) for i in self.pending_ids])
            self.optimizer().tell(np.asarray(self.pending), losses)
        self.pending, self.pending_ids = [], []

    def survivors(self, *, final: bool) -> list[str]:
        return leaders(self.run.state)

    def state_dict(self) -> dict:
        return {"es": dump_optimizer(self.es) if self.es is not None else None,
                "pending": self.pending, "pending_ids": self.pending_ids}

    def load_state_dict(self, state: dict) -> None:
        if state.get("es"):
            self.es = load_optimizer(state["es"])
        self.pending = [list(x) for x in state.get("pending", [])]
        self.pending_ids = list(state.get("pending_ids", []))


class CMAES(CMASearch):
    """CMA-ES over TIES/DARE (or any method's) genes per parent, layer group and module."""

    name = "cmaes"
    Options = CMAESOptions

    def __init__(self, run, *, options: CMAESOptions | None = None):
        super().__init__(run, options=options)
        self.space = parameter_space(run, self.options)

    def start_point(self) -> list[float]:
        return [self.options.x0] * self.space.dim
