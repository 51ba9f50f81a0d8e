"""The Space's deployment settings, read from the environment (Space variables and secrets).

| variable | meaning |
| --- | --- |
| `HUBEVO_RUNS_ROOT` | folder of run directories (default `runs`) |
| `HUBEVO_STATE_DIR` | job store and launched jobs' book (default `~/.cache/hubevo/space`; on a Space, persistent) |
| `HUBEVO_ADMIN_TOKEN` | admin token for a local or self-hosted deployment (a secret; unset = none) |
| `HUBEVO_ALLOW_LIST` | Hugging Face usernames that may seed, pause and stop runs (comma separated) |
| `HUBEVO_RESULTS_DATASETS` | results dataset repos `{namespace}/{run}-results` to show (comma separated) |
| `HUBEVO_TASK_DIRS` | folders of local lm-eval task YAML files seeded runs may use (comma separated) |
| `HUBEVO_SPACE_LOCAL_ROOT` | self-hosting: a folder under which seeded runs may name local model folders (unset = Hub repos only) |

The host is Gradio's `GRADIO_SERVER_NAME` (a Space sets 0.0.0.0); unset, the app binds 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def _items(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


@dataclass(frozen=True)
class SpaceSettings:
    runs_root: Path = Path("runs")
    admin_token: str | None = None
    allow_list: tuple[str, ...] = ()
    hub_datasets: tuple[str, ...] = ()
    task_dirs: tuple[Path, ...] = ()
    local_root: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "SpaceSettings":
        env = os.environ if env is None else env
        return cls(
            runs_root=Path(env.get("HUBEVO_RUNS_ROOT") or "runs"),
            admin_token=env.get("HUBEVO_ADMIN_TOKEN") or None,
            allow_list=_items(env.get("HUBEVO_ALLOW_LIST")),
            hub_datasets=_items(env.get("HUBEVO_RESULTS_DATASETS")),
            task_dirs=tuple(Path(p) for p in _items(env.get("HUBEVO_TASK_DIRS"))),
            local_root=Path(env["HUBEVO_SPACE_LOCAL_ROOT"]) if env.get("HUBEVO_SPACE_LOCAL_ROOT") else None,
        )

    def app_kwargs(self) -> dict:
        """Keyword arguments of `space.controls.ui.build_app` (add `controller=` and `api=`)."""
        return {"runs_root": self.runs_root, "admin_token": self.admin_token, "allow_list": list(self.allow_list),
                "hub_datasets": list(self.hub_datasets), "task_dirs": list(self.task_dirs),
                "local_root": self.local_root}
