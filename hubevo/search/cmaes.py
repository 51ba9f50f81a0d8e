"""CMA-ES in parameter space (Akiba et al. 2024, "PS"): merge-recipe genes as one real vector.

`ParameterSpace` lays the genes of one merge method out as a vector in [0, 1]^n: for
every layer group (`layer_granularity` layers; 0 = the whole model), every module set
(`modules`, e.g. attention and MLP, plus a catch-all for norms and embeddings) and every
parent, the method's per-parent genes (weight, density), then the group's shared genes
(slerp's t). A coordinate maps linearly onto the gene's range. The paper's defaults:
start at 0.5, sigma 1/6, population 4 + floor(3 ln n).

`CMAES` starts where the best standard recipe of generation 0 is and adds a recipe soup of its
best finalists to every generation (see its docstring).

`CMASearch` is the ask/tell loop around pycma shared with the data-flow search (`dfs.py`):
its whole state goes into the run state, so after `--resume` the next `ask()` returns
what it would have returned. That state includes the pickled `cma.CMAEvolutionStrategy`
(with its Gaussian source, a seeded numpy Generator): pycma offers no other complete
serialisation of its covariance, paths and step-size history. The pickle is stamped with
pycma's version, and a resume under another version stops with a clear message instead
of unpickling into a different class layout.
"""

from __future__ import annotations

import base64
import contextlib
import io
import pickle
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from hubevo.breed.crossover import usable_methods
from hubevo.breed.genome import GeneBlock, Individual, MergeGenome, child_individual
from hubevo.config.methods import get_method
from hubevo.config.search import PAPER_SIGMA, CMAESOptions, SpaceOptions
from hubevo.errors import ConfigError
from hubevo.evaluation.records import Evaluation
from hubevo.search.base import Strategy
from hubevo.search.view import WeightsRequest
from hubevo.selection import ranking
from hubevo.selection.order import ranked_losses
from hubevo.state.runstate import rng_for

NEUTRAL = {"weight": 1.0, "density": 1.0, "t": 0.5, "lambda": 1.0}
AUTO_FALLBACK = ("dare_ties", "linear")  # when no standard recipe was scored: the paper's PS method, or without a base
INTERPOLATIONS = ("linear", "slerp", "nuslerp")  # searched as task arithmetic when there is a base
GENELESS = ("model_stock",)  # standard recipes without genes: started from as task arithmetic fitted per block

