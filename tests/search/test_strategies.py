"""Recipe searches after Akiba et al. (2024): CMA-ES in parameter space, layer paths in data-flow space,
NSGA-II over per-task scores, random search; every one resumes to the same sequence of candidates."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from hubevo.breed.genome import DataFlowGenome, LayerStep, MergeGenome, child_individual, to_merge_config, to_merge_dict
from hubevo.breed.materialize import merge_to_disk
from hubevo.config import parse_config
from hubevo.config.search import CMAESOptions, DFSOptions, SpaceOptions
from hubevo.errors import ConfigError
from hubevo.evaluation.evaluator import Evaluator
from hubevo.evaluation.fitness import Scored, weighted_fitness
from hubevo.run.loop import evolve
from hubevo.search.cmaes import ParameterSpace, new_optimizer
from hubevo.search.dfs import DataFlowSpace
from hubevo.search.nsga2 import nsga2_order
from hubevo.selection.parents import elites
from hubevo.selection.pareto import non_dominated
from hubevo.state.runstate import load_state
from tests.tiny_models import build_zoo, write_generation_task

REFS = {"a": "/m/a", "b": "/m/b", "base": "/m/base"}
RANGES = {"weight": (0.0, 1.0), "density": (0.2, 1.0), "t": (0.0, 1.0)}


# parameter space ---------------------------------------------------------------------------------
def test_parameter_space_has_genes_per_layer_group_module_and_parent():
    options = SpaceOptions(method="dare_ties", layer_granularity=2, modules=["self_attn", "mlp"])
    space = ParameterSpace(method="dare_ties", parents=("a", "b"), base="base", n_layers=4, options=options,
                           ranges=RANGES)
    assert space.dim == 2 * 3 * 2 * 2  # groups x (attention, mlp, rest) x parents x (weight, density)
    x = np.linspace(0, 1, space.dim)
    config = to_merge_dict(space.decode(x), refs=REFS)
    slices = config["slices"]
    assert [s["sources"][0]["layer_range"] for s in slices] == [[0, 2], [2, 4]]
    assert [s["model"] for s in slices[0]["sources"]] == ["/m/a", "/m/b", "/m/base"]
    weight_a = slices[0]["sources"][0]["parameters"]["weight"]
    assert [w["filter"] for w in weight_a] == ["self_attn", "mlp", None]
    assert weight_a[0]["value"] == pytest.approx(x[0])  # weight of parent a, attention, first group
    density_a = slices[0]["sources"][0]["parameters"]["density"]
    assert density_a[0]["value"] == pytest.approx(0.2 + 0.8 * x[1])  # [0, 1] maps onto the density range
    to_merge_config(space.decode(x), refs=REFS)  # mergekit accepts it


def test_a_whole_model_space_decodes_to_the_plain_recipe_with_an_unchanged_id():
    options = SpaceOptions(method="slerp", layer_granularity=0)
    space = ParameterSpace(method="slerp", parents=("a", "b"), base=None, n_layers=4, options=options, ranges=RANGES)
    assert space.dim == 1
    genome = space.decode([0.25])
    plain = MergeGenome(method="slerp", parents=("a", "b"), shared={"t": 0.25}, per_parent=({}, {}))
    assert genome == plain and child_individual(genome, generation=1).id == child_individual(plain, generation=1).id


def test_slerp_t_per_layer_group_goes_into_each_slice():
    space = ParameterSpace(method="slerp", parents=("a", "b"), base=None, n_layers=4,
                           options=SpaceOptions(method="slerp", layer_granularity=1), ranges=RANGES)
    config = to_merge_dict(space.decode([0.1, 0.2, 0.3, 0.4]), refs=REFS)
    assert [s["parameters"]["t"] for s in config["slices"]] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert config["base_model"] == "/m/a"


def test_cmaes_defaults_are_the_papers():
    options = CMAESOptions()
    assert (options.x0, options.sigma0, options.method) == (0.5, pytest.approx(1 / 6), "auto")  # auto: the best standard recipe, else dare_ties
    for dim in (4, 24):
        es = new_optimizer([0.5] * dim, sigma0=options.sigma0, popsize=None, seed=0)
        assert es.popsize == 4 + math.floor(3 * math.log(dim))


def test_bad_strategy_options_fail_when_the_config_is_loaded(tmp_path):
    data = {"population": {"members": ["/m/a"]}, "fitness": {"tasks": ["t"]},
            "search": {"strategy": "cmaes", "options": {"method": "tie", "granularity": 2}}}
    with pytest.raises(ConfigError) as err:
        parse_config(data, root=tmp_path)
    assert "Did you mean ties" in str(err.value) and "granularity" in str(err.value)


# data-flow space ---------------------------------------------------------------------------------
def test_data_flow_space_starts_at_the_first_models_own_path():
    space = DataFlowSpace([("a", 3), ("b", 3)], DFSOptions(repeats=2))
    assert len(space.slots) == 12 and space.dim == 24  # T = M x r, indicator and scale per slot
    genome = space.decode(space.x0())
    assert [(s.parent, s.layer) for s in genome.path] == [("a", 0), ("a", 1), ("a", 2)]
    assert all(s.scale == pytest.approx(1.0) for s in genome.path)
    off = space.decode([0.0] * 11 + [0.3] + [0.5] * 12)  # nothing on: the most likely slot alone
    assert [(s.parent, s.layer) for s in off.path] == [("b", 2)]


def test_data_flow_genome_is_a_passthrough_stack_with_residual_scales():
    genome = DataFlowGenome(path=(LayerStep(parent="a", layer=0), LayerStep(parent="b", layer=1, scale=2.0),
                                  LayerStep(parent="a", layer=1, scale=0.5)))
    config = to_merge_dict(genome, refs=REFS)
    assert config["merge_method"] == "passthrough"
    sources = [s["sources"][0] for s in config["slices"]]
    assert [(s["model"], s["layer_range"]) for s in sources] == [("/m/a", [0, 1]), ("/m/b", [1, 2]), ("/m/a", [1, 2])]
    assert "parameters" not in sources[0] and "parameters" not in sources[2]  # cumulative scale back at 1
    assert sources[1]["parameters"]["scale"] == [{"filter": "o_proj", "value": 0.5},
                                                 {"filter": "down_proj", "value": 0.5}, {"filter": None, "value": 1.0}]
    assert child_individual(genome, generation=2).parents == ("a", "b")


# nsga2 -------------------------------------------------------------------------------------------
def test_nsga2_keeps_the_specialist_that_the_average_crushes():
    scores = {"specialist": {"add": 0.95, "rev": 0.0}, "g1": {"add": 0.6, "rev": 0.6}, "g2": {"add": 0.55, "rev": 0.58},
              "g3": {"add": 0.5, "rev": 0.62}, "weak": {"add": 0.3, "rev": 0.3}}
    mean = {i: (s["add"] + s["rev"]) / 2 for i, s in scores.items()}
    assert "specialist" not in elites(mean, k=3)
    order, fronts = nsga2_order(scores, ["add", "rev"])
    assert "specialist" in order[:3] and fronts["specialist"] == 0 and fronts["weak"] == 2
    assert list(non_dominated(np.array([[0.95, 0.0], [0.6, 0.6], [0.3, 0.3]]))) == [True, True, False]


# end to end on tiny models with a cheap stand-in fitness -------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    zoo = build_zoo(root / "zoo", finetunes=2, num_hidden_layers=3)
    tasks = root / "tasks"
    rows = [{"q": f"{i}+1=", "a": f"{i + 1}"} for i in range(8)]
    for name in ("tiny_one", "tiny_two"):
        write_generation_task(tasks, name, rows)
    probe = torch.arange(4, 40).reshape(2, 18)
    with torch.no_grad():
        targets = {t: AutoModelForCausalLM.from_pretrained(zoo[m]).eval()(probe).logits
                   for t, m in (("tiny_one", "ft1"), ("tiny_two", "ft2"))}
    return {"zoo": zoo, "tasks": tasks, "probe": probe, "targets": targets}


def stand_in_fitness(tiny, fail_after=None):
    """Evaluator.fitness replaced by closeness of the logits to ft1's (task one) and ft2's (task two)."""
    calls = []

    def fitness(self, model, tokenizer, *, generation, sample=None):
        calls.append(generation)
        if fail_after is not None and len(calls) > fail_after:
            raise KeyboardInterrupt("killed")
        with torch.no_grad():
            logits = model(tiny["probe"]).logits
        scores = {t: float(1 / (1 + 1e3 * (logits - ref).pow(2).mean())) for t, ref in tiny["targets"].items()}
        return Scored(fitness=weighted_fitness(scores, self.cfg.tasks), scores=scores, stderrs={}, stderr=None,
                      examples=8)

    return fitness


def tiny_config(tiny, out: Path, strategy: str, options: dict, *, generations=3):
    data = {
        "population": {"members": [str(tiny["zoo"]["ft1"]), str(tiny["zoo"]["ft2"])],
                       "base_model": str(tiny["zoo"]["base"])},
        "fitness": {"tasks": ["tiny_one", "tiny_two"], "include_path": [str(tiny["tasks"])], "limit": 4},
        "budget": {"generations": generations, "population_size": 4},
        "selection": {"keep_top_k": 1},
        "search": {"strategy": strategy, "options": options},
        "output": {"dir": str(out)},
    }
    return parse_config(data, root=out.parent)


def history(state):
    return [(e.generation, e.id, e.status, round(e.fitness or 0.0, 9)) for e in state.evaluations.values()]


RESUMABLE = {  # psdfs crosses from CMA-ES in parameter space to DFS within the interrupted run
    "cmaes": {"popsize": 4, "layer_granularity": 1, "modules": ["self_attn", "mlp"]},
    "psdfs": {"ps_generations": 2, "ps": {"popsize": 4, "layer_granularity": 0}, "dfs": {"popsize": 4}},
    "nsga2": {},
}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", RESUMABLE)
def test_an_interrupted_run_resumes_to_the_same_sequence_of_candidates(tiny, tmp_path, monkeypatch, strategy):
    monkeypatch.setattr(Evaluator, "fitness", stand_in_fitness(tiny))
    whole = evolve(tiny_config(tiny, tmp_path / "whole", strategy, RESUMABLE[strategy]), progress=False)

    cfg = tiny_config(tiny, tmp_path / "killed", strategy, RESUMABLE[strategy])
    monkeypatch.setattr(Evaluator, "fitness", stand_in_fitness(tiny, fail_after=7))  # mid generation 1
    with pytest.raises(KeyboardInterrupt):
        evolve(cfg, progress=False)
    assert not load_state(cfg.output.dir).finished
    monkeypatch.setattr(Evaluator, "fitness", stand_in_fitness(tiny))
    resumed = evolve(cfg, resume=True, progress=False)

    assert history(resumed) == history(whole)
    assert len({g for g, *_ in history(whole)}) == 4
    if strategy == "nsga2":  # each member is perfect on one task and poor on the other: both stay
        seeds = {i for i, ind in whole.individuals.items() if ind.name in ("ft1", "ft2")}
        assert seeds <= set(whole.strategy_state["front"]) and seeds <= set(whole.strategy_state["elites"])
        table = pd.read_parquet(cfg.output.dir / "results.parquet")
        assert set(table[table["pareto"]]["id"]) >= seeds and (cfg.output.dir / "pareto.png").is_file()
    if strategy == "psdfs":  # the data-flow phase lays out the parameter-space champion's layers first
        sources = whole.strategy_state["dfs"]["sources"]
        ps_best = max((e for e in whole.evaluations.values() if e.generation < 2 and e.status == "ok"
                       and whole.individuals[e.id].kind == "merge"), key=lambda e: (e.fitness, e.id)).id
        assert whole.individuals[ps_best].kind == "merge" and sources[0] == ps_best
        flows = [i for i in whole.individuals.values() if isinstance(i.genome, DataFlowGenome)]
        assert flows and all(i.generation >= 2 for i in flows) and any(ps_best in i.parents for i in flows)


@pytest.mark.slow
def test_cmaes_improves_on_the_stand_in_fitness(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(Evaluator, "fitness", stand_in_fitness(tiny))
    cfg = tiny_config(tiny, tmp_path / "run", "cmaes", {"layer_granularity": 0, "method": "linear"}, generations=3)
    state = evolve(cfg, progress=False)
    by_gen = {}
    for e in state.evaluations.values():
        if state.individuals[e.id].kind == "merge":
            by_gen.setdefault(e.generation, []).append(e.fitness)
    assert np.mean(by_gen[3]) > np.mean(by_gen[0]) and max(by_gen[1] + by_gen[2] + by_gen[3]) > max(by_gen[0])


# on the demo zoo ---------------------------------------------------------------------------------
def demo_search_config(demo_zoo, out, strategy, options, *, generations, limit=32, budget=None):
    from hubevo.demo.runner import demo_config

    cfg = demo_config(demo_zoo, out_dir=out, generations=generations, population_size=4)
    return cfg.model_copy(update={
        "fitness": cfg.fitness.model_copy(update={"limit": limit, "resample": False, "heldout_limit": 16}),
        "budget": cfg.budget.model_copy(update={"wall_time_s": None, "max_evaluations": budget}),
        "search": cfg.search.model_copy(update={"strategy": strategy, "options": options}),
    })


def test_cmaes_beats_the_best_parent_within_14_evaluations(demo_zoo, tmp_path):
    """Budget: 14 evaluations (the 2 members, then 2 CMA-ES generations of 6 over 4 genes), 32 examples per task."""
    cfg = demo_search_config(demo_zoo, tmp_path / "run", "cmaes", {"layer_granularity": 0, "popsize": 6},
                             generations=10, budget=14)
    state = evolve(cfg, progress=False)
    assert len(state.evaluations) == 14
    seeds = [e.fitness for i, e in state.evaluations.items() if state.individuals[i].kind == "seed"]
    champion = state.evaluations[state.champion()]
    assert state.individuals[champion.id].kind == "merge" and champion.fitness > max(seeds)
    assert champion.id in state.saved and state.heldout[champion.id]  # written, with held-out scores apart


def test_dfs_builds_a_loadable_model_whose_layers_match_the_genome(demo_zoo, tmp_path):
    cfg = demo_search_config(demo_zoo, tmp_path / "run", "dfs", {"popsize": 4, "repeats": 2}, generations=0, limit=16)
    state = evolve(cfg, progress=False)
    paths = {i: ind.source for i, ind in state.individuals.items() if ind.kind == "seed"}
    flows = [state.individuals[i] for i, e in state.evaluations.items()
             if isinstance(state.individuals[i].genome, DataFlowGenome) and e.status == "ok"]
    assert len(flows) >= 4 and all(state.evaluations[f.id].examples > 0 for f in flows)
    ind = max(flows, key=lambda f: (len(set(f.genome.parents)), len(f.genome.path)))
    folder = merge_to_disk(to_merge_config(ind.genome, refs=paths), tmp_path / "dfs-model")
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.num_hidden_layers == len(ind.genome.path)
    sources = {i: AutoModelForCausalLM.from_pretrained(p) for i, p in paths.items() if i in ind.genome.parents}
    cumulative = 1.0
    for k, step in enumerate(ind.genome.path):
        cumulative *= step.scale
        mine, theirs = model.model.layers[k], sources[step.parent].model.layers[step.layer]
        assert torch.equal(mine.self_attn.q_proj.weight, theirs.self_attn.q_proj.weight)
        assert torch.allclose(mine.mlp.down_proj.weight, theirs.mlp.down_proj.weight / cumulative)


def test_a_cmaes_state_saved_by_another_pycma_version_is_refused_with_the_version_to_install():
    from hubevo.search.cmaes import dump_optimizer, load_optimizer

    saved = dump_optimizer(new_optimizer([0.5, 0.5], sigma0=0.2, popsize=4, seed=0))
    assert load_optimizer(saved).ask()  # same version: resumes
    with pytest.raises(ConfigError, match=r"saved with cma 3\.0\.0, but cma .* installed; pip install cma==3\.0\.0"):
        load_optimizer({**saved, "cma": "3.0.0"})


def test_a_cmaes_state_pickled_before_the_strategies_moved_still_resumes(monkeypatch):
    """Runs saved while the strategies lived in `hubevo.strategies` pickled their optimizer's Gaussian source under
    that module: such a state loads into the same optimizer, asking the same points."""
    import base64
    import pickle
    import sys
    import types
    import zlib

    from hubevo.search import cmaes

    es = new_optimizer([0.5, 0.5], sigma0=0.2, popsize=4, seed=0)
    old = types.ModuleType("hubevo.strategies.cmaes")

    class GaussianSource(cmaes.GaussianSource):  # the same class, under the module it had then
        pass

    GaussianSource.__module__, GaussianSource.__qualname__ = old.__name__, "GaussianSource"
    old.GaussianSource = GaussianSource
    monkeypatch.setitem(sys.modules, old.__name__, old)
    es.opts["randn"].__class__ = GaussianSource
    saved = {"pickle": base64.b64encode(zlib.compress(pickle.dumps(es))).decode(), "cma": cmaes.cma_version()}
    monkeypatch.delitem(sys.modules, old.__name__)
    assert b"hubevo.strategies.cmaes" in zlib.decompress(base64.b64decode(saved["pickle"]))

    loaded = cmaes.load_optimizer(saved)
    assert type(loaded.opts["randn"]) is cmaes.GaussianSource
    expected = new_optimizer([0.5, 0.5], sigma0=0.2, popsize=4, seed=0)
    assert np.array_equal(np.asarray(loaded.ask()), np.asarray(expected.ask()))


def test_an_interpolation_searched_as_task_arithmetic_starts_at_the_same_weights(demo_zoo):
    from hubevo.breed.baselines import standard_recipe
    from hubevo.breed.genome import to_merge_config
    from hubevo.breed.materialize import Materializer
    from hubevo.search.cmaes import as_task_arithmetic

    refs = {"base": str(demo_zoo.base), **{k: str(v) for k, v in demo_zoo.specialists.items()}}
    members = list(demo_zoo.specialists)
    linear = standard_recipe("linear", members=members, base="base")
    same = as_task_arithmetic(linear, base="base")
    assert same.method == "task_arithmetic" and [g["weight"] for g in same.per_parent] == [0.5, 0.5]
    materializer = Materializer(demo_zoo.base)
    expected = {k: v.clone() for k, v in materializer.materialize(to_merge_config(linear, refs=refs)).state_dict().items()}
    got = materializer.materialize(to_merge_config(same, refs=refs)).state_dict()
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, atol=1e-6, rtol=1e-5, msg=name)
    slerp = as_task_arithmetic(standard_recipe("slerp", members=members, base="base"), base="base")
    assert [g["weight"] for g in slerp.per_parent] == [0.5, 0.5]


def test_task_arithmetic_has_no_density_gene_because_mergekit_reads_density_only_when_it_sparsifies(demo_zoo):
    """A gene that changes nothing would only widen the search: the table drops it where mergekit ignores it."""
    from hubevo.breed.materialize import Materializer
    from hubevo.config.methods import get_method

    assert get_method("task_arithmetic").input_genes == ("weight",)
    assert "density" in get_method("ties").input_genes and "density" in get_method("dare_ties").input_genes
    refs = {"base": str(demo_zoo.base), **{k: str(v) for k, v in demo_zoo.specialists.items()}}
    members = tuple(demo_zoo.specialists)
    materializer = Materializer(demo_zoo.base)
    tensors = []
    for density in (1.0, 0.3):
        genome = MergeGenome(method="task_arithmetic", parents=members, base="base", shared={"lambda": 1.0},
                             per_parent=tuple({"weight": 0.5, "density": density} for _ in members))
        state = materializer.materialize(to_merge_config(genome, refs=refs)).state_dict()
        tensors.append({k: v.clone() for k, v in state.items()})
    for name, tensor in tensors[0].items():
        torch.testing.assert_close(tensors[1][name], tensor, msg=name)


@pytest.mark.parametrize("methods", [None, ["linear", "slerp"]])
def test_auto_cmaes_starts_at_the_best_standard_recipe_in_a_method_the_run_allows(demo_zoo, tmp_path, methods):
    """By default an interpolation is searched as task arithmetic over the base; a run whose crossover.methods
    leave task arithmetic out is searched in the recipe's own method."""
    from hubevo.demo.runner import demo_config

    cfg = demo_config(demo_zoo, out_dir=tmp_path / "run", generations=1)
    data = cfg.model_dump(mode="json")
    data["fitness"] |= {"limit": 16, "heldout": []}
    data["budget"] |= {"wall_time_s": None}
    if methods:
        data["crossover"]["methods"] = methods
    cfg = type(cfg).model_validate(data)
    assert cfg.search_strategy == "cmaes"
    state = evolve(cfg, progress=False)
    start = state.strategy_state["start"]
    source = state.individuals[start["from"]].genome.method
    assert source in (methods or ["linear", "slerp", "nuslerp", "task_arithmetic", "ties", "dare_ties", "model_stock"])
    assert start["method"] == (source if methods else "task_arithmetic")
    bred = [i for i in state.individuals.values() if i.generation == 1 and i.genome is not None]
    assert bred and {i.genome.method for i in bred} == {start["method"]}


