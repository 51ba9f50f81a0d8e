"""The run's event log: one JSON line per committed step (evaluated, survivor, generation), after the state.

Progress for people and tools (the Space's progress bars, `tail -f`); the run state stays the only
source of truth for `--resume`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

EVENTS_FILE = "events.jsonl"


def append_event(run_dir: Path, event: str, **fields) -> None:
    """One line per committed step (appended after the state is saved): progress for people and tools."""
    line = json.dumps({"event": event, "time": time.time(), "pid": os.getpid(), **fields})
    with open(run_dir / EVENTS_FILE, "a") as handle:
        handle.write(line + "\n")


def read_events(run_dir: Path) -> list[dict]:
    path = run_dir / EVENTS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
