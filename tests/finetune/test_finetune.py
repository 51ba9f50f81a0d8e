"""Fine-tuning mutations (`hubevo.finetune`) on a tiny random Llama with a character tokenizer.

The preference task: the prompt is a 4-letter word and `>`, the chosen answer is the word
reversed and the rejected one the word as it is. Held-out pairs are words that are not in
the training file, so a growing margin there means the mutation learned something general.
"""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from hubevo.config.finetune import FinetuneSpace, PreferenceSource
from hubevo.errors import CandidateError, ConfigError
from hubevo.finetune.data import _load, load_pairs
from hubevo.finetune.operators import OPERATORS
from hubevo.finetune.recipe import FinetuneRecipe, sample_recipe
from hubevo.finetune.training import finetune
from tests.tiny_models import build_llama

torch.set_num_threads(1)


def reversal_pairs(words: list[str]) -> list[dict]:
    return [{"prompt": f"{w}>", "chosen": w[::-1], "rejected": w} for w in words]


def words(count: int, *, seed: int, exclude: set[str] = frozenset()) -> list[str]:
    rng, found = random.Random(seed), []
    while len(found) < count:
        word = "".join(rng.choice("abcdefgh") for _ in range(4))
        if word not in exclude and word not in found:
            found.append(word)
    return found


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    train = words(64, seed=0)
    return {
        "root": root,
        "parent": build_llama(root / "parent", seed=0),
        "train": write_jsonl(root / "train.jsonl", reversal_pairs(train)),
        "heldout": reversal_pairs(words(32, seed=1, exclude=set(train))),
    }


def recipe(source: Path | PreferenceSource, **genes) -> FinetuneRecipe:
    dataset = source if isinstance(source, PreferenceSource) else PreferenceSource(path=str(source))
    defaults = dict(operator="dpo", parent="p0", dataset=dataset, learning_rate=1e-2, beta=0.1, loss_type="sigmoid",
                    steps=16, lora_rank=8, samples=64, seed=0, batch_size=8)
    return FinetuneRecipe(**{**defaults, **genes})


@torch.no_grad()
def mean_margin(model_dir: Path, pairs: list[dict]) -> float:
    """Mean of log p(chosen + EOS | prompt) - log p(rejected + EOS | prompt) over `pairs`."""
    model, tok = AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)

    def logp(prompt: str, answer: str) -> float:
        ids = tok(prompt + answer + tok.eos_token, return_tensors="pt").input_ids  # (1, T)
        start = len(tok(prompt).input_ids)
        token_logps = torch.log_softmax(model(ids).logits[0, :-1], -1).gather(1, ids[0, 1:, None])[:, 0]  # (T-1,)
        return token_logps[start - 1 :].sum().item()

    return float(np.mean([logp(p["prompt"], p["chosen"]) - logp(p["prompt"], p["rejected"]) for p in pairs]))


# --- genes ---------------------------------------------------------------------------------------


def test_sample_recipe_is_deterministic_and_within_ranges():
    sources = [PreferenceSource(path=f"d{i}.jsonl") for i in range(3)]
    space = FinetuneSpace(datasets=sources, learning_rate=(1e-5, 1e-3), beta=(0.05, 0.5),
                          loss_type=["sigmoid", "ipo", "hinge"], steps=(5, 9), lora_rank=[0, 4, 8])
    first = [sample_recipe(space, parent="p", rng=np.random.default_rng(7)) for _ in range(2)]
    assert first[0] == first[1]
    drawn = [sample_recipe(space, parent="p", rng=rng) for rng in [np.random.default_rng(1)] * 200]
    assert all(1e-5 <= r.learning_rate <= 1e-3 and 0.05 <= r.beta <= 0.5 and 5 <= r.steps <= 9 for r in drawn)
    assert {r.loss_type for r in drawn} == {"sigmoid", "ipo", "hinge"}
    assert {r.lora_rank for r in drawn} == {0, 4, 8} and {r.steps for r in drawn} == set(range(5, 10))
    assert {r.dataset.path for r in drawn} == {s.path for s in sources}
    assert np.median([r.learning_rate for r in drawn]) < 2e-4  # log-uniform: median near 1e-4, not 5e-4
    sft = sample_recipe(space.model_copy(update={"operator": "sft"}), parent="p", rng=np.random.default_rng(0))
    assert sft.beta is None and sft.loss_type is None