# a merge without genes, read as task arithmetic ------------------------------------------------------
def test_a_per_layer_task_arithmetic_merge_is_read_back_as_its_own_weights(demo_zoo):
    """The least-squares reading of a merge (hubevo.breed.projection) recovers the weights of a merge that is task
    arithmetic per block, for every layer group and module filter."""
    from hubevo.breed.genome import GeneBlock
    from hubevo.breed.materialize import Materializer
    from hubevo.breed.projection import task_arithmetic_weights
    from hubevo.search.cmaes import layer_groups

    refs = {"base": str(demo_zoo.base), **{k: str(v) for k, v in demo_zoo.specialists.items()}}
    members = tuple(demo_zoo.specialists)
    n_layers = AutoModelForCausalLM.from_pretrained(demo_zoo.base).config.num_hidden_layers
    groups, modules = layer_groups(n_layers, 1), ["self_attn", None]
    rng = np.random.default_rng(0)
    weights = [[round(float(w), 3) for w in rng.uniform(0.0, 1.2, len(members))] for _ in groups for _ in modules]
    blocks = tuple(GeneBlock(start=s, end=e, module=m, per_parent=tuple({"weight": w} for w in weights[k]))
                   for k, ((s, e), m) in enumerate((g, m) for g in groups for m in modules))
    genome = MergeGenome(method="task_arithmetic", parents=members, base="base", blocks=blocks)
    model = Materializer(demo_zoo.base).materialize(to_merge_config(genome, refs=refs))
    read = task_arithmetic_weights(model.state_dict().items(), parents=[refs[m] for m in members],
                                   base=refs["base"], groups=groups, modules=modules)
    np.testing.assert_allclose(read, weights, atol=1e-4)


