"""Command line: `hubevo evolve run.yaml [--resume]` and `hubevo demo`.

Errors hubevo raises on purpose are printed as one clear line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from hubevo.errors import HubevoError

QUIET_LOGGERS = ("lm_eval", "lm-eval", "transformers", "mergekit", "datasets", "httpx", "accelerate")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def cmd_evolve(args) -> int:
    from hubevo.config import load_config
    from hubevo.loop import evolve
    from hubevo.publish import leaderboard

    cfg = load_config(args.config)
    state = evolve(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"\nstopped: {state.stop_reason}; run directory: {cfg.output.dir}\n")
    print(leaderboard(state, top=args.top))
    return 0


def cmd_demo(args) -> int:
    from hubevo.demo.runner import run_demo

    run_demo(out_dir=Path(args.out), cache_dir=Path(args.cache_dir) if args.cache_dir else None,
             progress=not args.no_progress)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hubevo", description="Evolve language models by merging and selection.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs")
    sub = parser.add_subparsers(dest="command", required=True)
    evolve = sub.add_parser("evolve", help="run or resume an evolution from a YAML run config")
    evolve.add_argument("config", help="path of the run YAML")
    evolve.add_argument("--resume", action="store_true", help="continue the run in output.dir")
    evolve.add_argument("--top", type=int, default=20, help="leaderboard rows to print")
    evolve.add_argument("--no-progress", action="store_true", help="hide progress bars")
    evolve.set_defaults(func=cmd_evolve)
    demo = sub.add_parser("demo", help="build the tiny demo zoo (cached) and run a short evolution on CPU")
    demo.add_argument("--out", default="runs/demo", help="run directory (replaced on every demo run)")
    demo.add_argument("--cache-dir", default=None, help="where the demo zoo is cached")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return args.func(args)
    except HubevoError as err:
        print(f"hubevo: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
