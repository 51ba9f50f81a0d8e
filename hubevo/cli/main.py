"""Command line: `hubevo demo`, `hubevo evolve run.yaml [--resume]`, `hubevo worker run.yaml`, `hubevo space`;
`hubevo config [--example]`, `hubevo zoo DIR` and `hubevo convert MERGEKIT_EVOLVE.yaml` to get started.

With no command (as a Hugging Face Space runs `app.py`), the Space starts.

Errors hubevo raises on purpose are printed as one clear line and exit with status 2. Ctrl-C (SIGINT) and SIGTERM
stop every command with one line that says how to resume or rerun it, and exit with status 130 or 143.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from hubevo import __version__
from hubevo.errors import HubevoError


def setup_logging(verbose: bool = False) -> None:
    """hubevo's own lines on stdout; library bars, warnings and logs only with --verbose."""
    from hubevo.terminal import quiet_libraries

    quiet_libraries(verbose=verbose)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s", force=True)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    hubevo = logging.getLogger("hubevo")
    hubevo.handlers[:] = [handler]
    hubevo.setLevel(logging.INFO)
    hubevo.propagate = False


def cmd_evolve(args) -> int:
    from hubevo.cli.convert import mergekit_options
    from hubevo.config import load_config

    # every config error, before anything heavy is imported (a mergekit-evolve config is converted, one line says so)
    cfg = load_config(args.config, mergekit_options=mergekit_options(args))
    from hubevo.publish import report

    print(report.evolve_opening(cfg), flush=True)
    from hubevo.publish.tables import leaderboard
    from hubevo.run.loop import evolve

    state = evolve(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"\nstopped: {state.stop_reason}\n")
    print(leaderboard(state, top=args.top))
    print("", report.champion_line(state), report.reason_line(state), report.clock_line(state),
          *report.browse_lines(cfg.output.dir), sep="\n")
    return 0


def cmd_demo(args) -> int:
    from hubevo.demo.runner import run_demo

    run_demo(out_dir=Path(args.out), cache_dir=Path(args.cache_dir) if args.cache_dir else None,
             progress=not args.no_progress, dpo=args.dpo, zoo_recipe=args.zoo)
    return 0


def cmd_worker(args) -> int:
    """Continuous mode without the UI: the same scheduler, until the run's budget is spent."""
    import time

    from hubevo.config.load import read_yaml
    from hubevo.config.mergekit_evolve import convert, is_mergekit_evolve
    from hubevo.run.lock import run_lock
    from hubevo.run.scheduler import Scheduler, run_status

    data = read_yaml(Path(args.config), what="run config")  # a file that cannot be read: one line, nothing made
    if is_mergekit_evolve(data):  # a mergekit-evolve config runs here as under `hubevo evolve`
        config = Path(args.config).resolve()
        conversion = convert(data, source=args.config, source_dir=config.parent)
        print(conversion.summary(args.config), flush=True)
        data = conversion.data
    sched = Scheduler(Path(args.runs), generation_every_s=args.every, immigrants_every_s=args.immigrants_every,
                      retry_base_s=args.retry_base)
    name = data.get("name", "hubevo")
    if not (sched.runs_root / name / "run.yaml").exists():
        sched.submit(data, user="worker", root=Path(args.config).resolve().parent)
    with run_lock(sched.runs_root / name):  # a second worker on this run stops here, naming this one
        sched.start()
        try:
            while run_status(sched.runs_root / name)["state"] not in ("finished", "stopped", "failed"):
                time.sleep(args.poll)
        finally:
            sched.shutdown()
    status = run_status(sched.runs_root / name)  # after the last job ended: its generation's survivors recorded
    print(f"run {name} {status['state']}: generation {status['generation']}, best fitness {status['best_fitness']}")
    if status["state"] == "failed":
        print(f"hubevo: error: run {name} failed: {status['message']}", file=sys.stderr)
        return 1
    return 0


class Terminated(SystemExit):
    """SIGTERM (how a Space or a Job stops its process), raised in the main thread: the process unwinds as on Ctrl-C,
    so `finally` blocks and atexit handlers (the app's temporary download folder) run. A SystemExit, so that the
    Gradio loop that catches Ctrl-C lets it through."""


