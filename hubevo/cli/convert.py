"""Command line for mergekit-evolve users: `hubevo convert MERGEKIT_EVOLVE.yaml [-o run.yaml] [--max-fevals N ...]`.

`add_commands(subparsers)` registers it on the main parser (hubevo/cli/main.py). It takes mergekit-evolve's
own command-line options, so a mergekit-evolve command line converts as it is, and writes the equivalent
hubevo run file with a comment on each field saying where it came from (`hubevo.config.mergekit_evolve`);
what hubevo cannot follow is named in the file and on stderr. Without `-o` the file goes to stdout, its paths
relative to the working directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def add_commands(subparsers) -> None:
    convert = subparsers.add_parser(
        "convert", help="write the hubevo run file of a mergekit-evolve config (and its command-line options)",
        description="Convert a mergekit-evolve config (genome: + tasks:) and mergekit-evolve's command-line "
                    "options into a commented hubevo run file. `hubevo evolve` also runs such a file as it is.")
    convert.add_argument("config", help="the mergekit-evolve YAML file")
    convert.add_argument("-o", "--output", default=None,
                         help="where to write the run file (default: stdout, paths relative to the working directory)")
    add_mergekit_options(convert.add_argument_group("mergekit-evolve's options (as mergekit-evolve takes them)"))
    convert.set_defaults(func=cmd_convert)


def add_mergekit_options(group) -> None:
    """mergekit-evolve's command-line options, each stored under its flag only when given (`mergekit_options`)."""
    from hubevo.config.mergekit_evolve import EVOLVE_STRATEGIES, OPTIONS

    kinds = {"int": int, "float": float, "str": str, "path": str}
    for flag, kind in OPTIONS.items():
        names = [flag, "-s"] if flag == "--strategy" else [flag]
        if kind in kinds:
            group.add_argument(*names, dest=flag, type=kinds[kind], default=argparse.SUPPRESS, metavar=kind.upper())
        elif kind == "paths":
            group.add_argument(flag, dest=flag, action="append", default=argparse.SUPPRESS, metavar="PATH")
        elif kind == "switch":
            group.add_argument(flag, dest=flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS)
        elif kind == "flag":
            group.add_argument(flag, dest=flag, action="store_true", default=argparse.SUPPRESS)
        else:
            group.add_argument(*names, dest=flag, choices=EVOLVE_STRATEGIES, default=argparse.SUPPRESS)


def mergekit_options(args: argparse.Namespace) -> dict:
    """The mergekit-evolve options given on the command line: flag -> value."""
    from hubevo.config.mergekit_evolve import OPTIONS

    return {flag: value for flag, value in vars(args).items() if flag in OPTIONS}


def cmd_convert(args: argparse.Namespace) -> int:
    from hubevo.config import load
    from hubevo.config.mergekit_evolve import convert, is_mergekit_evolve, render
    from hubevo.errors import ConfigError
    from hubevo.fsio import atomic_write_text

    source = Path(args.config)
    data = _read(source)
    if not is_mergekit_evolve(data):
        raise ConfigError(f"{str(source)!r} is not a mergekit-evolve config (it needs top-level genome: and "
                          "tasks:); a hubevo run file runs as it is: hubevo evolve " + str(source))
    out = Path(args.output) if args.output else None
    options = mergekit_options(args)
    conversion = convert(data, options=options, source=str(source), source_dir=source.resolve().parent,
                         out_dir=out.resolve().parent if out else Path.cwd())
    text = render(conversion, source=str(source), run_file=str(out or "run.yaml"))
    load.parse_config(yaml.safe_load(text), root=(out.resolve().parent if out else Path.cwd()),
                      source="(converted)")  # what is written loads: a bad mapping fails here, not at run time
    for key, why in conversion.unmapped.items():
        print(f"hubevo convert: not mapped: {key}: {why}", file=sys.stderr)
    if out is None:
        sys.stdout.write(text)
        return 0
    if out.resolve() == source.resolve():
        raise ConfigError(f"-o {str(out)!r} is the mergekit-evolve file itself; name another file")
    atomic_write_text(out, text)
    print(f"wrote {out}: {sum(map(len, conversion.mapped.values()))} fields from mergekit-evolve's config and "
          f"options, {len(conversion.unmapped)} not mapped; run it: hubevo evolve {out}")
    return 0


def _read(path: Path):
    from hubevo.config.load import read_yaml

    return read_yaml(path, what="mergekit-evolve config")
