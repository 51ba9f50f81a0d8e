"""Runs that live on the Hub: the continuous worker as a Hugging Face Job, once or on a schedule.

A job runs `python app.py worker run.yaml` in a container of `image` (a Docker image, or
`hf.co/spaces/<org>/<space>` for a Space built from this repository). The run config travels
in the job's environment (`HUBEVO_RUN_CONFIG`, plain YAML: it holds no secret) and is written
to `run.yaml` inside the container, with `publish.state: hub` unless the config says otherwise,
so the next job resumes from the state the last one pushed (`hubevo.run.state_sync`). The token
travels only as the job *secret* `HF_TOKEN`: never in the command, the environment, a label or a
log line.

Every job of a run carries the label `hubevo-run=<run>`, so `run_jobs` finds them again
(`list_jobs` / `list_scheduled_jobs` filter by label); `job_logs` and `cancel_run` act on them.
`launch` is what `hubevo launch` and the Space's seeding page both call: the image (`job_image`), the
request, the submission. `job_request`, `job_image` and `job_url` are pure; the other functions call the Hub.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from hubevo.config import RunConfig
from hubevo.errors import ConfigError, HubError, UnknownNameError
from hubevo.hub.client import current_token, ensure_api, hub_call
from hubevo.registry import unknown_name

log = logging.getLogger("hubevo")

RUN_LABEL = "hubevo-run"
CONFIG_ENV = "HUBEVO_RUN_CONFIG"
IMAGE_ENV = "HUBEVO_JOB_IMAGE"
TOKEN_SECRET = "HF_TOKEN"
SCHEDULES = ("@annually", "@yearly", "@monthly", "@weekly", "@daily", "@hourly")
TIMEOUT = re.compile(r"^\d+(\.\d+)?[smhd]?$")
CRON = re.compile(r"^(\S+\s+){4}\S+$")
FINISHED = ("COMPLETED", "CANCELED", "ERROR", "DELETED")


@dataclass(frozen=True)
class JobRequest:
    """What `run_job` / `create_scheduled_job` is given, less the token (added at submission)."""

    image: str
    command: list[str]
    flavor: str
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    timeout: str | None = None
    schedule: str | None = None


def run_label(run_name: str) -> str:
    """The label value naming a run (labels allow letters, digits, `-` and `_`, 100 characters)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", run_name)[:100]


def worker_command(*, python: str = "python", app: str = "app.py") -> list[str]:
    """Write the run config carried in the environment to run.yaml, then become the worker."""
    script = f'printf "%s\\n" "${CONFIG_ENV}" > run.yaml && exec {python} {app} worker run.yaml'
    return ["sh", "-c", script]


def job_request(
    cfg: RunConfig, *, image: str, flavor: str, timeout: str | None = None, schedule: str | None = None,
    command: list[str] | None = None,
) -> JobRequest:
    """The job that runs `cfg`'s worker; ConfigError for what a container could not run (see `check_runnable`)."""
    check_runnable(cfg)
    check_options(flavor=flavor, timeout=timeout, schedule=schedule)
    config_text = yaml.safe_dump(job_config(cfg), sort_keys=False)
    return JobRequest(
        image=image, command=command or worker_command(), flavor=flavor, env={CONFIG_ENV: config_text},
        labels={RUN_LABEL: run_label(cfg.name)}, timeout=timeout, schedule=schedule,
    )


def job_image(image: str | None = None, *, env: Mapping[str, str] | None = None) -> str:
    """The job's container: `image`, else `$HUBEVO_JOB_IMAGE`, else the Space this process runs in
    (`hf.co/spaces/$SPACE_ID`, built from this repository); ConfigError when there is none."""
    env = os.environ if env is None else env
    space = env.get("SPACE_ID")
    found = image or env.get(IMAGE_ENV) or (f"hf.co/spaces/{space}" if space else None)
    if not found:
        raise ConfigError(f"no image for the job: set {IMAGE_ENV} (a Docker image or hf.co/spaces/<org>/<space> "
                          "holding this repository), or pass --image to `hubevo launch`")
    return found


def job_url(job_id: str, *, namespace: str, endpoint: str) -> str:
    """The job's page on the Hub, where its logs are (the address `JobInfo.url` gives)."""
    return f"{endpoint.rstrip('/')}/jobs/{namespace}/{job_id}"


def job_config(cfg: RunConfig) -> dict:
    """The config the job runs: its state kept on the Hub (a job's disk ends with it) unless the config
    says `publish.state: local`; no output folder (the worker picks one in the container)."""
    data = cfg.model_dump(mode="json", exclude={"output"})
    if "state" not in cfg.publish.model_fields_set:
        data["publish"]["state"] = "hub"
    return data


def check_runnable(cfg: RunConfig) -> None:
    """A job sees only the Hub: local members are unreachable, and its disk is lost when it ends."""
    pop = cfg.population
    local = [str(m.path) for m in [*pop.members, *([pop.base_model] if pop.base_model else [])] if m.path]
    if local:
        raise ConfigError(f"run {cfg.name!r}: a Hub job cannot read the local member folder(s) {local}; "
                          "push them to the Hub and name them as 'org/name' in population.members")
    if cfg.publish.push == "none":
        raise ConfigError(f"run {cfg.name!r}: publish.push is 'none', so everything the job makes would be lost "
                          "with its container; set publish.push to 'survivors' or 'champion'")


