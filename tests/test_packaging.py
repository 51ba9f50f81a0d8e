"""The wheel: `space/` ships beside `hubevo/`, and the installed `hubevo` command works from any folder.

The wheel is built from a copy of the project (no build folder left in the working tree) and
installed, without dependencies, into a fresh virtual environment; the dependencies are this
environment's, reached through a path file, so nothing is downloaded.
"""

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hubevo import __version__

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("pyproject.toml", "README.md", "hubevo", "space")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in SHIPPED:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                          if (REPO / name).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    return next(out.glob("hubevo-*.whl"))


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed (dependencies seen through a .pth file)."""
    env = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    purelib = next((env / "lib").glob("python3*/site-packages"))
    (purelib / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env


def run_from_root(*cmd: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(list(cmd), cwd="/", env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_wheel_holds_the_space_and_the_demo_tasks(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"space/__init__.py", "space/ui.py", "space/leaderboard.py", "hubevo/cli.py"} <= names
    assert any(n.startswith("hubevo/demo/tasks/") and n.endswith(".yaml") for n in names)


def test_the_installed_command_works_from_the_root_folder(venv):
    version = run_from_root(str(venv / "bin" / "hubevo"), "--version")
    assert version.stdout.strip() == f"hubevo {__version__}", version.stderr
    helped = run_from_root(str(venv / "bin" / "hubevo"), "space", "--help")
    assert helped.returncode == 0 and "--runs" in helped.stdout, helped.stderr
    where = run_from_root(str(venv / "bin" / "python"), "-c", "import space.ui, hubevo; print(space.ui.__file__)")
    assert where.stdout.startswith(str(venv)), (where.stdout, where.stderr)
