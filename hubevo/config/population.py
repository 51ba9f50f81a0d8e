"""The run file's `population` section: members (local folders or Hub repos), the base model, a Hub query.

A member is a folder or `org/name@revision`; a repo id is checked for the Hub's naming rules here,
so a typo is named before anything is downloaded. A bare string is a folder when it is written as a path or
exists relative to the run file's folder (the validation context's `root`), else a repo id
(`hubevo.config.paths`), and each path is expanded and resolved by `hubevo.config.paths.local_path`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hubevo.config.frozen import Frozen
from hubevo.config.paths import local_path, refers_to_disk

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


class Member(Frozen):
    """One initial member: a local model folder or a Hub repo (`org/name[@revision]`)."""

    path: Path | None = None
    repo: str | None = None
    name: str | None = Field(None, description="Display name; defaults to the folder or repo name.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value, info: ValidationInfo):
        if isinstance(value, (str, Path)):
            text, root = str(value), context_root(info)
            if refers_to_disk(text, root=root) or isinstance(value, Path):
                return {"path": text}
            if not REPO_ID.match(text):
                raise ValueError(f"{text!r} is neither a model folder ({str(root / text)!r} does not exist) nor a "
                                 "Hub repo id ('org/name' or 'org/name@revision'); give the folder's path (relative "
                                 "to the run file, or absolute) or the repo id")
            return {"repo": text}
        return value

    @field_validator("repo")
    @classmethod
    def _repo_syntax(cls, repo):
        if repo is not None and (not REPO_ID.match(repo) or hub_id_problem(repo.split("@")[0])):
            why = hub_id_problem(repo.split("@")[0]) if REPO_ID.match(repo) else ""
            raise ValueError(f"{repo!r} is not a Hub repo id{f' ({why})' if why else ''}; "
                             "expected 'org/name' or 'org/name@revision'")
        return repo

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.repo is None):
            raise ValueError("give exactly one of 'path' (a local model folder) or 'repo' (org/name[@rev])")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return self.repo.split("@")[0] if self.repo else Path(self.path).name

    def resolved(self, root: Path, *, field: str = "population.members", expand_vars: bool = True) -> "Member":
        if self.path is None:
            return self
        return self.model_copy(update={"path": local_path(self.path, root=root, field=field, expand_vars=expand_vars)})


def context_root(info: ValidationInfo) -> Path:
    """The folder relative paths are read from: the run file's (`parse_config` passes it), else the working one."""
    return Path((info.context or {}).get("root") or Path.cwd())


class HubQuery(Frozen):
    """Candidates found on the Hub with `HfApi.list_models`; checked for compatibility before download."""

    author: str | None = None
    search: str | None = None
    filter: list[str] = Field(default_factory=list, description="Tags such as 'base_model:org/name'.")
    sort: Literal["trending_score", "downloads", "likes", "last_modified", "created_at"] = "downloads"
    limit: int = Field(8, gt=0, le=200, description="Models listed at most (1 to 200).")

    @field_validator("filter", mode="before")
    @classmethod
    def _listify(cls, value):
        return [value] if isinstance(value, str) else value


class PopulationConfig(Frozen):
    members: list[Member] = Field(default_factory=list, description="Initial members of the population.")
    query: HubQuery | None = Field(None, description="Add compatible Hub models found by this query.")
    base_model: Member | None = Field(
        None, description="Shared ancestor; required by ties, dare_*, task_arithmetic, breadcrumbs, della, model_stock."
    )

    @model_validator(mode="after")
    def _someone(self):
        if not self.members and self.query is None:
            raise ValueError("give population.members, population.query, or both")
        return self


def hub_id_problem(repo_id: str) -> str | None:
    """What the Hub client would reject in `repo_id` ('--', '..', a '.git' ending...), or None."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        return str(err).replace(f": {repo_id!r}", "").rstrip(".")
    return None


HUB_NAME_MAX = 96  # characters in a Hub user, org or repo name