@pytest.mark.parametrize("bad", [{"steps": (9, 5)}, {"learning_rate": (0.0, 1e-3)}, {"loss_type": ["sigmoidd"]},
                                 {"lora_rank": [-1]}, {"datasets": []}])
def test_space_rejects_bad_ranges(bad):
    with pytest.raises(ValidationError):
        FinetuneSpace(**{"datasets": ["prefs.jsonl"], **bad})


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    space = FinetuneSpace(datasets=["prefs.jsonl", "org/hub-prefs", {"path": "/abs/p.parquet", "split": "test"}])
    paths = [d.path for d in space.resolved(tmp_path).datasets]
    assert paths == [str(tmp_path / "prefs.jsonl"), "org/hub-prefs", "/abs/p.parquet"]


# --- data ----------------------------------------------------------------------------------------


def test_missing_columns_name_the_columns_found(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "1+1=", "good": "2", "bad": "3"}])
    found = r"lacks column\(s\) prompt, chosen, rejected.*found columns: question, good, bad"
    with pytest.raises(ConfigError, match=found):
        load_pairs(PreferenceSource(path=str(path)), samples=4, seed=0)


def test_column_mapping_and_seeded_sample(tmp_path):
    rows = [{"question": f"q{i}", "good": f"g{i}", "bad": f"b{i}", "extra": i} for i in range(50)]
    source = PreferenceSource(path=str(write_jsonl(tmp_path / "qa.jsonl", rows)),
                              columns={"prompt": "question", "chosen": "good", "rejected": "bad"})
    pairs = load_pairs(source, samples=10, seed=3)
    assert sorted(pairs.column_names) == ["chosen", "prompt", "rejected"] and len(pairs) == 10
    assert all(row["chosen"] == "g" + row["prompt"][1:] for row in pairs)
    assert list(load_pairs(source, samples=10, seed=3)) == list(pairs)
    assert list(load_pairs(source, samples=10, seed=4)) != list(pairs)
    sft = load_pairs(source, operator="sft", samples=5, seed=0)  # a preference set's chosen answers are completions
    assert sorted(sft.column_names) == ["completion", "prompt"]


def test_parquet_source(tmp_path):
    import pandas as pd

    path = tmp_path / "prefs.parquet"
    pd.DataFrame(reversal_pairs(["abcd", "efgh"])).to_parquet(path)
    assert len(load_pairs(PreferenceSource(path=str(path)), samples=8, seed=0)) == 2


def test_empty_sample_fails_the_candidate(tmp_path, setup):
    path = write_jsonl(tmp_path / "empty.jsonl", [{"prompt": "ab>", "chosen": "", "rejected": "ab"}] * 3)
    with pytest.raises(CandidateError, match="empty sample"):
        finetune(setup["parent"], recipe(path), out_dir=tmp_path / "child")
    assert not (tmp_path / "child").exists()


def test_conversational_data_needs_a_chat_template(tmp_path, setup):
    rows = [{"prompt": [{"role": "user", "content": "ab>"}], "chosen": [{"role": "assistant", "content": "ba"}],
             "rejected": [{"role": "assistant", "content": "ab"}]}]
    with pytest.raises(CandidateError, match="no chat template"):
        finetune(setup["parent"], recipe(write_jsonl(tmp_path / "chat.jsonl", rows)), out_dir=tmp_path / "child")


def test_missing_local_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_pairs(PreferenceSource(path=str(tmp_path / "nope.jsonl")), samples=4, seed=0)


