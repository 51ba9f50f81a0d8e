"""What the Space's test modules share besides their fixtures: the Hub address links point to, the `sim` run's
short names for its individuals, and a run's recorded decision as written on disk."""

from __future__ import annotations

import json
from pathlib import Path

from space.data.loading import RunData

HUB = "https://hub.example"


def ids(run: RunData) -> dict[str, str]:
    """Short names (s1, s2, c1, c2, c3) -> individual ids."""
    table = run.results
    seeds = dict(zip(table["model"], table["id"], strict=True))
    bred = {(g, m): i for g, m, i in zip(table["generation"], table["method"], table["id"], strict=True)}
    return {"s1": seeds["alice/s1"], "s2": seeds["alice/s2"], "c1": bred[1, "linear"], "c3": bred[1, "slerp"],
            "c2": bred[2, "slerp"]}


def recorded(run: RunData) -> dict:
    return json.loads((Path(run.where) / "champion.json").read_text())