def test_auto_cmaes_starts_at_model_stock_read_as_per_layer_task_arithmetic(demo_zoo, tmp_path):
    """model_stock has no genes; when it is the best standard recipe, CMA-ES starts at the task-arithmetic weights
    closest to it per layer, which rebuild it more closely than any one set of weights for the whole model."""
    from hubevo.breed.baselines import standard_recipe
    from hubevo.breed.materialize import Materializer
    from hubevo.demo.runner import demo_config
    from hubevo.search.cmaes import parameter_space
    from hubevo.search.view import PopulationView
    from hubevo.seed.members import seed_layers

    cfg = demo_config(demo_zoo, out_dir=tmp_path / "run", generations=1)
    data = cfg.model_dump(mode="json")
    data["fitness"] |= {"limit": 16, "heldout": []}
    data["budget"] |= {"wall_time_s": None}
    data["search"] |= {"baselines": ["model_stock"]}
    cfg = type(cfg).model_validate(data)
    state = evolve(cfg, progress=False)
    start = state.strategy_state["start"]
    assert state.baselines[start["from"]] == "model_stock" and start["method"] == "task_arithmetic"
    bred = [i for i in state.individuals.values() if i.generation == 1 and i.genome is not None]
    assert bred and {i.genome.method for i in bred} == {"task_arithmetic"} and all(i.genome.blocks for i in bred)

    refs = {i: ind.source for i, ind in state.individuals.items() if ind.kind == "seed"}
    view = PopulationView(state, seed_layers=seed_layers(refs))
    options = CMAESOptions(method="task_arithmetic", ranges=start["ranges"])
    started = parameter_space(cfg, view, options).decode(start["x0"])
    members = list(state.initial)
    materializer = Materializer(demo_zoo.base)
    tensors = lambda genome: {k: v.clone() for k, v in  # noqa: E731
                              materializer.materialize(to_merge_config(genome, refs=refs)).state_dict().items()}
    stock = tensors(standard_recipe("model_stock", members=members, base=state.base))
    distance = lambda other: sum(float((other[k] - v).pow(2).sum()) for k, v in stock.items()) ** 0.5  # noqa: E731
    fitted = distance(tensors(started))
    for whole in (0.3, 0.5):
        uniform = MergeGenome(method="task_arithmetic", parents=tuple(members), base=state.base,
                              per_parent=tuple({"weight": whole} for _ in members))
        assert fitted < distance(tensors(uniform))


