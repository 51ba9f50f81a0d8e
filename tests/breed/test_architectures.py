"""Real architectures without downloads (`hubevo.demo.architectures`): merge, stack, fine-tune, refuse.

For each family (Llama-3, Qwen2.5, Mistral, Gemma-2, Phi-3) a tiny random base and two noisy
"fine-tunes" of it go through what a run does to them: every crossover method materialised in
memory, a data-flow (DFS) path stacked from both parents, a DPO mutation, and the seed stage's
compatibility check.
"""

from pathlib import Path

import pytest
import torch
from mergekit.architecture import arch_info_for_config
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from hubevo.breed.genome import DataFlowGenome, LayerStep, MergeGenome, identity_dict, to_merge_dict
from hubevo.breed.materialize import Materializer
from hubevo.config import DEFAULT_METHODS
from hubevo.config.finetune import PreferenceSource
from hubevo.config.methods import get_method
from hubevo.demo.architectures import (
    ARCHITECTURES,
    build_model,
    noisy_copy,
    parameter_count,
)
from hubevo.errors import CompatibilityError, ConfigError, UnknownNameError
from hubevo.finetune.recipe import FinetuneRecipe
from hubevo.finetune.training import finetune
from hubevo.seed.members import ResolvedMember, check_compatible

torch.set_num_threads(1)

ARCHS = tuple(ARCHITECTURES)
GENES = {"weight": 0.5, "density": 0.7, "t": 0.4, "lambda": 1.0, "epsilon": 0.1, "gamma": 0.05}
PROMPT = "abc>cba\nxyz>"  # 13 tokens with BOS


# --- the zoo: one base and two noisy fine-tunes per architecture, built once ---------------------


