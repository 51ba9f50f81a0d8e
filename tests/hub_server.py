"""A test double of the Hugging Face Hub protocol, served over HTTP on 127.0.0.1.

The project's tests drive the *real* `huggingface_hub` client against this server (the
moto pattern): no mocks of the client, the same HTTP calls as against huggingface.co.
It implements the endpoints listed in `shared/docs/hub-protocol.md`: whoami, repo
create/delete/settings, repo info and listing (search, author, filter, sort, limit and
`Link` pagination), preupload, the basic LFS transfer (batch, upload, verify), NDJSON
commits, YAML validation, tags, branches, refs, commit history, trees, paths-info,
file downloads (`resolve`, with HEAD and Range), a model's `.eval_results/*.yaml` entries
(`model_info(expand=["evalResults"])`), and Hugging Face Jobs, each job run as a local
process (tests/hub_server_jobs.py; `server.jobs` holds their state and test hooks).

Everything lives in memory. Regular files are stored by git blob sha1, LFS files by
sha256; each repo keeps its commits (id, parent, title, message, date, author and the
full file tree), its branches and its tags. A new repo gets an initial commit holding a
`.gitattributes`, as on the Hub, so its `sha` is never null.

Auth: `Authorization: Bearer <token>` for users added with `add_user`; an unknown token
gets 401, writing outside one's own namespace or orgs 403, and a private repo is a 404
`RepoNotFound` for anyone else. Deterministic errors are always 4xx, because the client
retries 429 and 5xx with a back-off of seconds. No Xet header or field is ever sent.

Test hooks: `request_log` (method, decoded path) of every request, `commit_count`,
`get_file`, `set_stats` (downloads, likes, trending score), `page_size` (small by
default so that tests exercise pagination), `fail_next` (answer the next matching
requests with a given status, e.g. 429 or 500) and `reset`.

Typical use (see the `hub_server` fixture in tests/conftest.py):

    server = HubServer(port=conftest.HUB_PORT)
    server.start()
    server.add_user("alice", "token-alice", orgs=["team"])
    HfApi(endpoint=server.url, token="token-alice").create_repo("alice/model")
    server.stop()
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import itertools
import json
import math
import re
import socket
import struct
import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import yaml

from tests.hub_server_jobs import JobsBackend

REPO_TYPES = ("model", "dataset", "space")
DEFAULT_BRANCH = "main"
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files of 10 MiB and more in LFS
INITIAL_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gguf", "*.gz", "*.h5",
        "*.joblib", "*.lfs.*", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz",
        "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth",
        "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite",
        "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
    )
)
_YAML_BLOCK = re.compile(r"^\s*---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", re.DOTALL)
_REPO = r"(?P<type>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)"
_PREFIXED_REPO = r"(?:(?P<prefix>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+?)"


# --------------------------------------------------------------------------- helpers


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob, as the Hub reports for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def parse_card(readme: bytes | None) -> dict | None:
    """The YAML front matter of a README.md as a dict, or None (absent or invalid)."""
    if readme is None:
        return None
    match = _YAML_BLOCK.match(readme.decode("utf-8", errors="replace"))
    if match is None:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def safetensors_parameters(data: bytes) -> dict[str, int]:
    """Parameter count per dtype, read from a safetensors header ({} if it is not one)."""
    try:
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + length])
        counts: dict[str, int] = {}
        for name, tensor in header.items():
            if name != "__metadata__":
                counts[tensor["dtype"]] = counts.get(tensor["dtype"], 0) + math.prod(tensor["shape"])
        return counts
    except (struct.error, ValueError, AttributeError, KeyError, TypeError):
        return {}


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


class HubError(Exception):
    """An error answer: status, message and the `X-Error-Code` the client maps to a typed error."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = headers or {}


def _not_found_repo() -> HubError:
    return HubError(404, "Repository not found", "RepoNotFound")


def _not_found_revision(revision: str) -> HubError:
    return HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


# --------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class FileEntry:
    """A file in a commit's tree. `oid` is the git blob sha1 of the content, or of the LFS pointer."""

    oid: str
    size: int
    lfs_sha256: str | None = None

    def tree_item(self, path: str) -> dict:
        item: dict = {"type": "file", "path": path, "oid": self.oid, "size": self.size}
        if self.lfs_sha256 is not None:
            pointer_size = len(lfs_pointer(self.lfs_sha256, self.size))
            item["lfs"] = {"oid": self.lfs_sha256, "size": self.size, "pointerSize": pointer_size}
        return item

    @property
    def etag(self) -> str:
        return self.lfs_sha256 or self.oid


