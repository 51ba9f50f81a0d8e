"""The run state: the single source of truth for `--resume`, and the events a run appends.

- `runstate`: `RunState` (what was paid for), its status line, saving, loading and the config hash,
  and the seeded random streams every stage draws from;
- `events`: one JSON line per committed step, for people and tools watching a run.
"""