__all__ = ["PAPER_SIGMA", "CMAES", "CMAESOptions", "CMASearch", "ParameterSpace", "SpaceOptions"]


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
    def block_keys(self) -> list[tuple[int, int, str | None]]:
        """(start, end, module) of every gene block, in the order of the coordinates."""
        return [(start, end, module) for start, end in self.groups for module in self.modules]

    @property
    def dim(self) -> int:
        return len(self.block_keys) * self.per_set

    def value(self, gene: str, x: float) -> float:
        low, high = self.ranges[gene]
        return float(low + (high - low) * min(max(x, 0.0), 1.0))

    def block_point(self, per_parent: Sequence[Mapping[str, float]], shared: Mapping[str, float]) -> list[float]:
        """The coordinates of one gene block; a gene left unset takes mergekit's neutral value (weight and
        density 1, t 0.5)."""
        unit = lambda gene, genes: self.unit(gene, genes.get(gene, NEUTRAL.get(gene, 0.5)))  # noqa: E731
        return [*(unit(g, genes) for genes in per_parent for g in self.input_genes),
                *(unit(g, shared) for g in self.shared_genes)]

    def encode(self, genome: MergeGenome) -> list[float]:
        """The point of a whole-model recipe of this method (e.g. a standard recipe), in every block."""
        per_parent = genome.per_parent or tuple({} for _ in self.parents)
        return self.block_point(per_parent, genome.shared) * len(self.block_keys)

    def encode_weights(self, weights: Sequence[Sequence[float]]) -> list[float]:
        """The point of per-block parent weights (`hubevo.breed.projection`, blocks in `block_keys` order); every
        other gene at mergekit's neutral value."""
        if len(weights) != len(self.block_keys):
            raise ValueError(f"{len(weights)} blocks of weights for a space of {len(self.block_keys)}")
        return [v for block in weights for v in self.block_point([{"weight": w} for w in block], {})]

    def layout(self) -> list[tuple[int, int, str | None]]:
        """(start, end, module) of `decode`'s gene blocks; empty when it decodes to a whole-model recipe."""
        return self.block_keys if len(self.block_keys) > 1 else []

    @staticmethod
    def gene_blocks(genome: MergeGenome) -> tuple[GeneBlock, ...]:
        """A recipe's gene blocks; a whole-model recipe as one block."""
        return genome.blocks or (GeneBlock(start=0, end=1, shared=genome.shared, per_parent=genome.per_parent),)

    def holds(self, genome) -> bool:
        """Whether `genome` is a recipe of this space (one `decode` can return)."""
        if not isinstance(genome, MergeGenome) or (genome.method, genome.parents, genome.base) != (
                self.method, self.parents, self.base):
            return False
        genes = lambda b: ([set(g) for g in b.per_parent], set(b.shared))  # noqa: E731
        wanted = ([set(self.input_genes)] * len(self.parents), set(self.shared_genes))
        return [(b.start, b.end, b.module) for b in genome.blocks] == self.layout() and all(
            genes(b) == wanted for b in self.gene_blocks(genome))

    def point(self, genome: MergeGenome) -> list[float]:
        """The coordinates of a recipe of this space (`holds`): the inverse of `decode`."""
        return [v for block in self.gene_blocks(genome) for v in self.block_point(block.per_parent, block.shared)]

    def unit(self, gene: str, value: float) -> float:
        low, high = self.ranges[gene]
        return float(min(max((value - low) / (high - low), 0.0), 1.0)) if high > low else 0.5

    def decode(self, x: Sequence[float]) -> MergeGenome:
        values = iter(x)
        blocks = []
        for start, end, module in self.block_keys:
            per_parent = tuple({g: self.value(g, next(values)) for g in self.input_genes} for _ in self.parents)
            shared = {g: self.value(g, next(values)) for g in self.shared_genes}
            blocks.append(GeneBlock(start=start, end=end, module=module, shared=shared, per_parent=per_parent))
        if len(blocks) == 1:  # one group, no module split: the plain whole-model recipe
            return MergeGenome(method=self.method, parents=self.parents, base=self.base,
                               shared=blocks[0].shared, per_parent=blocks[0].per_parent)
        return MergeGenome(method=self.method, parents=self.parents, base=self.base, blocks=tuple(blocks))


def parameter_space(cfg, view, options: SpaceOptions) -> ParameterSpace:
    """The parameter space of a run: its population members merged, over the config's gene ranges."""
    ranges = {**cfg.crossover.ranges, **options.ranges}
    return ParameterSpace(method=options.method, parents=view.seeds, base=view.base,
                          n_layers=view.layers(view.seeds[0]), options=options, ranges=ranges)


def as_task_arithmetic(genome: MergeGenome, *, base: str) -> MergeGenome:
    """An interpolation of the parents (linear, or slerp/nuslerp read as their linear counterpart) as
    task arithmetic over `base`: weights summing to 1, lambda 1."""
    if genome.method == "slerp":
        t = genome.shared.get("t", 0.5)
        weights = [1.0 - t, t]
    else:
        weights = [genes.get("weight", 1.0) for genes in genome.per_parent] or [1.0] * len(genome.parents)
    total = sum(weights) or 1.0
    return MergeGenome(method="task_arithmetic", parents=genome.parents, base=base, shared={"lambda": 1.0},
                       per_parent=tuple({"weight": w / total} for w in weights))


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


def cma_version() -> str:
    import cma

    return cma.__version__


def dump_optimizer(es) -> dict:
    return {"pickle": base64.b64encode(zlib.compress(pickle.dumps(es))).decode(), "cma": cma_version()}


