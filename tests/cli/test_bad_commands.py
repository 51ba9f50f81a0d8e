"""Every command, not only `evolve`: bad arguments of `space`, `worker` and `demo` are one line (exit 2) and touch
nothing; the demo replaces only a folder a demo made; `--resume` refuses a run whose state is gone and resumes a
moved one; Ctrl-C and SIGTERM stop a run with one line that says how to resume it, and `--resume` finishes it.

The table cases run the command line in-process and stop before any model work; the signal tests run `hubevo
evolve` as a process on the tiny world of `tests/helpers/bad_input.py`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from hubevo.cli.main import main
from hubevo.config import parse_config
from hubevo.demo.runner import DEMO_MARKER, check_demo_folder
from hubevo.evaluation.records import Evaluation
from hubevo.fsio import RUN_MARKER
from hubevo.run.scheduler import JOBS_FILE, state_dir
from hubevo.state.runstate import RunState, config_hash, load_state, open_state
from tests.helpers import wait_for_generation, wait_until
from tests.helpers.bad_input import build_world, good

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    return build_world(tmp_path_factory.mktemp("bad-commands"))


def hashes(root: Path) -> dict[str, str]:
    """Every path under `root` (and `root` itself) with a digest of its content: what a case must leave as it was."""
    if not root.exists():
        return {}
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def finished_run(world, tmp: Path, *, name: str = "bad") -> Path:
    """A folder as `hubevo evolve` leaves a finished run: marker, config, state, events and a survivor."""
    cfg = parse_config({**good(world, tmp), "name": name}, root=tmp)
    run = cfg.output.dir
    (run / "models" / "g0-1").mkdir(parents=True)
    (run / RUN_MARKER).write_text("")
    (run / "models" / "g0-1" / "model.safetensors").write_bytes(b"weights")
    state = RunState(config_hash=config_hash(cfg), evaluations={"a": Evaluation(id="a", generation=0, status="ok",
                                                                                  fitness=0.5)},
                     saved={"a": str(run / "models" / "g0-1")}, finished=True)
    (run / "state.json").write_text(state.model_dump_json())
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    (run / "events.jsonl").write_text('{"event": "evaluated", "id": "a"}\n')
    return run


# the table: (id, setup(world, tmp) -> (argv, folder that must stay as it was), fragments of the one line) ---------
def _space_on_a_file(world, tmp):
    (tmp / "runs.txt").write_text("not a folder")
    return ["space", "--runs", str(tmp / "runs.txt")], tmp / "runs.txt"


def _space_on_a_missing_folder(world, tmp):
    return ["space", "--runs", str(tmp / "nowhere" / "runs")], tmp / "nowhere"


def _worker_on_a_file(world, tmp):
    (tmp / "run.yaml").write_text(yaml.safe_dump(good(world, tmp)))
    (tmp / "runs.txt").write_text("not a folder")
    return ["worker", str(tmp / "run.yaml"), "--runs", str(tmp / "runs.txt")], tmp / "runs.txt"


def _demo_on_a_file(world, tmp):
    (tmp / "out.txt").write_text("not a folder")
    return ["demo", "--out", str(tmp / "out.txt"), "--cache-dir", str(tmp / "zoo")], tmp / "out.txt"


def _demo_on_an_evolve_run(world, tmp):
    return ["demo", "--out", str(finished_run(world, tmp)), "--cache-dir", str(tmp / "zoo")], tmp / "run"


def _resume_without_state(world, tmp):
    run = finished_run(world, tmp)
    (run / "state.json").unlink()
    (tmp / "run.yaml").write_text(yaml.safe_dump(good(world, tmp)))
    return ["evolve", str(tmp / "run.yaml"), "--resume", "--no-progress"], run


CASES = [
    ("space-runs-file", _space_on_a_file, ["--runs", "runs.txt", "is a file, not a folder"]),
    ("space-runs-missing", _space_on_a_missing_folder, ["--runs", "does not exist", "never created"]),
    ("worker-runs-file", _worker_on_a_file, ["--runs", "runs.txt", "is a file, not a folder"]),
    ("demo-out-file", _demo_on_a_file, ["--out", "out.txt", "is a file, not a folder", "another --out"]),
    ("demo-out-evolve-run", _demo_on_an_evolve_run, ["--out", "the run 'bad'", "did not make", "another --out"]),
    ("resume-without-state", _resume_without_state, ["no state.json", "drop --resume"]),
]


@pytest.mark.parametrize("setup, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_command_is_one_line_and_touches_nothing(world, tmp_path, capsys, setup, fragments):
    argv, kept = setup(world, tmp_path)
    before = hashes(kept)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("hubevo: error: ") and err.count("\n") == 1, err
    assert all(fragment in err for fragment in fragments), err
    assert hashes(kept) == before  # nothing created, deleted or changed
    assert not (tmp_path / "zoo").exists()  # refused before the demo's zoo is built


def test_an_unreadable_runs_folder_is_one_line(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root may read anywhere")
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o000)
    try:
        assert main(["space", "--runs", str(runs)]) == 2
    finally:
        runs.chmod(0o755)
    assert "cannot be read" in capsys.readouterr().err


def test_the_job_store_lives_in_hubevos_state_folder_not_in_the_runs_folder(tmp_path):
    from hubevo.run.scheduler import Scheduler

    runs = tmp_path / "runs"
    sched = Scheduler(runs).start()
    sched.shutdown()
    assert not runs.exists()  # an empty runs folder is not made before its first run
    assert (state_dir(runs) / JOBS_FILE).is_file()
    assert state_dir(runs) != state_dir(tmp_path / "other") and state_dir(runs) == state_dir(tmp_path / "." / "runs")


# the demo's folder ----------------------------------------------------------------------------------------------
def test_the_demo_takes_its_own_folder_and_an_earlier_demos(world, tmp_path):
    ours = finished_run(world, tmp_path / "ours")
    (ours / DEMO_MARKER).write_text("")
    check_demo_folder(ours)
    earlier = finished_run(world, tmp_path / "earlier", name="demo")  # a demo's folder from before the marker
    config = yaml.safe_load((earlier / "config.yaml").read_text())
    zoo = tmp_path / "cache" / "hard-seed-0-0123abcd"
    config["population"]["members"] = [{"path": str(zoo / s), "name": s} for s in ("digits", "letters")]
    config["population"]["base_model"] = {"path": str(zoo / "base"), "name": "base"}
    (earlier / "config.yaml").write_text(yaml.safe_dump(config))
    check_demo_folder(earlier)
    config["population"]["members"][0]["path"] = str(tmp_path / "mine" / "digits")  # a run named demo of the user's
    (earlier / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(Exception, match="the run 'demo', which the demo did not make"):
        check_demo_folder(earlier)


# resume ---------------------------------------------------------------------------------------------------------
def test_a_run_hashed_with_its_old_folder_resumes_from_its_new_one(world, tmp_path):
    old = finished_run(world, tmp_path / "a")
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    legacy = RunState.model_validate_json((old / "state.json").read_text())
    payload = {k: v for k, v in cfg.items() if k not in ("publish", "execution", "tracking")}
    payload["budget"] = {k: v for k, v in payload["budget"].items()
                         if k not in ("generations", "max_evaluations", "wall_time_s")}
    payload["fitness"] = {k: v for k, v in payload["fitness"].items()
                          if k not in ("dtype", "hflm_kwargs", "max_batch_size", "estimator")}
    legacy.config_hash = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    (old / "state.json").write_text(legacy.model_dump_json())  # as hubevo hashed runs before this change
    new = tmp_path / "b" / "deeper" / "renamed"
    new.parent.mkdir(parents=True)
    shutil.move(old, new)
    moved_cfg = parse_config({**cfg, "output": {"dir": str(new)}}, root=tmp_path)
    state = open_state(moved_cfg, resume=True)
    assert state is not None and state.saved == {"a": str(new / "models" / "g0-1")}
    assert state.config_hash == config_hash(moved_cfg)


# the preference file --------------------------------------------------------------------------------------------
def test_a_preference_file_smaller_than_a_sample_is_warned_about_in_one_line(tmp_path):
    from hubevo.config.finetune import FinetuneSpace
    from hubevo.finetune.data import check_sources

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "1+1=", "chosen": "2", "rejected": "3"}\n')
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("hubevo").addHandler(handler)
    try:
        check_sources(FinetuneSpace(datasets=[{"path": str(pairs)}]))
    finally:
        logging.getLogger("hubevo").removeHandler(handler)
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert str(pairs) in lines[0] and "holds 1 pair," in lines[0] and "batch_size 8" in lines[0]
    assert "mutation.finetune.samples" in lines[0]


# Ctrl-C and SIGTERM ---------------------------------------------------------------------------------------------
def start_evolve(world, tmp: Path, *, generations: int) -> tuple[subprocess.Popen, Path, Path]:
    cfg = good(world, tmp)
    cfg["budget"]["generations"] = generations
    run_file = tmp / "run.yaml"
    run_file.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # a shell's background job ignores SIGINT, and a child inherits that: the run gets Ctrl-C as a terminal gives it
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "hubevo.cli", "evolve", "run.yaml",
                             "--no-progress"], cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return proc, run_file, tmp / "run"


def stopped(proc: subprocess.Popen, signum: int) -> tuple[int | None, str]:
    """The exit code and stderr of `proc` after `signum`; None and every thread's stack (faulthandler, on SIGABRT)
    when it has not ended 60 s later."""
    try:
        proc.send_signal(signum)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            return None, err
        return proc.returncode, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stopped_mid_run(world, tmp: Path, signum: int, *, generation: int):
    """A run signalled once it has evaluated a candidate of `generation`: (exit code, stderr, run file, run folder,
    generations). A generation of 4 examples is quick, and a busy machine may let the test see it only after the
    run has ended: then a run twice as long is tried, in a fresh folder. A run that does not end after the signal
    is a defect the warning shows with its threads' stacks; the next try still tests the stop."""
    for generations in (generation + 2, 2 * generation + 4, 4 * generation + 8):
        folder = tmp / f"g{generations}"
        folder.mkdir()
        proc, run_file, run = start_evolve(world, folder, generations=generations)
        wait_for_generation(proc, run, generation=generation)
        code, err = stopped(proc, signum)
        if code is None:
            warnings.warn(f"hubevo evolve did not end within 60 s of {signal.Signals(signum).name}:\n{err[-6000:]}",
                          stacklevel=2)
        elif code != 0:
            return code, err, run_file, run, generations
    raise AssertionError("no run was still going when the signal reached it")


