"""Seeding: members resolve to folders and incompatible populations fail before any merge."""

import json

import pytest

from hubevo.config import PopulationConfig
from hubevo.errors import CompatibilityError, ConfigError, MemberNotFoundError
from hubevo.seed.population import seed_population
from tests.tiny_models import build_llama


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed-models")
    return {
        "a": build_llama(root / "a", seed=0),
        "b": build_llama(root / "b", seed=1),
        "wide": build_llama(root / "wide", seed=2, hidden_size=64),
        "deep": build_llama(root / "deep", seed=3, num_hidden_layers=3),
        "base": build_llama(root / "base", seed=4),
    }


def population(*members, base=None):
    return PopulationConfig.model_validate(
        {"members": [{"path": str(m), "name": m.name} for m in members],
         "base_model": {"path": str(base), "name": "base"} if base else None}
    )


def test_compatible_members_resolve(models):
    members, base = seed_population(population(models["a"], models["b"], base=models["base"]))
    assert [m.label for m in members] == ["a", "b"] and base.path == models["base"]


@pytest.mark.parametrize("other, field", [("wide", "hidden_size: 32 vs 64"), ("deep", "num_hidden_layers: 2 vs 3")])
def test_incompatible_members_are_named_with_the_difference(models, other, field):
    with pytest.raises(CompatibilityError) as err:
        seed_population(population(models["a"], models[other]))
    assert f"members 'a' and '{other}' cannot be merged" in str(err.value) and field in str(err.value)


def test_different_vocabularies_are_refused(models, tmp_path):
    import shutil

    odd = tmp_path / "odd"
    shutil.copytree(models["b"], odd)
    tok = json.loads((odd / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    first = next(iter(vocab))
    vocab[first + "x"] = vocab.pop(first)
    (odd / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(CompatibilityError, match="tokenizer vocabularies differ"):
        seed_population(population(models["a"], odd))


def test_missing_member_path(models, tmp_path):
    with pytest.raises(MemberNotFoundError, match="nowhere' does not exist"):
        seed_population(population(models["a"], tmp_path / "nowhere"))


def test_duplicate_names(models):
    cfg = PopulationConfig.model_validate({"members": [{"path": str(models["a"]), "name": "x"},
                                                       {"path": str(models["b"]), "name": "x"}]})
    with pytest.raises(ConfigError, match="duplicate names"):
        seed_population(cfg)


@pytest.mark.parametrize("value, where", [(float("nan"), "all"), (float("inf"), "one")])
def test_a_member_with_nan_or_inf_weights_is_refused_naming_the_tensor(models, tmp_path, value, where):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    broken = shutil.copytree(models["b"], tmp_path / "diverged")
    file = next(broken.glob("*.safetensors"))
    tensors = load_file(file)
    name = next(n for n in sorted(tensors) if n.endswith("mlp.down_proj.weight"))
    if where == "all":
        tensors = {n: torch.full_like(t, value) if t.is_floating_point() else t for n, t in tensors.items()}
    else:
        tensors[name].view(-1)[7] = value
    save_file(tensors, file, metadata={"format": "pt"})
    with pytest.raises(CompatibilityError) as err:
        seed_population(population(models["a"], broken))
    message = str(err.value)
    assert "population member 'diverged'" in message and "NaN or Inf" in message and "remove the member" in message
    assert (name if where == "one" else "model.") in message
