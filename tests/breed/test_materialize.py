"""Tests for hubevo.breed.materialize: in-memory merges equal mergekit's own output, tensor by tensor.

Every recipe is compared with an in-process `run_merge` to disk; `CLI_RECIPES` (one
deterministic, two stochastic) are also compared with the `mergekit-yaml` console script,
which costs about 6 s a process here. Set HUBEVO_CLI_ALL=1 to run the CLI for every recipe.
"""

import os
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import mergekit.merge
import pytest
import torch
from mergekit.architecture import get_architecture_info
from mergekit.config import MergeConfiguration
from mergekit.graph import Executor
from mergekit.io.tasks import LoaderCache, LoadTensor, ReturnTensor
from mergekit.plan import MergePlanner
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from hubevo.breed import materialize
from hubevo.breed.materialize import Materializer, clear_loader_cache, merge_options, merge_to_disk
from hubevo.errors import CandidateError, MemberNotFoundError
from tests.tiny_models import build_zoo

torch.set_num_threads(1)

MERGEKIT_YAML = Path(sys.executable).parent / "mergekit-yaml"  # installed next to this interpreter
TWO = {"weight": 0.6, "density": 0.6}
OTHER = {"weight": 0.5, "density": 0.5}


def _task_vector_recipe(method: str, *, extra: dict | None = None) -> dict:
    return {
        "merge_method": method,
        "base_model": "base",
        "models": [{"model": "ft1", "parameters": {**TWO, **(extra or {})}}, {"model": "ft2", "parameters": OTHER}],
        "dtype": "float32",
    }


RECIPES = {
    "linear": {
        "merge_method": "linear",
        "models": [{"model": "ft1", "parameters": {"weight": 0.7}}, {"model": "ft2", "parameters": {"weight": 0.3}}],
        "dtype": "float32",
    },
    "slerp": {
        "merge_method": "slerp",
        "base_model": "base",
        "models": [{"model": "base"}, {"model": "ft1"}],
        "parameters": {"t": [0.2, 0.8]},  # a gradient over layers
        "dtype": "float32",
    },
    "nuslerp": {
        "merge_method": "nuslerp",
        "base_model": "base",
        "models": [{"model": "ft1", "parameters": {"weight": 0.3}}, {"model": "ft2", "parameters": {"weight": 0.7}}],
        "dtype": "float32",
    },
    "ties": _task_vector_recipe("ties"),
    "dare_ties": _task_vector_recipe("dare_ties"),
    "dare_linear": _task_vector_recipe("dare_linear"),
    "task_arithmetic": {**_task_vector_recipe("task_arithmetic"), "parameters": {"lambda": 0.9}},
    "breadcrumbs": _task_vector_recipe("breadcrumbs", extra={"density": 0.8, "gamma": 0.05}),
    "della": {**_task_vector_recipe("della", extra={"epsilon": 0.1}), "parameters": {"lambda": 1.1}},
    "model_stock": {
        "merge_method": "model_stock",
        "base_model": "base",
        "models": [{"model": "ft1"}, {"model": "ft2"}, {"model": "ft3"}],
        "dtype": "float32",
    },
    "passthrough": {  # frankenmerge at the same depth: layer 0 of ft1, layer 1 of ft2
        "merge_method": "passthrough",
        "slices": [
            {"sources": [{"model": "ft1", "layer_range": [0, 1]}]},
            {"sources": [{"model": "ft2", "layer_range": [1, 2]}]},
        ],
        "dtype": "float32",
    },
    "passthrough_stack": {  # layer stacking: 3 layers out of 2-layer members
        "merge_method": "passthrough",
        "slices": [
            {"sources": [{"model": "ft1", "layer_range": [0, 2]}]},
            {"sources": [{"model": "ft2", "layer_range": [1, 2]}]},
        ],
        "dtype": "float32",
    },
}
STOCHASTIC = ("dare_ties", "dare_linear", "della")
CLI_RECIPES = tuple(RECIPES) if os.environ.get("HUBEVO_CLI_ALL") else ("slerp", "dare_ties", "della")


