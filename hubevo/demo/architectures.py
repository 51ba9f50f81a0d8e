"""Random-init models shaped like real families (Llama-3, Qwen2.5, Mistral, Gemma-2, Phi-3), built offline.

For tests and the scale bench: each family's own transformers config class with its distinctive
features kept, at a chosen size, with random weights and the demo's character-level tokenizer
(`hubevo.demo.tokenizer`), written as a plain HF folder (safetensors + config + tokenizer).
Nothing is downloaded. `size` picks a preset shape: "tiny" (hidden 32-48, 2 layers: tests),
"0.5b" and "1.5b" (shaped like the families' small checkpoints, within about 10 % of that many
parameters: the scale bench); any config field can be overridden by keyword.

| arch    | config class  | kept from the family                                                       |
| ------- | ------------- | -------------------------------------------------------------------------- |
| llama3  | LlamaConfig   | GQA 4:1, untied head, rope_theta 500000 (Llama-3 8B)                       |
| qwen2.5 | Qwen2Config   | GQA, tied embeddings, q/k/v biases, rope_theta 1e6 (Qwen2.5 0.5B/1.5B)     |
| mistral | MistralConfig | GQA 4:1, sliding-window attention, untied head (Mistral 7B v0.1)           |
| gemma2  | Gemma2Config  | GQA, head_dim != hidden/heads, tied, soft-capping, post-branch norms,      |
|         |               | alternating sliding/full attention layers (Gemma-2 2B)                     |
| phi3    | Phi3Config    | fused qkv_proj and gate_up_proj, untied head, GQA as in Phi-3 medium       |

Each entry also says which tensors write the residual stream (`residual_outputs`, what a DFS
path scales) and whether scaling them realises a DFS input scale (`dfs_scales`): Gemma-2's
branches end in a norm that multiplies by (1 + weight), so no multiplicative tensor scale does.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import torch
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    LlamaConfig,
    MistralConfig,
    Phi3Config,
    PretrainedConfig,
    PreTrainedModel,
    Qwen2Config,
)

from hubevo.demo.tokenizer import BOS, EOS, PAD, build_tokenizer
from hubevo.errors import ConfigError
from hubevo.registry import Registry

TINY_VOCAB = 64  # the character tokenizer's 45 tokens, padded as real vocabularies are
_LLAMA_ROPE = {"rope_type": "default", "rope_theta": 500000.0}
_QWEN_ROPE = {"rope_type": "default", "rope_theta": 1000000.0}


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


def _shape(*, hidden: int, mlp: int, layers: int, heads: int, kv: int, vocab: int, positions: int, **extra) -> Mapping:
    """One size of a family, in the config's own field names (`extra`: head_dim, sliding_window...)."""
    return _frozen({"hidden_size": hidden, "intermediate_size": mlp, "num_hidden_layers": layers,
                    "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": vocab,
                    "max_position_embeddings": positions, **extra})


@dataclass(frozen=True)
class Architecture:
    """One family: its config class, the settings every size keeps, and a shape per size."""

    name: str
    family: str
    config_class: type[PretrainedConfig]
    features: tuple[str, ...]
    fixed: Mapping[str, object]  # family settings kept at every size (tying, rope, soft-caps)
    shapes: Mapping[str, Mapping[str, object]]  # size -> width/depth/vocab
    residual_outputs: tuple[str, ...] = ("o_proj", "down_proj")
    dfs_scales: bool = True
    dfs_note: str = field(default="", compare=False)

    def config(self, *, size: str = "tiny", **shape) -> PretrainedConfig:
        """The family's config at `size`, with `shape` overriding any config field."""
        if size not in self.shapes:
            raise ConfigError(f"unknown size {size!r} for {self.name}; sizes: {', '.join(self.shapes)}")
        _check_fields(self, shape)
        values = {**_token_ids(), **self.fixed, **self.shapes[size], **shape}
        return self.config_class(**copy.deepcopy(values))  # configs keep (and may edit) the rope dict