def load_optimizer(saved: dict | str):
    """The optimizer of a saved run state; refuses one pickled by another pycma version."""
    saved_with = saved.get("cma") if isinstance(saved, dict) else None
    if saved_with != cma_version():
        how = f"pip install cma=={saved_with}" if saved_with else "install the cma version it was saved with"
        raise ConfigError(
            f"this run's CMA-ES state was saved with cma {saved_with or '(unknown version)'}, but cma "
            f"{cma_version()} is installed; {how} to resume it, or start afresh in a new output.dir")
    # The run state is the user's own file, written by this program.
    return StateUnpickler(io.BytesIO(zlib.decompress(base64.b64decode(saved["pickle"])))).load()


class StateUnpickler(pickle.Unpickler):
    """Reads an optimizer pickled before the strategies moved from `hubevo.strategies` to `hubevo.search` (its
    Gaussian source is a class of this module), so such a run resumes."""

    MOVED = {"hubevo.strategies.cmaes": __name__}

    def find_class(self, module: str, name: str):
        return super().find_class(self.MOVED.get(module, module), name)


def leaders(view) -> list[str]:
    """What a recipe search keeps on disk: the champion and the best recipe it found (if not the same)."""
    return [i for i in dict.fromkeys([view.champion(), view.champion(merges_only=True)]) if i]


class CMASearch(Strategy):
    """Ask/tell around pycma over `self.space` (with `decode(x)`); see `CMAES` and `dfs.DFS`."""

    def __init__(self, cfg, view, *, options=None):
        super().__init__(cfg, view, options=options)
        self.es = None
        self.pending: list[list[float]] = []  # solutions asked and not yet told
        self.pending_ids: list[str] = []

    def start_point(self) -> list[float]:
        raise NotImplementedError

    restarts_done: int = 0

    def optimizer(self):
        if self.es is None:
            self.es = new_optimizer(self.start_point(), sigma0=self.options.sigma0, popsize=self.options.popsize,
                                    seed=self.cfg.seed, stream=self.name)
        return self.es

    def restart_if_stopped(self) -> None:
        """IPOP-CMA-ES: when pycma stops, start again at its best point with twice the population."""
        allowed = getattr(self.options, "restarts", 0)
        if self.es is None or not self.es.stop() or self.restarts_done >= allowed:
            return
        best, popsize = self.es.result.xbest, self.es.popsize * 2
        self.restarts_done += 1
        self.es = new_optimizer([float(v) for v in best], sigma0=self.options.sigma0, popsize=popsize,
                                seed=self.cfg.seed, stream=f"{self.name}-restart-{self.restarts_done}")

    def ask(self) -> list[Individual]:
        self.pending = [[float(v) for v in x] for x in self.optimizer().ask()]
        children = [child_individual(self.space.decode(x), generation=self.view.generation) for x in self.pending]
        self.pending_ids = [ind.id for ind in children]
        seeds = self.seeds() if self.evaluates_seeds() else []
        return list({ind.id: ind for ind in [*seeds, *children]}.values())

    def evaluates_seeds(self) -> bool:
        return self.view.generation == 0 and self.options.evaluate_seeds

    def tell(self, results: Mapping[str, Evaluation]) -> None:
        if self.pending:
            losses = ranked_losses([results.get(i) for i in self.pending_ids])
            self.optimizer().tell(np.asarray(self.pending), losses)
            self.restart_if_stopped()
        self.pending, self.pending_ids = [], []

    def survivors(self, *, final: bool) -> list[str]:
        return leaders(self.view)

    def state_dict(self) -> dict:
        return {"es": dump_optimizer(self.es) if self.es is not None else None,
                "pending": self.pending, "pending_ids": self.pending_ids, "restarts": self.restarts_done}

    def load_state_dict(self, state: dict) -> None:
        if state.get("es"):
            self.es = load_optimizer(state["es"])
        self.pending = [list(x) for x in state.get("pending", [])]
        self.pending_ids = list(state.get("pending_ids", []))
        self.restarts_done = int(state.get("restarts", 0))


