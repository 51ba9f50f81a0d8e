"""Test environment: everything offline except a Hub-protocol server on 127.0.0.1.

The Hub client's endpoint is fixed when `huggingface_hub` is imported, so the
environment is set here, at conftest import time, before any test module imports it.
"""

import atexit
import os
import shutil
import socket
import tempfile


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HUB_PORT = _free_port()
_HF_HOME = tempfile.mkdtemp(prefix="hubevo-hf-home-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ.update(
    {
        "HF_ENDPOINT": f"http://127.0.0.1:{HUB_PORT}",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HOME": _HF_HOME,
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TRANSFORMERS_VERBOSITY": "error",
        "HUBEVO_HUB_BACKOFF_S": "0.05",  # hubevo's Hub retries wait 0.05 s, 0.1 s... unless Retry-After says more
        "HUBEVO_STATE_DIR": os.path.join(_HF_HOME, "hubevo-state"),  # the scheduler's job stores, gone at exit
    }
)
os.environ.pop("HF_TOKEN", None)
if os.environ.get("PYTEST_XDIST_WORKER"):  # one torch thread per worker: -n 2 on 2 cores, not 2 x 2 threads
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402

from tests.hub_server import HubServer  # noqa: E402  (imports no huggingface_hub)


def pytest_collection_modifyitems(items):
    """Marks that follow from a test's fixtures: `hub` where it starts the Hub test server, `slow` where it
    works on the demo zoo (trained on first use, then evaluated or evolved on)."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "hub_server" in fixtures:
            item.add_marker(pytest.mark.hub)
        if "demo_zoo" in fixtures:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def demo_zoo_cache():
    """Where the demo zoos live: the user's cache, as for `hubevo demo` (each zoo trained once, in a folder keyed by
    its recipe's content hash, then reused by every session), or the folder that $HUBEVO_TEST_ZOO names."""
    from pathlib import Path

    from hubevo.demo.zoo import default_cache_dir

    cache = os.environ.get("HUBEVO_TEST_ZOO")
    return Path(cache) if cache else default_cache_dir()


@pytest.fixture(scope="session")
def demo_zoo(demo_zoo_cache):
    """The demo zoo (base + specialists + lm-eval tasks), built once per test session."""
    import torch

    from hubevo.demo.zoo import build_zoo

    torch.set_num_threads(1)
    return build_zoo(demo_zoo_cache, progress=False)


@pytest.fixture(scope="session")
def hub_server():
    """A Hub-protocol server on HUB_PORT with two users: alice (org alice-org) and bob."""
    server = HubServer(port=HUB_PORT)
    server.add_user("alice", "token-alice", orgs=["alice-org"])
    server.add_user("bob", "token-bob")
    server.start()
    yield server
    server.stop()
