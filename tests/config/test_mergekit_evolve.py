"""A mergekit-evolve config becomes a hubevo run: every field and option mapped or named as not mapped, the
written run file commented and loadable, a bad file one error line, and mergekit-evolve's documented example
(on the demo zoo) run end to end through `hubevo evolve` and `hubevo convert`."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest
import yaml

from hubevo.cli.main import main
from hubevo.config import load_config, parse_config
from hubevo.config.mergekit_evolve import (
    EVOLVE_METHODS,
    GENOME_FIELDS,
    MERGEKIT_NORMALIZE,
    OPTIONS,
    TOP_FIELDS,
    convert,
    render,
)
from hubevo.errors import ConfigError

# mergekit's docs/evolve.md example, every optional field given, on Hub ids (nothing is downloaded here)
DOCUMENTED = {
    "genome": {"models": ["org/math-7b", "org/code-7b"], "merge_method": "dare_ties", "base_model": "org/base-7b",
               "tokenizer_source": None, "layer_granularity": 8, "normalize": False,
               "allow_negative_weights": False, "smooth": False, "filters": ["self_attn", "mlp"]},
    "tasks": [{"name": "my_math", "weight": 1.0, "metric": "acc,none"}, "my_code"],
}
EVERY_OPTION = {
    "--max-fevals": 24, "--vllm": True, "--strategy": "pool", "--in-memory": True, "--storage-path": "store",
    "--num-gpus": 2, "--merge-cuda": False, "--trust-remote-code": True, "--allow-crimes": False,
    "--random-seed": 7, "--batch-size": 16, "--sigma0": 0.2, "--wandb": True, "--wandb-project": "evo",
    "--wandb-entity": "me", "--task-search-path": ["tasks"],
    "--i-understand-the-depths-of-the-evils-i-am-unleashing": True, "--save-final-model": False,
    "--reshard": True, "--timeout": 3600.0, "--load-in-8bit": True, "--load-in-4bit": False,
    "--force-population-size": 10,
}


def every_field() -> dict:
    return {**DOCUMENTED, "limit": 50, "num_fewshot": 3, "shuffle": True, "random_init": False,
            "apply_chat_template": False, "fewshot_as_multiturn": False, "typo_field": 1}


def dotted(data: dict, path: str):
    for key in path.split("."):
        data = data[key]
    return data


def test_every_field_and_option_is_mapped_or_named_as_not_mapped(tmp_path):
    data = every_field()
    conversion = convert(data, options=EVERY_OPTION, source="evolve.yml", source_dir=tmp_path, cwd=tmp_path)
    given = {*(f"genome.{k}" for k in data["genome"]), *(k for k in data if k != "genome"), *EVERY_OPTION}
    accounted = {*conversion.mapped, *conversion.same, *conversion.unmapped}
    assert given - accounted == set()
    assert not set(conversion.mapped) & set(conversion.unmapped)
    assert set(conversion.unmapped) == {"--vllm", "--trust-remote-code", "--load-in-8bit", "--wandb-entity",
                                        "--save-final-model", "typo_field"}
    cfg = parse_config(conversion.data, root=tmp_path)
    assert cfg.search.strategy == "cmaes" and cfg.search.options == {
        "method": "dare_ties", "genes": ["weight", "density"], "layer_granularity": 8, "modules": ["self_attn", "mlp"],
        "ranges": {"weight": [0.0, 1.0], "density": [0.0, 1.0]}, "restarts": 0, "x0": 0.5, "sigma0": 0.2,
        "popsize": 10}
    assert [m.repo for m in cfg.population.members] == ["org/math-7b", "org/code-7b"]
    assert cfg.population.base_model.repo == "org/base-7b"
    assert [(t.name, t.weight, t.metric) for t in cfg.fitness.tasks] == [("my_math", 1.0, "acc"),
                                                                          ("my_code", 1.0, "acc")]
    assert (cfg.fitness.limit, cfg.fitness.batch_size, cfg.fitness.allow_test_sets) == (50, 16, True)
    assert cfg.fitness.lm_eval_kwargs == {"num_fewshot": 3, "apply_chat_template": False, "fewshot_as_multiturn": False}
    assert cfg.fitness.include_path == [tmp_path / "tasks"] and cfg.output.dir == tmp_path / "store"
    assert (cfg.budget.max_evaluations, cfg.budget.wall_time_s, cfg.seed) == (24, 3600.0, 7)
    assert (cfg.execution.backend, cfg.execution.workers) == ("ray", 2)
    assert (cfg.tracking.to, cfg.tracking.project) == (["wandb"], "evo")
    for source, targets in conversion.mapped.items():  # each target set, and its comment names its source
        for target in targets:
            dotted(conversion.data, target)
            assert source in conversion.notes[target]


def test_the_written_run_file_comments_each_field_names_what_is_not_mapped_and_loads(tmp_path):
    conversion = convert(every_field(), options=EVERY_OPTION, source="evolve.yml", source_dir=tmp_path,
                         cwd=tmp_path)
    text = render(conversion, source="evolve.yml")
    lines = text.splitlines()
    for key, why in conversion.unmapped.items():
        assert f"# - {key}: {why}"[:60] in text
    line = next(i for i, ln in enumerate(lines) if ln.strip().startswith("layer_granularity: 8"))
    assert "genome.layer_granularity" in lines[line - 1] or "genome.layer_granularity" in lines[line - 2]
    line = next(i for i, ln in enumerate(lines) if ln.strip().startswith("max_evaluations: 24"))
    assert lines[line - 1].strip().startswith("# --max-fevals") or lines[line - 2].strip().startswith("# --max-fevals")
    (tmp_path / "run.yaml").write_text(text)
    assert load_config(tmp_path / "run.yaml") == parse_config(conversion.data, root=tmp_path)


def test_mergekit_defaults_that_differ_from_hubevos_are_written_out_or_named():
    conversion = convert({"genome": {"models": ["o/a", "o/b"], "merge_method": "dare_ties", "base_model": "o/c"},
                          "tasks": ["t"]}, source="evolve.yml")
    options = conversion.data["search"]["options"]
    assert options["layer_granularity"] == 0  # mergekit-evolve's default (hubevo's is 1)
    assert conversion.data["fitness"]["tasks"] == [{"name": "t", "weight": 1.0, "metric": "acc"}]
    assert conversion.data["fitness"]["lm_eval_kwargs"] == {"apply_chat_template": True, "fewshot_as_multiturn": True}
    assert conversion.data["budget"]["max_evaluations"] == 100
    assert "normalize: true" in conversion.unmapped["genome.normalize"]  # evolve normalizes dare_ties; mergekit not


def test_local_models_are_found_beside_the_file_or_in_the_working_directory_and_written_relative_to_the_run_file(
        tmp_path):
    (tmp_path / "cfg" / "models" / "a").mkdir(parents=True)
    (tmp_path / "cwd" / "b").mkdir(parents=True)
    data = {"genome": {"models": ["models/a", "b", "org/c@v1"], "merge_method": "linear"}, "tasks": ["t"]}
    conversion = convert(data, source="cfg/evolve.yml", source_dir=tmp_path / "cfg", out_dir=tmp_path / "out",
                         cwd=tmp_path / "cwd", options={"--task-search-path": ["tasks"]})
    assert conversion.data["population"]["members"] == ["../cfg/models/a", "../cwd/b", "org/c@v1"]
    assert conversion.data["fitness"]["include_path"] == ["../cwd/tasks"]
    cfg = parse_config(conversion.data, root=tmp_path / "out")
    assert [m.path or m.repo for m in cfg.population.members] == [
        tmp_path / "cfg" / "models" / "a", tmp_path / "cwd" / "b", "org/c@v1"]


@pytest.mark.parametrize("data, fragments", [
    ({"genome": {"models": ["o/a"], "merge_method": "della"}, "tasks": ["t"]},
     ["genome.merge_method: 'della'", "linear, task_arithmetic, ties, dare_ties, slerp"]),
    ({"genome": {"models": ["o/a", "o/b"], "merge_method": "ties"}, "tasks": "t"},
     ["genome.base_model: merge method ties needs a base model", "tasks: give the list"]),
    ({"genome": {"models": ["o/a+o/lora"], "merge_method": "linear", "layer_granularity": -2}, "tasks": ["t"]},
     ["genome.models[0]: 'o/a+o/lora' names a LoRA adapter", "genome.layer_granularity: -2"]),
    ({"genome": {"models": ["o/a", "o/b"], "merge_method": "slerp", "smooth": True}, "tasks": [{"weight": 1}]},
     ["genome.smooth: mergekit-evolve does not smooth slerp", "tasks[0]: {'weight': 1} is not a task"]),
])
def test_a_bad_mergekit_evolve_file_is_one_error_line_naming_every_problem(tmp_path, capsys, data, fragments):
    path = tmp_path / "evolve.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"mergekit-evolve config {path}: ")
    assert all(f in message for f in fragments), message
    assert main(["convert", str(path)]) == 2
    assert capsys.readouterr().err.strip() == f"hubevo: error: {message}"


def test_hubevo_convert_writes_the_run_file_and_names_what_is_not_mapped_on_stderr(tmp_path, capsys):
    path = tmp_path / "evolve.yml"
    path.write_text(yaml.safe_dump(DOCUMENTED | {"genome": DOCUMENTED["genome"] | {"smooth": True}}))
    out = tmp_path / "hubevo" / "run.yaml"
    assert main(["convert", str(path), "-o", str(out), "--max-fevals", "30", "--vllm", "-s", "serial",
                 "--task-search-path", str(tmp_path / "tasks")]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "hubevo convert: not mapped: genome.smooth: hubevo gives each layer group one value per gene; it does not "
        "interpolate values across layers",
        "hubevo convert: not mapped: --vllm: hubevo evaluates with lm-eval's HFLM around its resident model, not vLLM"]
    assert f"run it: hubevo evolve {out}" in captured.out
    cfg = load_config(out)
    assert (cfg.budget.max_evaluations, cfg.execution.backend) == (30, "ray")
    assert cfg.fitness.include_path == [tmp_path / "tasks"]
    assert "# - genome.smooth: hubevo gives each layer group" in out.read_text()


def test_hubevo_evolve_refuses_mergekit_options_for_a_hubevo_run_file(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"population": {"members": ["o/a", "o/b"]}, "fitness": {"tasks": ["t"]}}))
    assert main(["evolve", str(path), "--max-fevals", "10"]) == 2
    assert "mergekit-evolve's options (--max-fevals) apply only to a mergekit-evolve config" in capsys.readouterr().err


def test_hubevo_worker_takes_a_mergekit_evolve_config_as_evolve_does(tmp_path, capsys):
    """The worker converts it first (saying so), then checks its own arguments: a runs folder that is a file."""
    (tmp_path / "evolve.yml").write_text(yaml.safe_dump(DOCUMENTED))
    (tmp_path / "runs").write_text("not a folder")
    assert main(["worker", str(tmp_path / "evolve.yml"), "--runs", str(tmp_path / "runs")]) == 2
    out, err = capsys.readouterr()
    assert "as a mergekit-evolve config and converted it in memory to a hubevo run" in out
    assert err.count("\n") == 1 and "runs" in err and "genome" not in err


def test_the_restated_schema_is_mergekits():
    """The tables this module restates (so that it never imports mergekit) match mergekit-evolve's own."""
    from mergekit.evo.config import EvolMergeConfiguration
    from mergekit.evo.genome import METHOD_PARAM_MAPS, ModelGenomeDefinition
    from mergekit.merge_methods import registry

    assert {m: list(g) for m, g in EVOLVE_METHODS.items()} == METHOD_PARAM_MAPS
    assert tuple(ModelGenomeDefinition.model_fields) == GENOME_FIELDS
    assert tuple(EvolMergeConfiguration.model_fields) == TOP_FIELDS
    defaults = {m.spec.name: next(p.default for p in m.spec.parameters if p.name == "normalize")
                for m in registry.registered_methods() if m.spec.name in MERGEKIT_NORMALIZE}
    assert defaults == MERGEKIT_NORMALIZE
    # the script cannot be imported without vLLM's lm-eval module; its click options are read from its source
    script = Path(importlib.util.find_spec("mergekit").origin).parent / "scripts" / "evolve.py"
    flags = [f.split("/")[0] for f in re.findall(r'"(--[\w-]+(?:/--[\w-]+)?)"', script.read_text())]
    assert flags == list(OPTIONS)


