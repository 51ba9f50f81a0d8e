"""Command line for a run's individuals: `hubevo export RUN ID DIR [--heldout]`.

`add_commands(subparsers)` registers it on the main parser (hubevo/cli.py). A run keeps full
weights for its champion only; `export` rebuilds any individual (by id or name) from its
recipe into DIR (new, empty, or an earlier export, which it replaces), with its lineage card.
With `--heldout` its held-out scores are computed first (if the run has none for it), recorded
in the run and shown on the card.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers) -> None:
    export = subparsers.add_parser("export", help="write any individual of a run as a model folder with its card")
    export.add_argument("run", help="the run folder (its output.dir)")
    export.add_argument("id", help="the individual's id or name (see results.parquet or the leaderboard)")
    export.add_argument("dir", help="where to write the model folder (new, empty, or an earlier export: replaced)")
    export.add_argument("--heldout", action="store_true", help="score it on the held-out tasks first")
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from hubevo.publish.export import export_from_folder

    if args.heldout:
        score_on_request(Path(args.run), args.id)
    name, folder = export_from_folder(Path(args.run), args.id, Path(args.dir))
    print(f"exported {name} to {folder}")
    return 0


def score_on_request(run_dir: Path, key: str) -> None:
    """Held-out scores of one individual, kept in the run's state and results table."""
    from hubevo.config import OutputConfig, load_config
    from hubevo.errors import ConfigError
    from hubevo.publish.export import find_individual
    from hubevo.run.loop import score_heldout
    from hubevo.state.runstate import load_state

    state = load_state(run_dir)
    if state is None:
        raise ConfigError(f"{str(run_dir)!r} is not a run folder (no state.json)")
    cfg = load_config(run_dir / "config.yaml")
    cfg = cfg.model_copy(update={"output": OutputConfig(dir=run_dir.resolve())})
    score_heldout(cfg, [find_individual(state, key, where=run_dir)])