def check_options(*, flavor: str, timeout: str | None, schedule: str | None) -> None:
    from huggingface_hub import JobHardware

    known = [f.value for f in JobHardware]
    if flavor not in known:
        raise UnknownNameError(unknown_name("job flavor", flavor, known))
    if timeout is not None and not TIMEOUT.match(str(timeout)):
        raise ConfigError(f"job timeout {timeout!r} is not a duration such as 3600, 90m, 2h or 1d")
    if schedule is not None and schedule not in SCHEDULES and not CRON.match(schedule):
        raise ConfigError(f"job schedule {schedule!r} is neither one of {', '.join(SCHEDULES)} "
                          "nor a 5-field CRON expression such as '0 */6 * * *'")


# calls to the Hub ------------------------------------------------------------------------------
def submit(request: JobRequest, *, namespace: str | None = None, token: str | None = None, api=None):
    """Start the job (a `JobInfo`) or create its schedule (a `ScheduledJobInfo`); the token goes as a secret."""
    api = ensure_api(api)
    secret = token or current_token(api)
    if not secret:
        raise HubError("no Hugging Face token to give the job: set HF_TOKEN or run `hf auth login` "
                       "with a token that can write to the publish namespace")
    where = f"jobs of run {request.labels.get(RUN_LABEL)!r}"
    kwargs = dict(image=request.image, command=request.command, env=request.env, secrets={TOKEN_SECRET: secret},
                  flavor=request.flavor, timeout=request.timeout, labels=request.labels, namespace=namespace)
    with hub_call(where, action="launch", api=api, missing=HubError):
        if request.schedule:
            job = api.create_scheduled_job(schedule=request.schedule, **kwargs)
        else:
            job = api.run_job(**kwargs)
    log.info("launched %s %s (%s, %s)", "scheduled job" if request.schedule else "job", job.id, request.flavor,
             request.schedule or "once")
    return job


def launch(
    cfg: RunConfig, *, flavor: str, image: str | None = None, timeout: str | None = None,
    schedule: str | None = None, namespace: str | None = None, token: str | None = None, api=None,
):
    """Check `cfg` and the options, then submit its job (see `submit`); returns (request, job)."""
    request = job_request(cfg, image=job_image(image), flavor=flavor, timeout=timeout, schedule=schedule)
    return request, submit(request, namespace=namespace, token=token, api=api)


def job_info(job_id: str, *, namespace: str, api=None):
    """The job's `JobInfo` (its `status.stage`: RUNNING, COMPLETED, ERROR...); HubError when it cannot be read."""
    api = ensure_api(api)
    with hub_call(f"{namespace}/{job_id}", action="read the state of job", api=api, missing=HubError):
        return api.inspect_job(job_id=job_id, namespace=namespace)


def run_jobs(run_name: str, *, namespace: str | None = None, api=None) -> tuple[list, list]:
    """(jobs, scheduled jobs) labelled with the run, newest job first."""
    api = ensure_api(api)
    labels = {RUN_LABEL: run_label(run_name)}
    with hub_call(f"jobs of run {run_name!r}", action="list", api=api, missing=HubError):
        namespace = namespace or api.whoami()["name"]
        jobs = list(api.list_jobs(labels=labels, namespace=namespace))
        scheduled = api.list_scheduled_jobs(labels=labels, namespace=namespace)
    jobs.sort(key=lambda job: job.created_at.timestamp() if job.created_at else 0, reverse=True)
    return jobs, scheduled


def job_logs(job_id: str, *, namespace: str | None = None, tail: int | None = None, api=None) -> list[str]:
    """The log lines a job has written so far (the last `tail` ones if given); does not wait for more."""
    api = ensure_api(api)
    with hub_call(f"job {job_id}", action="read the logs of", api=api, missing=HubError):
        return list(api.fetch_job_logs(job_id=job_id, namespace=namespace, tail=tail, follow=False))


def cancel_run(run_name: str, *, namespace: str | None = None, api=None) -> list[str]:
    """Cancel the run's unfinished jobs and delete its schedules; returns the ids acted on."""
    api = ensure_api(api)
    jobs, scheduled = run_jobs(run_name, namespace=namespace, api=api)
    done: list[str] = []
    with hub_call(f"jobs of run {run_name!r}", action="cancel", api=api, missing=HubError):
        namespace = namespace or api.whoami()["name"]
        for item in scheduled:
            api.delete_scheduled_job(scheduled_job_id=item.id, namespace=namespace)
            done.append(item.id)
        for job in jobs:
            if job.status.stage not in FINISHED:
                api.cancel_job(job_id=job.id, namespace=namespace)
                done.append(job.id)
    log.info("run %s: cancelled %d job(s) and schedule(s)", run_name, len(done))
    return done