# mergekit-evolve's documented example, adapted to the fast demo zoo, end to end ------------------------------


def zoo_example(demo_zoo, folder: Path) -> Path:
    """docs/evolve.md's example config on the demo zoo: its two specialists over its base, its two fitness tasks
    (exact match, no chat template: the zoo's tokenizer has none), 8 examples per task."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("base", "digits", "letters"):
        shutil.copytree(demo_zoo.root / name, folder / "models" / name)
    text = """\
genome:
    models:
       - models/digits
       - models/letters
    merge_method: dare_ties
    base_model: models/base
    tokenizer_source: null # optional
    layer_granularity: 2

    # optional:
    normalize: false
    allow_negative_weights: false
    smooth: false
tasks:
  - name: demo_digits
    weight: 1.0 # optional
    metric: "exact_match,none" # defaults to acc,none
  - name: demo_letters
    metric: "exact_match,none"
limit: 8
apply_chat_template: false
"""
    (folder / "evolve.yml").write_text(text)
    return folder / "evolve.yml"


def test_mergekit_evolves_documented_example_runs_through_hubevo_evolve_and_convert(demo_zoo, tmp_path, capsys,
                                                                                   monkeypatch):
    config = zoo_example(demo_zoo, tmp_path / "work")
    monkeypatch.chdir(tmp_path / "work")  # mergekit-evolve's command line is relative to where it runs
    argv = ["evolve.yml", "--max-fevals", "4", "--task-search-path", str(demo_zoo.tasks_dir), "--storage-path",
            "store", "--random-seed", "1"]
    assert main(["evolve", *argv[:1], "--no-progress", *argv[1:]]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"read {config.name} as a mergekit-evolve config and converted it in "
                                          "memory to a hubevo run")
    assert "every field mapped" in out.splitlines()[0]
    assert "stopped: max_evaluations (4) reached" in out
    from hubevo.state.runstate import load_state

    state = load_state(tmp_path / "work" / "store")
    assert len(state.evaluations) == 4 and state.champion() in state.saved
    methods = {state.individuals[i].genome.method for i in state.evaluations if state.individuals[i].kind == "merge"}
    assert methods == {"dare_ties"}  # CMA-ES over mergekit-evolve's method
    assert (tmp_path / "work" / "store" / "results.parquet").is_file()

    assert main(["convert", *argv, "-o", "converted/run.yaml"]) == 0  # the same run, as a file
    written = load_config(tmp_path / "work" / "converted" / "run.yaml")
    converted = load_config(config, mergekit_options={"--max-fevals": 4, "--task-search-path": [
        str(demo_zoo.tasks_dir)], "--storage-path": "store", "--random-seed": 1})
    assert written == converted
