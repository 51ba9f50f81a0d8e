"""Hugging Face Jobs for the Hub-protocol test server: each submitted job runs as a local process.

The routes are those `huggingface_hub` 2.4.0 calls (`run_job`, `list_jobs`, `inspect_job`,
`fetch_job_logs`, `cancel_job`, `create_scheduled_job`, `list_scheduled_jobs`,
`inspect_scheduled_job`, `trigger_scheduled_job`, `suspend_scheduled_job`,
`resume_scheduled_job`, `delete_scheduled_job`). The image is ignored: the job's command
(plus its arguments) runs in `cwd` with the server process's environment, then the job's
`environment`, then its `secrets` as variables. Its output becomes the job's log (an SSE
stream of `data: {"data", "timestamp"}` events); its exit decides the stage: COMPLETED
(status 0), ERROR (any other, or the job's `timeoutSeconds` ran out) or CANCELED.

Secret values are never echoed back: a job's `secrets` come back with their values masked,
as the Hub keeps them encrypted. `requests` keeps every submitted spec as the client sent
it, for tests that check what left the client. A schedule never fires by itself here:
`trigger_scheduled_job` (or the `trigger` hook) starts one run of it now.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.hub_server import HubServer, Request, Response

TERMINAL = ("COMPLETED", "CANCELED", "ERROR", "DELETED")
MASK = "********"


@dataclass
class Job:
    id: str
    namespace: str
    owner: str
    spec: dict
    created_at: str
    initiator: dict
    stage: str = "SCHEDULING"
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    logs: list[tuple[str, str]] = field(default_factory=list)  # (timestamp, line)
    process: subprocess.Popen | None = None
    cancel_requested: bool = False
    timed_out: bool = False


@dataclass
class ScheduledJob:
    id: str
    namespace: str
    owner: str
    body: dict  # {jobSpec, schedule, suspend?, concurrency?}
    created_at: str
    runs: list[str] = field(default_factory=list)


class JobsBackend:
    """The jobs state of one `HubServer`; handlers run under the server's lock."""

    def __init__(self, hub: "HubServer", *, cwd: str | Path | None = None):
        self.hub = hub
        self.cwd = str(cwd) if cwd else None
        self._ids = itertools.count()
        self.reset()

    def reset(self) -> None:
        for job in getattr(self, "jobs", {}).values():
            self._kill(job)
        self.jobs: dict[str, Job] = {}
        self.scheduled: dict[str, ScheduledJob] = {}
        self.requests: list[dict] = []  # every job spec (or scheduled body) exactly as received

    def routes(self) -> list[tuple[str, str, Any]]:
        ns, job, sched = r"/api/jobs/(?P<ns>[^/]+)", r"(?P<job_id>[0-9a-f]{24})", r"/api/scheduled-jobs/(?P<ns>[^/]+)"
        return [
            ("POST", ns, self.create),
            ("GET", ns, self.list),
            ("GET", rf"{ns}/{job}", self.inspect),
            ("GET", rf"{ns}/{job}/logs", self.logs),
            ("POST", rf"{ns}/{job}/cancel", self.cancel),
            ("POST", sched, self.create_scheduled),
            ("GET", sched, self.list_scheduled),
            ("GET", rf"{sched}/{job}", self.inspect_scheduled),
            ("DELETE", rf"{sched}/{job}", self.delete_scheduled),
            ("POST", rf"{sched}/{job}/run", self.run_scheduled),
            ("POST", rf"{sched}/{job}/(?P<action>suspend|resume)", self.suspend_scheduled),
        ]

    # ------------------------------------------------------------------ access

    def _namespace(self, request: "Request", ns: str) -> str:
        from tests.hub_server import HubError

        if request.user is None:
            raise HubError(401, "You must be authenticated to use Jobs")
        if ns not in self.hub._namespaces(request.user):
            raise HubError(403, f"You don't have the rights to run jobs under {ns}")
        return ns

    def _job(self, request: "Request", ns: str, job_id: str) -> Job:
        return self._owned(request, ns, self.jobs, job_id, what="Job")

    def _owned(self, request: "Request", ns: str, table: dict, job_id: str, *, what: str):
        """The job (or scheduled job) `job_id` of `table` under `ns`, which the caller may use; else 401/403/404."""
        from tests.hub_server import HubError

        self._namespace(request, ns)
        item = table.get(job_id)
        if item is None or item.namespace != ns:
            raise HubError(404, f"{what} {job_id} not found")
        return item

    def _new_id(self, kind: str) -> str:
        return hashlib.sha1(f"{kind}-{next(self._ids)}".encode()).hexdigest()[:24]

    # ------------------------------------------------------------------ jobs

    def create(self, request: "Request", ns: str) -> "Response":
        spec = request.json()
        self.requests.append(json.loads(json.dumps(spec)))
        job = self.start(self._namespace(request, ns), spec, owner=request.user,
                         initiator={"type": "user", "id": request.user, "name": request.user})
        return self._json(self.job_info(job))

    def start(self, ns: str, spec: dict, *, owner: str, initiator: dict) -> Job:
        """Create the job and start its process (a command that cannot start ends as ERROR)."""
        from tests.hub_server import HubError

        command = list(spec.get("command") or []) + list(spec.get("arguments") or [])
        if not command:
            raise HubError(400, "A job needs a command")
        job = Job(self._new_id("job"), ns, owner, spec, self.hub._now(), initiator)
        self.jobs[job.id] = job
        env = {**os.environ, **_strings(spec.get("environment")), **_strings(spec.get("secrets"))}
        try:
            job.process = subprocess.Popen(command, env=env, cwd=self.cwd, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
        except OSError as error:
            job.stage, job.message, job.finished_at = "ERROR", f"could not start: {error}", self.hub._now()
            return job
        job.stage, job.started_at = "RUNNING", self.hub._now()
        job.logs.append((job.started_at, f"===== Job started at {job.started_at} ====="))
        threading.Thread(target=self._follow, args=(job,), name=f"job-{job.id}", daemon=True).start()
        if spec.get("timeoutSeconds"):
            timer = threading.Timer(float(spec["timeoutSeconds"]), self._time_out, args=(job,))
            timer.daemon = True
            timer.start()
        return job

    def _follow(self, job: Job) -> None:
        """Collect the process's output lines as log events, then settle the job's stage."""
        for raw in job.process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self.hub._lock:
                job.logs.append((self.hub._now(), line))
        code = job.process.wait()
        with self.hub._lock:
            job.finished_at = self.hub._now()
            if job.cancel_requested:
                job.stage = "CANCELED"
            elif job.timed_out:
                job.stage, job.message = "ERROR", "Job timeout"
            elif code == 0:
                job.stage = "COMPLETED"
            else:
                job.stage, job.message = "ERROR", f"Job failed with exit code: {code}"

    def _time_out(self, job: Job) -> None:
        with self.hub._lock:
            if job.stage == "RUNNING":
                job.timed_out = True
                self._kill(job)

    @staticmethod
    def _kill(job: Job) -> None:
        if job.process is not None and job.process.poll() is None:
            try:
                os.killpg(job.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def list(self, request: "Request", ns: str) -> "Response":
        self._namespace(request, ns)
        stages = set(request.query.get("stage", []))
        labels = [tuple(item.split("=", 1)) for item in request.query.get("label", [])]
        items = [self.job_info(job) for job in self.jobs.values() if job.namespace == ns
                 and (not stages or job.stage in stages)
                 and all((job.spec.get("labels") or {}).get(k) == v for k, v in labels)]
        return self.hub._paginate(request, items)

    def inspect(self, request: "Request", ns: str, job_id: str) -> "Response":
        return self._json(self.job_info(self._job(request, ns, job_id)))

    def logs(self, request: "Request", ns: str, job_id: str) -> "Response":
        from tests.hub_server import Response

        events = list(self._job(request, ns, job_id).logs)
        tail = request.arg("tail")
        if tail is not None:
            events = events[-int(tail):] if int(tail) else []
        body = "".join(f"data: {json.dumps({'data': line, 'timestamp': ts})}\n\n" for ts, line in events)
        return Response(200, body.encode(), {"Content-Type": "text/event-stream"})

    def cancel(self, request: "Request", ns: str, job_id: str) -> "Response":
        job = self._job(request, ns, job_id)
        if job.stage not in TERMINAL:
            job.cancel_requested = True
            self._kill(job)
        return self._json({})

    def job_info(self, job: Job) -> dict:
        spec = job.spec
        info = {
            "id": job.id, "createdAt": job.created_at, "startedAt": job.started_at, "finishedAt": job.finished_at,
            "dockerImage": spec.get("dockerImage"), "spaceId": spec.get("spaceId"),
            "command": spec.get("command"), "arguments": spec.get("arguments") or [],
            "environment": spec.get("environment") or {},
            "secrets": {name: MASK for name in spec.get("secrets") or {}},
            "flavor": spec.get("flavor"), "labels": spec.get("labels"),
            "status": {"stage": job.stage, "message": job.message},
            "owner": {"id": job.owner, "name": job.namespace, "type": "user"},
            "initiator": job.initiator,
        }
        if spec.get("timeoutSeconds"):
            info["timeout"] = spec["timeoutSeconds"]
        return info

    # ------------------------------------------------------------------ scheduled jobs

    def create_scheduled(self, request: "Request", ns: str) -> "Response":
        from tests.hub_server import HubError

        body = request.json()
        self.requests.append(json.loads(json.dumps(body)))
        if not body.get("schedule") or not (body.get("jobSpec") or {}).get("command"):
            raise HubError(400, "A scheduled job needs a schedule and a jobSpec with a command")
        item = ScheduledJob(self._new_id("scheduled"), self._namespace(request, ns), request.user, body,
                            self.hub._now())
        self.scheduled[item.id] = item
        return self._json(self.scheduled_info(item))

    def _scheduled(self, request: "Request", ns: str, job_id: str) -> ScheduledJob:
        return self._owned(request, ns, self.scheduled, job_id, what="Scheduled job")

    def list_scheduled(self, request: "Request", ns: str) -> "Response":
        self._namespace(request, ns)
        return self._json([self.scheduled_info(s) for s in self.scheduled.values() if s.namespace == ns])

    def inspect_scheduled(self, request: "Request", ns: str, job_id: str) -> "Response":
        return self._json(self.scheduled_info(self._scheduled(request, ns, job_id)))

    def delete_scheduled(self, request: "Request", ns: str, job_id: str) -> "Response":
        del self.scheduled[self._scheduled(request, ns, job_id).id]
        return self._json({})

    def suspend_scheduled(self, request: "Request", ns: str, job_id: str, action: str) -> "Response":
        self._scheduled(request, ns, job_id).body["suspend"] = action == "suspend"
        return self._json({})

    def run_scheduled(self, request: "Request", ns: str, job_id: str) -> "Response":
        return self._json(self.job_info(self.trigger(self._scheduled(request, ns, job_id))))

    def trigger(self, item: ScheduledJob) -> Job:
        """One run of a scheduled job, now (what its schedule would start)."""
        from tests.hub_server import HubError

        running = [self.jobs[j] for j in item.runs if self.jobs[j].stage not in TERMINAL]
        if running and not item.body.get("concurrency"):
            raise HubError(409, f"Scheduled job {item.id} is already running")
        job = self.start(item.namespace, item.body["jobSpec"], owner=item.owner,
                         initiator={"type": "scheduled-job", "id": item.id})
        item.runs.append(job.id)
        return job

    def scheduled_info(self, item: ScheduledJob) -> dict:
        spec = dict(item.body["jobSpec"])
        spec["secrets"] = {name: MASK for name in spec.get("secrets") or {}}
        last = self.jobs[item.runs[-1]] if item.runs else None
        return {
            "id": item.id, "createdAt": item.created_at, "jobSpec": spec, "schedule": item.body["schedule"],
            "suspend": bool(item.body.get("suspend")), "concurrency": bool(item.body.get("concurrency")),
            "status": {"lastJob": {"id": last.id, "at": last.created_at} if last else None, "nextJobRunAt": None},
            "owner": {"id": item.owner, "name": item.namespace, "type": "user"},
        }

    # ------------------------------------------------------------------ test hooks

    def wait(self, job_id: str, timeout: float = 30) -> str:
        """Block until the job's process has ended and its stage is settled; returns the stage."""
        job = self.jobs[job_id]
        if job.process is not None:
            job.process.wait(timeout=timeout)
        for _ in range(int(timeout * 20)):
            with self.hub._lock:
                if job.stage in TERMINAL:
                    return job.stage
            threading.Event().wait(0.05)
        raise TimeoutError(f"job {job_id} is still {job.stage}")

    @staticmethod
    def _json(payload: Any) -> "Response":
        from tests.hub_server import json_response

        return json_response(payload)


def _strings(mapping: dict | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (mapping or {}).items()}


def job_container(jobs: JobsBackend, root: Path, monkeypatch, *, app: str) -> Path:
    """Where the test Hub runs jobs: `app` as the container's app.py, and `python` meaning this interpreter."""
    folder, bindir = root / "container", root / "bin"
    folder.mkdir()
    bindir.mkdir()
    (folder / "app.py").write_text(app)
    (bindir / "python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(jobs, "cwd", str(folder))
    return folder
