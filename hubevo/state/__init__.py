"""The run state: the single source of truth for `--resume`, and the events a run appends."""
