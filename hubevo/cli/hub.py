"""Command line for runs that live on the Hub: `hubevo launch run.yaml` and `hubevo jobs RUN`.

`add_commands(subparsers)` registers both on the main parser (hubevo/cli.py):

    hubevo launch run.yaml --flavor a10g-small [--image IMAGE] [--schedule @hourly] [--timeout 2h]
    hubevo jobs RUN [--logs [--tail N]] [--cancel]

The image defaults to `$HUBEVO_JOB_IMAGE`, then (run inside a Space) that Space's own; it must
hold this repository (for example the Space that runs it: `hf.co/spaces/<org>/<space>`).
"""

from __future__ import annotations

import argparse


def add_commands(subparsers) -> None:
    launch = subparsers.add_parser("launch", help="run a config's worker as a Hugging Face Job (or on a schedule)")
    launch.add_argument("config", help="path of the run YAML")
    launch.add_argument("--flavor", required=True, help="job hardware, e.g. cpu-basic, a10g-small, a100-large")
    launch.add_argument("--image", default=None,
                        help="Docker image or hf.co/spaces/<org>/<space> holding this repository "
                             "(default $HUBEVO_JOB_IMAGE, then the Space this runs in)")
    launch.add_argument("--schedule", default=None, help="@hourly, @daily... or CRON: a scheduled job instead")
    launch.add_argument("--timeout", default=None, help="longest run of the job: 3600, 90m, 2h, 1d")
    launch.add_argument("--namespace", default=None, help="user or org that runs (and pays for) the job")
    launch.set_defaults(func=cmd_launch)
    jobs = subparsers.add_parser("jobs", help="list a run's Hugging Face Jobs; show logs or cancel them")
    jobs.add_argument("run", help="the run's name (its config's `name`)")
    jobs.add_argument("--logs", action="store_true", help="print the newest job's log")
    jobs.add_argument("--tail", type=int, default=None, help="with --logs: only the last N lines")
    jobs.add_argument("--cancel", action="store_true", help="cancel unfinished jobs and delete schedules")
    jobs.add_argument("--namespace", default=None, help="user or org the jobs run under")
    jobs.set_defaults(func=cmd_jobs)


def cmd_launch(args: argparse.Namespace) -> int:
    from hubevo.config import load_config
    from hubevo.hub.jobs import RUN_LABEL, launch

    request, job = launch(load_config(args.config), image=args.image, flavor=args.flavor, timeout=args.timeout,
                          schedule=args.schedule, namespace=args.namespace)
    when = f"on schedule {args.schedule}" if args.schedule else "now"
    print(f"job {job.id} for run {request.labels[RUN_LABEL]} runs {when} on {args.flavor}")
    if getattr(job, "url", None):
        print(job.url)
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from hubevo.hub.jobs import cancel_run, job_logs, run_jobs

    if args.cancel:
        done = cancel_run(args.run, namespace=args.namespace)
        print(f"cancelled {len(done)} job(s) and schedule(s) of run {args.run}: {', '.join(done) or 'none'}")
        return 0
    jobs, scheduled = run_jobs(args.run, namespace=args.namespace)
    for item in scheduled:
        state = "suspended" if item.suspend else "active"
        print(f"scheduled {item.id}  {item.schedule}  {state}  {item.job_spec.flavor}")
    for job in jobs:
        created = job.created_at.isoformat(timespec="seconds") if job.created_at else "?"
        print(f"job {job.id}  {job.status.stage:<10} {job.flavor}  {created}  {job.status.message or ''}".rstrip())
    if not jobs and not scheduled:
        print(f"run {args.run} has no jobs")
    if args.logs and jobs:
        print(f"--- log of job {jobs[0].id} ---")
        for line in job_logs(jobs[0].id, namespace=args.namespace, tail=args.tail):
            print(line)
    return 0
