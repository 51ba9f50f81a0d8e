"""A small world a run can start in (two tiny merged-compatible members, a wider one, a local lm-eval task) and
a run config that is valid in it: the bad-input and disk tests break one thing of it at a time."""

from __future__ import annotations

import json
from pathlib import Path

from tests.tiny_models import build_llama, build_zoo, write_generation_task

TASK = "bi_add"


def build_world(root: Path) -> dict:
    zoo = build_zoo(root / "zoo", finetunes=2)
    zoo["wide"] = build_llama(root / "zoo" / "wide", seed=5, hidden_size=64)
    rows = [{"q": f"{a}+{b}=", "a": str(a + b)} for a in range(3) for b in range(3)]
    return {"root": root, "zoo": zoo, "tasks": write_generation_task(root / "tasks", TASK, rows, max_gen_toks=3)}


def good(world: dict, tmp: Path) -> dict:
    zoo = world["zoo"]
    return {"name": "bad", "population": {"members": [str(zoo["ft1"]), str(zoo["ft2"])]},
            "fitness": {"tasks": [TASK], "include_path": [str(world["tasks"])], "limit": 4},
            "crossover": {"methods": ["linear"]}, "search": {"baselines": []},
            "budget": {"generations": 0, "population_size": 2}, "output": {"dir": str(tmp / "run")}}


def at(data: dict, dotted: str, value) -> dict:
    """`data` with the field at `dotted` (a.b.c) set to `value` (deep copy)."""
    data = json.loads(json.dumps(data))
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return data