def _terminated(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM does not cut the cleanup short
    raise Terminated(0)


@contextlib.contextmanager
def stop_on_sigterm():
    """Within the block, SIGTERM raises `Terminated` in the main thread (elsewhere signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_line(argv: list[str], *, command: str, signum: int) -> str:
    """The one line a command stopped by `signum` ends with: how to go on (a run resumes from its last step)."""
    again = ["hubevo", *argv, *(["--resume"] if command == "evolve" and "--resume" not in argv else [])]
    how = {"evolve": "resume with", "worker": "resume with",
           "demo": "the demo starts afresh each time; rerun"}.get(command, "run it again with")
    return f"hubevo: stopped ({signal.Signals(signum).name}); {how}: {shlex.join(again)}"


def cmd_space(args) -> int:
    """The Space, until Ctrl-C or SIGTERM; either way its scheduler and temporary files go with it."""
    from hubevo.run.scheduler import check_runs_root

    if args.runs:  # a folder named on the command line is read, never created
        check_runs_root(Path(args.runs), must_exist=True)
    try:
        with stop_on_sigterm():
            serve_space(args)
    except Terminated:
        print("hubevo space: stopped (SIGTERM)", flush=True)
    return 0


def serve_space(args) -> None:
    """The Space: scheduler in the background, Gradio UI in front (settings from HUBEVO_* variables)."""
    from dataclasses import replace

    from hubevo.hub.client import make_api
    from hubevo.run.scheduler import Scheduler
    from space.controls.settings import SpaceSettings
    from space.controls.ui import build_app, serve

    settings = SpaceSettings.from_env()
    if args.runs:
        settings = replace(settings, runs_root=Path(args.runs))
    sched = Scheduler(settings.runs_root, api=make_api()).start()
    secret = os.environ.get("WEBHOOK_SECRET")  # set: Hub webhooks bring immigrants at /webhooks/immigrants
    try:
        serve(build_app(controller=sched, api=sched.api, **settings.app_kwargs()), host=args.host, port=args.port,
              webhooks=sched if secret else None, webhook_secret=secret)
    finally:
        sched.shutdown(wait=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hubevo", description="Evolve language models by merging and selection.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs, warnings and progress bars")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    from hubevo.cli.reference import evolve_epilog

    evolve = sub.add_parser("evolve", help="run or resume an evolution from a YAML run config",
                            epilog=evolve_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    evolve.add_argument("config", help="path of the run YAML (or of a mergekit-evolve config, converted as it runs)")
    evolve.add_argument("--resume", action="store_true", help="continue the run in output.dir")
    evolve.add_argument("--top", type=int, default=20, help="leaderboard rows to print")
    evolve.add_argument("--no-progress", action="store_true", help="hide progress bars")
    from hubevo.cli.convert import add_mergekit_options

    add_mergekit_options(evolve.add_argument_group("mergekit-evolve's options (only with a mergekit-evolve config)"))
    evolve.set_defaults(func=cmd_evolve)
    demo = sub.add_parser("demo", help="build the tiny demo zoo (cached) and run a short evolution on CPU")
    demo.add_argument("--out", default="runs/demo", help="run directory (replaced on every demo run)")
    demo.add_argument("--cache-dir", default=None, help="where the demo zoo is cached")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.add_argument("--dpo", action="store_true", help="also mutate by DPO fine-tuning on the shipped pairs")
    demo.add_argument("--zoo", choices=["hard", "fast"], default="hard",
                      help="hard: specialists whose skills interfere in naive merges; fast: the unit tests' zoo")
    demo.set_defaults(func=cmd_demo)
    worker = sub.add_parser("worker", help="continuous mode without the UI (a Hub job or an endpoint)")
    worker.add_argument("config", help="path of the run YAML")
    worker.add_argument("--runs", default=os.environ.get("HUBEVO_RUNS_ROOT", "runs"), help="folder of all runs")
    worker.add_argument("--every", type=float, default=30, help="seconds between generation jobs")
    worker.add_argument("--immigrants-every", type=float, default=3600, help="seconds between Hub queries")
    worker.add_argument("--retry-base", type=float, default=60,
                        help="seconds before the first retry after a transient failure (doubling each time)")
    worker.add_argument("--poll", type=float, default=5, help="seconds between checks of the run's status")
    worker.set_defaults(func=cmd_worker)
    space = sub.add_parser("space", help="the leaderboard Space: scheduler and Gradio UI")
    space.add_argument("--runs", default=None, help="folder of all runs (default $HUBEVO_RUNS_ROOT or runs)")
    space.add_argument("--host", default=None, help="interface to bind (default 127.0.0.1)")
    space.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7860)))
    space.set_defaults(func=cmd_space)
    from hubevo.cli.hub import add_commands as add_hub_commands

    add_hub_commands(sub)
    from hubevo.cli.export import add_commands as add_export_commands

    add_export_commands(sub)
    from hubevo.cli.convert import add_commands as add_convert_commands
    from hubevo.cli.reference import add_commands as add_reference_commands

    add_convert_commands(sub)
    add_reference_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv or ["space"])
    setup_logging(args.verbose)
    try:
        with stop_on_sigterm():  # SIGTERM unwinds like Ctrl-C: atomic writes remove their temporary files
            return args.func(args)
    except HubevoError as err:
        print(f"hubevo: error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as stop:
        signum = signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT
        print(stop_line(argv or ["space"], command=args.command, signum=signum), file=sys.stderr, flush=True)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
