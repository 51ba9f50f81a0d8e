"""Every path of the run file means one thing, members are complete and distinct, every number is in its domain,
and a held-out group never holds a fitness task: each bad input is one line through `hubevo evolve`, before any work.

Paths: each path field written with `~`, `$VAR` / `${VAR}`, or relative to the run file (read from another working
folder) resolves to the same place; an unset variable names the field and the variable. One tiny real run writes
where its `~` and `$VAR` paths say and leaves no literal `~` folder behind.
"""

from __future__ import annotations

import json
import shutil
import types
import typing
from pathlib import Path

import pytest
import torch
import yaml
from pydantic import BaseModel

from hubevo.cli.main import main
from hubevo.config import RunConfig, load_config, parse_config
from hubevo.config.search import STRATEGY_OPTIONS
from hubevo.errors import ConfigError
from hubevo.state.runstate import load_state
from tests.helpers.bad_input import TASK, build_world, good

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    return build_world(tmp_path_factory.mktemp("bad-paths"))


def evolve_cli(path: Path, capsys) -> tuple[int, str]:
    code = main(["evolve", str(path), "--no-progress"])
    return code, capsys.readouterr().err


def write(folder: Path, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def at(data: dict, dotted: str, value) -> dict:
    """`data` with the field at `dotted` (a.b.0.c: a number indexes a list) set to `value` (deep copy)."""
    data = json.loads(json.dumps(data))
    *parents, last = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    node = data
    for key in parents:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})
    node[last] = value
    return data


def assert_one_line(err: str, *fragments: str) -> None:
    assert err.startswith("hubevo: error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} missing from: {err}"


# 1. paths: every field, every way of writing it --------------------------------------------------------------------
PATH_FIELDS = {  # field -> (what it names, relative to the place the form points at), a config with it set
    "population.members.0": ("zoo/ft1", lambda c, v: at(c, "population.members", [v, c["population"]["members"][1]])),
    "population.base_model": ("zoo/base", lambda c, v: at(c, "population.base_model", v)),
    "output.dir": ("runs/x", lambda c, v: at(c, "output.dir", v)),
    "fitness.include_path.0": ("tasks", lambda c, v: at(c, "fitness.include_path", [v])),
    "mutation.finetune.datasets.0.path": ("data/prefs.jsonl", lambda c, v: at(c, "mutation.finetune",
                                                                               {"datasets": [{"path": v}]})),
}
FORMS = {  # form -> how a path under PLACE is written in it
    "tilde": "~/{rel}",
    "var": "$HUBEVO_PLACE/{rel}",
    "braced-var": "${{HUBEVO_PLACE}}/{rel}",
    "relative-to-the-run-file": "{rel}",
}


def placed(tmp: Path, form: str, monkeypatch) -> tuple[Path, Path]:
    """(the run file's folder, the folder the form points at), with HOME and $HUBEVO_PLACE set and the working
    folder elsewhere; every named thing exists there."""
    yaml_dir, home, place, elsewhere = tmp / "conf", tmp / "home", tmp / "place", tmp / "elsewhere"
    for folder in (yaml_dir, home, place, elsewhere):
        folder.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HUBEVO_PLACE", str(place))
    monkeypatch.chdir(elsewhere)
    target = {"tilde": home, "relative-to-the-run-file": yaml_dir}.get(form, place)
    for rel, _ in PATH_FIELDS.values():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).mkdir() if "." not in Path(rel).name else (target / rel).write_text("")
    return yaml_dir, target


@pytest.mark.parametrize("form", FORMS)
def test_every_path_field_reads_each_form_the_same_way(world, tmp_path, monkeypatch, form):
    yaml_dir, target = placed(tmp_path, form, monkeypatch)
    cfg = good(world, tmp_path)
    for rel, put in PATH_FIELDS.values():
        cfg = put(cfg, FORMS[form].format(rel=rel))
    loaded = load_config(write(yaml_dir, cfg))
    assert loaded.population.members[0].path == target / "zoo/ft1"
    assert loaded.population.base_model.path == target / "zoo/base"
    assert loaded.output.dir == target / "runs/x"
    assert loaded.fitness.include_path == [target / "tasks"]
    assert loaded.mutation.finetune.datasets[0].path == str(target / "data/prefs.jsonl")


