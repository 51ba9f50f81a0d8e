"""Run config: YAML parsing, path resolution and the messages bad input gets."""

import pytest
import yaml

from hubevo.config import load_config, parse_config
from hubevo.errors import ConfigError


def minimal(**overrides):
    data = {
        "population": {"members": ["./a", "org/model-b@v1"], "base_model": "./base"},
        "fitness": {"tasks": ["demo_add"], "include_path": "tasks"},
    }
    data.update(overrides)
    return data


def test_members_paths_and_repos_are_told_apart(tmp_path):
    cfg = parse_config(minimal(), root=tmp_path)
    local, hub = cfg.population.members
    assert local.path == tmp_path / "a" and local.repo is None
    assert hub.repo == "org/model-b@v1" and hub.label == "org/model-b"
    assert cfg.population.base_model.path == tmp_path / "base"
    assert cfg.fitness.include_path == [tmp_path / "tasks"]
    assert cfg.output.dir.is_absolute()


def test_config_is_frozen(tmp_path):
    cfg = parse_config(minimal(), root=tmp_path)
    with pytest.raises(Exception):
        cfg.seed = 3


def test_load_config_from_yaml_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(minimal(seed=7)))
    assert load_config(path).seed == 7


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"selection": {"method": "lottery"}}, "selection.method: Input should be 'roulette' or 'tournament'"),
        ({"budget": {"population_size": 1}}, "budget.population_size"),
        ({"selection": {"keep_top_k": 6}, "budget": {"population_size": 6}}, "keep_top_k (6) must be smaller"),
        ({"mutaton": {}}, "mutaton: Extra inputs are not permitted"),
        ({"crossover": {"ranges": {"weight": [1.0, 0.0]}}}, "range for 'weight' is empty"),
    ],
)
def test_bad_fields_are_named(tmp_path, overrides, expected):
    with pytest.raises(ConfigError) as err:
        parse_config(minimal(**overrides), root=tmp_path)
    assert expected in str(err.value)