@pytest.fixture(scope="module")
def zoos(tmp_path_factory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("architectures")
    zoos = {}
    for arch in ARCHS:
        base = build_model(arch, root / arch / "base", seed=0)
        zoos[arch] = {"base": base, **{f"ft{i}": noisy_copy(base, root / arch / f"ft{i}", seed=i) for i in (1, 2)}}
    return zoos


@pytest.fixture(scope="module")
def materializers(zoos) -> dict[str, Materializer]:
    return {arch: Materializer(zoo["base"]) for arch, zoo in zoos.items()}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return {name: tensor for shard in sorted(folder.glob("*.safetensors")) for name, tensor in load_file(shard).items()}


def refs(zoo: dict[str, Path]) -> dict[str, str]:
    return {name: str(path) for name, path in zoo.items()}


@torch.no_grad()
def logits(model, tokenizer, text: str = PROMPT) -> torch.Tensor:
    return model(tokenizer(text, return_tensors="pt").input_ids).logits[0]  # (T, vocab)


@torch.no_grad()
def generated(model, tokenizer) -> list[int]:
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return out[0, ids.shape[1]:].tolist()


# --- the registry --------------------------------------------------------------------------------


def test_each_family_keeps_its_distinctive_features():
    configs = {arch: ARCHITECTURES[arch].config() for arch in ARCHS}
    assert all(c.num_key_value_heads < c.num_attention_heads for c in configs.values())  # GQA everywhere
    assert {arch for arch, c in configs.items() if c.tie_word_embeddings} == {"qwen2.5", "gemma2"}
    gemma = configs["gemma2"]
    assert gemma.head_dim * gemma.num_attention_heads != gemma.hidden_size
    assert gemma.attn_logit_softcapping and gemma.final_logit_softcapping
    assert set(gemma.layer_types) == {"sliding_attention", "full_attention"}
    assert configs["mistral"].sliding_window < configs["mistral"].max_position_embeddings
    assert type(configs["phi3"]).__name__ == "Phi3Config" and configs["llama3"].model_type == "llama"


def test_size_presets_have_about_that_many_parameters():
    for arch in ARCHS:  # counted on the meta device: nothing is allocated
        assert 0.45e9 < parameter_count(arch, size="0.5b") < 0.55e9, arch
        assert 1.35e9 < parameter_count(arch, size="1.5b") < 1.65e9, arch
        assert parameter_count(arch) < 100_000


def test_unknown_names_are_refused_with_what_exists():
    with pytest.raises(UnknownNameError, match="Did you mean gemma2"):
        ARCHITECTURES["gemma"]
    with pytest.raises(ConfigError, match="sizes: tiny, 0.5b, 1.5b"):
        ARCHITECTURES["llama3"].config(size="7b")
    with pytest.raises(ConfigError, match=r"no field\(s\) \['hiden_size'\]"):
        ARCHITECTURES["llama3"].config(hiden_size=64)


TELLTALE_TENSORS = {  # arch -> (a tensor name part it must have, one it must not)
    "llama3": ("lm_head.weight", "q_proj.bias"),
    "qwen2.5": ("self_attn.q_proj.bias", "lm_head.weight"),
    "mistral": ("lm_head.weight", "pre_feedforward_layernorm"),
    "gemma2": ("post_feedforward_layernorm", "lm_head.weight"),
    "phi3": ("self_attn.qkv_proj", "self_attn.q_proj"),
}


@pytest.mark.parametrize("arch", ARCHS)
def test_built_folder_loads_with_its_config_class_and_tokenizer(arch, zoos):
    folder = zoos[arch]["base"]
    present, absent = TELLTALE_TENSORS[arch]
    names = list(weights(folder))
    assert any(present in n for n in names) and not any(absent in n for n in names), names
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    assert type(model.config) is ARCHITECTURES[arch].config_class
    assert arch_info_for_config(model.config) is not None  # in mergekit's registry, not guessed from tensor names
    assert tokenizer("ab").input_ids == [tokenizer.bos_token_id, *tokenizer.convert_tokens_to_ids(["a", "b"])]
    assert len(generated(model, tokenizer)) == 4
    ft1, base = weights(zoos[arch]["ft1"]), weights(folder)
    assert ft1.keys() == base.keys() and all(not torch.equal(ft1[k], base[k]) for k in base)


# --- crossover: every method, in memory ----------------------------------------------------------


def method_genome(method: str) -> MergeGenome:
    """A two-parent child of ft1 and ft2 over `base`, as `hubevo.breed.crossover` builds one."""
    info = get_method(method)
    return MergeGenome(
        method=method,
        parents=("ft1", "ft2"),
        base="base" if info.base != "ignored" else None,
        shared={gene: GENES[gene] for gene in info.shared_genes},
        per_parent=tuple({gene: GENES[gene] for gene in info.input_genes} for _ in range(2)),
    )


def expected(method: str, members: dict[str, dict[str, torch.Tensor]], name: str) -> torch.Tensor | None:
    """The merged tensor for methods with a closed form at these genes (None otherwise)."""
    base, ft1, ft2 = (members[m][name] for m in ("base", "ft1", "ft2"))
    if method == "linear":  # weights 0.5/0.5, normalised
        return (ft1 + ft2) / 2
    if method == "task_arithmetic":  # lambda 1, weights 0.5: no sparsification, no normalisation
        return base + 0.5 * (ft1 - base) + 0.5 * (ft2 - base)
    return None


@pytest.mark.parametrize("method", DEFAULT_METHODS)
@pytest.mark.parametrize("arch", ARCHS)
def test_every_crossover_method_materialises(arch, method, zoos, materializers):
    zoo, materializer = zoos[arch], materializers[arch]
    model = materializer.materialize(to_merge_dict(method_genome(method), refs=refs(zoo)))
    members = {name: weights(path) for name, path in zoo.items()}
    merged = model.state_dict()
    for name, base in members["base"].items():
        assert merged[name].shape == base.shape and torch.isfinite(merged[name]).all(), name
        closed_form = expected(method, members, name)
        if closed_form is not None:
            torch.testing.assert_close(merged[name], closed_form, rtol=0, atol=1e-6)
    changed = [k for k in members["base"] if all(not torch.equal(merged[k], m[k]) for m in members.values())]
    assert len(changed) > len(members["base"]) // 2, f"{method} left most tensors equal to a parent"
    if model.config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert len(generated(model, AutoTokenizer.from_pretrained(zoo["base"]))) == 4


@pytest.mark.parametrize("arch", ARCHS)
def test_linear_merge_saves_and_reloads_the_same_model(arch, zoos, materializers, tmp_path):
    zoo, materializer = zoos[arch], materializers[arch]
    model = materializer.materialize(to_merge_dict(method_genome("linear"), refs=refs(zoo)))
    tokenizer = AutoTokenizer.from_pretrained(zoo["base"])
    reloaded = AutoModelForCausalLM.from_pretrained(materializer.save(tmp_path / "child"))
    torch.testing.assert_close(logits(reloaded, tokenizer), logits(model, tokenizer))


# --- data-flow space: a passthrough path through both parents ------------------------------------


PATH = (("ft1", 0, 1.0), ("ft2", 1, 0.7), ("ft1", 1, 1.6))  # 3 layers out of 2-layer members


def data_flow(arch: str, *, scales: bool = True) -> DataFlowGenome:
    steps = [LayerStep(parent=p, layer=i, scale=s if scales else 1.0) for p, i, s in PATH]
    return DataFlowGenome(path=tuple(steps), residual_outputs=ARCHITECTURES[arch].residual_outputs)


@pytest.mark.parametrize("arch", ARCHS)
def test_residual_outputs_name_two_tensors_per_layer(arch, zoos):
    names = list(weights(zoos[arch]["base"]))
    registry = ARCHITECTURES[arch].residual_outputs
    for layer in range(2):
        in_layer = [n for n in names if n.startswith(f"model.layers.{layer}.")]
        assert [sum(r in n for n in in_layer) for r in registry] == [1, 1], (layer, registry)
    if ARCHITECTURES[arch].dfs_scales:
        assert registry == DataFlowGenome.model_fields["residual_outputs"].default


@pytest.mark.parametrize("arch", ARCHS)
def test_data_flow_path_stacks_both_parents_and_reloads(arch, zoos, materializers, tmp_path):
    zoo, materializer = zoos[arch], materializers[arch]
    config = to_merge_dict(data_flow(arch), refs=refs(zoo))
    model = materializer.materialize(config)
    assert model.config.num_hidden_layers == len(model.model.layers) == len(PATH)
    merged, ft1 = model.state_dict(), weights(zoo["ft1"])
    for name in [n for n in ft1 if n.startswith("model.layers.1.")]:  # ft1's layer 1 went to depth 2
        residual = any(r in name for r in ARCHITECTURES[arch].residual_outputs)
        scale = 1 / (0.7 * 1.6) if residual else 1.0  # residual branches carry 1 / (product of input scales)
        torch.testing.assert_close(merged[name.replace(".1.", ".2.", 1)], ft1[name] * scale)
    source_types = getattr(AutoModelForCausalLM.from_pretrained(zoo["ft1"]).config, "layer_types", None)
    if source_types is not None:  # Gemma-2 alternates sliding/full: each layer keeps the kind it was trained with
        assert model.config.layer_types == [source_types[i] for _, i, _ in PATH]
    tokenizer = AutoTokenizer.from_pretrained(zoo["base"])
    reloaded = AutoModelForCausalLM.from_pretrained(materializer.save(tmp_path / "dfs"))
    assert reloaded.config.num_hidden_layers == len(PATH)
    torch.testing.assert_close(logits(reloaded, tokenizer), logits(model, tokenizer))
    assert len(generated(reloaded, tokenizer)) == 4


def _exact_norms(model):
    """RMSNorm is scale-invariant up to its epsilon; drop it so the DFS identity holds exactly."""
    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            for attr in ("variance_epsilon", "eps"):
                if hasattr(module, attr):
                    setattr(module, attr, 0.0)
    return model


def _scale_inputs(model, scales: list[float]) -> list:
    """Forward pre-hooks multiplying each decoder layer's input hidden states by its path scale."""
    def hook(scale):
        def scaled(module, args, kwargs):
            if args:
                return (args[0] * scale, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": kwargs["hidden_states"] * scale}
        return scaled

    return [layer.register_forward_pre_hook(hook(s), with_kwargs=True) for layer, s in zip(model.model.layers, scales)]


def _xfail_unless_dfs_scales(arch: str):
    if ARCHITECTURES[arch].dfs_scales:
        return arch
    return pytest.param(arch, marks=pytest.mark.xfail(strict=True, reason=ARCHITECTURES[arch].dfs_note))


@pytest.mark.parametrize("arch", [_xfail_unless_dfs_scales(a) for a in ARCHS])
def test_data_flow_scales_act_as_scaled_layer_inputs(arch, zoos, tmp_path):
    """The merged weights compute what DFS means: layer k's input multiplied by its scale."""
    zoo = zoos[arch]
    tokenizer = AutoTokenizer.from_pretrained(zoo["base"])
    materializer = Materializer(zoo["base"])
    merged = logits(_exact_norms(materializer.materialize(to_merge_dict(data_flow(arch), refs=refs(zoo)))), tokenizer)
    plain = _exact_norms(materializer.materialize(to_merge_dict(data_flow(arch, scales=False), refs=refs(zoo))))
    handles = _scale_inputs(plain, [s for _, _, s in PATH])
    try:
        reference = logits(plain, tokenizer)
    finally:
        for handle in handles:
            handle.remove()
    torch.testing.assert_close(merged, reference, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(merged, logits(plain, tokenizer), atol=1e-3)  # the scales do matter


# --- mutation: DPO with LoRA ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def preferences(tmp_path_factory) -> Path:
    import json

    words = ["abcd", "bcda", "cdab", "dabc", "abdc", "bacd", "cadb", "dcba"]
    path = tmp_path_factory.mktemp("prefs") / "prefs.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"{w}>", "chosen": w[::-1], "rejected": w}) + "\n" for w in words))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_dpo_mutation_trains_and_the_child_merges_again(arch, zoos, materializers, preferences, tmp_path):
    recipe = FinetuneRecipe(operator="dpo", parent="base", dataset=PreferenceSource(path=str(preferences)),
                            learning_rate=1e-2, beta=0.1, loss_type="sigmoid", steps=2, lora_rank=4, samples=8,
                            seed=0, batch_size=4)
    metrics = finetune(zoos[arch]["base"], recipe, out_dir=tmp_path / "child", device="cpu")
    assert metrics["steps"] == 2
    child, parent = weights(tmp_path / "child"), weights(zoos[arch]["base"])
    assert child.keys() == parent.keys()  # LoRA merged back: no adapter tensors left
    assert any(not torch.equal(child[k], parent[k]) for k in parent)
    model = materializers[arch].materialize(identity_dict(str(tmp_path / "child")))
    torch.testing.assert_close(model.state_dict()["model.norm.weight"], child["model.norm.weight"])
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "child")
    assert len(generated(AutoModelForCausalLM.from_pretrained(tmp_path / "child"), tokenizer)) == 4


# --- seed: incompatible members are refused before any merge -------------------------------------


def member(label: str, path: Path) -> ResolvedMember:
    return ResolvedMember(label=label, source=str(path), path=path)


def test_different_families_are_refused_naming_the_field(zoos):
    with pytest.raises(CompatibilityError, match=r"'llama' and 'qwen'.*model_type: 'llama' vs 'qwen2'"):
        check_compatible([member("llama", zoos["llama3"]["base"]), member("qwen", zoos["qwen2.5"]["base"])])


def test_different_widths_are_refused_naming_the_field(zoos, tmp_path):
    wide = build_model("mistral", tmp_path / "wide", seed=0, hidden_size=64)
    with pytest.raises(CompatibilityError, match="hidden_size: 32 vs 64"):
        check_compatible([member("narrow", zoos["mistral"]["base"]), member("wide", wide)])


def test_different_head_dims_are_refused_naming_the_field(zoos, tmp_path):
    other = build_model("gemma2", tmp_path / "hd8", seed=0, head_dim=8, query_pre_attn_scalar=8)
    with pytest.raises(CompatibilityError, match="head_dim: 16 vs 8"):
        check_compatible([member("hd16", zoos["gemma2"]["base"]), member("hd8", other)])