def _with_paths(node, zoo: dict[str, Path]):
    """Replace member names (base, ft1...) in a recipe by their absolute folders."""
    if isinstance(node, dict):
        return {key: _with_paths(value, zoo) for key, value in node.items()}
    if isinstance(node, list):
        return [_with_paths(value, zoo) for value in node]
    return str(zoo[node]) if isinstance(node, str) and node in zoo else node


def recipe(name: str, zoo: dict[str, Path]) -> MergeConfiguration:
    return MergeConfiguration.model_validate(_with_paths(RECIPES[name], zoo))


def linear(*members: Path) -> MergeConfiguration:
    """An equal-weight linear merge of member folders."""
    models = [{"model": str(member), "parameters": {"weight": 0.5}} for member in members]
    return MergeConfiguration.model_validate({"merge_method": "linear", "models": models})


def weights(folder: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for shard in sorted(Path(folder).glob("*.safetensors")):
        tensors.update(load_file(shard))
    return tensors


def assert_same_tensors(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert set(expected) == {name for name, _ in model.named_parameters()}
    for name, tensor in expected.items():
        assert torch.equal(state[name], tensor), f"tensor {name} differs"


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> dict[str, Path]:
    return build_zoo(tmp_path_factory.mktemp("zoo"), finetunes=3)


@pytest.fixture(scope="module")
def materializer(zoo) -> Materializer:
    """One resident model shared by the comparisons, as the evolution loop uses it."""
    return Materializer(zoo["ft1"])


def _member_with(zoo, tmp_path: Path, *, name: str, edit) -> Path:
    """A copy of ft1 whose weights went through `edit(dict of tensors)`."""
    folder = tmp_path / name
    shutil.copytree(zoo["ft1"], folder)
    tensors = weights(folder)
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_private_mergekit_api_is_still_there(zoo):
    """The names hubevo.breed.materialize relies on; a failure here means mergekit changed under us."""
    config = recipe("ties", zoo)
    options = merge_options()
    arch_info = get_architecture_info(config, options)
    out_config = mergekit.merge._model_out_config(config, arch_info, trust_remote_code=False)
    planner = MergePlanner(config.model_copy(deep=True), arch_info, options=options, out_model_config=out_config)
    planner._plan()
    weight, task = planner._tensors[0]
    returned = ReturnTensor.model_construct(weight_info=weight, tensor_task=task, dtype=None)
    assert returned.arguments() == {"tensor": task}
    assert isinstance(LoaderCache.loaders, dict)
    assert "random_seed" in type(options).model_fields
    handle, value = next(Executor([returned])._run(quiet=True))
    assert handle.task() is returned and isinstance(value, torch.Tensor)
    opened = [loader for loader in LoaderCache().loaders.values() if loader.current_shard is not None]
    assert opened and all(loader.index.is_safetensors for loader in opened)  # the cache is shared: others are closed
    for loader in opened:
        loader.flush()
        assert loader.current_shard is None


def test_a_merge_streams_one_tensor_at_a_time_and_leaves_no_member_mapped(zoo, materializer, monkeypatch):
    """While mergekit computes a tensor, no merged tensor handed over before it is still alive, and
    no member's shard stays mapped past the layer it was opened for (its pages would count as resident)."""
    handed, late = [], []
    check_finite, execute_load = materialize._require_finite, LoadTensor.execute

    def record(value, **kwargs):
        handed.append(weakref.ref(value))
        check_finite(value, **kwargs)

    def load(task):
        late.extend(ref for ref in handed if ref() is not None)
        return execute_load(task)

    def closed_between_tensors():
        open_shards.append(sum(loader.current_shard is not None for loader in LoaderCache().loaders.values()))

    open_shards = []
    release = materialize._release_shards
    monkeypatch.setattr(materialize, "_require_finite", record)
    monkeypatch.setattr(LoadTensor, "execute", load)
    monkeypatch.setattr(materialize, "_release_shards", lambda: (release(), closed_between_tensors()))
    materializer.materialize(recipe("linear", zoo))
    assert len(handed) > len(open_shards) > 2 and late == []  # released once per layer and at the end
    assert set(open_shards) == {0}


def test_stock_plan_in_memory_still_broken(zoo):
    """pydantic>=2.13 breaks ReturnTensor validation. When this fails, mergekit fixed plan_in_memory():
    switch materialize.py back to it."""
    config = recipe("linear", zoo)
    options = merge_options()
    arch_info = get_architecture_info(config, options)
    out_config = mergekit.merge._model_out_config(config, arch_info)
    with pytest.raises(TypeError):
        MergePlanner(config, arch_info, options=options, out_model_config=out_config).plan_in_memory()


@pytest.mark.parametrize("name", list(RECIPES))
def test_in_memory_merge_equals_run_merge(name, zoo, materializer, tmp_path):
    config = recipe(name, zoo)
    model = materializer.materialize(config)
    expected = weights(merge_to_disk(config, tmp_path / "merged"))
    assert_same_tensors(model, expected)
    for member in config.referenced_models():  # the merge is not a copy of any input
        inputs = weights(Path(member.model.path))
        assert any(name not in inputs or not torch.equal(inputs[name], value) for name, value in expected.items())


@pytest.mark.slow  # a mergekit-yaml process per recipe
@pytest.mark.parametrize("name", CLI_RECIPES)
def test_in_memory_merge_equals_mergekit_yaml_cli(name, zoo, materializer, tmp_path):
    if not MERGEKIT_YAML.is_file():
        pytest.fail(f"mergekit's console script is not installed next to {sys.executable}: {MERGEKIT_YAML} is missing")
    config = recipe(name, zoo)
    config_file = tmp_path / "merge.yml"
    config_file.write_text(config.to_yaml())
    command = [str(MERGEKIT_YAML), str(config_file), str(tmp_path / "cli"), "--random-seed", "0"]
    subprocess.run([*command, "--no-write-model-card", "--quiet"], check=True, capture_output=True, timeout=300)
    assert_same_tensors(materializer.materialize(config), weights(tmp_path / "cli"))


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_methods_are_seeded_and_leave_global_rng_alone(name, zoo):
    config = recipe(name, zoo)
    state = torch.get_rng_state()
    first = {k: v.clone() for k, v in Materializer(zoo["base"]).materialize(config).state_dict().items()}
    assert torch.equal(torch.get_rng_state(), state)
    assert_same_tensors(Materializer(zoo["base"]).materialize(config), first)
    other_seed = Materializer(zoo["base"], random_seed=1).materialize(config).state_dict()
    assert not torch.equal(other_seed["model.layers.0.mlp.up_proj.weight"], first["model.layers.0.mlp.up_proj.weight"])


def test_second_merge_does_not_depend_on_the_first(zoo, tmp_path):
    materializer = Materializer(zoo["base"])
    first = materializer.materialize(recipe("dare_ties", zoo))
    second = materializer.materialize(recipe("model_stock", zoo))
    assert second is first
    assert_same_tensors(second, weights(merge_to_disk(recipe("model_stock", zoo), tmp_path / "stock")))


def test_one_member_linear_merge_reproduces_the_member(zoo, materializer):
    """The loop evaluates seed members this way."""
    config = MergeConfiguration.model_validate(
        {"merge_method": "linear", "models": [{"model": str(zoo["ft2"]), "parameters": {"weight": 1.0}}]}
    )
    assert_same_tensors(materializer.materialize(config), weights(zoo["ft2"]))


def test_materialize_leaves_the_callers_config_untouched(zoo, materializer):
    config = recipe("ties", zoo)
    before = config.model_dump()
    materializer.materialize(config)
    assert config.model_dump() == before


def test_layer_stacking_rebuilds_then_returns_to_member_shape(zoo, tmp_path):
    materializer = Materializer(zoo["ft1"])
    stacked = materializer.materialize(recipe("passthrough_stack", zoo))
    assert stacked.config.num_hidden_layers == 3
    back = materializer.materialize(recipe("ties", zoo))
    assert back.config.num_hidden_layers == 2
    assert_same_tensors(back, weights(merge_to_disk(recipe("ties", zoo), tmp_path / "ties")))


def test_non_finite_weights_raise_candidate_error_naming_the_tensor(zoo, materializer, tmp_path):
    def poison(tensors):
        tensors["model.layers.1.mlp.down_proj.weight"][0, 0] = float("nan")

    poisoned = _member_with(zoo, tmp_path, name="poisoned", edit=poison)
    with pytest.raises(CandidateError, match=r"'linear'.*non-finite.*model\.layers\.1\.mlp\.down_proj\.weight"):
        materializer.materialize(linear(poisoned, zoo["ft2"]))
    # the failed candidate leaves nothing behind for the next one
    expected = weights(merge_to_disk(recipe("linear", zoo), tmp_path / "linear"))
    assert_same_tensors(materializer.materialize(recipe("linear", zoo)), expected)


def test_mergekit_failures_become_candidate_errors(zoo, materializer, tmp_path):
    def drop(tensors):
        del tensors["model.layers.0.self_attn.q_proj.weight"]

    incomplete = _member_with(zoo, tmp_path, name="incomplete", edit=drop)
    with pytest.raises(CandidateError, match=r"'linear'.*tensor 'model\.layers\.0\.self_attn\.q_proj\.weight'"):
        materializer.materialize(linear(incomplete, zoo["ft2"]))
    too_few = MergeConfiguration.model_validate(
        {"merge_method": "model_stock", "base_model": str(zoo["base"]), "models": [{"model": str(zoo["ft1"])}]}
    )
    with pytest.raises(CandidateError, match="'model_stock'"):
        materializer.materialize(too_few)
    with pytest.raises(CandidateError, match="'model_stock'"):
        merge_to_disk(too_few, tmp_path / "never")


def test_missing_member_is_reported_before_mergekit_asks_the_hub(zoo, materializer, tmp_path):
    with pytest.raises(MemberNotFoundError, match="gone"):
        materializer.materialize(linear(tmp_path / "gone", zoo["ft2"]))
    with pytest.raises(MemberNotFoundError, match="gone"):
        merge_to_disk(linear(tmp_path / "gone", zoo["ft2"]), tmp_path / "never")


def test_member_rewritten_in_place_is_reread(zoo, materializer, tmp_path):
    member = tmp_path / "member"
    shutil.copytree(zoo["ft1"], member)
    config = linear(member, zoo["ft2"])
    materializer.materialize(config)
    assert LoaderCache.loaders  # mergekit keeps the member open between merges
    # a new file renamed over the old one, as Hub downloads and atomic writers do
    shutil.copy(zoo["ft3"] / "model.safetensors", member / "incoming.safetensors")
    os.replace(member / "incoming.safetensors", member / "model.safetensors")
    rewritten = materializer.materialize(config)
    assert_same_tensors(rewritten, weights(merge_to_disk(linear(zoo["ft3"], zoo["ft2"]), tmp_path / "reference")))
    clear_loader_cache()
    assert not LoaderCache.loaders


def test_save_writes_a_folder_transformers_loads(zoo, materializer, tmp_path):
    model = materializer.materialize(recipe("ties", zoo))
    folder = materializer.save(tmp_path / "saved")
    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert_same_tensors(loaded, model.state_dict())
    text = "Hello, 2+2=4"
    template_ids = AutoTokenizer.from_pretrained(zoo["ft1"])(text).input_ids
    assert AutoTokenizer.from_pretrained(folder)(text).input_ids == template_ids