def test_hub_dataset_is_read_at_a_resolved_revision(hub_server, monkeypatch):
    import datasets
    from huggingface_hub import HfApi

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)  # conftest keeps datasets offline otherwise
    alice = HfApi(endpoint=hub_server.url, token="token-alice")
    repo = alice.create_repo("alice/reversal-prefs", repo_type="dataset", exist_ok=True).repo_id
    commits = []
    for version in ("v1", "v2"):
        rows = [{"q": f"{version}{w}>", "good": w[::-1], "bad": w} for w in words(6, seed=0)]
        commits.append(alice.upload_file(path_or_fileobj="".join(json.dumps(r) + "\n" for r in rows).encode(),
                                         path_in_repo="data/train.jsonl", repo_id=repo, repo_type="dataset").oid)
    columns = {"prompt": "q", "chosen": "good", "rejected": "bad"}
    pinned, revision = _load(PreferenceSource(path=repo, revision=commits[0], columns=columns),
                             operator="dpo", samples=4, seed=0)
    assert revision == commits[0] and all(row["prompt"].startswith("v1") for row in pinned)
    latest, revision = _load(PreferenceSource(path=repo, columns=columns), operator="dpo", samples=4, seed=0)
    assert revision == commits[1] and all(row["prompt"].startswith("v2") for row in latest)


# --- training ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_lora_dpo_raises_heldout_margin_and_reloads(setup, tmp_path):
    before = mean_margin(setup["parent"], setup["heldout"])
    metrics = finetune(setup["parent"], recipe(setup["train"], steps=40), out_dir=tmp_path / "child")
    after = mean_margin(tmp_path / "child", setup["heldout"])
    assert after > before + 0.1, (before, after)  # +0.48 here; +0.03 to +0.48 over recipe seeds 0-4
    assert metrics["steps"] == 40 and np.isfinite(metrics["final_loss"]) and metrics["reward_margin"] > 0
    assert metrics["dataset_revision"].startswith("sha256:")
    child = AutoModelForCausalLM.from_pretrained(tmp_path / "child")  # a plain model: no adapter left
    assert not any("lora" in name for name, _ in child.named_parameters())
    assert not (tmp_path / "child" / "adapter_config.json").exists()
    assert sorted(p.name for p in (tmp_path / "child").glob("*.safetensors")) == ["model.safetensors"]


@pytest.mark.slow
def test_an_adapter_only_child_rebuilds_the_merged_child_bit_for_bit(setup, tmp_path):
    """What the loop keeps of a LoRA child: the adapter; parent + adapter in a resident model is the child."""
    from hubevo.breed.genome import identity_dict
    from hubevo.breed.materialize import Materializer

    lora = recipe(setup["train"], steps=8)
    finetune(setup["parent"], lora, out_dir=tmp_path / "merged")
    finetune(setup["parent"], lora, out_dir=tmp_path / "adapter", adapter_only=True)
    assert sorted(p.name for p in (tmp_path / "adapter").glob("*.safetensors")) == ["adapter_model.safetensors"]
    assert not (tmp_path / "adapter" / "config.json").exists()
    resident = Materializer(setup["parent"])
    rebuilt = resident.materialize(identity_dict(str(setup["parent"])), adapter=tmp_path / "adapter").state_dict()
    merged = load_file(tmp_path / "merged" / "model.safetensors")
    assert merged.keys() <= rebuilt.keys() and all(torch.equal(rebuilt[k], v) for k, v in merged.items())
    parent = load_file(setup["parent"] / "model.safetensors")
    assert any(not torch.equal(merged[k], parent[k]) for k in merged)
    again = resident.materialize(identity_dict(str(setup["parent"]))).state_dict()  # the next candidate: no adapter
    assert all(torch.equal(again[k], v) for k, v in parent.items())


@pytest.mark.slow
def test_full_dpo_raises_heldout_margin_and_is_deterministic(setup, tmp_path):
    full = recipe(setup["train"], lora_rank=0, learning_rate=4e-3, steps=16)
    finetune(setup["parent"], full, out_dir=tmp_path / "a")
    finetune(setup["parent"], full, out_dir=tmp_path / "b")
    gain = mean_margin(tmp_path / "a", setup["heldout"]) - mean_margin(setup["parent"], setup["heldout"])
    assert gain > 0.1, gain  # +0.32 here; +0.05 to +0.32 over recipe seeds 0-4
    weights = [load_file(tmp_path / run / "model.safetensors") for run in ("a", "b")]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