def test_tensors_fall_in_the_gene_block_mergekit_plans_them_with():
    """Embeddings go with the first layer group, the final norm and the head with the last; a module filter
    takes the tensors whose name holds it, the catch-all the rest of the layer."""
    from hubevo.breed.projection import block_index

    groups, modules = [(0, 2), (2, 4)], ["self_attn", None]
    where = lambda name, after: block_index(name, groups=groups, modules=modules, after_layers=after)  # noqa: E731
    assert where("model.embed_tokens.weight", False) == 1
    assert where("model.layers.1.self_attn.q_proj.weight", True) == 0
    assert where("model.layers.1.mlp.up_proj.weight", True) == 1
    assert where("model.layers.3.self_attn.o_proj.weight", True) == 2
    assert where("model.layers.2.input_layernorm.weight", True) == 3
    assert where("model.norm.weight", True) == where("lm_head.weight", True) == 3


# recipe soups ----------------------------------------------------------------------------------------
def test_a_task_arithmetic_recipe_soup_is_the_average_of_its_ingredients_models(demo_zoo):
    """Task arithmetic is linear in its weights: the average recipe of two per-layer merges builds the
    average of their two models, so a recipe soup is a model soup."""
    from hubevo.breed.materialize import Materializer

    refs = {"base": str(demo_zoo.base), **{k: str(v) for k, v in demo_zoo.specialists.items()}}
    space = ParameterSpace(method="task_arithmetic", parents=tuple(demo_zoo.specialists), base="base", n_layers=4,
                           options=SpaceOptions(method="task_arithmetic"), ranges={"weight": (0.0, 1.5)})
    rng = np.random.default_rng(1)
    xs = [rng.uniform(0, 1, space.dim).tolist() for _ in range(2)]
    genomes = [space.decode(x) for x in xs]
    assert all(space.holds(g) for g in genomes) and not space.holds(genomes[0].model_copy(update={"blocks": ()}))
    np.testing.assert_allclose(space.point(genomes[0]), xs[0], atol=1e-6)
    soup = space.decode(np.mean([space.point(g) for g in genomes], axis=0).tolist())
    materializer = Materializer(demo_zoo.base)
    models = [{k: v.clone() for k, v in materializer.materialize(to_merge_config(g, refs=refs)).state_dict().items()}
              for g in (*genomes, soup)]
    for name, tensor in models[2].items():
        torch.testing.assert_close(tensor, (models[0][name] + models[1][name]) / 2, atol=1e-5, rtol=1e-4, msg=name)


