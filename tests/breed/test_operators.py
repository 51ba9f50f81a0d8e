"""Pure operators: genome -> mergekit config, selection, crossover and perturbation."""

import numpy as np
import pytest

from hubevo.breed.crossover import crossover
from hubevo.breed.genome import MergeGenome, child_individual, seed_individual, to_merge_config
from hubevo.breed.mutation import perturb
from hubevo.config import CrossoverConfig, MutationConfig, SelectionConfig
from hubevo.config.methods import get_method, method_table
from hubevo.errors import UnknownNameError
from hubevo.selection.parents import elites, pick_parents, ranked

REQUIRED = ["linear", "slerp", "nuslerp", "ties", "dare_ties", "dare_linear",
            "task_arithmetic", "breadcrumbs", "della", "model_stock"]

A, B, BASE = (seed_individual(name=n, source=f"/models/{n}") for n in ("a", "b", "base"))
REFS = {A.id: "/models/a", B.id: "/models/b", BASE.id: "/models/base"}


def test_method_table_covers_the_required_methods():
    table = method_table()
    assert set(REQUIRED) <= set(table)
    assert table["ties"].needs_base and "density" in table["ties"].input_genes
    assert table["slerp"].shared_genes == ("t",) and table["slerp"].accepts(2) and not table["slerp"].accepts(3)
    assert not table["linear"].needs_base


def test_unknown_method_lists_known_ones():
    with pytest.raises(UnknownNameError) as err:
        get_method("tie")
    assert "Did you mean ties" in str(err.value) and "model_stock" in str(err.value)


@pytest.mark.parametrize("method", REQUIRED)
def test_every_method_crosses_into_a_valid_mergekit_config(method):
    rng = np.random.default_rng(0)
    genome = crossover([A, B], base_id=BASE.id, cfg=CrossoverConfig(methods=[method]), rng=rng)
    config = to_merge_config(genome, refs=REFS)
    assert config.merge_method == method
    models = [m.model.model.path for m in config.models]
    assert models == ["/models/a", "/models/b"]
    if get_method(method).needs_base:
        assert config.base_model.model.path == "/models/base"
    for genes in genome.per_parent:
        for name, value in genes.items():
            low, high = CrossoverConfig().ranges[name]
            assert low <= value <= high


def test_child_ids_are_recipe_hashes():
    rng = np.random.default_rng(1)
    genome = crossover([A, B], base_id=BASE.id, cfg=CrossoverConfig(methods=["ties"]), rng=rng)
    assert child_individual(genome, generation=1).id == child_individual(genome, generation=3).id
    other = genome.model_copy(update={"shared": {"lambda": 0.123}})
    assert child_individual(other, generation=1).id != child_individual(genome, generation=1).id


def test_children_inherit_method_and_genes_from_a_merged_parent():
    parent_genome = MergeGenome(method="ties", parents=(A.id, B.id), base=BASE.id, shared={"lambda": 1.25},
                                per_parent=({"weight": 0.9, "density": 0.4}, {"weight": 0.7, "density": 0.6}))
    parent = child_individual(parent_genome, generation=1)
    cfg = CrossoverConfig(methods=["ties", "linear"], inherit_prob=1.0)
    child = crossover([parent, A], base_id=BASE.id, cfg=cfg, rng=np.random.default_rng(0))
    assert child.method == "ties" and child.shared == {"lambda": 1.25}
    assert child.per_parent[0] == {"weight": pytest.approx(0.8), "density": pytest.approx(0.5)}


def test_same_seed_same_children():
    cfg = CrossoverConfig()
    one = [crossover([A, B], base_id=BASE.id, cfg=cfg, rng=np.random.default_rng(5)) for _ in range(3)]
    two = [crossover([A, B], base_id=BASE.id, cfg=cfg, rng=np.random.default_rng(5)) for _ in range(3)]
    assert one == two


def test_methods_needing_a_base_are_not_drawn_without_one():
    rng = np.random.default_rng(0)
    for _ in range(20):
        genome = crossover([A, B], base_id=None, cfg=CrossoverConfig(), rng=rng)
        assert not get_method(genome.method).needs_base and genome.base is None


def test_perturb_moves_genes_within_ranges():
    genome = MergeGenome(method="ties", parents=(A.id, B.id), base=BASE.id, shared={"lambda": 1.0},
                         per_parent=({"weight": 0.5, "density": 0.5}, {"weight": 0.5, "density": 0.5}))
    cross = CrossoverConfig(methods=["ties"])
    out = perturb(genome, mutation=MutationConfig(strength=0.5, method_flip_prob=0.0), cross=cross,
                  base_id=BASE.id, rng=np.random.default_rng(0))
    assert out.method == "ties" and out.per_parent != genome.per_parent
    for genes in out.per_parent:
        assert 0.0 <= genes["weight"] <= 1.0 and 0.2 <= genes["density"] <= 1.0


def test_perturb_can_switch_method_and_keeps_shared_gene_names():
    genome = MergeGenome(method="ties", parents=(A.id, B.id), base=BASE.id, shared={"lambda": 1.0},
                         per_parent=({"weight": 0.5, "density": 0.5}, {"weight": 0.5, "density": 0.5}))
    cross = CrossoverConfig(methods=["ties", "linear"])
    out = perturb(genome, mutation=MutationConfig(method_flip_prob=1.0), cross=cross, base_id=BASE.id,
                  rng=np.random.default_rng(0))
    assert out.method == "linear" and out.base is None and set(out.per_parent[0]) == {"weight"}
    to_merge_config(out, refs=REFS)


def test_selection_ranks_and_skips_failed():
    fitness = {"a": 0.2, "b": None, "c": 0.9, "d": 0.5}
    assert ranked(fitness) == ["c", "d", "a"]
    assert elites(fitness, k=2) == ["c", "d"]


@pytest.mark.parametrize("method", ["roulette", "tournament"])
def test_selection_prefers_fitter_parents(method):
    fitness = {"weak": 0.05, "mid": 0.3, "strong": 0.95}
    cfg = SelectionConfig(method=method, random_pick_prob=0.0, tournament_size=2)
    rng = np.random.default_rng(0)
    firsts = [pick_parents(fitness, n=2, cfg=cfg, rng=rng)[0] for _ in range(300)]
    assert firsts.count("strong") > firsts.count("mid") > firsts.count("weak")
    assert all(len(set(pick_parents(fitness, n=2, cfg=cfg, rng=rng))) == 2 for _ in range(20))


def test_random_picks_keep_diversity():
    fitness = {"weak": 0.0, "strong": 1.0, "other": 1.0}
    cfg = SelectionConfig(method="tournament", random_pick_prob=1.0, tournament_size=3)
    rng = np.random.default_rng(0)
    picks = [pick_parents(fitness, n=1, cfg=cfg, rng=rng)[0] for _ in range(200)]
    assert 40 < picks.count("weak") < 100


def test_della_genes_stay_valid_for_mergekit():
    cfg = CrossoverConfig(methods=["della"], ranges={"density": (0.9, 1.0), "epsilon": (0.15, 0.2)})
    rng = np.random.default_rng(0)
    for _ in range(20):
        genome = crossover([A, B], base_id=BASE.id, cfg=cfg, rng=rng)
        genome = perturb(genome, mutation=MutationConfig(strength=1.0), cross=cfg, base_id=BASE.id, rng=rng)
        for genes in genome.per_parent:
            assert 0 < genes["density"] - genes["epsilon"] and genes["density"] + genes["epsilon"] < 1