def temp_files(run: Path) -> list[Path]:
    return [p for p in run.rglob(".*") if p.name.endswith((".tmp", ".aside"))]


@pytest.mark.slow  # a run stopped during generation 0, then resumed to its end: about 15 s
def test_ctrl_c_stops_a_run_with_one_line_and_resume_finishes_it(world, tmp_path, capsys):
    code, err, run_file, run, _ = stopped_mid_run(world, tmp_path, signal.SIGINT, generation=0)
    assert code == 130, err
    assert err == "hubevo: stopped (SIGINT); resume with: hubevo evolve run.yaml --no-progress --resume\n", err
    assert temp_files(run) == [] and not load_state(run).finished
    assert main(["evolve", str(run_file), "--no-progress", "--resume"]) == 0
    assert load_state(run).finished and capsys.readouterr().err == ""


@pytest.mark.slow  # a run stopped during generation 1, moved, then resumed to its end: about 20 s
def test_sigterm_stops_a_run_with_one_line_and_it_resumes_from_a_moved_folder(world, tmp_path, capsys):
    code, err, run_file, run, generations = stopped_mid_run(world, tmp_path, signal.SIGTERM, generation=1)
    assert code == 143, err
    assert err == "hubevo: stopped (SIGTERM); resume with: hubevo evolve run.yaml --no-progress --resume\n", err
    assert temp_files(run) == [] and load_state(run).saved
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    shutil.move(run, moved)  # a moved run folder is the same run
    cfg = yaml.safe_load(run_file.read_text())
    run_file.write_text(yaml.safe_dump({**cfg, "output": {"dir": str(moved)}}))
    assert main(["evolve", str(run_file), "--no-progress", "--resume"]) == 0, capsys.readouterr().err
    state = load_state(moved)
    assert state.finished and state.generation == generations
    assert all(Path(path).is_relative_to(moved) for path in state.saved.values())
    assert not run.exists()



