"""Helpers the test modules share: test modules import from here (or get fixtures from conftest.py),
never from one another."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float = 120.0, every: float = 0.1,
               what: str = "the condition") -> T:
    """Poll `predicate` until it returns something truthy, and return that; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return value


def wait_for_generation(proc, run_dir, *, generation: int, timeout: float = 240.0) -> None:
    """Until a run has evaluated a candidate of `generation` (its state on disk says so), failing if it ends first;
    `proc` is a process, or anything whose `poll()` is None while the run goes on (a running job)."""
    from hubevo.state.runstate import load_state

    def reached() -> bool:
        state = load_state(run_dir) if (run_dir / "state.json").exists() else None
        if state and state.generation == generation and any(
                e.generation == generation for e in state.evaluations.values()):
            return True
        assert proc.poll() is None, "the run ended before it could be killed"
        return False

    wait_until(reached, timeout=timeout, every=0.05, what=f"the run to evaluate a candidate of generation {generation}")


def killed_mid_generation(cfg, *, config_path, generation: int = 1) -> list[str]:
    """`hubevo evolve` of `cfg` (written to `config_path`) in another process, SIGKILLed once it has evaluated a
    candidate of `generation`; returns the command, to run again with `--resume`."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    Path(config_path).write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    command = [sys.executable, "-m", "hubevo.cli", "evolve", str(config_path), "--no-progress"]
    proc = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_generation(proc, cfg.output.dir, generation=generation)
    finally:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return command


def wait_job_end(api, job_id: str, *, namespace: str, timeout: float = 30.0) -> str:
    """The stage a Hugging Face Job ended in (COMPLETED, ERROR or CANCELED), once it has ended."""
    def ended() -> str | None:
        stage = api.inspect_job(job_id=job_id, namespace=namespace).status.stage
        return stage if stage in ("COMPLETED", "ERROR", "CANCELED") else None

    return wait_until(ended, timeout=timeout, what=f"job {job_id} to end")