@pytest.mark.slow
def test_diverging_run_fails_the_candidate(setup, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(setup["parent"])
    with torch.no_grad():
        model.lm_head.weight[5, 0] = float("nan")
    model.save_pretrained(tmp_path / "nan-parent")
    AutoTokenizer.from_pretrained(setup["parent"]).save_pretrained(tmp_path / "nan-parent")
    with pytest.raises(CandidateError, match="diverged: loss nan at step 1"):
        finetune(tmp_path / "nan-parent", recipe(setup["train"], steps=30), out_dir=tmp_path / "child")
    assert not (tmp_path / "child").exists()


@pytest.mark.slow
def test_sft_operator_runs(setup, tmp_path):
    sft = recipe(setup["train"], operator="sft", beta=None, loss_type=None, learning_rate=1e-3, steps=4)
    metrics = finetune(setup["parent"], sft, out_dir=tmp_path / "child")
    assert metrics["steps"] == 4 and metrics["reward_margin"] is None and np.isfinite(metrics["final_loss"])
    AutoModelForCausalLM.from_pretrained(tmp_path / "child")
    assert set(OPERATORS) == {"dpo", "sft"}


def test_demo_preferences_come_from_the_train_split(tmp_path):
    from hubevo.demo.data import SKILLS, skill_splits
    from hubevo.demo.preferences import write_preferences

    path = write_preferences(tmp_path / "prefs.jsonl", seed=0, n=400)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert path.read_text() == write_preferences(tmp_path / "again.jsonl", seed=0, n=400).read_text()
    answers = {e["prompt"]: e["answer"] for skill in SKILLS for e in skill_splits(skill)["train"]}
    evaluated = {e["prompt"] for skill in SKILLS for split in ("fitness", "heldout", "validation") for e in skill_splits(skill)[split]}
    assert len(rows) == 400 and not {r["prompt"] for r in rows} & evaluated
    assert all(r["chosen"] == answers[r["prompt"]] != r["rejected"] and r["rejected"] for r in rows)
    assert {r["prompt"][-1] for r in rows} == {"#", ">"}  # both skills



# --- divergence ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lora_rank", [8, 0])
def test_an_absurd_learning_rate_fails_the_candidate_with_the_reason(setup, tmp_path, lora_rank):
    """LoRA at 1e9 keeps a finite loss and finite weights, yet its logits go flat (the child would score 0)."""
    absurd = recipe(setup["train"], learning_rate=1e9, steps=4, samples=16, lora_rank=lora_rank)
    with pytest.raises(CandidateError, match=r"dpo mutation of p0 diverged: .*learning_rate 1e\+09"):
        finetune(setup["parent"], absurd, out_dir=tmp_path / "child", adapter_only=bool(lora_rank))
    assert not (tmp_path / "child").exists()


def test_a_diverged_child_is_recorded_failed_and_the_next_candidate_runs(setup, tmp_path):
    from types import SimpleNamespace

    from hubevo.breed.genome import identity_dict
    from hubevo.evaluation.fitness import Scored
    from hubevo.execute.runner import CandidateJob, CandidateRunner, RunnerSpec

    evaluator = SimpleNamespace(device="cpu", fitness=lambda model, tokenizer, generation, sample: Scored(
        fitness=0.0, scores={}, stderrs={}, stderr=None, examples=0))
    runner = CandidateRunner(RunnerSpec(template=str(setup["parent"]), fitness=None), evaluator=evaluator)

    def job(name: str, learning_rate: float) -> CandidateJob:
        return CandidateJob(id=name, name=name, generation=1, merge=identity_dict(str(setup["parent"])),
                            finetune=recipe(setup["train"], learning_rate=learning_rate, steps=4, samples=16),
                            parent_path=str(setup["parent"]), train_dir=str(tmp_path / name),
                            adapter=str(tmp_path / name))

    diverged = runner.run(job("c1", 1e9))
    assert diverged.status == "failed" and diverged.fitness is None
    assert "diverged" in diverged.reason and "learning_rate 1e+09" in diverged.reason
    assert not (tmp_path / "c1").exists()
    assert runner.run(job("c2", 1e-3)).status == "ok"
