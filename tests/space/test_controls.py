"""The Space's controls (`space.controls`) without a browser: the deployment's settings, the seeding form's
validation (the form and an uploaded run YAML), who may act, and the app's first view and download folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hubevo.config import RunConfig
from space.controls.auth import ADMIN, Access, AccessDenied
from space.controls.seeding import (
    BudgetCaps,
    SeedError,
    SeedForm,
    TaskCatalog,
    build_run_config,
    config_from_yaml,
    form_numbers,
    local_task_names,
)
from space.controls.settings import SpaceSettings
from space.data.catalog import Catalog
from space.pages.leaderboard import leaderboard, plain
from tests.space.runs import HUB


# --------------------------------------------------------------------------- settings
def test_settings_come_from_the_environment():
    settings = SpaceSettings.from_env({"HUBEVO_RUNS_ROOT": "/srv/runs", "HUBEVO_ALLOW_LIST": "alice, bob,",
                                       "HUBEVO_RESULTS_DATASETS": "alice/a-results", "HUBEVO_TASK_DIRS": "/t1,/t2",
                                       "HUBEVO_SPACE_LOCAL_ROOT": "/srv/models"})
    assert settings.app_kwargs() == {"runs_root": Path("/srv/runs"), "admin_token": None,
                                     "allow_list": ["alice", "bob"], "hub_datasets": ["alice/a-results"],
                                     "task_dirs": [Path("/t1"), Path("/t2")], "local_root": Path("/srv/models")}
    assert SpaceSettings.from_env({}).runs_root == Path("runs")
    assert SpaceSettings.from_env({}).local_root is None  # Hub repos only unless an admin names a root


# --------------------------------------------------------------------------- seeding form
def write_tasks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "add.yaml").write_text("task: local_add\ndataset_path: json\n")
    (folder / "group.yaml").write_text("group: local_group\ntask:\n  - local_add\n")
    return folder


def good_form(**changes) -> SeedForm:
    fields = dict(name="fresh", candidates="alice/a\nalice/b@v1", base_model="alice/base",
                  methods=["linear", "ties"], tasks="local_add", heldout="local_group", limit=32,
                  generations=2, population_size=4)
    return SeedForm(**(fields | changes))


def test_a_valid_form_becomes_a_run_config_within_the_caps(tmp_path):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    config = build_run_config(good_form(), runs_root=tmp_path / "runs", tasks=tasks, caps=BudgetCaps())
    cfg = RunConfig.model_validate(config)
    assert [m.repo for m in cfg.population.members] == ["alice/a", "alice/b@v1"]
    assert cfg.population.base_model.repo == "alice/base"
    assert cfg.crossover.methods == ["linear", "ties"]
    assert [t.name for t in cfg.fitness.tasks] == ["local_add"] and cfg.fitness.heldout[0].name == "local_group"
    assert cfg.fitness.include_path == [tmp_path / "tasks"]
    assert cfg.output.dir == (tmp_path / "runs" / "fresh").resolve()
    assert (cfg.budget.max_evaluations, cfg.budget.wall_time_s) == (200, 6 * 3600)  # open budget -> the caps
    assert cfg.publish.push == "none"


def test_a_hub_query_can_replace_the_candidate_list(tmp_path):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    form = good_form(candidates="", query_author="alice", query_filter="base_model:alice/base, merge", query_limit=5)
    cfg = RunConfig.model_validate(build_run_config(form, runs_root=tmp_path, tasks=tasks))
    assert cfg.population.members == []
    assert (cfg.population.query.author, cfg.population.query.filter, cfg.population.query.limit) == (
        "alice", ["base_model:alice/base", "merge"], 5)


def test_a_bad_form_is_refused_with_every_problem_named(tmp_path):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    form = good_form(name="taken", candidates="/etc/passwd\nalice/ok\nnot a repo", base_model="",
                     methods=["linaer", "ties"], tasks="local_ad", heldout="", generations=50, population_size=1,
                     namespace="bad ns", push="survivors")
    with pytest.raises(SeedError) as refused:
        build_run_config(form, runs_root=tmp_path / "runs", tasks=tasks)
    message = str(refused.value)
    for expected in ("'taken' already exists", "'/etc/passwd' is a local path", "'not a repo' is not a Hub",
                     "unknown merge method 'linaer'. Did you mean linear?", "ties need a base model",
                     "unknown task 'local_ad'. Did you mean local_add", "generations 50 is outside 1..20",
                     "population size 1 is outside 2..16", "namespace 'bad ns'"):
        assert expected in message, expected


@pytest.mark.parametrize("changes, expected", [
    (dict(candidates="", query_author=""), "give candidate repo ids, a Hub query"),
    (dict(methods=[]), "choose at least one merge method"),
    (dict(tasks=""), "give at least one fitness task"),
    (dict(max_evaluations=500), "max evaluations 500 is outside 1..200"),
    (dict(wall_time_s=10 * 3600.0), "wall time (s) 36000 is outside 1..21600"),
    (dict(push="champion"), "needs a namespace"),
    (dict(name="../escape"), "run name '../escape' must be"),
    (dict(candidates="\n".join(f"alice/m{k}" for k in range(17))), "exceed the cap of 16 candidates"),
])
def test_each_cap_and_rule_is_enforced(tmp_path, changes, expected):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    with pytest.raises(SeedError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        build_run_config(good_form(**changes), runs_root=tmp_path, tasks=tasks)


def model_folders(root: Path) -> Path:
    for name in ("a", "b"):
        (root / "models" / name).mkdir(parents=True)
    (root / "elsewhere").mkdir()
    return root / "models"


def test_local_folders_are_seeded_only_from_under_the_allowed_root(tmp_path):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    root = model_folders(tmp_path)
    form = good_form(candidates=f"{root / 'a'}\nb", base_model="alice/base")
    cfg = RunConfig.model_validate(build_run_config(form, runs_root=tmp_path / "runs", tasks=tasks, local_root=root))
    assert [m.path for m in cfg.population.members] == [root / "a", root / "b"]  # relative names read under the root
    with pytest.raises(SeedError, match="is a local path.*HUBEVO_SPACE_LOCAL_ROOT"):
        build_run_config(form, runs_root=tmp_path / "runs", tasks=tasks)  # no root set: Hub repos only
    outside = good_form(candidates=f"{tmp_path / 'elsewhere'}\n{root}/../elsewhere\n{root / 'missing'}")
    with pytest.raises(SeedError) as refused:
        build_run_config(outside, runs_root=tmp_path / "runs", tasks=tasks, local_root=root)
    message = str(refused.value)
    assert message.count(f"outside the allowed local root '{root}'") == 2 and "HUBEVO_SPACE_LOCAL_ROOT" in message
    assert f"'{root / 'missing'}' is not a folder under the allowed local root" in message


def test_a_repo_id_that_names_a_folder_in_the_servers_working_folder_stays_a_repo(tmp_path, monkeypatch):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    (tmp_path / "hubevo" / "demo").mkdir(parents=True)
    (tmp_path / "alice" / "a").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    form = good_form(candidates="hubevo/demo\nalice/b", base_model="alice/a")
    for local_root in (None, model_folders(tmp_path / "allowed")):
        cfg = RunConfig.model_validate(build_run_config(form, runs_root=tmp_path / "runs", tasks=tasks,
                                                        local_root=local_root))
        assert [(m.repo, m.path) for m in cfg.population.members] == [("hubevo/demo", None), ("alice/b", None)]
        assert (cfg.population.base_model.repo, cfg.population.base_model.path) == ("alice/a", None)
    uploaded = RunConfig.model_validate(config_from_yaml(
        run_yaml(population={"members": ["hubevo/demo", "alice/b"], "base_model": "alice/a"}),
        runs_root=tmp_path / "runs", tasks=tasks))
    assert [m.repo for m in uploaded.population.members] == ["hubevo/demo", "alice/b"]
    assert uploaded.population.base_model.repo == "alice/a"


def test_a_number_field_holding_text_is_named_with_what_to_enter():
    assert form_numbers(whole={"Generations": 3.0, "Max evaluations": ""}, real={"Wall time, hours": "1.5"}) == {
        "Generations": 3, "Max evaluations": None, "Wall time, hours": 1.5}
    with pytest.raises(SeedError) as refused:
        form_numbers(whole={"Generations": "three", "Population size": 2.5}, real={"Wall time, hours": "soon"})
    message = str(refused.value)
    for expected in ("Generations 'three' is not a number; enter a whole number",
                     "Population size 2.5 is not a whole number", "Wall time, hours 'soon' is not a number"):
        assert expected in message, message


def run_yaml(**changes) -> str:
    data = {"name": "uploaded", "population": {"members": ["alice/a", "alice/b"]},
            "fitness": {"tasks": ["local_add"], "heldout": ["local_group"]},
            "crossover": {"methods": ["linear", "slerp"]}, "budget": {"generations": 2, "population_size": 4},
            "output": {"dir": "/tmp/anywhere"}}
    return yaml.safe_dump(data | changes)


def test_an_uploaded_run_yaml_is_parsed_capped_and_kept_under_the_runs_root(tmp_path):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    cfg = RunConfig.model_validate(config_from_yaml(run_yaml(), runs_root=tmp_path / "runs", tasks=tasks))
    assert cfg.name == "uploaded" and [m.repo for m in cfg.population.members] == ["alice/a", "alice/b"]
    assert cfg.output.dir == (tmp_path / "runs" / "uploaded").resolve()  # never where the YAML says
    assert (cfg.budget.max_evaluations, cfg.budget.wall_time_s) == (200, 6 * 3600)
    assert cfg.fitness.include_path == [(tmp_path / "tasks").resolve()]


@pytest.mark.parametrize("text, expected", [
    ("name: [unclosed", "not valid YAML"),
    ("- a list", "must be a YAML mapping, got list"),
    (run_yaml(budget={"generations": -1}), "budget.generations: Input should be greater than or equal to 0"),
    (run_yaml(fitness={"tasks": []}), "fitness.tasks"),
    (run_yaml(budget={"generations": 50}), "budget.generations 50 is over this deployment's cap of 20"),
    (run_yaml(population={"members": ["/etc", "alice/b"]}), "population.members '/etc' is a local path"),
    (run_yaml(fitness={"tasks": ["local_ad"]}), "unknown task 'local_ad'. Did you mean local_add"),
    (run_yaml(fitness={"tasks": ["local_add"], "include_path": ["/srv/other"]}), "'/srv/other' is not one of"),
])
def test_a_bad_uploaded_run_yaml_is_refused_with_the_field_named(tmp_path, text, expected):
    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=None)
    with pytest.raises(SeedError, match=re.escape(expected)):
        config_from_yaml(text, runs_root=tmp_path / "runs", tasks=tasks)


def test_tasks_outside_the_local_folders_are_left_to_lm_eval(tmp_path):
    asked = []

    def registry(folders):
        asked.append(folders)
        return frozenset({"arc_easy", "hellaswag"})

    tasks = TaskCatalog((write_tasks(tmp_path / "tasks"),), registry=registry)
    assert local_task_names(tasks.folders) == {"local_add", "local_group"}
    assert tasks.unknown(["local_add"]) == [] and asked == []  # local names never index lm-eval
    assert tasks.unknown(["arc_easy", "local_add"]) == []
    assert tasks.unknown(["arc_esay"]) == ["unknown task 'arc_esay'. Did you mean arc_easy? Known tasks (this "
                                           "deployment's, and the closest of lm-eval's 2): arc_easy, local_add, local_group"]


# --------------------------------------------------------------------------- who may act
def test_only_allow_listed_users_or_the_admin_token_may_act():
    access = Access.of(admin_token="s3cret", allow_list=["Alice", " bob "])
    assert access.user(username="alice", token=None) == "alice"
    assert access.user(username="BOB", token="") == "BOB"
    assert access.user(username=None, token="s3cret") == ADMIN
    with pytest.raises(AccessDenied, match="sign in"):
        access.user(username=None, token=None)
    with pytest.raises(AccessDenied, match="'mallory' is not on this Space's allow-list"):
        access.user(username="mallory", token=None)
    with pytest.raises(AccessDenied, match="admin token is wrong"):
        access.user(username="alice", token="guess")  # a wrong token is never excused by a login


def test_with_nothing_configured_nobody_may_act():
    closed = Access.of(admin_token="", allow_list=[])
    assert not closed.anyone_can_act
    for username, token in ((None, None), ("alice", None), (None, "anything")):
        with pytest.raises(AccessDenied):
            closed.user(username=username, token=token)


# --------------------------------------------------------------------------- the app
def test_the_first_view_holds_the_leaderboard_files_each_call_in_a_folder_of_its_own(runs_root, tmp_path):
    from space.controls.ui import everything

    catalog = Catalog(runs_root=runs_root, hub_datasets=())
    *_, csv, parquet = everything(catalog, hub_url=HUB, controller=None, downloads=tmp_path)
    shown = plain(leaderboard(catalog.runs(), hub_url=HUB))
    for frame in (pd.read_csv(csv), pd.read_parquet(parquet)):
        assert frame["model"].tolist() == shown["model"].tolist()
        assert frame["champion"].tolist() == shown["champion"].tolist() and frame["champion"].any()
    *_, again, _ = everything(catalog, hub_url=HUB, controller=None, downloads=tmp_path)
    assert Path(again).parent != Path(csv).parent and Path(csv).is_file()  # another visitor's files stand apart


def test_the_apps_own_download_folder_leaves_with_its_process(tmp_path):
    """The leaderboard writes its CSV and parquet downloads into a temporary folder of its own; a process that
    built the app leaves nothing of it behind in the temporary folder."""
    import subprocess
    import sys

    temp = tmp_path / "tmp"
    temp.mkdir()
    code = ("from pathlib import Path; import tempfile, sys; from space.controls.ui import build_app\n"
            "build_app(runs_root=Path(sys.argv[1]), controller=None, admin_token=None, allow_list=[])\n"
            "print(sorted(p.name for p in Path(tempfile.gettempdir()).glob('hubevo-leaderboard-*')))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "runs")], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], env={**os.environ, "TMPDIR": str(temp)}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith("['hubevo-leaderboard-")  # made while the app lived
    assert not list(temp.glob("hubevo-leaderboard-*"))
