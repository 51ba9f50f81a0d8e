"""Every file hubevo reads, broken the ways a real machine breaks it, is one clear line before any work.

The files: the run config, a member's config.json, tokenizer and weights, a task's YAML and data file, a
preference file, a run's state.json. The breaks: no read permission, saved as Latin-1 or as UTF-16, a folder
where the file belongs. Each case runs `hubevo evolve` in-process on a config that is valid but for that file,
and checks exit 2, one line on stderr naming the file, the field that named it and the fix, and that nothing in
the user's folders changed.

Permissions: the tests run as root here (and in CI), and root reads any file whatever its mode. A `chmod 000`
file is made unreadable for real by dropping, for the duration of the command and on the thread that runs it,
the two capabilities that let root ignore file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): the kernel then
refuses the read as it refuses any other user's. As another user, the `chmod 000` alone does it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
import yaml

from hubevo.cli.main import main
from hubevo.evaluation.records import Evaluation
from hubevo.fsio import RUN_MARKER
from hubevo.state.runstate import RunState, config_hash
from tests.helpers.bad_input import TASK, at, build_world, good

torch.set_num_threads(1)

NON_ASCII = "café, naïve, José"  # what a Latin-1 or UTF-16 file holds and UTF-8 would hold too


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    return build_world(tmp_path_factory.mktemp("bad-files"))


# root without the capabilities that ignore file modes ---------------------------------------------------------
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAPS_V3 = 1, 2, 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _caps(libc, data=None):
    header, caps = _CapHeader(_CAPS_V3, 0), data if data is not None else (_CapData * 2)()
    call = libc.capset if data is not None else libc.capget
    if call(ctypes.byref(header), caps) != 0:
        raise OSError(ctypes.get_errno(), "capget/capset failed")
    return caps


@contextlib.contextmanager
def modes_apply_to_root():
    """File modes bind this thread even as root: its effective CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH are
    dropped, and raised again from the permitted set afterwards."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    caps = _caps(libc)
    saved = caps[0].effective
    caps[0].effective &= ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH))
    _caps(libc, caps)
    try:
        yield
    finally:
        caps = _caps(libc)
        caps[0].effective = saved
        _caps(libc, caps)


@contextlib.contextmanager
def unreadable(path: Path):
    """`path` with mode 000 that this thread really cannot read (or list, for a folder)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    path.chmod(0)
    try:
        with modes_apply_to_root():
            with pytest.raises(PermissionError):
                os.listdir(path) if path.is_dir() else path.open("rb").close()
            yield
    finally:
        path.chmod(mode)


# the files, each in a config that is valid but for it -----------------------------------------------------------


def _config(world, tmp):
    text = f"# {NON_ASCII}\n" + yaml.safe_dump(good(world, tmp))
    return good(world, tmp), tmp / "run.yaml", text, ["run config"]


def _member_file(world, tmp, name):
    member = shutil.copytree(world["zoo"]["ft1"], tmp / "member")
    cfg = at(good(world, tmp), "population.members", [str(member), str(world["zoo"]["ft2"])])
    file = member / name
    text = json.dumps({**json.loads(file.read_text()), "note": NON_ASCII}, ensure_ascii=False) \
        if name.endswith(".json") else None
    return cfg, file, text, ["population member 'member'", "population.members"]


def _task_folder(world, tmp):
    """A copy of the task folder whose YAML names the copy's data file."""
    folder = shutil.copytree(world["tasks"], tmp / "tasks")
    spec = yaml.safe_load((folder / f"{TASK}.yaml").read_text())
    spec["dataset_kwargs"] = {"data_files": {"test": str(folder / f"{TASK}.jsonl")}}
    (folder / f"{TASK}.yaml").write_text(yaml.safe_dump(spec))
    return folder, at(good(world, tmp), "fitness.include_path", [str(folder)])


def _task_data(world, tmp):
    folder, cfg = _task_folder(world, tmp)
    rows = [{"q": f"{a}+{b}= {NON_ASCII}", "a": str(a + b)} for a in range(3) for b in range(3)]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return cfg, folder / f"{TASK}.jsonl", text, [f"task {TASK!r}", "data_files"]


def _task_yaml(world, tmp):
    folder, cfg = _task_folder(world, tmp)
    file = folder / f"{TASK}.yaml"
    return cfg, file, f"# {NON_ASCII}\n" + file.read_text(), ["fitness.include_path"]


def _preferences(world, tmp):
    rows = [{"prompt": f"{i}+1=", "chosen": str(i + 1), "rejected": f"{NON_ASCII} {i}"} for i in range(8)]
    file = tmp / "prefs.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = at(good(world, tmp), "mutation", {"probability": 1.0, "operators": ["dpo"], "finetune": {
        "datasets": [{"path": str(file)}], "samples": 8, "steps": [1, 2], "baseline_steps": []}})
    return cfg, file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), \
        ["mutation.finetune.datasets.0"]


def _state(world, tmp):
    """A run folder that paid for an evaluation, resumed (`--resume`) under the same config."""
    from hubevo.config import parse_config

    cfg = good(world, tmp)
    parsed = parse_config(cfg, root=tmp)
    run = tmp / "run"
    run.mkdir()
    (run / RUN_MARKER).write_text("hubevo made this folder\n")
    state = RunState(config_hash=config_hash(parsed), stop_reason=NON_ASCII,
                     evaluations={"a": Evaluation(id="a", generation=0, status="ok", fitness=0.5)})
    (run / "state.json").write_text(state.model_dump_json())
    (run / "config.yaml").write_text(yaml.safe_dump(parsed.model_dump(mode="json")))
    return cfg, run / "state.json", state.model_dump_json(), ["run state", "output.dir"]


