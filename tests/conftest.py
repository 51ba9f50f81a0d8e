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
    }
)
os.environ.pop("HF_TOKEN", None)

import pytest  # noqa: E402

from tests.hub_server import HubServer  # noqa: E402  (imports no huggingface_hub)


# Slow tests (5 to 20 s each) of modules that do not mark them yet: each mark belongs in its module as
# `@pytest.mark.slow`; move it there and drop it here.
UNMARKED_SLOW = {
    "test_bad_input.py": {
        "test_bad_input_is_named_before_any_work[task-yaml-broken]",
        "test_bad_input_is_named_before_any_work[unknown-task]",
        "test_an_unknown_heldout_task_is_called_a_heldout_task",
        "test_the_good_config_itself_runs",
    },
    "test_disk.py": {"test_hubevo_evolve_into_a_read_only_folder_is_one_line"},
    "test_lock.py": {
        "test_hubevo_demo_on_a_folder_of_the_users_exits_and_deletes_nothing",
        "test_hubevo_demo_on_a_folder_in_use_exits_and_deletes_nothing",
    },
}


def pytest_collection_modifyitems(items):
    """Marks that follow from a test's fixtures: `hub` where it starts the Hub test server, `slow` where it
    works on the demo zoo (trained on first use, then evaluated or evolved on); and UNMARKED_SLOW."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "hub_server" in fixtures:
            item.add_marker(pytest.mark.hub)
        if "demo_zoo" in fixtures or item.name in UNMARKED_SLOW.get(item.path.name, ()):
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