def test_bad_repo_id_is_named(tmp_path):
    with pytest.raises(ConfigError, match="'not a repo!!' is not a Hub repo id"):
        parse_config(minimal(population={"members": [{"repo": "not a repo!!"}]}), root=tmp_path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_three_mistakes_are_reported_together_in_one_error(tmp_path):
    data = minimal(budgett={"generations": 2},  # misspelt section
                   crossover={"methods": ["linear", "tiez"]},  # unknown merge method
                   search={"strategy": "cmaes", "options": {"sigma": 0.3}})  # not an option of cmaes
    with pytest.raises(ConfigError) as err:
        parse_config(data, root=tmp_path)
    message = str(err.value)
    assert "budgett: Extra inputs are not permitted" in message
    assert "unknown merge method 'tiez'. Did you mean ties" in message
    assert "search.options.sigma: Extra inputs are not permitted (options of strategy 'cmaes')" in message


def test_unknown_strategy_and_operator_are_named_with_what_exists(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config(minimal(search={"strategy": "annealing"}, mutation={"operators": ["perturb", "ppo"]}),
                     root=tmp_path)
    assert ("unknown search strategy 'annealing'. Known search strategies: auto, cmaes, dfs, ga, m2n2, nsga2, psdfs, "
            "random") in str(err.value)
    assert "unknown mutation operator 'ppo'. Did you mean dpo? Known mutation operators: dpo, perturb, sft" in str(err.value)


def test_a_bad_config_is_reported_by_the_cli_before_any_heavy_import(tmp_path):
    """`hubevo evolve bad.yaml` imports no torch, mergekit, lm-eval or strategy, and exits 2 with every error."""
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(minimal(budgett={}, crossover={"methods": ["tiez"]},
                                          search={"strategy": "dfs", "options": {"repeats": 0}})))
    probe = ("import sys, runpy; sys.argv = ['hubevo', 'evolve', sys.argv[1]]\n"
             "from hubevo.cli.main import main\n"
             "code = main()\n"
             "heavy = sorted(m for m in ('torch', 'mergekit', 'lm_eval', 'transformers', 'hubevo.search.ga',"
             " 'hubevo.run.loop') if m in sys.modules)\n"
             "print('HEAVY', heavy); sys.exit(code)\n")
    out = subprocess.run([sys.executable, "-c", probe, str(bad)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    text = out.stdout + out.stderr
    assert "budgett" in text and "tiez" in text and "search.options.repeats" in text
    assert "HEAVY []" in text


def test_the_method_list_matches_mergekit_registry():
    from mergekit.merge_methods import registry

    from hubevo.config.methods import METHOD_NAMES

    assert sorted(METHOD_NAMES) == sorted(m.spec.name for m in registry.registered_methods())


def test_fields_added_later_leave_an_older_runs_hash_at_their_defaults(tmp_path):
    import hashlib
    import json

    from hubevo.state.runstate import LATER_DEFAULTS, RunState, config_hash, same_config

    spec = {"name": "x", "population": {"members": ["a/b", "a/c"]}, "fitness": {"tasks": ["t"]},
            "crossover": {"methods": ["linear"]}}
    cfg = parse_config(spec, root=tmp_path)
    older = cfg.model_dump(mode="json", exclude={  # the payload a run hashed before these fields existed
        "budget": {"generations", "max_evaluations", "wall_time_s"}, "publish": True, "execution": True,
        "tracking": True})
    for key in LATER_DEFAULTS:
        older["fitness"].pop(key)
    older_hash = hashlib.sha256(json.dumps(older, sort_keys=True).encode()).hexdigest()[:16]
    assert same_config(RunState(config_hash=older_hash), cfg, run_dir=cfg.output.dir)  # hashed with output.dir, too
    assert config_hash(cfg) != older_hash  # a new run's hash leaves output.dir out: a moved folder is the same run
    bf16 = parse_config({**spec, "fitness": {"tasks": ["t"], "dtype": "bfloat16"}}, root=tmp_path)
    assert config_hash(bf16) != config_hash(cfg)  # a choice that changes scores is part of the run


def test_the_auto_strategy_is_cmaes_for_fixed_parents_merged_only_and_the_ga_otherwise(tmp_path):
    """`search.strategy: auto` (the default) stands for the search measured best for the run (bench/quality.py)."""
    assert parse_config(minimal(), root=tmp_path).search_strategy == "cmaes"
    query = minimal(population={"members": ["./a"], "base_model": "./base", "query": {"author": "alice"}})
    assert parse_config(query, root=tmp_path).search_strategy == "ga"  # open-ended: immigrants from the Hub
    tuned = minimal(mutation={"operators": ["perturb", "dpo"],
                              "finetune": {"datasets": [{"path": "prefs.jsonl"}], "steps": (3, 6)}})
    assert parse_config(tuned, root=tmp_path).search_strategy == "ga"  # DPO mutations are the GA's
    chosen = parse_config(minimal(search={"strategy": "dfs"}), root=tmp_path)
    assert (chosen.search.strategy, chosen.search_strategy) == ("dfs", "dfs")
    with pytest.raises(ConfigError) as err:  # options are checked against the strategy auto stands for
        parse_config(minimal(search={"options": {"popsize": 1}}), root=tmp_path)
    assert "auto stands for 'cmaes'" in str(err.value) and "popsize" in str(err.value)


def test_the_fitness_split_follows_the_run_seed_unless_fixed_and_the_run_file_records_it(tmp_path):
    assert parse_config(minimal(seed=3), root=tmp_path).fitness.seed == 3  # each run seed draws its own split
    assert parse_config(minimal(), root=tmp_path).fitness.seed == 0
    fixed = minimal(seed=3, fitness={"tasks": ["demo_add"], "include_path": "tasks", "seed": 11})
    assert parse_config(fixed, root=tmp_path).fitness.seed == 11
    dumped = parse_config(minimal(seed=5), root=tmp_path).model_dump(mode="json")
    assert dumped["fitness"]["seed"] == 5  # what the run folder's config.yaml holds


def test_dpo_adds_the_nll_term_by_default_and_trainer_kwargs_replace_it(tmp_path):
    import numpy as np

    from hubevo.config.finetune import FinetuneSpace
    from hubevo.finetune.operators import dpo_loss
    from hubevo.finetune.recipe import sample_recipe

    space = FinetuneSpace(datasets=[{"path": str(tmp_path / "p.jsonl")}])
    recipe = sample_recipe(space, parent="p", rng=np.random.default_rng(0))
    assert recipe.nll_weight == 1.0
    assert dpo_loss(recipe) == {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 1.0]}
    plain = sample_recipe(space.model_copy(update={"nll_weight": 0.0}), parent="p", rng=np.random.default_rng(0))
    assert dpo_loss(plain) == {"loss_type": ["sigmoid"]}
    own = recipe.model_copy(update={"trainer_kwargs": {"loss_type": ["ipo"]}})
    assert dpo_loss(own) == {"loss_type": ["sigmoid"]}  # then trainer_kwargs, spread after it, decide


def test_one_mistake_is_one_line_and_several_are_a_header_and_a_line_each(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(minimal(budget={"population_size": 1})))
    with pytest.raises(ConfigError) as one:
        load_config(path)
    assert str(one.value).startswith(f"invalid run config {str(path)!r}: budget.population_size: ")
    assert len(str(one.value).splitlines()) == 1
    with pytest.raises(ConfigError, match=r"^invalid run config: budget.population_size: [^\n]*$"):
        parse_config(minimal(budget={"population_size": 1}), root=tmp_path)  # no source: no blank before the colon
    path.write_text(yaml.safe_dump(minimal(budget={"population_size": 1}, selection={"method": "lottery"})))
    with pytest.raises(ConfigError) as several:
        load_config(path)
    header, *fields = str(several.value).splitlines()
    assert header == f"invalid run config {str(path)!r}:"
    assert sorted(f.split(":")[0] for f in fields) == ["  budget.population_size", "  selection.method"]
