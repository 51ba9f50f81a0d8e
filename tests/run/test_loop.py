"""The evolution loop end to end on the demo zoo: fitness moves, survivors are recipes that export to real
models, only the champion keeps full weights, resume loses nothing."""

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from hubevo.demo.runner import demo_config
from hubevo.errors import CompatibilityError, ConfigError, UnknownNameError
from hubevo.evaluation.tasks import TaskCatalog
from hubevo.publish.export import RECIPE_FILE, export_from_folder
from hubevo.publish.rebuild import full_folders
from hubevo.run.loop import evolve
from hubevo.state.events import read_events
from hubevo.state.runstate import load_state
from tests.helpers import killed_mid_generation
from tests.helpers.cards import assert_same_weights, rebuild_from_card
from tests.tiny_models import build_llama

REPO = Path(__file__).resolve().parents[2]


def small_config(zoo, out_dir, **budget):
    """The demo run, small, with the GA (elites, roulette couples, lineages several generations deep)."""
    cfg = demo_config(zoo, out_dir=out_dir, generations=budget.pop("generations", 2),
                      population_size=budget.pop("population_size", 4))
    return cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"wall_time_s": None, **budget}),
                                  "search": cfg.search.model_copy(update={"strategy": "ga"})})


@pytest.fixture(scope="module")
def finished_run(demo_zoo, tmp_path_factory):
    cfg = small_config(demo_zoo, tmp_path_factory.mktemp("run") / "out", generations=3, population_size=5)
    return cfg, evolve(cfg, progress=False)


def test_champion_fitness_exceeds_best_initial_member(finished_run):
    cfg, state = finished_run
    seeds = [e.fitness for i, e in state.evaluations.items() if state.individuals[i].kind == "seed"]
    champion = state.evaluations[state.champion()]
    assert state.individuals[champion.id].kind == "merge"
    assert champion.fitness > max(seeds)
    assert state.finished and state.stop_reason == "3 generations done"


def test_evaluated_events_count_each_generations_candidates_without_progress_bars(finished_run):
    cfg, state = finished_run
    evaluated = [e for e in read_events(cfg.output.dir) if e["event"] == "evaluated"]
    for generation in range(state.generation + 1):
        events = [e for e in evaluated if e["generation"] == generation]
        assert [e["done"] for e in events] == list(range(1, len(events) + 1))
        assert events and all(e["total"] == len(events) for e in events)


def test_only_the_champion_keeps_full_weights_and_every_survivor_exports_with_its_card(finished_run, tmp_path):
    cfg, state = finished_run
    assert state.saved, "no survivor was written"
    champion = state.champion()
    assert full_folders(cfg.output.dir) == [Path(state.saved[champion])]  # at most 2 allowed; 1 between pushes
    assert not (cfg.output.dir / "cache").exists()
    for cid, folder in state.saved.items():
        if cid != champion:
            assert sorted(p.name for p in Path(folder).iterdir()) == ["README.md", RECIPE_FILE]
        ind = state.individuals[cid]
        name, exported = export_from_folder(cfg.output.dir, ind.name, tmp_path / cid)
        assert name == ind.name
        model = AutoModelForCausalLM.from_pretrained(exported)
        assert torch.isfinite(next(model.parameters())).all()
        # the same card, but for where "Use it" loads the model from: the exported folder itself
        assert without_use_it((exported / "README.md").read_text()) == without_use_it((Path(folder) / "README.md")
                                                                                      .read_text())
        assert f'model_id = "{exported.resolve()}"' in (exported / "README.md").read_text()
        task, prompt = TaskCatalog(cfg.fitness).example_prompt  # a prompt of the run's own fitness task, not "Hello"
        assert task == cfg.fitness.tasks[0].name and f"tokenizer({json.dumps(prompt)}" in card_text(exported)
        card = ModelCard.load(exported / "README.md")
        parents = [state.individuals[p].name for p in ind.parents]
        base_model = card.data.base_model if isinstance(card.data.base_model, list) else [card.data.base_model]
        assert base_model == parents
        assert card.data.base_model_relation == "merge" and card.data.library_name == "transformers"
        assert f"gen-{ind.generation}" in card.data.tags
        assert {r.dataset_type for r in card.data.eval_results} >= set(state.evaluations[cid].scores)


def card_text(folder: Path) -> str:
    return (folder / "README.md").read_text()


def without_use_it(card: str) -> str:
    return re.sub(r"## Use it\n.*?(?=\n## )", "", card, flags=re.S)


