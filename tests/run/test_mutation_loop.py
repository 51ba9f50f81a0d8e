"""Mutation by fine-tuning inside the loop: DPO children on the demo zoo, recorded in table and cards,
kept as LoRA adapters and rebuilt from their parent plus the adapter."""

import json

import pandas as pd
import torch
from huggingface_hub import ModelCard
from peft import PeftModel
from transformers import AutoModelForCausalLM

from hubevo.demo.preferences import write_preferences
from hubevo.demo.runner import demo_config
from hubevo.publish.export import export_from_folder
from hubevo.publish.rebuild import full_folders
from hubevo.run.loop import evolve
from tests.helpers.cards import assert_same_weights, rebuild_from_card


def test_an_evolution_with_dpo_mutation_records_each_childs_genes_and_keeps_adapters(demo_zoo, tmp_path):
    prefs = write_preferences(tmp_path / "prefs.jsonl", n=400)
    cfg = demo_config(demo_zoo, out_dir=tmp_path / "run", generations=1, population_size=4)
    mutation = cfg.mutation.model_copy(update={
        "probability": 1.0, "operators": ["dpo"],
        "finetune": {"datasets": [{"path": str(prefs)}], "samples": 32, "steps": (3, 6),
                     "learning_rate": (3e-4, 1e-3), "lora_rank": [4, 8], "baseline_steps": []},
    })
    # No standard recipes: this test is about a fine-tuned child's record and card, and with five
    # baselines in generation 0 the four survivors could all be merges.
    cfg = cfg.model_validate({**cfg.model_dump(), "mutation": mutation.model_dump(),
                              "search": {**cfg.search.model_dump(), "baselines": []},
                              "budget": {**cfg.budget.model_dump(), "wall_time_s": None}})
    state = evolve(cfg, progress=False)

    children = [i for i in state.individuals.values() if i.kind == "finetune"]
    assert len(children) == cfg.budget.population_size - cfg.selection.keep_top_k and state.finished
    frame = pd.read_parquet(cfg.output.dir / "results.parquet").set_index("id")
    recipes = {}
    for child in children:
        row = frame.loc[child.id]
        assert row["method"] == "dpo" and list(row["parents"]) == [state.individuals[child.parents[0]].name]
        record = json.loads(row["mutation"])
        recipes[child.id] = record["recipe"]
        assert 3e-4 <= record["recipe"]["learning_rate"] <= 1e-3 and 3 <= record["recipe"]["steps"] <= 6
        assert record["recipe"]["lora_rank"] in (4, 8) and record["recipe"]["dataset"]["path"] == str(prefs)
        assert {"final_loss", "reward_accuracy", "reward_margin"} <= set(record["outcome"])
    assert len({json.dumps(r, sort_keys=True) for r in recipes.values()}) == len(children), "genes not sampled per child"

    for child in children:  # an adapter, not a model, per trained child
        files = {p.name for p in (cfg.output.dir / "candidates" / child.id).iterdir()}
        assert {"adapter_config.json", "adapter_model.safetensors"} <= files and "model.safetensors" not in files
    assert len(full_folders(cfg.output.dir)) <= 2

    # the best child, survivor or not (which survives depends on the run's numbers): its adapter rebuilds it
    child = max(children, key=lambda c: state.evaluations[c.id].fitness)
    _, exported = export_from_folder(cfg.output.dir, child.id, tmp_path / "child")
    _, parent = export_from_folder(cfg.output.dir, child.parents[0], tmp_path / "parent")
    adapter = cfg.output.dir / "candidates" / child.id
    expected = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(parent), adapter).merge_and_unload()
    rebuilt = AutoModelForCausalLM.from_pretrained(exported).state_dict()
    assert all(torch.equal(rebuilt[k], v) for k, v in expected.state_dict().items())
    before = AutoModelForCausalLM.from_pretrained(parent).state_dict()
    assert any(not torch.equal(rebuilt[k], before[k]) for k in rebuilt), "the adapter changed nothing"
    card = ModelCard.load(exported / "README.md")
    assert card.data.base_model == state.individuals[child.parents[0]].name
    assert card.data.base_model_relation == "finetune"
    assert "learning_rate" in card.text and "reward_accuracy" in card.text and "dataset_revision" in card.text