FILES = {
    "config": _config,
    "member-config": lambda w, t: _member_file(w, t, "config.json"),
    "member-tokenizer": lambda w, t: _member_file(w, t, "tokenizer.json"),
    "member-weights": lambda w, t: _member_file(w, t, "model.safetensors"),
    "task-data": _task_data,
    "task-yaml": _task_yaml,
    "preferences": _preferences,
    "state": _state,
}
BREAKS = {  # how the file is broken -> what the line must say of it
    "unreadable": ["cannot be read by this user (permission denied)", "chmod a+r"],
    "latin1": ["Latin-1", "'é'", "save it as UTF-8"],
    "utf16": ["UTF-16", "save it as UTF-8"],
    "folder": ["is a folder, not a file"],
}
TEXTLESS = {"member-weights"}  # binary: an encoding does not apply
# lm-eval reads task YAML as YAML allows, UTF-16 after its byte-order mark included: such a file runs (below)
READ_AS_UTF16 = {"task-yaml"}


def _break(file: Path, how: str, text: str | None) -> None:
    if how == "latin1":
        file.write_bytes(text.encode("latin-1"))
    elif how == "utf16":
        file.write_bytes(text.encode("utf-16"))
    elif how == "folder":
        file.unlink()
        file.mkdir()
        (file / "inside.txt").write_text("a file where the folder should not be\n")


def snapshot(root: Path) -> dict[str, str | None]:
    """Every path under `root` -> a hash of its bytes (None for a folder); hubevo's lock file aside."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in sorted(root.rglob("*")) if p.name != ".lock"}


CASES = [(name, how) for name in FILES for how in BREAKS
         if not (name in TEXTLESS and how in ("latin1", "utf16")) and not (name in READ_AS_UTF16 and how == "utf16")]


@pytest.mark.parametrize("name, how", CASES, ids=[f"{n}-{h}" for n, h in CASES])
def test_a_file_that_cannot_be_read_is_one_line_naming_it_and_its_field(world, tmp_path, capsys, name, how):
    cfg, file, text, named = FILES[name](world, tmp_path)
    run_file = tmp_path / "run.yaml"
    if file != run_file:
        run_file.write_text(yaml.safe_dump(cfg))
    else:
        file.write_text(text)
    _break(file, how, text)
    before = snapshot(tmp_path)
    args = ["evolve", str(run_file), "--no-progress", *(["--resume"] if name == "state" else [])]
    with unreadable(file) if how == "unreadable" else contextlib.nullcontext():
        code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("hubevo: error: ") and len(err.strip().splitlines()) == 1, err
    for fragment in [repr(str(file)), *named, *BREAKS[how]]:
        assert fragment in err, f"{fragment!r} missing from: {err}"
    assert snapshot(tmp_path) == before  # nothing of the user's changed, and no run folder was made or touched


def test_evolve_on_a_folder_says_it_is_a_folder(world, tmp_path, capsys):
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(good(world, tmp_path)))
    code = main(["evolve", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "is a folder, not a file" in err and "does not exist" not in err, err
    assert "run.yaml" in err  # the run file it probably meant


# folders that cannot be read ------------------------------------------------------------------------------------
def _member_folder(world, tmp):
    member = shutil.copytree(world["zoo"]["ft1"], tmp / "member")
    return at(good(world, tmp), "population.members", [str(member), str(world["zoo"]["ft2"])]), member, \
        ["population member", "population.members", "chmod a+rx"]


def _task_dir(world, tmp):
    folder, cfg = _task_folder(world, tmp)
    return cfg, folder, ["task folder", "fitness.include_path", "chmod a+rx"]


@pytest.mark.parametrize("make", [_member_folder, _task_dir], ids=["member-folder", "include-path-folder"])
def test_a_folder_that_cannot_be_read_is_one_line_naming_it(world, tmp_path, capsys, make):
    cfg, folder, named = make(world, tmp_path)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    before = snapshot(tmp_path)
    with unreadable(folder):
        code = main(["evolve", str(tmp_path / "run.yaml"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    for fragment in [repr(str(folder)), "cannot be read by this user (permission denied)", *named]:
        assert fragment in err, f"{fragment!r} missing from: {err}"
    assert snapshot(tmp_path) == before


def test_a_task_yaml_in_utf16_is_read_as_lm_eval_reads_it(world, tmp_path):
    """YAML may be UTF-16 after its byte-order mark, and lm-eval reads a task file so: hubevo's own check of the
    task's data files reads it too, rather than skipping it."""
    from hubevo.evaluation.taskcheck import local_task_problems

    folder, _ = _task_folder(world, tmp_path)
    spec = yaml.safe_load((folder / f"{TASK}.yaml").read_text())
    spec["dataset_kwargs"] = {"data_files": {"test": str(tmp_path / "gone.jsonl")}}
    (folder / f"{TASK}.yaml").write_bytes(f"# {NON_ASCII}\n{yaml.safe_dump(spec)}".encode("utf-16"))
    [problem] = local_task_problems([folder], [TASK])
    assert "gone.jsonl" in problem and "does not exist" in problem


def test_worker_on_a_file_it_cannot_read_makes_nothing(world, tmp_path, capsys):
    (tmp_path / "run.yaml").write_bytes(f"# {NON_ASCII}\n{yaml.safe_dump(good(world, tmp_path))}".encode("latin-1"))
    code = main(["worker", str(tmp_path / "run.yaml"), "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "run config" in err and "Latin-1" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()