@dataclass
class Commit:
    id: str
    parent: str | None
    title: str
    message: str
    date: str
    author: str
    files: dict[str, FileEntry]


@dataclass
class Repo:
    type: str  # model, dataset or space
    id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    downloads: int = 0
    likes: int = 0
    trending_score: int = 0

    @property
    def namespace(self) -> str:
        return self.id.split("/")[0]

    @property
    def head(self) -> Commit:
        return self.commits[self.branches[DEFAULT_BRANCH]]

    def resolve(self, revision: str) -> Commit:
        """A branch, a tag or a full commit id (optionally as refs/heads/x or refs/tags/x)."""
        name = re.sub(r"^refs/(heads|tags)/", "", revision)
        sha = self.branches.get(name) or self.tags.get(name) or (name if name in self.commits else None)
        if sha is None:
            raise _not_found_revision(revision)
        return self.commits[sha]

    def history(self, commit: Commit) -> list[Commit]:
        chain = [commit]
        while chain[-1].parent is not None:
            chain.append(self.commits[chain[-1].parent])
        return chain


@dataclass
class Request:
    method: str
    raw_path: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    user: str | None

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, [default])[0]

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as error:
            raise HubError(400, f"Invalid JSON body: {error}") from error


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    body = json.dumps(payload).encode()
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})


@dataclass
class _Fault:
    path_substring: str
    status: int
    remaining: int
    method: str | None
    headers: dict[str, str]


# --------------------------------------------------------------------------- server