class CMAES(CMASearch):
    """CMA-ES over TIES/DARE (or any method's) genes per parent, layer group and module.

    With `method: auto` (the default) the search waits for generation 0's standard recipes and
    starts at the best of them, in a method of `crossover.methods`:
    - model_stock, which has no genes, is read per gene block as task arithmetic over the base
      (`hubevo.breed.projection`: the weights closest to its tensors) when task arithmetic is allowed;
    - an interpolation (linear, slerp, nuslerp) is searched as task arithmetic over the base from
      the same point (when task arithmetic is allowed);
    - any other recipe is searched in its own method from its genes.
    Task arithmetic's weights range from 0, so the search can move towards the base or away from
    it. If the best recipe cannot be started from, the search starts at the best one that can;
    without standard recipes it starts at x0 in the paper's dare_ties space (linear when the
    population has no base model).

    Each generation also asks a recipe soup (`soup`, default 5): the average point of the search's
    best finalists on validation, named `g<gen>-soup-<hash>` and always a finalist itself. The
    finalists are the top candidates of a noisy fitness sample; their average keeps what they share
    and averages away part of what each owes to the sample (with task arithmetic, the soup's model is
    the average of theirs, a model soup after Wortsman et al. 2022). pycma is not told of it.
    """

    name = "cmaes"

    def __init__(self, cfg, view, *, options: CMAESOptions | None = None):
        super().__init__(cfg, view, options=options)
        self.start: dict | None = None  # {"method": ..., "x0": [...], "from": id or None}, once chosen
        self.soups: list[str] = []  # the recipe soups asked so far (finalists)
        self.space = None if self.options.method == "auto" else parameter_space(cfg, view, self.options)

    def ask(self) -> list[Individual]:
        if self.space is None and not self.choose_start():
            return self.seeds() if self.evaluates_seeds() else []  # generation 0 of `auto`: recipes being scored
        soup = self.soup()
        if soup is not None:
            self.soups.append(soup.id)
        return [*([soup] if soup else []), *super().ask()]

    def soup(self) -> Individual | None:
        """The average recipe of this search's best `options.soup` finalists on validation (at least two), if new:
        a soup of the recipes, which averages away part of what each finalist owes to the fitness sample."""
        if self.options.soup < 2:
            return None
        ranked = sorted((v for v in self.view.validation.values() if v.status == "ok"
                         and self.space.holds(self.view.individuals[v.id].genome)), key=lambda v: (-v.fitness, v.id))
        best = [self.space.point(self.view.individuals[v.id].genome) for v in ranked[: self.options.soup]]
        if len(best) < 2:
            return None
        child = child_individual(self.space.decode(np.mean(best, axis=0).tolist()), generation=self.view.generation)
        if child.id in self.view.evaluations:
            return None
        return child.model_copy(update={"name": f"g{self.view.generation}-soup-{child.id[:8]}"})

    def finalists(self) -> list[str]:
        return list(self.soups)

    def waits_for_baselines(self) -> bool:
        """`auto` in generation 0: the standard recipes join it beside the members, and the start waits for them."""
        return self.view.generation == 0 and self.cfg.search.baselines != []

    def scored_baselines(self) -> list:
        return [self.view.evaluations[i] for i in self.view.baselines if i in self.view.evaluations]

    def wants_weights(self) -> list[WeightsRequest]:
        """When `auto` is about to choose its start at a standard recipe without genes: that merge, read per gene
        block of the task-arithmetic space."""
        if self.space is not None or self.waits_for_baselines():
            return []
        best = ranking.champion(self.scored_baselines())
        space = self.projected_space() if best and self.individual_method(best) in GENELESS else None
        return [WeightsRequest(best, tuple(space.groups), tuple(space.modules))] if space is not None else []

    def choose_start(self) -> bool:
        """Pick the method and start point of `auto` once the standard recipes are scored; False if too early."""
        if self.waits_for_baselines():
            return False
        scored = self.scored_baselines()
        best = ranking.champion(scored)
        if not (best and self.individual_method(best) in GENELESS and self.start_projected(best)):
            self.start_at_recipe(scored, set(self.cfg.crossover.methods))
        return True

    def individual_method(self, cid: str) -> str | None:
        genome = self.view.individuals[cid].genome
        return getattr(genome, "method", None)

    def start_at_recipe(self, scored: list, allowed: set[str]) -> None:
        """Start at the genes of the best standard recipe with genes in an allowed method (or the fallback's x0)."""
        searchable = [e for e in scored if self.individual_method(e.id) not in (None, *GENELESS)
                      and self.individual_method(e.id) in allowed]
        best = ranking.champion(searchable)
        genome = self.view.individuals[best].genome if best else None
        if (genome is not None and self.view.base and genome.method in INTERPOLATIONS
                and "task_arithmetic" in allowed):
            genome = as_task_arithmetic(genome, base=self.view.base)  # same point, free to move towards the base
        options = self.options.model_copy(update={"method": genome.method if genome else self.fallback(allowed)})
        if genome is not None and genome.method == "task_arithmetic":
            options = self.task_arithmetic_options()
        self.space = parameter_space(self.cfg, self.view, options)
        x0 = self.space.encode(genome) if genome else [self.options.x0] * self.space.dim
        self.start = {"method": options.method, "x0": x0, "from": best, "ranges": options.ranges}

    def projected_space(self) -> ParameterSpace | None:
        """The task-arithmetic space a merge without genes is read into; None where task arithmetic is not
        allowed, the searched genes are not its weights, or there is no base model."""
        searches_weights = set(self.options.genes or ["weight"]) <= {"weight"}
        if not self.view.base or "task_arithmetic" not in self.cfg.crossover.methods or not searches_weights:
            return None
        return parameter_space(self.cfg, self.view, self.task_arithmetic_options())

    def start_projected(self, best: str) -> bool:
        """Start at `best` (a merge without genes, model_stock) read per block as task arithmetic over the base
        (the loop read it for `wants_weights`); False where it has no such space or could not be read."""
        space = self.projected_space()
        weights = None if space is None else self.view.task_arithmetic_weights(best, groups=space.groups,
                                                                               modules=space.modules)
        if weights is None:
            return False
        self.space = space
        self.start = {"method": space.method, "x0": space.encode_weights(weights), "from": best,
                      "ranges": self.task_arithmetic_options().ranges}
        return True

    def task_arithmetic_options(self) -> CMAESOptions:
        """Task arithmetic's space: weights from 0 to at least 1, so it can move towards the base or away from it."""
        options = self.options.model_copy(update={"method": "task_arithmetic"})
        if "weight" in self.options.ranges:
            return options
        high = max(1.0, self.cfg.crossover.ranges.get("weight", (0.0, 1.0))[1])
        return options.model_copy(update={"ranges": {**options.ranges, "weight": (0.0, high)}})

    def fallback(self, allowed: set[str]) -> str:
        """The method of `auto` when no standard recipe of `crossover.methods` was scored: the paper's
        dare_ties with a base model, else linear, else the first allowed method with genes for the members."""
        order = [*([AUTO_FALLBACK[0]] if self.view.base else []), AUTO_FALLBACK[1], *self.cfg.crossover.methods]
        usable = usable_methods([m for m in dict.fromkeys(order) if m in allowed], n_parents=len(self.view.seeds),
                                has_base=bool(self.view.base))
        return next((m.name for m in usable if m.input_genes or m.shared_genes), order[0])

    def start_point(self) -> list[float]:
        return list(self.start["x0"]) if self.start else [self.options.x0] * self.space.dim

    def state_dict(self) -> dict:
        return {**super().state_dict(), "start": self.start, "soups": self.soups}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.soups = list(state.get("soups", []))
        if state.get("start"):
            self.start = state["start"]
            self.space = parameter_space(self.cfg, self.view, self.options.model_copy(update={
                "method": self.start["method"], "ranges": self.start.get("ranges", self.options.ranges)}))