ARCHITECTURES = Registry("architecture", [
    Architecture(
        name="llama3",
        family="Llama-3",
        config_class=LlamaConfig,
        features=("GQA", "untied lm_head", "rope_theta 500000"),
        fixed=_frozen({"tie_word_embeddings": False, "rope_parameters": _LLAMA_ROPE}),
        shapes=_frozen({
            "tiny": _shape(hidden=32, mlp=64, layers=2, heads=4, kv=2, vocab=TINY_VOCAB, positions=64),
            "0.5b": _shape(hidden=1024, mlp=3584, layers=16, heads=16, kv=4, vocab=128256, positions=8192),
            "1.5b": _shape(hidden=2048, mlp=7168, layers=18, heads=32, kv=8, vocab=128256, positions=8192),
        }),
    ),
    Architecture(
        name="qwen2.5",
        family="Qwen2.5",
        config_class=Qwen2Config,
        features=("GQA", "tied embeddings", "q/k/v biases", "rope_theta 1e6"),
        fixed=_frozen({"tie_word_embeddings": True, "rope_parameters": _QWEN_ROPE, "use_sliding_window": False}),
        shapes=_frozen({
            "tiny": _shape(hidden=32, mlp=64, layers=2, heads=4, kv=1, vocab=TINY_VOCAB, positions=64),
            # Qwen2.5-0.5B and -1.5B themselves
            "0.5b": _shape(hidden=896, mlp=4864, layers=24, heads=14, kv=2, vocab=151936, positions=32768),
            "1.5b": _shape(hidden=1536, mlp=8960, layers=28, heads=12, kv=2, vocab=151936, positions=32768),
        }),
    ),
    Architecture(
        name="mistral",
        family="Mistral",
        config_class=MistralConfig,
        features=("GQA", "sliding-window attention", "untied lm_head"),
        fixed=_frozen({"tie_word_embeddings": False}),
        shapes=_frozen({
            "tiny": _shape(hidden=32, mlp=64, layers=2, heads=4, kv=2, vocab=TINY_VOCAB, positions=64,
                           sliding_window=16),
            "0.5b": _shape(hidden=1280, mlp=4480, layers=20, heads=20, kv=5, vocab=32000, positions=32768,
                           sliding_window=4096),
            "1.5b": _shape(hidden=2048, mlp=7168, layers=26, heads=32, kv=8, vocab=32000, positions=32768,
                           sliding_window=4096),
        }),
    ),
    Architecture(
        name="gemma2",
        family="Gemma-2",
        config_class=Gemma2Config,
        features=("GQA", "head_dim != hidden/heads", "tied embeddings", "attention and final logit soft-capping",
                  "pre/post-feedforward and post-attention norms", "alternating sliding/full attention layers"),
        fixed=_frozen({"tie_word_embeddings": True, "attn_logit_softcapping": 50.0,
                       "final_logit_softcapping": 30.0, "hidden_activation": "gelu_pytorch_tanh"}),
        shapes=_frozen({
            # 4 heads x 16 = 64 query width on a 48-wide stream, as Gemma-2 2B has 8 x 256 on 2304
            "tiny": _shape(hidden=48, mlp=96, layers=2, heads=4, kv=2, head_dim=16, query_pre_attn_scalar=16,
                           vocab=TINY_VOCAB, positions=64, sliding_window=16),
            "0.5b": _shape(hidden=1024, mlp=4096, layers=16, heads=4, kv=2, head_dim=256, query_pre_attn_scalar=256,
                           vocab=256000, positions=8192, sliding_window=4096),
            "1.5b": _shape(hidden=1536, mlp=6144, layers=30, heads=8, kv=4, head_dim=256, query_pre_attn_scalar=256,
                           vocab=256000, positions=8192, sliding_window=4096),
        }),
        residual_outputs=("post_attention_layernorm", "post_feedforward_layernorm"),
        dfs_scales=False,
        dfs_note=("Gemma-2 norms each branch after o_proj/down_proj and multiplies by (1 + weight): "
                  "scaling o_proj/down_proj is undone by the norm, and scaling the norm weight w gives "
                  "1 + w/C, not (1 + w)/C; a DFS path on Gemma-2 must keep every scale at 1"),
    ),
    Architecture(
        name="phi3",
        family="Phi-3",
        config_class=Phi3Config,
        features=("fused qkv_proj", "fused gate_up_proj", "untied lm_head", "GQA (as Phi-3 medium)"),
        fixed=_frozen({"tie_word_embeddings": False}),
        shapes=_frozen({
            "tiny": _shape(hidden=32, mlp=64, layers=2, heads=4, kv=2, vocab=TINY_VOCAB, positions=64,
                           original_max_position_embeddings=64),
            "0.5b": _shape(hidden=1280, mlp=3584, layers=22, heads=20, kv=5, vocab=32064, positions=4096,
                           original_max_position_embeddings=4096),
            "1.5b": _shape(hidden=2048, mlp=5632, layers=30, heads=32, kv=8, vocab=32064, positions=4096,
                           original_max_position_embeddings=4096),
        }),
    ),
])


def build_model(arch: str, folder: Path | str, *, seed: int, size: str = "tiny", **shape) -> Path:
    """Write a randomly initialised fp32 `arch` model of `size` (fields overridden by `shape`) to `folder`."""
    config = ARCHITECTURES[arch].config(size=size, **shape)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return _save(model, folder)


def noisy_copy(source: Path | str, folder: Path | str, *, seed: int, std: float = 0.01) -> Path:
    """Write a copy of `source` with seeded Gaussian noise of `std` added to every weight: a stand-in fine-tune."""
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():  # a tied head is one parameter: it gets the embeddings' noise
            param.add_(torch.randn(param.shape, generator=generator) * std)
    return _save(model, folder)


def parameter_count(arch: str, *, size: str = "tiny", **shape) -> int:
    """Parameters of `arch` at `size`, counted on the meta device (no memory, no weights)."""
    config = ARCHITECTURES[arch].config(size=size, **shape)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(param.numel() for param in model.parameters())


def _save(model: PreTrainedModel, folder: Path | str) -> Path:
    folder = Path(folder).resolve()
    model.save_pretrained(folder)
    tokenizer = build_tokenizer()
    tokenizer.model_max_length = model.config.max_position_embeddings
    tokenizer.save_pretrained(folder)
    return folder


def _token_ids() -> dict[str, int]:
    vocab = build_tokenizer().get_vocab()
    return {"pad_token_id": vocab[PAD], "bos_token_id": vocab[BOS], "eos_token_id": vocab[EOS]}


def _check_fields(arch: Architecture, shape: Mapping[str, object]) -> None:
    """Config classes accept unknown keywords silently; a misspelt shape field should not."""
    known = set(inspect.signature(arch.config_class.__init__).parameters) - {"self", "kwargs"}
    unknown = sorted(set(shape) - known)
    if unknown:
        raise ConfigError(f"{arch.name} ({arch.config_class.__name__}) has no field(s) {unknown}")
