"""Natural niches (M2N2): resource competition keeps the model that alone solves rare examples, attraction
mates a model with its complement, a split-point child is w-SLERP below its split and (1 - w)-SLERP above
it, and a resumed search keeps the same archive and asks the same children."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mergekit.merge_methods.slerp import slerp
from safetensors.torch import load_file

from hubevo.breed.crossover import split_point_genome
from hubevo.breed.genome import seed_individual, to_merge_config
from hubevo.breed.materialize import merge_to_disk
from hubevo.config import parse_config
from hubevo.evaluation.records import Evaluation, TaskOutcomes
from hubevo.run.loop import evolve
from hubevo.search.m2n2 import M2N2
from hubevo.search.view import PopulationView
from hubevo.selection.niches import attraction, competition_fitness, niches
from hubevo.state.runstate import RunState
from tests.tiny_models import build_zoo

# three models x ten examples: "rare" alone solves example 0; "common" solves examples 1-9 but one less
SCORES = np.array([[1, 1, 1, 1, 1, 1, 1, 0, 0, 0],    # rare: mean 0.7, alone on example 0
                   [0, 1, 1, 1, 1, 1, 1, 1, 1, 0],    # common: mean 0.8, every example shared
                   [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]],   # leader: mean 0.9
                  dtype=float)
SHARE = np.full(10, 0.1)


def test_a_model_alone_on_a_rare_example_outranks_one_with_a_higher_mean_on_common_ones():
    assert SCORES[1].mean() > SCORES[0].mean()
    fitness = competition_fitness(SCORES, SHARE, alpha=1.0)
    assert fitness[0] > fitness[1]
    assert competition_fitness(SCORES, SHARE, alpha=0.0)[0] < competition_fitness(SCORES, SHARE, alpha=0.0)[1]


def test_attraction_picks_the_mate_strong_where_the_first_parent_is_weak():
    scores = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0.5, 0], [0, 0, 1, 0, 1, 1]], dtype=float)
    pull = attraction(scores, np.full(6, 1 / 6), first=0, alpha=1.0)
    assert pull[0] == 0 and pull[2] > pull[1] > 0


# split-point crossover ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    return build_zoo(root, finetunes=2, num_hidden_layers=4, hidden_size=32)


def expected_t(name: str, *, w: float, layer: int, below_modules: tuple[str, ...]) -> float:
    """t of a tensor under a split inside layer `layer` (its `below_modules` below): embeddings with the first
    slice, the final norm and head with the last, as mergekit plans them."""
    if "layers." not in name:
        return w if name.startswith("model.embed_tokens") else 1 - w
    index = int(name.split("layers.")[1].split(".")[0])
    if index != layer:
        return w if index < layer else 1 - w
    return w if any(m in name for m in below_modules) else 1 - w


def whole_slerp(t: float, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """mergekit's SLERP of two parents' tensors, each read as one vector (as its slerp method merges them)."""
    return slerp(torch.tensor(t), v0.reshape(1, -1), v1.reshape(1, -1)).reshape(v0.shape)


def test_a_split_point_child_is_w_slerp_below_the_split_and_one_minus_w_above(pair, tmp_path):
    w, modules = 0.2, ("self_attn", "mlp")
    genome = split_point_genome(("a", "b"), w=w, split=2 * 3 + 1, n_layers=4, modules=modules)  # layer 2, attention
    out = merge_to_disk(to_merge_config(genome, refs={"a": str(pair["ft1"]), "b": str(pair["ft2"])}), tmp_path / "c")
    child, a, b = (load_file(p / "model.safetensors") for p in (out, pair["ft1"], pair["ft2"]))
    ts = set()
    for name, tensor in child.items():
        t = expected_t(name, w=w, layer=2, below_modules=("self_attn",))
        ts.add(round(t, 6))
        torch.testing.assert_close(tensor, whole_slerp(t, a[name], b[name]), msg=name)
    assert ts == {0.2, 0.8}


# resume ---------------------------------------------------------------------------------------------
def synthetic_run(tmp_path):
    """Four members with per-example outcomes (each strong on a different quarter of 8 examples), in a real
    run state and view; no model is loaded."""
    cfg = parse_config({"population": {"members": [f"/m/{k}" for k in "abcd"]}, "fitness": {"tasks": ["t"]},
                        "search": {"strategy": "m2n2", "options": {"archive": 3, "children": 3}},
                        "output": {"dir": str(tmp_path / "run")}}, root=tmp_path)
    seeds = [seed_individual(name=k, source=f"/m/{k}") for k in "abcd"]
    state = RunState(config_hash="x", individuals={s.id: s for s in seeds}, initial=[s.id for s in seeds])
    for k, s in enumerate(seeds):
        values = [1.0 if j // 2 == k or j == 7 else 0.0 for j in range(8)]
        state.evaluations[s.id] = Evaluation(id=s.id, generation=0, status="ok", fitness=float(np.mean(values)),
                                             outcomes={"t": TaskOutcomes(weight=1.0, values=values)})
    return cfg, state, PopulationView(state, seed_layers={s.id: 4 for s in seeds})


def scored_children(state, children, generation):
    for k, child in enumerate(children):
        values = [float((k + j) % 3 == 0) for j in range(8)]
        state.individuals[child.id] = child
        state.evaluations[child.id] = Evaluation(id=child.id, generation=generation, status="ok",
                                                 fitness=float(np.mean(values)),
                                                 outcomes={"t": TaskOutcomes(weight=1.0, values=values)})
    return {c.id: state.evaluations[c.id] for c in children}


def test_a_resumed_m2n2_keeps_its_archive_and_asks_the_same_children(tmp_path):
    cfg, state, view = synthetic_run(tmp_path)
    search = M2N2(cfg, view)
    search.tell(dict(state.evaluations))
    assert len(search.archive) == 3 and niches(state.evaluations, search.archive)
    state.generation = 1
    asked = search.ask()
    saved = json.loads(json.dumps(search.state_dict()))  # killed here: the run state holds this
    resumed = M2N2(cfg, view)
    resumed.load_state_dict(saved)
    assert resumed.archive == search.archive and [c.id for c in resumed.ask()] == [c.id for c in asked]
    results = scored_children(state, asked, 1)
    search.tell(results)
    resumed.tell(results)
    state.generation = 2
    assert resumed.archive == search.archive and [c.id for c in resumed.ask()] == [c.id for c in search.ask()]
    assert all(c.genome.method == "slerp" and len(c.genome.parents) == 2 for c in asked)


def test_m2n2_runs_end_to_end_on_the_demo_zoo(demo_zoo, tmp_path):
    from tests.search.test_strategies import demo_search_config

    cfg = demo_search_config(demo_zoo, tmp_path / "run", "m2n2", {"archive": 4}, generations=3, limit=16, budget=14)
    state = evolve(cfg, progress=False)
    archive = state.strategy_state["archive"]
    bred = [i for i in state.evaluations if state.individuals[i].kind == "merge" and i not in state.baselines]
    assert len(state.evaluations) == 14 and bred and len(archive) == 4
    assert all(state.individuals[i].genome.method == "slerp" for i in bred)
    assert set(archive) <= set(state.saved) | set(state.survivors[max(state.survivors)])
    table = pd.read_parquet(cfg.output.dir / "results.parquet").set_index("id")
    assert table.loc[archive, "niche"].notna().all() and table.drop(index=archive)["niche"].isna().all()
    cards = [(Path(state.saved[i]) / "README.md").read_text() for i in archive if i in state.saved
             and state.individuals[i].kind == "merge" and (Path(state.saved[i]) / "README.md").is_file()]
    assert cards and all("Its niche in the search's archive" in card for card in cards)