class HubServer:
    """An in-memory Hub on 127.0.0.1:`port`, served from a background thread."""

    def __init__(self, *, port: int, page_size: int = 3, jobs_cwd: str | None = None):
        self.port = port
        self.jobs = JobsBackend(self, cwd=jobs_cwd)  # Hugging Face Jobs, run as local processes
        self.page_size = page_size  # items per page of every paginated listing
        self.request_log: list[tuple[str, str]] = []
        self._users: dict[str, tuple[str, list[str]]] = {}  # token -> (name, orgs)
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()  # open keep-alive connections, closed by stop()
        self._thread: threading.Thread | None = None
        self._ids = itertools.count()
        self.reset()
        self._routes: list[tuple[str, re.Pattern, Callable[..., Response]]] = [
            (method, re.compile(f"^{pattern}$"), handler)
            for method, pattern, handler in (
                ("GET", r"/api/whoami-v2", self._whoami),
                ("POST", r"/api/repos/create", self._create_repo),
                ("DELETE", r"/api/repos/delete", self._delete_repo),
                ("POST", r"/api/validate-yaml", self._validate_yaml),
                ("GET", r"/api/(?P<type>models|datasets|spaces)", self._list_repos),
                ("GET", rf"/api/{_REPO}", self._repo_info),
                ("GET", rf"/api/{_REPO}/revision/(?P<rev>[^/]+)", self._repo_info),
                ("PUT", rf"/api/{_REPO}/settings", self._settings),
                ("POST", rf"/api/{_REPO}/preupload/(?P<rev>[^/]+)", self._preupload),
                ("POST", rf"/api/{_REPO}/commit/(?P<rev>[^/]+)", self._commit),
                ("POST", rf"/api/{_REPO}/tag/(?P<rev>[^/]+)", self._create_tag),
                ("DELETE", rf"/api/{_REPO}/tag/(?P<tag>[^/]+)", self._delete_tag),
                ("POST", rf"/api/{_REPO}/branch/(?P<branch>[^/]+)", self._create_branch),
                ("DELETE", rf"/api/{_REPO}/branch/(?P<branch>[^/]+)", self._delete_branch),
                ("GET", rf"/api/{_REPO}/refs", self._refs),
                ("GET", rf"/api/{_REPO}/commits/(?P<rev>[^/]+)", self._commits),
                ("GET", rf"/api/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", self._tree),
                ("POST", rf"/api/{_REPO}/paths-info/(?P<rev>[^/]+)", self._paths_info),
                ("POST", rf"/{_PREFIXED_REPO}\.git/info/lfs/objects/batch", self._lfs_batch),
                ("POST", rf"/{_PREFIXED_REPO}\.git/info/lfs/objects/verify", self._lfs_verify),
                ("PUT", r"/lfs-objects/(?P<oid>[0-9a-f]{64})", self._lfs_upload),
                ("GET", rf"/{_PREFIXED_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self._resolve),
                ("HEAD", rf"/{_PREFIXED_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self._resolve),
                *self.jobs.routes(),
            )
        ]

    # ----------------------------------------------------------------- public API

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "HubServer":
        hub = self

        class Handler(_Handler):
            server_hub = hub

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]  # port=0 picks a free one
        serve = lambda: self._httpd.serve_forever(poll_interval=0.05)  # noqa: E731
        self._thread = threading.Thread(target=serve, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.jobs.reset()  # kills every job process still running
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            for connection in list(self._connections):  # else their threads would go on serving
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def reset(self) -> None:
        """Forget every repo, blob, logged request and pending fault (users are kept)."""
        with self._lock:
            self._repos: dict[tuple[str, str], Repo] = {}
            self._git_blobs: dict[str, bytes] = {}  # git blob sha1 -> content
            self._lfs_objects: dict[str, bytes] = {}  # sha256 -> content
            self._faults: list[_Fault] = []
            self._last_time = datetime(2024, 1, 1, tzinfo=timezone.utc)
            self.request_log.clear()
            if hasattr(self, "jobs"):
                self.jobs.reset()

    def add_user(self, name: str, token: str, orgs: list[str] = ()) -> None:
        self._users[token] = (name, list(orgs))

    def fail_next(
        self,
        path_substring: str,
        status: int,
        count: int = 1,
        *,
        method: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `count` requests whose decoded path contains `path_substring`
        (and whose method is `method`, if given) with `status` instead of serving them.

        The client retries 408, 429 and 5xx with a back-off of 1 s, 2 s, 4 s... (and sleeps
        `Retry-After` + 1 s on a 429 carrying that header), so one injected fault costs a
        test about a second; six in a row make an upload give up."""
        with self._lock:
            self._faults.append(_Fault(path_substring, status, count, method, dict(headers or {})))

    def clear_faults(self) -> None:
        """Drop every fault `fail_next` set that no request has used up."""
        with self._lock:
            self._faults.clear()

    def commit_count(self, repo_id: str, repo_type: str = "model") -> int:
        """Commits in the history of the default branch, the initial `.gitattributes` one included."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            return len(repo.history(repo.head))

    def get_file(
        self, repo_id: str, path: str, revision: str = DEFAULT_BRANCH, repo_type: str = "model"
    ) -> bytes:
        """The stored content of a file, read directly (no request logged)."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            return self._content(repo.resolve(revision).files[path])

    def set_stats(
        self,
        repo_id: str,
        repo_type: str = "model",
        *,
        downloads: int | None = None,
        likes: int | None = None,
        trending_score: int | None = None,
    ) -> None:
        """Set the counters that listings sort by."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            repo.downloads = repo.downloads if downloads is None else downloads
            repo.likes = repo.likes if likes is None else likes
            repo.trending_score = repo.trending_score if trending_score is None else trending_score

    # ----------------------------------------------------------------- dispatch

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> Response:
        """Serve one HTTP request (called from the handler thread)."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        with self._lock:
            self.request_log.append((method, path))
            fault = self._take_fault(method, path)
        if fault is not None:
            return json_response({"error": "injected fault"}, fault.status, fault.headers)
        try:
            user = self._authenticate(headers.get("Authorization"))
            request = Request(method, parts.path, parse_qs(parts.query), headers, body, user)
            for route_method, pattern, handler in self._routes:
                match = pattern.match(parts.path)
                if match and route_method == method:
                    groups = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    with self._lock:
                        return handler(request, **groups)
            raise HubError(404, f"No route for {method} {parts.path}")
        except HubError as error:
            message = error.message.encode("ascii", "replace").decode()  # headers must be latin-1
            headers_out = {"X-Error-Message": message, **error.headers}
            if error.code:
                headers_out["X-Error-Code"] = error.code
            return json_response({"error": error.message}, error.status, headers_out)

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.path_substring in path and fault.method in (None, method):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _authenticate(self, authorization: str | None) -> str | None:
        if not authorization:
            return None
        token = authorization.removeprefix("Bearer ").strip()
        if token not in self._users:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self._users[token][0]

    # ----------------------------------------------------------------- repo access

    def _namespaces(self, user: str | None) -> set[str]:
        for name, orgs in self._users.values():
            if name == user:
                return {name, *orgs}
        return set()

    def _repo(self, request: Request, repo_type: str, repo_id: str, *, write: bool = False) -> Repo:
        repo = self._repos.get((repo_type, repo_id))
        owner = repo is not None and repo.namespace in self._namespaces(request.user)
        if repo is None or (repo.private and not owner):
            raise _not_found_repo()
        if write and request.user is None:
            raise HubError(401, "You must be authenticated to write to a repo")
        if write and not owner:
            raise HubError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    def _url_repo(self, request: Request, type: str, ns: str, name: str, write: bool = False) -> Repo:
        """The repo of an /api/{models,datasets,spaces}/{ns}/{name}/... route."""
        return self._repo(request, type.removesuffix("s"), f"{ns}/{name}", write=write)

    def _prefixed_repo(self, request: Request, ns: str, name: str, prefix: str = "", write=False) -> Repo:
        """The repo of a /[datasets/|spaces/]{ns}/{name}/... route."""
        repo_type = prefix.removesuffix("s") or "model"
        return self._repo(request, repo_type, f"{ns}/{name}", write=write)

    def _repo_url(self, repo: Repo) -> str:
        prefix = "" if repo.type == "model" else f"{repo.type}s/"
        return f"{self.url}/{prefix}{repo.id}"

    def _now(self) -> str:
        """Strictly increasing UTC timestamps, so that sorting by date is deterministic."""
        now = max(datetime.now(timezone.utc), self._last_time + timedelta(milliseconds=1))
        self._last_time = now
        return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"

    def _content(self, entry: FileEntry) -> bytes:
        return self._lfs_objects[entry.lfs_sha256] if entry.lfs_sha256 else self._git_blobs[entry.oid]

    def _add_commit(
        self, repo: Repo, branch: str, files: dict[str, FileEntry], title: str, message: str, author: str
    ) -> Commit:
        parent = repo.branches.get(branch)
        date = self._now()
        seed = f"{repo.type}/{repo.id}\n{parent}\n{date}\n{next(self._ids)}\n{title}"
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, title, message, date, author, files)
        repo.commits[commit.id] = commit
        repo.branches[branch] = commit.id
        return commit

    def _store_regular(self, data: bytes) -> FileEntry:
        oid = git_blob_sha1(data)
        self._git_blobs[oid] = data
        return FileEntry(oid, len(data))

    # ----------------------------------------------------------------- account and repos

    def _whoami(self, request: Request) -> Response:
        if request.user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        orgs = sorted(self._namespaces(request.user) - {request.user})
        return json_response(
            {
                "type": "user",
                "id": request.user,
                "name": request.user,
                "fullname": request.user,
                "orgs": [{"type": "org", "name": org, "roleInOrg": "write"} for org in orgs],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            }
        )

    def _create_repo(self, request: Request) -> Response:
        payload = request.json()
        if request.user is None:
            raise HubError(401, "You must be authenticated to create a repo")
        repo_type = payload.get("type") or "model"
        namespace = payload.get("organization") or request.user
        name = payload.get("name") or ""
        if repo_type not in REPO_TYPES or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise HubError(400, f"Invalid repo name or type: {name!r}, {repo_type!r}")
        if namespace not in self._namespaces(request.user):
            raise HubError(403, f"You don't have the rights to create a repo under {namespace}")
        repo_id = f"{namespace}/{name}"
        existing = self._repos.get((repo_type, repo_id))
        if existing is not None:
            body = {"error": "You already created this repo", "url": self._repo_url(existing)}
            return json_response(body, 409)
        private = payload.get("visibility", "private" if payload.get("private") else "public") != "public"
        repo = Repo(repo_type, repo_id, private, created_at=self._now())
        files = {".gitattributes": self._store_regular(INITIAL_GITATTRIBUTES.encode())}
        self._add_commit(repo, DEFAULT_BRANCH, files, "initial commit", "", request.user)
        self._repos[(repo_type, repo_id)] = repo
        return json_response({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _delete_repo(self, request: Request) -> Response:
        payload = request.json()
        namespace = payload.get("organization") or request.user
        repo_id = f"{namespace}/{payload.get('name')}"
        repo = self._repo(request, payload.get("type") or "model", repo_id, write=True)
        del self._repos[(repo.type, repo.id)]
        return json_response({})

    def _settings(self, request: Request, type: str, ns: str, name: str) -> Response:
        repo = self._url_repo(request, type, ns, name, write=True)
        payload = request.json()
        if "visibility" in payload:
            repo.private = payload["visibility"] != "public"
        if "private" in payload:
            repo.private = bool(payload["private"])
        return json_response({})

    def _validate_yaml(self, request: Request) -> Response:
        content = request.json().get("content", "")
        match = _YAML_BLOCK.match(content)
        if match is None:
            return json_response({"errors": [], "warnings": []})
        try:
            data = yaml.safe_load(match.group(1))
        except yaml.YAMLError as error:
            return json_response({"errors": [{"message": f"Invalid YAML: {error}"}], "warnings": []}, 400)
        if data is not None and not isinstance(data, dict):
            errors = [{"message": "Metadata must be a YAML mapping"}]
            return json_response({"errors": errors, "warnings": []}, 400)
        return json_response({"errors": [], "warnings": []})

    # ----------------------------------------------------------------- info and listing

    def _card_tags(self, repo: Repo, card: dict, files: dict[str, FileEntry]) -> list[str]:
        """Tags the Hub derives from the card metadata (and a few files)."""
        tags: list[str] = []

        def add(tag: Any) -> None:
            if tag and str(tag) not in tags:
                tags.append(str(tag))

        add(card.get("library_name"))
        add(card.get("pipeline_tag"))
        for tag in _as_list(card.get("tags")) + _as_list(card.get("language")):
            add(tag)
        if any(path.endswith(".safetensors") for path in files):
            add("safetensors")
        if card.get("license"):
            add(f"license:{card['license']}")
        for dataset in _as_list(card.get("datasets")):
            add(f"dataset:{dataset}")
        parents = _as_list(card.get("base_model"))
        if repo.type == "model" and parents:
            relation = card.get("base_model_relation") or (
                "adapter" if "adapter_config.json" in files else "merge" if len(parents) > 1 else "finetune"
            )
            for parent in parents:
                add(f"base_model:{parent}")
                add(f"base_model:{relation}:{parent}")
        return tags

    def _info(self, repo: Repo, commit: Commit, *, siblings=True, blobs=False, card=True) -> dict:
        readme = commit.files.get("README.md")
        card_data = parse_card(self._content(readme) if readme else None)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo.type}/{repo.id}".encode()).hexdigest()[:24],
            "id": repo.id,
            "author": repo.namespace,
            "sha": commit.id,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": repo.downloads,
            "likes": repo.likes,
            "trendingScore": repo.trending_score,
            "tags": self._card_tags(repo, card_data or {}, commit.files),
            "createdAt": repo.created_at,
            "lastModified": commit.date,
        }
        if repo.type == "model":
            info["modelId"] = repo.id
            info["library_name"] = (card_data or {}).get("library_name")
            info["pipeline_tag"] = (card_data or {}).get("pipeline_tag")
            config = commit.files.get("config.json")
            if config is not None:
                try:
                    info["config"] = json.loads(self._content(config))
                except ValueError:
                    pass
        if card and card_data is not None:
            info["cardData"] = card_data
        if siblings:
            files = sorted(commit.files.items())
            info["siblings"] = [self._sibling(path, entry, blobs) for path, entry in files]
            if repo.type == "model":
                info["safetensors"] = self._safetensors_summary(commit.files)
        return info

    def _safetensors_summary(self, files: dict[str, FileEntry]) -> dict | None:
        parameters: dict[str, int] = {}
        for path, entry in sorted(files.items()):
            if path.endswith(".safetensors"):
                for dtype, count in safetensors_parameters(self._content(entry)).items():
                    parameters[dtype] = parameters.get(dtype, 0) + count
        return {"parameters": parameters, "total": sum(parameters.values())} if parameters else None

    @staticmethod
    def _sibling(path: str, entry: FileEntry, blobs: bool) -> dict:
        sibling: dict[str, Any] = {"rfilename": path}
        if blobs:
            sibling.update(size=entry.size, blobId=entry.oid)
            if entry.lfs_sha256:
                pointer_size = len(lfs_pointer(entry.lfs_sha256, entry.size))
                sibling["lfs"] = {"size": entry.size, "sha256": entry.lfs_sha256, "pointerSize": pointer_size}
        return sibling

    def _repo_info(self, request: Request, type: str, ns: str, name: str, rev=DEFAULT_BRANCH) -> Response:
        repo = self._url_repo(request, type, ns, name)
        commit = repo.resolve(rev)
        info = self._info(repo, commit, blobs=_truthy(request.arg("blobs")))
        expand = request.query.get("expand", [])
        if not expand:
            return json_response(info)
        if "evalResults" in expand:
            info["evalResults"] = self._eval_results(commit)
        return json_response({k: v for k, v in info.items() if k in ("_id", "id", *expand)})

    def _eval_results(self, commit: Commit) -> list[dict]:
        """The entries of the `.eval_results/*.yaml` files, one item per entry, or per file that is invalid."""
        items: list[dict] = []
        for path in sorted(p for p in commit.files if re.fullmatch(r"\.eval_results/[^/]+\.ya?ml", p)):
            try:
                entries = yaml.safe_load(self._content(commit.files[path]))
                if not isinstance(entries, list) or not all(
                    isinstance(e, dict) and {"id", "task_id"} <= set(e.get("dataset") or {}) and "value" in e
                    for e in entries
                ):
                    raise ValueError("expected a list of {dataset: {id, task_id}, value} entries")
            except (yaml.YAMLError, ValueError) as error:
                items.append({"filename": path, "error": str(error)})
                continue
            items.extend({"filename": path, "data": entry} for entry in entries)
        return items

    _SORT_FIELDS = {  # `sort` query value -> field of the listed item; always descending
        "downloads": "downloads",
        "likes": "likes",
        "trendingScore": "trendingScore",
        "trending_score": "trendingScore",
        "lastModified": "lastModified",
        "createdAt": "createdAt",
    }

    def _list_repos(self, request: Request, type: str) -> Response:
        full, want_card = _truthy(request.arg("full")), _truthy(request.arg("cardData"))
        searches = [s.lower() for s in request.query.get("search", [])]
        author, filters = request.arg("author"), request.query.get("filter", [])
        visible = self._namespaces(request.user)
        items = []
        for repo in self._repos.values():
            if repo.type != type.removesuffix("s") or (repo.private and repo.namespace not in visible):
                continue
            if (author and repo.namespace != author) or not all(s in repo.id.lower() for s in searches):
                continue
            info = self._info(repo, repo.head, siblings=full, card=full or want_card)
            if not all(f in info["tags"] for f in filters):
                continue
            if not _truthy(request.arg("config")):
                info.pop("config", None)
            items.append(info)
        sort = request.arg("sort")
        if sort is not None:
            if sort not in self._SORT_FIELDS:
                raise HubError(400, f"Invalid sort key: {sort}")
            items.sort(key=lambda info: info["id"])
            items.sort(key=lambda info: info[self._SORT_FIELDS[sort]], reverse=True)
        limit = request.arg("limit")
        if limit is not None:
            items = items[: int(limit)]
        return self._paginate(request, items)

    def _paginate(self, request: Request, items: list) -> Response:
        """One page of `items`, with a `Link: <...>; rel="next"` header when more remain."""
        start = int(request.arg("cursor", "0"))
        end = start + self.page_size
        headers = {}
        if end < len(items):
            query = [(k, v) for k, values in request.query.items() if k != "cursor" for v in values]
            next_url = f"{self.url}{request.raw_path}?{urlencode(query + [('cursor', str(end))])}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        return json_response(items[start:end], headers=headers)

    # ----------------------------------------------------------------- refs and history

    def _create_tag(self, request: Request, type: str, ns: str, name: str, rev: str) -> Response:
        repo = self._url_repo(request, type, ns, name, write=True)
        tag = request.json().get("tag")
        if not tag:
            raise HubError(400, "Missing tag name")
        if tag in repo.tags:
            raise HubError(409, f"Tag {tag} already exists")
        repo.tags[tag] = repo.resolve(rev).id
        return json_response({})

    def _delete_tag(self, request: Request, type: str, ns: str, name: str, tag: str) -> Response:
        repo = self._url_repo(request, type, ns, name, write=True)
        if repo.tags.pop(tag, None) is None:
            raise _not_found_revision(tag)
        return json_response({})

    def _create_branch(self, request: Request, type: str, ns: str, name: str, branch: str) -> Response:
        repo = self._url_repo(request, type, ns, name, write=True)
        if branch in repo.branches:
            raise HubError(409, f"Branch {branch} already exists")
        start = request.json().get("startingPoint") or DEFAULT_BRANCH
        repo.branches[branch] = repo.resolve(start).id
        return json_response({})

    def _delete_branch(self, request: Request, type: str, ns: str, name: str, branch: str) -> Response:
        repo = self._url_repo(request, type, ns, name, write=True)
        if branch == DEFAULT_BRANCH:
            raise HubError(400, "Cannot delete the default branch")
        if repo.branches.pop(branch, None) is None:
            raise _not_found_revision(branch)
        return json_response({})

    def _refs(self, request: Request, type: str, ns: str, name: str) -> Response:
        repo = self._url_repo(request, type, ns, name)

        def refs(kind: str, mapping: dict[str, str]) -> list[dict]:
            return [
                {"name": ref, "ref": f"refs/{kind}/{ref}", "targetCommit": sha}
                for ref, sha in sorted(mapping.items())
            ]

        branches, tags = refs("heads", repo.branches), refs("tags", repo.tags)
        return json_response({"branches": branches, "converts": [], "tags": tags, "pullRequests": []})

    def _commits(self, request: Request, type: str, ns: str, name: str, rev: str) -> Response:
        repo = self._url_repo(request, type, ns, name)
        items = [
            {
                "id": c.id,
                "title": c.title,
                "message": c.message,
                "date": c.date,
                "authors": [{"user": c.author}],
            }
            for c in repo.history(repo.resolve(rev))
        ]
        return self._paginate(request, items)

    # ----------------------------------------------------------------- trees

    @staticmethod
    def _tree_items(files: dict[str, FileEntry], base: str, recursive: bool) -> list[dict]:
        prefix = f"{base}/" if base else ""
        entries: dict[str, dict] = {}
        for path, entry in files.items():
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            for i in range(1, min(len(parts), depth + 1)):
                folder = prefix + "/".join(parts[:i])
                entries.setdefault(folder, {"type": "directory", "path": folder})
            if recursive or len(parts) == 1:
                entries[path] = entry.tree_item(path)
        for folder, item in entries.items():
            if item["type"] == "directory":
                children = sorted(f"{p}:{e.oid}" for p, e in files.items() if p.startswith(folder + "/"))
                item["oid"] = hashlib.sha1("\n".join(children).encode()).hexdigest()
        return [entries[path] for path in sorted(entries)]

    def _tree(self, request: Request, type: str, ns: str, name: str, rev: str, path: str = "") -> Response:
        repo = self._url_repo(request, type, ns, name)
        commit = repo.resolve(rev)
        path = path.strip("/")
        items = self._tree_items(commit.files, path, _truthy(request.arg("recursive")))
        if path and not items:
            raise HubError(404, f"Path {path} not found", "EntryNotFound", {"X-Repo-Commit": commit.id})
        return self._paginate(request, items)

    def _paths_info(self, request: Request, type: str, ns: str, name: str, rev: str) -> Response:
        repo = self._url_repo(request, type, ns, name)
        commit = repo.resolve(rev)
        form = parse_qs(request.body.decode())
        items = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                items.append(commit.files[path].tree_item(path))
            elif any(p.startswith(path + "/") for p in commit.files):
                parent = path.rsplit("/", 1)[0] if "/" in path else ""
                items.extend(i for i in self._tree_items(commit.files, parent, False) if i["path"] == path)
        return json_response(items)

    # ----------------------------------------------------------------- uploads

    def _is_lfs(self, files: dict[str, FileEntry], path: str, size: int, sample: bytes) -> bool:
        """Upload mode the Hub would pick: .gitattributes LFS patterns, binary content or size."""
        if size >= LFS_SIZE_THRESHOLD or b"\0" in sample:
            return True
        attributes = files.get(".gitattributes")
        lines = self._content(attributes).decode().splitlines() if attributes else []
        basename = path.rsplit("/", 1)[-1]
        for line in lines:
            pattern, _, attrs = line.strip().partition(" ")
            matches = fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(basename, pattern)
            if matches and "filter=lfs" in attrs:
                return True
        return False

    def _preupload(self, request: Request, type: str, ns: str, name: str, rev: str) -> Response:
        repo = self._url_repo(request, type, ns, name, write=True)
        files = repo.resolve(rev).files
        answers = []
        for item in request.json().get("files", []):
            path = item["path"]
            sample = base64.b64decode(item.get("sample", ""))
            lfs = self._is_lfs(files, path, int(item.get("size", 0)), sample)
            answer = {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            if path in files:
                answer["oid"] = files[path].lfs_sha256 if lfs else files[path].oid
            answers.append(answer)
        return json_response({"files": answers, "commitOid": repo.resolve(rev).id})

    def _lfs_batch(self, request: Request, ns: str, name: str, prefix: str = "") -> Response:
        repo = self._prefixed_repo(request, ns, name, prefix, write=True)
        payload = request.json()
        if payload.get("operation") != "upload":
            raise HubError(400, "Only the 'upload' LFS operation is supported")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            answer: dict[str, Any] = {"oid": oid, "size": size}
            if oid not in self._lfs_objects:
                answer["actions"] = {
                    "upload": {"href": f"{self.url}/lfs-objects/{oid}"},
                    "verify": {"href": f"{self._repo_url(repo)}.git/info/lfs/objects/verify"},
                }
            objects.append(answer)
        return json_response({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_upload(self, request: Request, oid: str) -> Response:
        """The storage PUT of the basic transfer: no Authorization, like a pre-signed S3 URL."""
        if hashlib.sha256(request.body).hexdigest() != oid:
            raise HubError(400, "The uploaded content does not match its sha256")
        self._lfs_objects[oid] = request.body
        return Response(200, b"", {"ETag": f'"{hashlib.md5(request.body).hexdigest()}"'})

    def _lfs_verify(self, request: Request, ns: str, name: str, prefix: str = "") -> Response:
        self._prefixed_repo(request, ns, name, prefix, write=True)
        payload = request.json()
        stored = self._lfs_objects.get(payload.get("oid"))
        if stored is None or len(stored) != payload.get("size"):
            raise HubError(404, f"LFS object {payload.get('oid')} not found")
        return json_response({"success": True})

    def _commit(self, request: Request, type: str, ns: str, name: str, rev: str) -> Response:
        repo = self._url_repo(request, type, ns, name, write=True)
        if _truthy(request.arg("create_pr")):
            raise HubError(400, "Pull requests are not supported by the test Hub")
        if rev not in repo.branches:
            raise _not_found_revision(rev)
        try:
            lines = [json.loads(line) for line in request.body.splitlines() if line.strip()]
        except ValueError as error:
            raise HubError(400, f"Invalid NDJSON commit payload: {error}") from error
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        parent = header.get("parentCommit")
        if parent is not None and parent != repo.branches[rev]:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(repo.commits[repo.branches[rev]].files)
        for line in lines:
            self._apply_operation(files, line["key"], line["value"])
        title = header.get("summary") or "Commit"
        commit = self._add_commit(repo, rev, files, title, header.get("description", ""), request.user)
        commit_url = f"{self._repo_url(repo)}/commit/{commit.id}"
        return json_response(
            {"success": True, "commitOid": commit.id, "commitUrl": commit_url, "pullRequestUrl": None}
        )

    def _apply_operation(self, files: dict[str, FileEntry], key: str, value: dict) -> None:
        path = value.get("path", "").strip("/")
        if key == "file":
            content = value["content"]
            data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
            files[path] = self._store_regular(data)
        elif key == "lfsFile":
            stored = self._lfs_objects.get(value["oid"])
            if stored is None or len(stored) != value["size"]:
                raise HubError(400, f"LFS object {value['oid']} of {path} was not uploaded")
            pointer_oid = git_blob_sha1(lfs_pointer(value["oid"], value["size"]))
            files[path] = FileEntry(pointer_oid, value["size"], lfs_sha256=value["oid"])
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            doomed = [p for p in files if p.startswith(path + "/")]
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del files[p]
        elif key != "header":
            raise HubError(400, f"Unsupported commit operation: {key}")

    # ----------------------------------------------------------------- downloads

    def _resolve(self, request: Request, ns: str, name: str, rev: str, path: str, prefix="") -> Response:
        repo = self._prefixed_repo(request, ns, name, prefix)
        commit = repo.resolve(rev)
        entry = commit.files.get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.id})
        data = self._content(entry)
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.id,
            "ETag": f'"{entry.etag}"',
            "Accept-Ranges": "bytes",
        }
        if entry.lfs_sha256:
            headers.update({"X-Linked-Size": str(entry.size), "X-Linked-Etag": f'"{entry.lfs_sha256}"'})
        byte_range = request.headers.get("Range")
        if byte_range is None:
            return Response(200, data, headers)
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", byte_range.strip())
        if match is None or not any(match.groups()):
            raise HubError(416, f"Invalid range: {byte_range}")
        first, last = match.groups()
        if first == "":  # suffix range: the last N bytes
            start, end = max(len(data) - int(last), 0), len(data) - 1
        else:
            start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
        if start >= len(data) or start > end:
            content_range = {"Content-Range": f"bytes */{len(data)}"}
            raise HubError(416, f"Range not satisfiable: {byte_range}", headers=content_range)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return Response(206, data[start : end + 1], headers)


# --------------------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, hands it to the HubServer, writes the answer (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid a 40 ms delayed-ACK stall
    server_hub: HubServer

    def setup(self) -> None:
        super().setup()
        self.server_hub._connections.add(self.connection)

    def finish(self) -> None:
        self.server_hub._connections.discard(self.connection)
        super().finish()

    def _serve(self) -> None:
        body = self._read_body()
        try:
            response = self.server_hub.handle(self.command, self.path, self.headers, body)
        except Exception as error:  # a bug in the test server: answer 400 (the client would retry a 500)
            traceback.print_exc()
            response = json_response({"error": f"test hub server crashed: {error!r}"}, 400)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers, up to the blank line
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


__all__ = ["HubServer", "HubError", "git_blob_sha1", "lfs_pointer", "parse_card", "safetensors_parameters"]
