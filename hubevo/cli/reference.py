"""Command line for getting started: `hubevo config [--example]` (the run file's reference) and `hubevo zoo DIR`.

`add_commands(subparsers)` registers both on the main parser (hubevo/cli/main.py); `evolve_epilog()` is the
reference `hubevo evolve --help` ends with. `hubevo zoo DIR` writes the demo zoo into DIR, where the run files
of `examples/` and `hubevo config --example` name its members and tasks by relative paths.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def evolve_epilog() -> str:
    from hubevo.config.example import reference_text

    return reference_text() + "\nRunnable run files, one per search strategy: examples/ (README.md there)."


def add_commands(subparsers) -> None:
    config = subparsers.add_parser(
        "config", help="the run file's reference: its sections, or an annotated example (--example)",
        description="Print the run file's top-level sections and where each field is described; with --example, "
                    "an annotated run file (every section, each field's default and a comment).")
    config.add_argument("--example", action="store_true", help="print an annotated run file that runs as it is "
                                                               "on the demo zoo (hubevo zoo zoo)")
    config.set_defaults(func=cmd_config)
    zoo = subparsers.add_parser(
        "zoo", help="write the tiny demo zoo (models and lm-eval tasks) into a folder, for run files to name",
        description="Build the demo zoo (cached; about a minute the first time) and write it into DIR: base/, "
                    "digits/, letters/ and tasks/. The files in examples/ name it as ./zoo/...: "
                    "`hubevo zoo examples/zoo` makes them run as they are.")
    zoo.add_argument("dir", help="the folder to write (new, empty, or an earlier zoo folder)")
    zoo.add_argument("--recipe", choices=["fast", "hard"], default="fast",
                     help="fast: the unit tests' zoo; hard: specialists whose skills interfere in naive merges")
    zoo.add_argument("--cache-dir", default=None, help="where built zoos are cached")
    zoo.add_argument("--no-progress", action="store_true", help="hide the build's progress bar")
    zoo.set_defaults(func=cmd_zoo)


def cmd_config(args: argparse.Namespace) -> int:
    from hubevo.config.example import example_run_file, reference_text

    print(example_run_file() if args.example else reference_text(), end="" if args.example else "\n")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from hubevo.demo.zoo_folder import write_zoo

    zoo = write_zoo(Path(args.dir), recipe=args.recipe, cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                    progress=not args.no_progress)
    print(f"demo zoo ({args.recipe}) in {args.dir}: members {', '.join(p.name for p in zoo.specialists.values())}, "
          f"base {zoo.base.name}, lm-eval tasks in {zoo.tasks_dir.name}/ ({', '.join(zoo.fitness_tasks)}; "
          f"validation {', '.join(zoo.validation_tasks)}; held-out {', '.join(zoo.heldout_tasks)})")
    return 0