def test_cmaes_asks_the_soup_of_its_best_finalists_and_scores_it_on_validation(demo_zoo, tmp_path):
    from hubevo.search.cmaes import parameter_space
    from hubevo.search.view import PopulationView
    from hubevo.seed.members import seed_layers

    cfg = demo_search_config(demo_zoo, tmp_path / "run", "cmaes", {"layer_granularity": 1, "popsize": 6},
                             generations=3, limit=16)
    cfg = cfg.model_copy(update={"fitness": cfg.fitness.model_copy(update={"finalists": 6, "heldout": []})})
    state = evolve(cfg, progress=False)
    soups = state.strategy_state["soups"]
    assert soups and all(state.individuals[s].name.startswith(f"g{state.individuals[s].generation}-soup-")
                         for s in soups)
    assert set(soups) <= set(state.validation)  # every soup is a finalist
    refs = {i: ind.source for i, ind in state.individuals.items() if ind.kind == "seed"}
    start = state.strategy_state["start"]
    space = parameter_space(cfg, PopulationView(state, seed_layers=seed_layers(refs)),
                            CMAESOptions(method=start["method"], ranges=start["ranges"]))
    for sid in soups:
        asked_in = state.individuals[sid].generation
        before = sorted((v for v in state.validation.values() if v.generation < asked_in and v.status == "ok"
                         and space.holds(state.individuals[v.id].genome)), key=lambda v: (-v.fitness, v.id))[:5]
        assert len(before) >= 2
        mean = np.mean([space.point(state.individuals[v.id].genome) for v in before], axis=0)
        np.testing.assert_allclose(space.point(state.individuals[sid].genome), mean, atol=1e-5)
