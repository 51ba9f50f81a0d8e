"""The runs the Space's tests read: `sim` beside an unfinished run (tests/helpers/sim_runs.py), and two runs
with finals (tests/helpers/space_runs.py). Each test module writes its own, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from space.data.loading import RunData, load_run_dir
from tests.helpers.sim_runs import write_run
from tests.helpers.space_runs import write_finals_run


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("space-runs")
    write_run(root, name="sim")
    write_run(root, name="other", finished=False)
    (root / "not-a-run").mkdir()
    return root


@pytest.fixture(scope="module")
def sim(runs_root) -> RunData:
    return load_run_dir(runs_root / "sim")


@pytest.fixture(scope="module")
def finals(tmp_path_factory) -> dict[str, RunData]:
    """Two finished runs with finals: one crowns a bred child, the other keeps a member (tests/helpers/space_runs)."""
    root = tmp_path_factory.mktemp("space-finals")
    return {kind: load_run_dir(write_finals_run(root, name=f"fin-{kind}", champion=kind).output.dir)
            for kind in ("bred", "seed")}
