"""Reading a lineage card back: every score cell of its Scores and comparison tables, and the model its
mergekit-multi recipe rebuilds with mergekit alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from hubevo.publish.lineage_recipe import REBUILD_COMMAND


def markdown_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of the first markdown table under `heading`, header row first."""
    section = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, f"no section {heading!r}"
    lines = [line for line in section.group(1).splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip().strip("`") for cell in line.strip("|").split(" | ")] for line in lines]


def card_cells(text: str, *, model: str) -> dict[tuple[str, str], str]:
    """(model, results.parquet column) -> the card's cell, for the Scores table (this model's per-task scores) and
    the comparison table (fitness, each fitness task, held-out mean), cells as printed."""
    cells = {}
    for task, split, score in markdown_rows(text, "Scores")[1:]:
        cells[(model, f"{'fitness' if split == 'fitness' else 'heldout'}/{task}")] = score
    fitness = re.search(r"Fitness \(weighted mean of the fitness tasks\): \*\*([0-9.]+)\*\*", text).group(1)
    cells[(model, "fitness")] = fitness
    rows = markdown_rows(text, "Against its parents and the baselines")
    columns = ["fitness" if c == "fitness" else "heldout" if c == "held-out mean" else f"fitness/{c}"
               for c in rows[0][2:]]
    for row in rows[1:]:
        name = re.sub(r"^\[(.*)\]\(.*\)$", r"\1", row[0])
        cells.update({(name, column): cell for column, cell in zip(columns, row[2:], strict=True)})
    return cells


def rebuild_from_card(card: Path, fresh: Path, *, members: dict) -> dict:
    """Copy a card's files (README, recipe.yaml, adapters/) to `fresh`, link each member under the name the recipe
    gives it, run `mergekit-multi` as the card says, and return the rebuilt weights."""
    fresh.mkdir()
    for name in ("README.md", "recipe.yaml", "adapters"):
        if (card / name).exists():
            (shutil.copytree if (card / name).is_dir() else shutil.copy)(card / name, fresh / name)
    for member in members.values():
        (fresh / member["label"]).symlink_to(member["path"])
    command = REBUILD_COMMAND.split()
    assert command[0] == "mergekit-multi" and REBUILD_COMMAND in (card / "README.md").read_text()
    subprocess.run([str(Path(sys.executable).with_name(command[0])), *command[1:]], cwd=fresh, check=True,
                   capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return load_file(fresh / "out" / "model.safetensors")


def assert_same_weights(rebuilt: dict, expected: dict) -> None:
    assert set(rebuilt) == set(expected) and rebuilt
    assert all(torch.equal(rebuilt[k], expected[k]) for k in rebuilt)
