"""The Space's second way to run a seeded population: a Hugging Face Job under the signed-in user's account.

The seeding form gives the same run config as a run on this Space (`space.controls.seeding`); `launch_job`
hands it to `hubevo.hub.jobs.launch`, as `hubevo launch` does, with the user's OAuth token as the
job's `HF_TOKEN` secret and the user's namespace (who pays). The token is used for that one call
and kept nowhere. Each launched job is noted in a small JSON book beside the scheduler's job store in
hubevo's state folder (`JobBook`, written atomically; never in the runs folder), so the Status tab
can list them: `job_rows` reads each job's state with the viewer's token for their own jobs and the
Space's client for the others; a state that cannot be read is `unknown`, with the reason.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from hubevo.config import RunConfig
from hubevo.errors import HubevoError
from hubevo.fsio import atomic_write_text
from hubevo.hub.access import account_name
from hubevo.hub.client import make_api
from hubevo.hub.jobs import job_info, job_url, launch
from hubevo.run.scheduler import state_dir

log = logging.getLogger("hubevo")

BOOK_FILE = ".space-jobs.json"
FLAVORS = ("cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "a10g-small", "a10g-large", "a100-large")
DEFAULT_TIMEOUT = "2h"
JOB_COLUMNS = ["run", "owner", "job", "flavor", "state", "launched", "logs", "message"]
SHOWN_JOBS = 20


@dataclass(frozen=True)
class LaunchedJob:
    """One job launched from the Space: who launched it, under which namespace, for which run."""

    job_id: str
    namespace: str
    owner: str
    run: str
    flavor: str
    launched_at: float


class JobBook:
    """The jobs launched from this Space, oldest first, kept in one JSON file (no token is ever written)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def jobs(self) -> list[LaunchedJob]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            log.warning("cannot read the Space's job book %s: %s", self.path, err)
            return []
        names = [f.name for f in fields(LaunchedJob)]
        return [LaunchedJob(**{n: item[n] for n in names}) for item in data.get("jobs", [])
                if isinstance(item, dict) and all(n in item for n in names)]

    def add(self, job: LaunchedJob) -> None:
        with self._lock:
            entries = [asdict(j) for j in [*self.jobs(), job]]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps({"jobs": entries}, indent=1) + "\n")


@dataclass(frozen=True)
class JobLauncher:
    """What launching and listing jobs needs: the book, the Hub endpoint, the image (None: `job_image` decides
    from the environment at launch) and the Space's own client (for reading jobs; None: from the environment)."""

    book: JobBook
    endpoint: str
    image: str | None = None
    space_api: object = None

    @classmethod
    def under(cls, runs_root: Path, *, endpoint: str, space_api=None, image: str | None = None) -> JobLauncher:
        """The launcher of the Space over `runs_root`; its book in hubevo's state folder for it (a book that an earlier
        version kept in the runs folder is read and written there)."""
        earlier = Path(runs_root) / BOOK_FILE
        book = earlier if earlier.is_file() else state_dir(runs_root) / BOOK_FILE
        return cls(book=JobBook(book), endpoint=endpoint, image=image, space_api=space_api)

    def run_names(self) -> list[str]:
        return [job.run for job in self.book.jobs()]


# launching ---------------------------------------------------------------------------------------------
def job_run_config(config: dict) -> RunConfig:
    """The seeded config as a job runs it: the form never chooses where the state lives, so the dump's default
    (`local`) is dropped and `hubevo.hub.jobs` keeps the state on the Hub, as `hubevo launch` does."""
    publish = {key: value for key, value in (config.get("publish") or {}).items() if key != "state"}
    return RunConfig.model_validate({**config, "publish": publish})


def launch_job(config: dict, *, token: str, username: str | None, flavor: str, timeout: str | None,
               launcher: JobLauncher) -> LaunchedJob:
    """Launch `config`'s worker as a job under the user's account and note it in the book."""
    api = make_api(endpoint=launcher.endpoint, token=token)
    owner = username or account_name(api=api)
    cfg = job_run_config(config)
    _, job = launch(cfg, image=launcher.image, flavor=flavor, timeout=(timeout or "").strip() or None,
                    namespace=owner, token=token, api=api)
    launched = LaunchedJob(job_id=job.id, namespace=owner, owner=owner, run=cfg.name, flavor=flavor,
                           launched_at=time.time())
    launcher.book.add(launched)
    return launched


# the Status tab ------------------------------------------------------------------------------------------
def job_state(job: LaunchedJob, *, api) -> tuple[str, str]:
    """(stage, message) of the job; ("unknown", why) when it cannot be read with `api`."""
    try:
        status = job_info(job.job_id, namespace=job.namespace, api=api).status
    except (HubevoError, OSError) as err:
        return "unknown", f"its state cannot be read here (its owner sees it signed in): {err}"
    return str(status.stage), status.message or ""


def job_rows(jobs: Sequence[LaunchedJob], *, launcher: JobLauncher, viewer: str | None = None,
             viewer_token: str | None = None) -> pd.DataFrame:
    """The newest jobs, newest first: state (read with the viewer's token for their own jobs), a logs link."""
    viewer_api = make_api(endpoint=launcher.endpoint, token=viewer_token) if viewer_token else None
    rows = []
    for job in list(jobs)[::-1][:SHOWN_JOBS]:
        own = viewer_api is not None and viewer is not None and viewer.lower() == job.owner.lower()
        api = viewer_api if own else launcher.space_api or make_api(endpoint=launcher.endpoint)
        state, message = job_state(job, api=api)
        rows.append({"run": job.run, "owner": job.owner, "job": job.job_id, "flavor": job.flavor, "state": state,
                     "launched": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(job.launched_at)),
                     "logs": f"[logs]({job_url(job.job_id, namespace=job.namespace, endpoint=launcher.endpoint)})",
                     "message": message})
    return pd.DataFrame(rows, columns=JOB_COLUMNS)

