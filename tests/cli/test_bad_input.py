"""Bad input gets one clear, named error before any expensive work, through `hubevo evolve`.

Each case starts from a config that is valid (tiny real models, a local lm-eval task), breaks
one thing, runs the command line in-process and checks the exit status, that the message names
the field, file or repo and says what would fix it, and that no candidate was evaluated.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from hubevo.cli.main import main
from hubevo.evaluation.records import Evaluation
from hubevo.state.runstate import RunState, config_hash, load_state
from tests.helpers.bad_input import TASK, at, build_world, good

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    return build_world(tmp_path_factory.mktemp("bad-input"))


def evolve_cli(path: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["evolve", str(path), "--no-progress", *extra])
    return code, capsys.readouterr().err


def write(tmp: Path, data) -> Path:
    path = tmp / "run.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path




# cases: (id, a function of (world, tmp, good config) -> config dict or YAML text, expected fragments) -------------
def _copy_member(world, tmp, name, edit):
    folder = shutil.copytree(world["zoo"]["ft1"], tmp / name)
    edit(folder)
    return folder


def _config_json(world, tmp, text):
    folder = _copy_member(world, tmp, "odd", lambda f: (f / "config.json").write_text(text))
    return lambda cfg: at(cfg, "population.members", [str(folder), str(world["zoo"]["ft2"])])


def _safetensors(world, tmp, cut):
    def edit(folder):
        file = next(folder.glob("*.safetensors"))
        file.write_bytes(cut(file.read_bytes()))
    folder = _copy_member(world, tmp, "broken", edit)
    return lambda cfg: at(cfg, "population.members", [str(folder), str(world["zoo"]["ft2"])])


def _shape_lie(world, tmp):
    folders = []
    for name in ("ft1", "ft2"):
        def edit(folder):
            config = json.loads((folder / "config.json").read_text())
            config["vocab_size"] += 3
            (folder / "config.json").write_text(json.dumps(config))
        folders.append(str(shutil.copytree(world["zoo"][name], tmp / f"lie-{name}")))
        edit(Path(folders[-1]))
    return lambda cfg: at(cfg, "population.members", folders)


def _task_file(world, tmp, text, name=TASK):
    folder = shutil.copytree(world["tasks"], tmp / "tasks")
    (folder / f"{name}.yaml").write_text(text)
    return lambda cfg: at(cfg, "fitness.include_path", [str(folder)])


def _task_yaml(world, tmp, **changes):
    folder = shutil.copytree(world["tasks"], tmp / "tasks")
    spec = yaml.safe_load((folder / f"{TASK}.yaml").read_text())
    spec.update(changes)
    (folder / f"{TASK}.yaml").write_text(yaml.safe_dump(spec))
    return lambda cfg: at(cfg, "fitness.include_path", [str(folder)])


CONFIG_CASES = [
    ("yaml-syntax", lambda w, t, c: "population:\n  members: [a, b\nfitness: {}\n", ["not valid YAML", "line 3",
                                                                                  "fix the YAML syntax"]),
    ("yaml-not-mapping", lambda w, t, c: "- just\n- a list\n", ["must be a YAML mapping", "got list"]),
    ("unknown-section", lambda w, t, c: {**c, "mutaton": {}}, ["mutaton", "Extra inputs are not permitted"]),
    ("unknown-field", lambda w, t, c: at(c, "budget.generationz", 3), ["budget.generationz", "Extra inputs"]),
    ("selection-method", lambda w, t, c: at(c, "selection.method", "lottery"), ["selection.method", "'roulette'"]),
    ("population-size", lambda w, t, c: at(c, "budget.population_size", 1), ["budget.population_size", "2"]),
    ("elites-fill-population", lambda w, t, c: at(c, "selection.keep_top_k", 2), ["keep_top_k (2) must be smaller",
                                                                                  "budget.population_size (2)"]),
    ("range-empty", lambda w, t, c: at(c, "crossover.ranges", {"weight": [1.0, 0.0]}),
     ["range for 'weight' is empty", "low <= high"]),
    ("range-nan", lambda w, t, c: yaml.safe_dump(c).replace("crossover:\n", "crossover:\n  ranges: {weight: [.nan, 1.0]}\n"),
     ["crossover.ranges.weight", "finite"]),
    ("range-inf", lambda w, t, c: yaml.safe_dump(c).replace("crossover:\n", "crossover:\n  ranges: {t: [0.0, .inf]}\n"),
     ["crossover.ranges.t", "finite"]),
    ("range-negative-density", lambda w, t, c: at(c, "crossover.ranges", {"density": [-0.5, 0.5]}),
     ["crossover.ranges.density", "domain [0, 1]"]),
    ("range-t-above-one", lambda w, t, c: at(c, "crossover.ranges", {"t": [0.2, 1.5]}), ["crossover.ranges.t",
                                                                                        "domain [0, 1]"]),
    ("range-unknown-gene", lambda w, t, c: at(c, "crossover.ranges", {"dnsity": [0.1, 0.2]}),
     ["crossover.ranges.dnsity", "unknown gene", "known: density"]),
    ("repo-double-dot", lambda w, t, c: at(c, "population.members", ["alice/a..b", "alice/c"]),
     ["'alice/a..b' is not a Hub repo id", "Cannot have -- or ..", "expected 'org/name'"]),
    ("repo-double-dash", lambda w, t, c: at(c, "population.members", [{"repo": "alice/a--b"}, "alice/c"]),
     ["'alice/a--b' is not a Hub repo id"]),
    ("repo-dot-git", lambda w, t, c: at(c, "population.members", [{"repo": "alice/model.git"}, "alice/c"]),
     ["'alice/model.git' is not a Hub repo id", ".git"]),
    ("repo-garbage", lambda w, t, c: at(c, "population.members", [{"repo": "not a repo!!"}, "alice/c"]),
     ["'not a repo!!' is not a Hub repo id"]),
    ("member-path-and-repo", lambda w, t, c: at(c, "population.members", [{"path": "./a", "repo": "a/b"}, "a/c"]),
     ["exactly one of 'path'"]),
    ("ties-without-base", lambda w, t, c: at(c, "crossover.methods", ["ties"]),
     ["crossover.methods ['ties'] need population.base_model", "add population.base_model or remove them"]),
    ("some-need-base", lambda w, t, c: at(c, "crossover.methods", ["linear", "dare_ties"]),
     ["['dare_ties'] need population.base_model"]),
    ("single-member", lambda w, t, c: at(c, "population.members", [str(w["zoo"]["ft1"])]),
     ["1 member", "merging needs two parents", "add members"]),
    ("nobody", lambda w, t, c: at(c, "population", {}), ["give population.members, population.query"]),
    ("rungs-decreasing", lambda w, t, c: at(c, "fitness.racing", {"rungs": [4, 2]}),
     ["fitness.racing.rungs", "positive and increasing"]),
    ("rungs-over-limit", lambda w, t, c: at(c, "fitness.racing", {"rungs": [2, 4]}),
     ["racing rungs [2, 4] must stay below fitness.limit (4)"]),
    ("heldout-is-fitness", lambda w, t, c: at(c, "fitness.heldout", [TASK]),
     ["fitness.heldout repeats fitness task(s) 'bi_add'", "give fitness.heldout a separate task"]),
    ("unknown-method", lambda w, t, c: at(c, "crossover.methods", ["linear", "tiez"]), ["tiez"]),
    ("unknown-operator", lambda w, t, c: at(c, "mutation.operators", ["perturb", "shuffle"]),
     ["unknown mutation operator 'shuffle'", "Known mutation operators: dpo, perturb, sft"]),
    ("dpo-without-data", lambda w, t, c: at(c, "mutation.operators", ["dpo"]), ["mutation.finetune",
                                                                               "is not set"]),
    ("push-without-namespace", lambda w, t, c: at(c, "publish.push", "survivors"),
     ["publish.push is 'survivors' but publish.namespace is not set"]),
    ("unknown-baseline", lambda w, t, c: at(c, "search.baselines", ["average"]),
     ["unknown baseline recipe 'average'", "Known baseline recipes: dare_ties, linear"]),
    ("backend-unknown", lambda w, t, c: at(c, "execution.backend", "spark"), ["execution.backend", "'local'"]),
    ("no-tasks", lambda w, t, c: at(c, "fitness.tasks", []), ["fitness.tasks", "at least 1"]),
    ("zero-weight", lambda w, t, c: at(c, "fitness.tasks", [{"name": TASK, "weight": 0}]),
     ["fitness.tasks.0.weight", "greater than 0"]),
    ("run-name", lambda w, t, c: at(c, "name", "my run"), ["name", "pattern"]),
    ("dtype", lambda w, t, c: at(c, "dtype", "float8"), ["dtype", "'float32'"]),
    ("several-at-once", lambda w, t, c: at(at(c, "selection.method", "x"), "budget.population_size", 0),
     ["selection.method", "budget.population_size"]),
]

RUN_CASES = [
    ("output-dir-is-a-file", lambda w, t, c: (t.joinpath("taken").write_text("x"),
                                               at(c, "output.dir", str(t / "taken")))[1],
     ["output.dir", "is a file, not a folder", "choose another output.dir"]),
    ("output-dir-under-a-file", lambda w, t, c: (t.joinpath("taken").write_text("x"),
                                                  at(c, "output.dir", str(t / "taken" / "run")))[1],
     ["taken", "is a file, not a folder"]),
    ("ray-client-missing", lambda w, t, c: at(c, "execution", {"backend": "ray", "address": "ray://head:10001"}),
     ["execution.address 'ray://head:10001'", "grpc", "pip install 'ray[client]'"]),
    ("missing-member", lambda w, t, c: at(c, "population.members", [str(t / "nope"), str(w["zoo"]["ft2"])]),
     ["nope", "does not exist", "give a Hugging Face model folder"]),
    ("member-without-config", lambda w, t, c: (t.joinpath("empty").mkdir(),
                                                at(c, "population.members", [str(t / "empty"), str(w["zoo"]["ft2"])]))[1],
     ["empty", "has no config.json"]),
    ("config-json-a-list", lambda w, t, c: _config_json(w, t, "[1, 2]")(c), ["config.json is not a JSON object",
                                                                             "got list"]),
    ("config-json-garbage", lambda w, t, c: _config_json(w, t, "{nope")(c), ["config.json", "valid JSON"]),
    ("safetensors-truncated", lambda w, t, c: _safetensors(w, t, lambda b: b[: len(b) // 2])(c),
     ["broken", "not a complete safetensors file", "truncated", "re-download"]),
    ("safetensors-garbage", lambda w, t, c: _safetensors(w, t, lambda b: b"\xff" * 64)(c),
     ["not a complete safetensors file", "re-download"]),
    ("weights-contradict-config", lambda w, t, c: _shape_lie(w, t)(c),
     ["embed_tokens.weight of shape", "config.json says vocab_size", "different models"]),
    ("incompatible-members", lambda w, t, c: at(c, "population.members", [str(w["zoo"]["ft1"]),
                                                                         str(w["zoo"]["wide"])]),
     ["cannot be merged", "hidden_size"]),
    ("duplicate-names", lambda w, t, c: at(c, "population.members", [{"path": str(w["zoo"]["ft1"]), "name": "x"},
                                                                    {"path": str(w["zoo"]["ft2"]), "name": "x"}]),
     ["duplicate names ['x']", "distinct 'name'"]),
    ("unknown-task", lambda w, t, c: at(c, "fitness.tasks", ["bi_ad"]), ["'bi_ad' is unknown to lm-eval",
                                                                         "did you mean bi_add"]),
    ("task-yaml-broken", lambda w, t, c: _task_file(w, t, "task: bi_add\ndataset_path: [json\n")(c),
     ["unknown to lm-eval", "do not parse", "bi_add.yaml line 3"]),
    ("task-data-missing", lambda w, t, c: _task_yaml(w, t, dataset_kwargs={"data_files": {"test": str(t / "gone.jsonl")}})(c),
     ["task 'bi_add'", "gone.jsonl", "does not exist", "fix data_files"]),
    ("metric-not-computed", lambda w, t, c: at(c, "fitness.tasks", [{"name": TASK, "metric": "acc"}]),
     ["fitness.tasks.0: task 'bi_add' computes exact_match, not 'acc'", "set metric"]),
    ("lm-eval-kwarg-unknown", lambda w, t, c: at(c, "fitness.lm_eval_kwargs", {"num_fewshots": 2}),
     ["fitness.lm_eval_kwargs ['num_fewshots']", "not arguments of lm_eval.simple_evaluate", "num_fewshot"]),
    ("lm-eval-kwarg-own", lambda w, t, c: at(c, "fitness.lm_eval_kwargs", {"limit": 3}),
     ["fitness.lm_eval_kwargs.limit: set by hubevo itself"]),
    ("rungs-larger-than-task", lambda w, t, c: at(at(c, "fitness.racing", {"rungs": [4, 16]}), "fitness.limit", None),
     ["fitness.racing.rungs [4, 16] reach 16 examples", "'bi_add' has", "lower the rungs"]),
    ("include-path-not-folder", lambda w, t, c: at(c, "fitness.include_path", [str(t / "nowhere")]),
     ["fitness.include_path", "nowhere", "is not a folder"]),
    ("unknown-strategy", lambda w, t, c: at(c, "search.strategy", "annealing"), ["annealing", "ga"]),
]


SLOW_CASES = ("unknown-task", "task-yaml-broken")  # an unknown name makes lm-eval index all its own tasks


@pytest.mark.parametrize("make, expected", [
    pytest.param(*case[1:], id=case[0], marks=pytest.mark.slow if case[0] in SLOW_CASES else ())
    for case in CONFIG_CASES + RUN_CASES])
def test_bad_input_is_named_before_any_work(world, tmp_path, capsys, make, expected):
    cfg = make(world, tmp_path, good(world, tmp_path))
    code, err = evolve_cli(write(tmp_path, cfg), capsys)
    assert code == 2, err
    assert err.startswith("hubevo: error: ") and "Traceback" not in err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} missing from: {err}"
    state = load_state(tmp_path / "run") if (tmp_path / "run").is_dir() else None
    assert state is None or not state.evaluations  # refused before any candidate was scored
    assert not (tmp_path / "run" / "models").exists()  # or merged


@pytest.mark.slow
def test_the_good_config_itself_runs(world, tmp_path, capsys):
    """The cases above break a config that works: the errors come from what each case changed."""
    code, err = evolve_cli(write(tmp_path, good(world, tmp_path)), capsys)
    assert code == 0, err
    assert load_state(tmp_path / "run").finished


def test_a_missing_config_file_is_named(tmp_path, capsys):
    code, err = evolve_cli(tmp_path / "nope.yaml", capsys)
    assert code == 2 and "run config" in err and "nope.yaml" in err and "does not exist" in err


def _paid_run(world, tmp_path) -> dict:
    """A run folder that has paid for an evaluation under `good`'s config."""
    from hubevo.config import parse_config

    cfg = good(world, tmp_path)
    parsed = parse_config(cfg, root=tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    state = RunState(config_hash=config_hash(parsed),
                     evaluations={"a": Evaluation(id="a", generation=0, status="ok", fitness=0.5)})
    (run / "state.json").write_text(state.model_dump_json())
    (run / "config.yaml").write_text(yaml.safe_dump(parsed.model_dump(mode="json")))
    return cfg


def test_resume_after_a_config_change_names_the_fields(world, tmp_path, capsys):
    cfg = _paid_run(world, tmp_path)
    changed = at(at(cfg, "fitness.limit", 3), "crossover.methods", ["linear", "slerp"])
    code, err = evolve_cli(write(tmp_path, changed), capsys, "--resume")
    assert code == 2 and "different config" in err
    assert "fitness.limit: 4 -> 3" in err and "crossover.methods" in err and "only budget" in err


def test_a_run_folder_in_use_without_resume_says_pass_resume(world, tmp_path, capsys):
    cfg = _paid_run(world, tmp_path)
    code, err = evolve_cli(write(tmp_path, cfg), capsys)
    assert code == 2 and "already holds a run" in err and "--resume" in err


@pytest.mark.parametrize("content, fragment", [("{not json", "Invalid JSON"), ('{"generation": "x"}', "config_hash")],
                         ids=["garbage", "wrong-shape"])
def test_a_corrupted_state_file_names_the_file_and_the_way_out(world, tmp_path, capsys, content, fragment):
    cfg = _paid_run(world, tmp_path)
    (tmp_path / "run" / "state.json").write_text(content)
    code, err = evolve_cli(write(tmp_path, cfg), capsys, "--resume")
    assert code == 2 and "Traceback" not in err
    assert str(tmp_path / "run" / "state.json") in err and "corrupted" in err and fragment in err
    assert "move it aside" in err


def test_an_unwritable_output_dir_is_named(world, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, err = evolve_cli(write(tmp_path, at(good(world, tmp_path), "output.dir", str(locked / "run"))), capsys)
    assert code == 2 and "is not writable" in err and "locked" in err


assert len(CONFIG_CASES) + len(RUN_CASES) >= 40


# what hubevo promises: a bad input is one error (one line), exit 2,
# before any work, and nothing outside hubevo's own folders changes ---------------------------------------------
def _users_folder(world, tmp, cfg):
    mine = tmp / "mine"
    (mine / "cache").mkdir(parents=True)
    (mine / "cache" / "keep.txt").write_text("the user's")
    return at(cfg, "output.dir", str(mine))


def _task_data(world, tmp, text):
    data = tmp / "data" / f"{TASK}.jsonl"
    data.parent.mkdir()
    data.write_text(text)
    return _task_yaml(world, tmp, dataset_kwargs={"data_files": {"test": str(data)}})


def _dpo_data(world, tmp, text, cfg):
    prefs = tmp / "prefs.jsonl"
    prefs.write_text(text)
    return at(cfg, "mutation", {"probability": 1.0, "operators": ["dpo"],
                                "finetune": {"datasets": [{"path": str(prefs)}], "samples": 8, "steps": [1, 2],
                                             "baseline_steps": []}})


def _diverged_member(world, tmp):
    import torch
    from safetensors.torch import load_file, save_file

    def edit(folder):
        file = next(folder.glob("*.safetensors"))
        tensors = {n: torch.full_like(t, float("nan")) if t.is_floating_point() else t
                   for n, t in load_file(file).items()}
        save_file(tensors, file, metadata={"format": "pt"})
    folder = _copy_member(world, tmp, "diverged", edit)
    return lambda cfg: at(cfg, "population.members", [str(folder), str(world["zoo"]["ft2"])])


GARBAGE = "this is not JSON\n{\"q\": 1}\n"
# (id, make, expected fragments, lines on stderr)
PROMISE_CASES = [
    ("output-dir-of-the-user", _users_folder,
     ["output.dir", "mine' is not empty ('cache')", "not a hubevo run folder", "choose a new or empty folder"], 1),
    ("yaml-duplicate-key", lambda w, t, c: yaml.safe_dump(c) + "name: again\n",
     ["run.yaml", "key 'name' is given twice", "first at line", "at line"], 1),
    ("task-data-empty", lambda w, t, c: _task_data(w, t, "")(c),
     ["task 'bi_add'", "bi_add.jsonl", "is empty: it holds no rows", "data_files"], 1),
    ("task-data-blank-lines", lambda w, t, c: _task_data(w, t, "\n\n")(c), ["bi_add.jsonl", "is empty"], 1),
    ("task-data-garbage", lambda w, t, c: _task_data(w, t, GARBAGE)(c),
     ["task 'bi_add'", "bi_add.jsonl", "line 1 is not JSON"], 1),
    ("dpo-data-empty", lambda w, t, c: _dpo_data(w, t, "", c),
     ["mutation.finetune.datasets.0", "prefs.jsonl", "is empty", 'per line with "prompt", "chosen", "rejected"'], 1),
    ("dpo-data-garbage", lambda w, t, c: _dpo_data(w, t, GARBAGE, c),
     ["mutation.finetune.datasets.0", "prefs.jsonl", "line 1 is not JSON"], 1),
    ("dpo-data-not-objects", lambda w, t, c: _dpo_data(w, t, "[1, 2]\n", c),
     ["prefs.jsonl", "item 0 is not an object"], 1),
    ("member-nan", lambda w, t, c: _diverged_member(w, t)(c),
     ["population member 'diverged'", "model.safetensors holds NaN or Inf values in", "remove the member"], 1),
    ("validation-is-fitness", lambda w, t, c: at(c, "fitness.validation", [TASK]),
     ["fitness.validation repeats fitness task(s) 'bi_add'", "give fitness.validation a separate task"], 1),
    ("namespace-too-long", lambda w, t, c: at(c, "publish.namespace", "a" * 300),
     ["publish.namespace", "300 characters", "at most 96"], 1),
]


def files_under(root: Path, *, skip: Path) -> dict[str, bytes | None]:
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*")) if skip not in (p, *p.parents)}


@pytest.mark.parametrize("make, expected, lines", [c[1:] for c in PROMISE_CASES], ids=[c[0] for c in PROMISE_CASES])
def test_a_bad_input_is_one_clear_error_and_nothing_of_the_users_changes(world, tmp_path, capsys, make, expected,
                                                                       lines):
    path = write(tmp_path, make(world, tmp_path, good(world, tmp_path)))
    before = files_under(tmp_path, skip=tmp_path / "run")
    code, err = evolve_cli(path, capsys)
    assert code == 2, err
    assert err.startswith("hubevo: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == lines, err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} missing from: {err}"
    assert files_under(tmp_path, skip=tmp_path / "run") == before
    state = load_state(tmp_path / "run") if (tmp_path / "run").is_dir() else None
    assert state is None or not state.evaluations


@pytest.mark.slow
def test_an_unknown_heldout_task_is_called_a_heldout_task(world, tmp_path, capsys):
    code, err = evolve_cli(write(tmp_path, at(good(world, tmp_path), "fitness.heldout", ["no_such_task"])), capsys)
    assert code == 2 and "'no_such_task'" in err
    assert "held-out task 'no_such_task'" in err


def test_a_run_folder_of_an_earlier_version_resumes_and_is_marked(world, tmp_path, capsys):
    from hubevo.fsio import RUN_MARKER

    path = write(tmp_path, good(world, tmp_path))
    assert evolve_cli(path, capsys)[0] == 0
    (tmp_path / "run" / RUN_MARKER).unlink()  # as a version without the marker left it
    code, err = evolve_cli(path, capsys, "--resume")
    assert code == 0, err
    assert (tmp_path / "run" / RUN_MARKER).is_file() and load_state(tmp_path / "run").finished