@pytest.mark.parametrize("field", PATH_FIELDS)
def test_an_unset_variable_in_a_path_names_the_field_and_the_variable(world, tmp_path, capsys, monkeypatch, field):
    monkeypatch.delenv("HUBEVO_UNSET", raising=False)
    rel, put = PATH_FIELDS[field]
    code, err = evolve_cli(write(tmp_path / "conf", put(good(world, tmp_path), f"${{HUBEVO_UNSET}}/{rel}")), capsys)
    assert code == 2
    assert_one_line(err, field, "$HUBEVO_UNSET", "is not set", "write the path out")
    assert not list(tmp_path.rglob("$*")) and not (tmp_path / "run").exists()


def test_an_uploaded_run_file_never_reads_the_servers_environment(world, tmp_path, monkeypatch):
    """The Space's uploads are someone else's run files: a `$VAR` in one is refused, its value never shown."""
    from space.controls.seeding import SeedError, TaskCatalog, config_from_yaml

    monkeypatch.setenv("HUBEVO_SECRET", "hf_not_for_you")
    data = {"name": "up", "population": {"members": ["alice/a", "alice/b"]},
            "fitness": {"tasks": [TASK], "include_path": ["${HUBEVO_SECRET}/tasks"]}}
    with pytest.raises(SeedError) as err:
        config_from_yaml(yaml.safe_dump(data), runs_root=tmp_path / "runs",
                         tasks=TaskCatalog((world["tasks"],), registry=None))
    assert "fitness.include_path.0" in str(err.value) and "$HUBEVO_SECRET, which is not expanded here" in str(err.value)
    assert "hf_not_for_you" not in str(err.value)


