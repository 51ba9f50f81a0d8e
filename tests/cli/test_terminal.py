"""The terminal of `hubevo evolve`: an opening line, hubevo's own bars only, closing lines that say
where the run is and how to browse it; library bars and warnings come back with `-v`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hubevo import __version__
from hubevo.demo.runner import demo_config

REPO = Path(__file__).resolve().parents[2]
LIBRARY_BARS = ("Running generate_until requests", "Running loglikelihood requests", "Writing model shards",
                "Loading weights", "Map:", "Generating train split")
LIBRARY_WARNINGS = ("[transformers]", "Warning", "warn(", "deprecated")


def hubevo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`hubevo ARGS` in a fresh process whose environment does not quiet the libraries already."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "HF_DATASETS_DISABLE_PROGRESS_BARS",
                        "PYTHONWARNINGS", "TRANSFORMERS_NO_ADVISORY_WARNINGS")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "hubevo.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def write_run(zoo, root: Path, *, name: str, generations: int, baselines: list[str]) -> str:
    """A run YAML on the demo zoo, small enough for a test; returns its file name."""
    cfg = demo_config(zoo, out_dir=root / "runs" / name, generations=generations, population_size=3)
    data = cfg.model_dump(mode="json")
    data["fitness"]["limit"] = 16
    data["search"]["baselines"] = baselines
    data["budget"]["wall_time_s"] = None
    (root / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return f"{name}.yaml"


@pytest.fixture(scope="module")
def small_run(demo_zoo, tmp_path_factory):
    """A one-generation run on the demo zoo (one standard recipe, so a child is written to disk)."""
    root = tmp_path_factory.mktemp("terminal")
    write_run(demo_zoo, root, name="small", generations=1, baselines=["linear"])
    return root


def test_evolve_shows_its_own_bars_and_lines_and_no_library_bars(small_run):
    done = hubevo("evolve", "small.yaml", cwd=small_run)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout + done.stderr
    assert not [bar for bar in LIBRARY_BARS if bar in printed], printed[-3000:]
    assert not [w for w in LIBRARY_WARNINGS if w in printed], printed[-3000:]
    assert "generation 0: 100%" in done.stderr and "generation 1: 100%" in done.stderr  # hubevo's bars
    lines = done.stdout.splitlines()
    assert lines[0].startswith("hubevo evolve: run 'demo'") and "writing to runs/small" in lines[0]
    assert "browse it: hubevo space --runs runs" in done.stdout
    assert "results table: runs/small/results.parquet" in done.stdout
    assert any(line.startswith("champion: ") for line in lines)


def test_the_runs_survivor_cards_are_complete(small_run):
    from huggingface_hub import ModelCard

    from hubevo.publish.lineage_recipe import REBUILD_COMMAND

    cards = sorted((small_run / "runs" / "small" / "models").glob("*/README.md"))
    assert cards, "no survivor card was written"
    for path in cards:
        card = ModelCard.load(path)
        assert card.data.pipeline_tag == "text-generation"
        assert "## Use it" in card.text and "AutoModelForCausalLM.from_pretrained" in card.text
        assert "## Against its parents and the baselines" in card.text
        assert "| `std-linear` |" in card.text or path.parent.name == "std-linear"
        assert REBUILD_COMMAND in card.text and (path.parent / "recipe.yaml").is_file()


def test_verbose_brings_the_library_bars_back(demo_zoo, tmp_path):
    done = hubevo("-v", "evolve", write_run(demo_zoo, tmp_path, name="loud", generations=0, baselines=[]),
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Running generate_until requests" in done.stderr


def test_version_from_any_folder(tmp_path):
    done = hubevo("--version", cwd=tmp_path)
    assert done.stdout.strip() == f"hubevo {__version__}"
