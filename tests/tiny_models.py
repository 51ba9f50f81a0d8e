"""Tiny random Llama models and a character-level tokenizer, written to disk for tests and benches.

`build_zoo` writes a base model and a few "fine-tunes" (the base plus seeded noise), so
merges between them are non-trivial yet every member shares one architecture and vocabulary.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
CHARACTERS = string.ascii_letters + string.digits + string.punctuation + " \n"


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer that prepends BOS, as lm-eval and trl expect."""
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + tuple(CHARACTERS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def llama_config(
    *,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    intermediate_size: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    vocab_size: int = 128,
) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )


def build_llama(out_dir: Path, *, seed: int = 0, **shape: int) -> Path:
    """Write a randomly initialised fp32 Llama (shape keywords as in `llama_config`) plus tokenizer."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(**shape)).to(torch.float32)
    return _save(model, out_dir)


def make_finetune(base_dir: Path, out_dir: Path, *, seed: int, scale: float = 0.01) -> Path:
    """Write a copy of `base_dir` whose every weight has seeded Gaussian noise of std `scale` added."""
    model = LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    return _save(model, out_dir)


def build_zoo(root: Path, *, finetunes: int = 3, **shape: int) -> dict[str, Path]:
    """A base model `base` and `finetunes` noisy copies `ft1`, `ft2`, ... under `root`."""
    zoo = {"base": build_llama(root / "base", seed=0, **shape)}
    for index in range(1, finetunes + 1):
        zoo[f"ft{index}"] = make_finetune(zoo["base"], root / f"ft{index}", seed=index)
    return zoo


def _save(model: LlamaForCausalLM, out_dir: Path) -> Path:
    out_dir = Path(out_dir).resolve()
    model.save_pretrained(out_dir)
    build_tokenizer().save_pretrained(out_dir)
    return out_dir


def write_choice_task(folder: Path, name: str) -> Path:
    """A 16-question multiple-choice lm-eval task over a local JSONL file (metric `acc`).

    Multiple choice gives tiny random models distinct, non-zero scores.
    """
    import json

    folder.mkdir(parents=True, exist_ok=True)
    docs = [{"prompt": f"{a}+{b}=", "choices": [str(a + b + d) for d in (0, 1, 2, 3)], "answer": 0}
            for a, b in [(i % 7, i % 5 + 1) for i in range(16)]]
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {folder / f'{name}.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: prompt\ndoc_to_choice: choices\n"
        "doc_to_target: answer\nmetric_list:\n  - metric: acc\n"
    )
    return folder


def write_generation_task(folder: Path, name: str, rows: list[dict], *, max_gen_toks: int = 4) -> Path:
    """A `generate_until` / `exact_match` lm-eval task over `rows` of {"q", "a"} in a local JSONL file."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {folder / f'{name}.jsonl'}\n"
        'test_split: test\noutput_type: generate_until\ndoc_to_text: "{{q}}"\ndoc_to_target: "{{a}}"\n'
        f'generation_kwargs:\n  until: ["\\n"]\n  max_gen_toks: {max_gen_toks}\n'
        "metric_list:\n  - metric: exact_match\n"
    )
    return folder


def push_members(api, zoo: dict[str, Path], *, prefix: str, names=("ft1", "ft2")) -> list[str]:
    """Upload zoo models to the test Hub as `alice/<prefix>-<name>`; returns the repo ids."""
    repos = []
    for name in names:
        repo = f"alice/{prefix}-{name}"
        api.create_repo(repo, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=zoo[name])
        repos.append(repo)
    return repos