def test_a_member_that_is_neither_a_folder_nor_a_repo_id_names_both(world, tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config(at(good(world, tmp_path), "population.members.0", "models/tiny/ft1"), root=tmp_path)
    assert_one_line(f"hubevo: error: {err.value}", "population.members.0", "'models/tiny/ft1' is neither a model "
                    f"folder ('{tmp_path / 'models/tiny/ft1'}' does not exist) nor a Hub repo id", "'org/name'")


def test_a_bare_org_name_is_a_folder_beside_the_run_file_else_a_repo(world, tmp_path, monkeypatch):
    (tmp_path / "conf" / "org" / "name").mkdir(parents=True)
    (tmp_path / "elsewhere" / "org" / "other").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = load_config(write(tmp_path / "conf", at(good(world, tmp_path), "population.members", ["org/name",
                                                                                               "org/other"])))
    first, second = cfg.population.members
    assert first.path == tmp_path / "conf" / "org" / "name" and first.repo is None
    assert second.repo == "org/other" and second.path is None  # the working folder does not decide


@pytest.mark.slow
def test_a_run_written_with_tilde_and_variables_lands_where_they_say(world, tmp_path, capsys, monkeypatch):
    """A real run (generation 0: the two members scored) from another working folder."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copytree(world["zoo"]["ft1"], home / "zoo" / "ft1")
    shutil.copytree(world["zoo"]["ft2"], tmp_path / "conf" / "zoo" / "ft2")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HUBEVO_TASKS", str(world["tasks"]))
    monkeypatch.chdir(elsewhere)
    cfg = at(at(at(good(world, tmp_path), "population.members", ["~/zoo/ft1", "zoo/ft2"]),
                "fitness.include_path", ["${HUBEVO_TASKS}"]), "output.dir", "~/runs/x")
    code, err = evolve_cli(write(tmp_path / "conf", cfg), capsys)
    assert code == 0, err
    state = load_state(home / "runs" / "x")
    assert state.finished and len(state.initial) == 2
    assert all(state.evaluations[i].status == "ok" for i in state.initial)
    assert {m["path"] for m in state.members.values()} == {str(home / "zoo/ft1"), str(tmp_path / "conf/zoo/ft2")}
    assert not [p for p in tmp_path.rglob("*") if p.name == "~" or p.name.startswith("$")]


# 2. members complete and distinct ----------------------------------------------------------------------------------
def _member_copy(world, tmp, name, *, drop=()) -> str:
    folder = Path(shutil.copytree(world["zoo"]["ft1"], tmp / name))
    for file in drop:
        (folder / file).unlink()
    return str(folder)


def _linked(world, tmp) -> str:
    (tmp / "link").symlink_to(world["zoo"]["ft1"], target_is_directory=True)
    return str(tmp / "link")


MEMBER_CASES = [
    ("member-without-tokenizer",
     lambda w, t, c: at(c, "population.members.0", _member_copy(w, t, "notok", drop=("tokenizer.json",
                                                                                      "tokenizer_config.json"))),
     ["population.members.0", "'notok'", "no tokenizer", "tokenizer.json", "copy the tokenizer files"]),
    ("duplicate-by-path",
     lambda w, t, c: at(c, "population.members", [{"path": str(w["zoo"]["ft1"]), "name": "a"},
                                                  {"path": str(w["zoo"]["ft1"]), "name": "b"}]),
     ["population.members.0 ('a') and population.members.1 ('b') are the same model", "remove one of them"]),
    ("duplicate-by-symlink",
     lambda w, t, c: at(c, "population.members", [str(w["zoo"]["ft1"]), _linked(w, t)]),
     ["population.members.0 ('ft1') and population.members.1 ('link') are the same model",
      "the folder '{ft1}'", "remove one of them"]),
    ("duplicate-by-content",
     lambda w, t, c: at(at(c, "population.members", [str(w["zoo"]["ft1"]), str(w["zoo"]["ft2"]),
                                                     _member_copy(w, t, "copy")]), "budget.population_size", 3),
     ["population.members.0 ('ft1') and population.members.2 ('copy') are the same model",
      "weights are identical (sha256", "remove one of them"]),
    ("base-model-is-a-member",
     lambda w, t, c: at(c, "population.base_model", str(w["zoo"]["ft1"])),
     ["population.base_model 'ft1' is also population.members.0 ('ft1')", "remove it from population.members or "
                                                                            "set another population.base_model"]),
]


@pytest.mark.parametrize("make, expected", [c[1:] for c in MEMBER_CASES], ids=[c[0] for c in MEMBER_CASES])
def test_an_incomplete_or_repeated_member_is_named_before_any_work(world, tmp_path, capsys, make, expected):
    code, err = evolve_cli(write(tmp_path / "conf", make(world, tmp_path, good(world, tmp_path))), capsys)
    assert code == 2
    assert_one_line(err, *(f.replace("{ft1}", str(world["zoo"]["ft1"])) for f in expected))
    state = load_state(tmp_path / "run") if (tmp_path / "run" / "state.json").is_file() else None
    assert state is None or not state.evaluations
    assert not (tmp_path / "run" / "models").exists()


# 3. every number in its domain -------------------------------------------------------------------------------------
FULL = {  # every optional section present, so that each numeric field has a place to be set
    "population": {"members": ["./a", "org/b"], "query": {"author": "org"}},
    "fitness": {"tasks": [{"name": "t"}], "heldout": [{"name": "h"}], "validation": [{"name": "v"}],
                "racing": {"rungs": [2, 3]}},
    "mutation": {"finetune": {"datasets": ["org/prefs"], "learning_rate": [1e-4, 1e-3], "beta": [0.1, 0.2],
                              "steps": [1, 2], "lora_rank": [8], "baseline_steps": [2]}},
}
OPTIONS = {"dfs": {"scale_range": [0.5, 2.0]}, "psdfs": {"dfs": {"scale_range": [0.5, 2.0]}}}
CUSTOM = {  # numeric fields a validator of their own checks, and a value out of their domain
    "fitness.batch_size": 0, "crossover.ranges": {"density": [-1.0, 0.5]}, "search.options.ranges": {"t": [0, 2]},
    "search.options.ps.ranges": {"t": [0, 2]}}


def bounds(metadata) -> dict:
    found = {}
    for item in metadata:
        found.update({k: getattr(item, k) for k in ("ge", "gt", "le", "lt") if getattr(item, k, None) is not None})
        found.update(bounds(getattr(item, "metadata", [])))
    return found


def numeric_fields(model: type[BaseModel], prefix: str = ""):
    """(dotted path, number type, bounds, description) of every number in `model`, its lists and nested models."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        union = typing.get_origin(info.annotation) in (typing.Union, types.UnionType)
        kinds = [a for a in (typing.get_args(info.annotation) if union else [info.annotation]) if a is not type(None)]
        for kind in kinds:
            yield from _numbers(path, kind, info.metadata, info.description)


def _numbers(path: str, kind, metadata, description):
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Annotated:
        yield from _numbers(path, args[0], [*metadata, *args[1:]], description)
    elif kind in (int, float):
        yield path, kind, bounds(metadata), description
    elif origin in (list, tuple) and args:
        yield from _numbers(f"{path}.0", args[0], [], description)
    elif origin is dict and any(a in (int, float) or typing.get_origin(a) is tuple for a in args):
        yield path, dict, {}, description
    elif isinstance(kind, type) and issubclass(kind, BaseModel):
        yield from numeric_fields(kind, f"{path}.")


def out_of_domain(kind, limits: dict) -> list:
    step = 1 if kind is int else 0.5
    values = [limits["ge"] - step] if "ge" in limits else [limits["gt"]] if "gt" in limits else []
    values += [limits["le"] + step] if "le" in limits else [limits["lt"]] if "lt" in limits else []
    return values + ([float("inf")] if kind is float and not {"le", "lt"} & set(limits) else [])


def every_number():
    yield from (("", *f) for f in numeric_fields(RunConfig))
    for strategy, schema in STRATEGY_OPTIONS.items():
        yield from ((strategy, *f) for f in numeric_fields(schema, "search.options."))


def config_with(strategy: str, path: str, value) -> dict:
    data = json.loads(json.dumps(FULL))
    if strategy:
        data["search"] = {"strategy": strategy, "options": OPTIONS.get(strategy, {})}
    return at(data, path, value)


def test_every_numeric_field_has_a_domain_and_a_description():
    numbers = list(every_number())
    assert len(numbers) > 40
    undescribed = [path for _, path, _, _, description in numbers if not description]
    assert not undescribed
    unbounded = [path for _, path, kind, limits, _ in numbers if not limits and path not in CUSTOM]
    assert not unbounded


@pytest.mark.parametrize("strategy, path, kind, limits", [f[:4] for f in every_number()],
                         ids=[f"{f[0]}:{f[1]}" if f[0] else f[1] for f in every_number()])
def test_a_number_out_of_its_domain_is_one_line_naming_the_field(tmp_path, strategy, path, kind, limits):
    values = [CUSTOM[path]] if path in CUSTOM else out_of_domain(kind, limits)
    assert values
    for value in values:
        with pytest.raises(ConfigError) as err:
            parse_config(config_with(strategy, path, value), root=tmp_path)
        assert_one_line(f"hubevo: error: {err.value}", path)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_run_seed_out_of_range_is_named_once_before_any_work(world, tmp_path, capsys, seed):
    code, err = evolve_cli(write(tmp_path / "conf", at(good(world, tmp_path), "seed", seed)), capsys)
    assert code == 2
    assert_one_line(err, "seed: Input should be")
    assert "fitness.seed" not in err and not (tmp_path / "run").exists()


# 4. the held-out guard sees into groups ----------------------------------------------------------------------------
def _grouped(world, tmp, cfg, *, group: list[str], field: str, name: str) -> dict:
    folder = Path(shutil.copytree(world["tasks"], tmp / "tasks"))
    task = yaml.safe_load((folder / f"{TASK}.yaml").read_text())
    (folder / "bi_other.yaml").write_text(yaml.safe_dump({**task, "task": "bi_other"}))
    (folder / "bi_group.yaml").write_text(yaml.safe_dump({"group": "bi_group", "task": group}))
    return at(at(cfg, "fitness.include_path", [str(folder)]), field, name)


GUARD_CASES = [
    ("heldout-group-holds-a-fitness-task",
     lambda w, t, c: _grouped(w, t, c, group=["bi_other", TASK], field="fitness.heldout", name=["bi_group"]),
     ["fitness.heldout group 'bi_group' and fitness.tasks task 'bi_add' share task 'bi_add'",
      "its score would not be held out"]),
    ("fitness-group-holds-a-heldout-task",
     lambda w, t, c: at(_grouped(w, t, c, group=[TASK, "bi_other"], field="fitness.tasks", name=["bi_group"]),
                        "fitness.heldout", ["bi_other"]),
     ["fitness.heldout task 'bi_other' and fitness.tasks group 'bi_group' share task 'bi_other'"]),
    ("validation-group-nested-holds-a-fitness-task",
     lambda w, t, c: _grouped(w, t, c, group=[{"group": "inner", "task": [TASK]}], field="fitness.validation",
                              name=["bi_group"]),
     ["fitness.validation group 'bi_group'", "share task 'bi_add'", "the finals would pick the champion"]),
]


@pytest.mark.parametrize("make, expected", [c[1:] for c in GUARD_CASES], ids=[c[0] for c in GUARD_CASES])
def test_a_heldout_group_that_holds_a_fitness_task_is_refused(world, tmp_path, capsys, make, expected):
    code, err = evolve_cli(write(tmp_path / "conf", make(world, tmp_path, good(world, tmp_path))), capsys)
    assert code == 2
    assert_one_line(err, *expected)
    assert not (tmp_path / "run" / "state.json").exists()