def test_the_ga_averages_its_two_best_fine_tunes_into_a_soup(demo_zoo, tmp_path, monkeypatch):
    import contextlib

    import hubevo.publish.rebuild
    import hubevo.run.survivors
    from hubevo.search.ga import is_tuned
    from hubevo.selection import ranking

    run_dir, peaks = tmp_path / "run", []

    def counted(real):
        @contextlib.contextmanager
        def atomic_dir(final, **kwargs):
            with real(final, **kwargs) as tmp:
                yield tmp
                peaks.append(len(full_folders(run_dir)))  # the new folder is still in its temporary name
            peaks.append(len(full_folders(run_dir)))
        return atomic_dir

    monkeypatch.setattr(hubevo.publish.rebuild, "atomic_dir", counted(hubevo.publish.rebuild.atomic_dir))
    monkeypatch.setattr(hubevo.run.survivors, "atomic_dir", counted(hubevo.run.survivors.atomic_dir))
    prefs = write_preferences(tmp_path / "prefs.jsonl", n=400)
    cfg = demo_config(demo_zoo, out_dir=run_dir, generations=2, population_size=5)
    mutation = cfg.mutation.model_copy(update={
        "probability": 1.0, "operators": ["dpo"],
        "finetune": {"datasets": [{"path": str(prefs)}], "samples": 32, "steps": (3, 6),
                     "learning_rate": (3e-4, 1e-3), "lora_rank": [4], "baseline_steps": []},
    })
    cfg = cfg.model_validate({**cfg.model_dump(), "mutation": mutation.model_dump(),
                              "search": {**cfg.search.model_dump(), "baselines": ["linear"]},
                              "budget": {**cfg.budget.model_dump(), "wall_time_s": None}})
    state = evolve(cfg, progress=False)

    soups = [i for i in state.individuals.values() if i.name.startswith("g2-soup-")]
    assert len(soups) == 1 and state.evaluations[soups[0].id].status == "ok"
    soup = soups[0]
    first, second = soup.parents
    assert all(state.individuals[p].kind == "finetune" and is_tuned(state.individuals, p) for p in soup.parents)
    tuned = [i for i in state.evaluations if state.individuals[i].kind == "finetune" and state.evaluations[i].generation < 2]
    best = ranking.ranked(state.evaluations[i] for i in tuned)[:2]  # ties broken as everywhere: earlier, then by id
    assert set(soup.parents) == set(best)  # the two best fine-tunes of the generations before
    assert set(soup.parents) <= set(state.survivors[1])  # kept as survivors: its recipe names them
    bred = [[i for i in ids if state.individuals[i].kind != "seed"] for ids in state.survivors.values()]
    assert peaks and max(peaks) <= max(map(len, bred)) + 2  # a generation's parents, the champion, one being written

    folders = {cid: export_from_folder(cfg.output.dir, cid, tmp_path / cid)[1] for cid in (soup.id, first, second)}
    weights = {cid: AutoModelForCausalLM.from_pretrained(f).state_dict() for cid, f in folders.items()}
    for name, value in weights[soup.id].items():
        torch.testing.assert_close(value, (weights[first][name] + weights[second][name]) / 2)
    assert any(not torch.equal(weights[first][k], weights[second][k]) for k in weights[first])

    # the soup, bred from two DPO children, rebuilt from its card alone with mergekit, in a fresh folder
    rebuilt = rebuild_from_card(folders[soup.id], tmp_path / "fresh", members=state.members)
    assert {"g1", "g2"} & {p.name.split("-")[0] for p in (tmp_path / "fresh" / "adapters").iterdir()}
    assert_same_weights(rebuilt, weights[soup.id])