def test_a_job_broken_off_as_the_space_stops_leaves_its_run_active(world, tmp_path):
    """`hubevo space` stops on Ctrl-C or SIGTERM without waiting for the generation in hand; the job, broken off as
    the process ends (its next thread pool submission fails), must not mark its run failed."""
    from hubevo.run.scheduler import Scheduler, generation_job, read_control

    cfg = {k: v for k, v in good(world, tmp_path).items() if k != "output"}
    cfg["population"] = {"members": [str(tmp_path / "gone-a"), str(tmp_path / "gone-b")]}  # the job's error
    sched = Scheduler(tmp_path / "runs")
    name = sched.submit({**cfg, "name": "going"}, user="alice", root=tmp_path)
    sched.scheduler.start(paused=True)  # runs nothing
    sched.shutdown(wait=False)  # as `hubevo space` stops
    generation_job(str(sched.runs_root), name)  # the job in hand ends with an error
    assert read_control(tmp_path / "runs" / name)["state"] == "active"  # stopped with the Space, not failed
    restarted = Scheduler(tmp_path / "runs").start()  # the next start runs it again: now the error ends it
    try:
        wait_until(lambda: read_control(tmp_path / "runs" / name)["state"] == "failed", timeout=60,
                   what="the run to fail at the next start")
    finally:
        restarted.shutdown()