def test_export_equals_mergekit_multi_on_the_cards_recipe_from_the_members(finished_run, tmp_path):
    """A survivor bred from bred parents: its card's recipe.yaml, run through `mergekit-multi` in a fresh folder
    that holds the card's files and the members under their names, gives the exported survivor bit for bit."""
    cfg, state = finished_run
    def bred(cid: str) -> bool:
        return state.individuals[cid].kind != "seed"

    cid = next(c for c in state.saved if any(bred(p) for p in state.individuals[c].parents))
    _, exported = export_from_folder(cfg.output.dir, cid, tmp_path / "exported")
    recipe = (Path(state.saved[cid]) / RECIPE_FILE).read_text()
    stages = list(yaml.safe_load_all(recipe))
    assert len(stages) >= 2 and "name" not in stages[-1]  # every bred ancestor a named stage, the survivor last
    assert str(cfg.output.dir) not in recipe and "/" not in json.dumps([s.get("name") for s in stages])
    rebuilt = rebuild_from_card(Path(state.saved[cid]), tmp_path / "fresh", members=state.members)
    assert_same_weights(rebuilt, load_file(exported / "model.safetensors"))


def test_hubevo_export_command_writes_a_loadable_folder_and_names_unknown_ids(finished_run, tmp_path, capsys):
    from hubevo.cli.main import main

    cfg, state = finished_run
    cid = next(c for c in state.saved if c != state.champion())
    name = state.individuals[cid].name
    assert main(["export", str(cfg.output.dir), name, str(tmp_path / "out")]) == 0
    assert f"exported {name} to" in capsys.readouterr().out
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert ModelCard.load(tmp_path / "out" / "README.md").data.model_name == name
    assert torch.isfinite(next(model.parameters())).all()
    assert main(["export", str(cfg.output.dir), "no-such-model", str(tmp_path / "other")]) == 2
    assert "no individual 'no-such-model'" in capsys.readouterr().err and not (tmp_path / "other").exists()
    assert main(["export", str(cfg.output.dir), name, str(tmp_path / "out")]) == 0  # an earlier export: replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["export", str(cfg.output.dir), name, str(mine)]) == 2  # never over someone else's files
    assert str(mine) in capsys.readouterr().err and [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_heldout_scores_the_last_finalists_only_others_on_request(finished_run):
    from hubevo.run.generation import finalist_ids
    from hubevo.run.loop import score_heldout

    cfg, state = finished_run
    last = {i for i in finalist_ids(state, k=cfg.fitness.finalists) if state.validation[i].status == "ok"}
    finalists = {state.champion(), *last}
    assert len(last) >= 3
    # a run that does not push scores no earlier finalist on held-out (whether any left the last finals
    # depends on the run's numbers, which differ between CPUs' kernels)
    assert set(state.heldout) == finalists
    other = next(i for i in state.evaluations if i not in state.heldout and state.evaluations[i].status == "ok")
    scored = score_heldout(cfg, [other])
    assert set(scored.heldout[other]) == {t.name for t in cfg.fitness.heldout}
    frame = pd.read_parquet(cfg.output.dir / "results.parquet").set_index("id")
    assert frame.loc[other, "heldout"] == pytest.approx(sum(scored.heldout[other].values()) / len(scored.heldout[other]))
    assert frame["heldout"].isna().sum() == len(frame) - len(finalists) - 1  # blank for everyone else


def test_results_table_and_lineage_graph(finished_run):
    cfg, state = finished_run
    frame = pd.read_parquet(cfg.output.dir / "results.parquet")
    assert len(frame) == len(state.evaluations)
    assert {"generation", "model", "parents", "method", "fitness", "heldout", "status"} <= set(frame.columns)
    graph = json.loads((cfg.output.dir / "lineage.json").read_text())
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    for ind in state.individuals.values():
        assert all((p, ind.id) in edges for p in ind.parents)


def test_elites_are_not_evaluated_twice(finished_run):
    cfg, state = finished_run
    events = [e for e in read_events(cfg.output.dir) if e["event"] == "evaluated"]
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == len(state.evaluations)
    carried = [i for g in range(1, 4) for i in state.survivors.get(g - 1, []) if i in state.evaluations
               and state.evaluations[i].generation < g]
    assert carried, "no elite was carried over"


def test_a_run_killed_and_resumed_equals_the_same_config_and_seed_run_without_a_break(finished_run, tmp_path):
    """The module's run again, in another process, SIGKILLed mid-generation and resumed: nothing saved is lost,
    no evaluation is repeated, and every fitness and survivor equals the uninterrupted run's (same config, seed)."""
    reference_cfg, reference = finished_run
    cfg = reference_cfg.model_copy(update={"output": reference_cfg.output.model_copy(update={"dir": tmp_path / "killed"})})
    command = killed_mid_generation(cfg, config_path=tmp_path / "run.yaml", generation=1)
    before = load_state(cfg.output.dir)
    assert not before.finished and before.generation == 1
    saved_before = dict(before.saved)

    resumed = subprocess.run(command + ["--resume"], cwd=REPO, env=os.environ.copy(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = load_state(cfg.output.dir)
    assert after.finished
    assert saved_before.items() <= after.saved.items()
    assert all(Path(p, "README.md").is_file() for p in after.saved.values())
    assert full_folders(cfg.output.dir) == [Path(after.saved[after.champion()])]
    evaluated = [e["id"] for e in read_events(cfg.output.dir) if e["event"] == "evaluated"]
    assert len(evaluated) == len(set(evaluated)), "an evaluation was repeated after resume"
    assert set(before.evaluations) <= set(after.evaluations)
    assert {i: e.fitness for i, e in after.evaluations.items()} == {i: e.fitness for i, e in reference.evaluations.items()}
    assert after.survivors == reference.survivors and after.champion() == reference.champion()


def test_run_one_generation_at_a_time_each_summary_is_logged_once(demo_zoo, tmp_path, caplog):
    """The scheduler resumes a run with a budget one generation larger each time; the generation it
    finished last time is not redone, so its summary is not logged (or its event written) a second time."""
    caplog.set_level(logging.INFO, logger="hubevo")
    for target in range(3):
        cfg = small_config(demo_zoo, tmp_path / "out", generations=target, population_size=3)
        state = evolve(cfg, resume=target > 0, progress=False)
        assert state.generation == target and state.stop_reason == f"{target} generations done"
    summaries = [r.getMessage().split(":")[0] for r in caplog.records if re.match(r"generation \d+:", r.getMessage())]
    assert summaries == ["generation 0", "generation 1", "generation 2"]
    events = [e["generation"] for e in read_events(cfg.output.dir) if e["event"] == "generation"]
    assert events == [0, 1, 2]


def test_a_failing_candidate_does_not_stop_the_run(demo_zoo, tmp_path, monkeypatch):
    """A NaN the member check's sample does not reach (it reads large tensors in blocks): every candidate that
    merges the member fails with the reason, and the run goes on."""
    import hubevo.seed.weights

    monkeypatch.setattr(hubevo.seed.weights, "SCAN_WHOLE", 0)  # read every tensor in blocks, as a large one is
    monkeypatch.setattr(hubevo.seed.weights, "SCAN_BLOCKS", 1)
    broken = tmp_path / "broken"
    name, source = next(iter(demo_zoo.specialists.items()))
    import shutil

    shutil.copytree(source, broken)
    weights = load_file(broken / "model.safetensors")
    key = next(k for k in weights if "mlp" in k)
    weights[key][-1, -1] = float("nan")  # past the one block read of each tensor
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    cfg = small_config(demo_zoo, tmp_path / "out", generations=1, population_size=4)
    members = [*cfg.population.members, cfg.population.members[0].model_copy(update={"path": broken, "name": "broken"})]
    cfg = cfg.model_copy(update={"population": cfg.population.model_copy(update={"members": members})})
    state = evolve(cfg, progress=False)
    failed = {state.individuals[e.id].name: e for e in state.evaluations.values() if e.status == "failed"}
    broken_id = next(i for i, ind in state.individuals.items() if ind.name == "broken")
    assert "broken" in failed and "non-finite" in failed["broken"].reason and key in failed["broken"].reason
    others = [e.id for n, e in failed.items() if n != "broken"]  # only recipes that merge the broken member
    assert all(broken_id in state.individuals[i].parents for i in others)
    assert state.finished and state.champion() is not None


def _with(cfg, **sections):
    return cfg.model_copy(update={k: getattr(cfg, k).model_copy(update=v) for k, v in sections.items()})


def test_bad_input_fails_before_any_merge(demo_zoo, tmp_path):
    cfg = small_config(demo_zoo, tmp_path / "out")
    with pytest.raises(UnknownNameError, match="unknown merge method .tie.*Did you mean ties.*Known merge methods"):
        evolve(_with(cfg, crossover={"methods": ["tie"]}), progress=False)
    task = cfg.fitness.tasks[0]
    typo = task.model_copy(update={"name": task.name[:-1]})
    with pytest.raises(ConfigError, match=f"fitness task '{typo.name}' is unknown to lm-eval; did you mean {task.name}"):
        evolve(_with(cfg, fitness={"tasks": [typo]}), progress=False)
    odd = build_llama(tmp_path / "odd", hidden_size=48)
    members = [*cfg.population.members, cfg.population.members[0].model_copy(update={"path": odd, "name": "odd"})]
    with pytest.raises(CompatibilityError, match="cannot be merged: .*hidden_size"):
        evolve(_with(cfg, population={"members": members}), progress=False)
    assert not (cfg.output.dir / "models").exists() and not (cfg.output.dir / "state.json").exists()


def test_existing_run_dir_needs_resume_and_same_config(finished_run):
    cfg, _ = finished_run
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        evolve(cfg, progress=False)
    with pytest.raises(ConfigError, match="different config"):
        evolve(cfg.model_copy(update={"seed": 99}), resume=True, progress=False)


def test_cli_reports_bad_config_clearly(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"population": {"members": ["./a"]}, "fitness": {"tasks": ["x"]},
                                    "selection": {"method": "lottery"}}))
    out = subprocess.run([sys.executable, "-m", "hubevo.cli", "evolve", str(path)], cwd=REPO,
                         capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 2
    assert "selection.method: Input should be 'roulette' or 'tournament'" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_run_that_failed_before_its_first_evaluation_does_not_block_the_fixed_rerun(demo_zoo, tmp_path,
                                                                                       monkeypatch):
    from hubevo.run import loop

    cfg = small_config(demo_zoo, tmp_path / "run", generations=0)

    def late_config_error(run, backend):
        raise ConfigError("fitness.tasks: a problem only generation 0 could see")

    with monkeypatch.context() as patched:
        patched.setattr(loop, "evaluate_generation", late_config_error)
        with pytest.raises(ConfigError):
            evolve(cfg, progress=False)
    assert load_state(cfg.output.dir) is not None and not load_state(cfg.output.dir).evaluations

    fixed = cfg.model_copy(update={"seed": 1})  # another config, no --resume: nothing was paid for, so it starts
    state = evolve(fixed, progress=False)
    assert state.finished and state.evaluations


def test_a_long_lineage_is_never_replayed_each_generation_rebuilds_only_what_it_reads(demo_zoo, tmp_path,
                                                                                     monkeypatch):
    import hubevo.publish.rebuild
    from hubevo.publish.rebuild import Rebuilder

    writes, trims = [], []  # every folder the rebuild cache writes; (wanted, writes during, folders after)
    real_dir, real_keep = hubevo.publish.rebuild.atomic_dir, Rebuilder.keep_only

    def counted_dir(final, **kwargs):
        writes.append(Path(final).name)
        return real_dir(final, **kwargs)

    def counted_keep(self, cids):
        cids, before = list(cids), len(writes)
        real_keep(self, cids)
        cached = sorted(p.name for p in self.resolver.cache_dir.glob("*") if p.is_dir())
        trims.append((cids, len(writes) - before, cached, self.resolver))

    monkeypatch.setattr(hubevo.publish.rebuild, "atomic_dir", counted_dir)
    monkeypatch.setattr(Rebuilder, "keep_only", counted_keep)
    cfg = small_config(demo_zoo, tmp_path / "run", generations=7, population_size=5)
    state = evolve(cfg, progress=False)

    assert len(trims) == 8 and max(len(c) for c, *_ in trims) > 0
    depth = lambda i: 0 if state.individuals[i].kind == "seed" else 1 + max(map(depth, state.individuals[i].parents))  # noqa: E731
    assert max(depth(i) for i in state.evaluations) >= 4  # a lineage deeper than the cache keeps
    for cids, written, cached, resolver in trims:
        bred = [c for c in cids if state.individuals[c].kind != "seed"]
        assert written <= len(bred)  # one merge each: their own parents were still in the cache
        assert set(cached) <= {resolver.table_name(c) for c in bred}  # nothing else kept
    assert len(writes) <= sum(len(c) for c, *_ in trims) + cfg.fitness.finalists + 3  # + the end's held-out
    assert full_folders(cfg.output.dir) == [Path(state.saved[state.champion()])]
