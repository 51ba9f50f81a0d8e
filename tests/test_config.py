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
