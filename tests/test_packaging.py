"""The wheel and its dependencies.

`space/` ships beside `hubevo/`, and the installed `hubevo` command works from any folder. The wheel
is built from a copy of the project (no build folder left in the working tree) and installed, without
dependencies, into a fresh virtual environment; the dependencies are this environment's, reached
through a path file, so nothing is downloaded.

Every package the code imports is declared in pyproject.toml, and the locks pin what it declares.
"""

import ast
import importlib.metadata
import os
import re
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from hubevo import __version__

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("pyproject.toml", "README.md", "hubevo", "space")
OWN = {"hubevo", "space", "tests", "bench"}
IMPORTING = ("hubevo", "space", "app.py", "tests", "bench")
TEST_ONLY = {"pytest", "pytest-timeout", "playwright"}


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


@pytest.mark.slow  # builds the wheel
def test_the_wheel_holds_the_space_and_the_demo_tasks(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"space/__init__.py", "space/controls/ui.py", "space/pages/leaderboard.py", "space/data/loading.py",
            "hubevo/cli/main.py", "hubevo/cli/__main__.py"} <= names
    assert any(n.startswith("hubevo/demo/tasks/") and n.endswith(".yaml") for n in names)


@pytest.mark.slow  # and a virtual environment
def test_the_installed_command_works_from_the_root_folder(venv):
    version = run_from_root(str(venv / "bin" / "hubevo"), "--version")
    assert version.stdout.strip() == f"hubevo {__version__}", version.stderr
    helped = run_from_root(str(venv / "bin" / "hubevo"), "space", "--help")
    assert helped.returncode == 0 and "--runs" in helped.stdout, helped.stderr
    where = run_from_root(str(venv / "bin" / "python"), "-c",
                          "import space.controls.ui, hubevo; print(space.controls.ui.__file__)")
    assert where.stdout.startswith(str(venv)), (where.stdout, where.stderr)


def dist_name(requirement: str) -> str:
    """`gradio[oauth]>=6.31,<7` -> `gradio`, normalised as PEP 503 does (`PyYAML` -> `pyyaml`)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement.strip())[0]).lower()


def declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = {name: {dist_name(r) for r in reqs} for name, reqs in project["optional-dependencies"].items()}
    return {dist_name(r) for r in project["dependencies"]}, extras


def imported_packages(path: Path) -> set[str]:
    """Top-level names of the absolute imports anywhere in one file, function bodies included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - OWN


def locked(name: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / name).read_text().splitlines():
        if (pin := re.match(r"([A-Za-z0-9._-]+)==(\S+)$", line)):
            pins[dist_name(pin[1])] = pin[2]
    return pins


def test_every_imported_package_is_declared():
    runtime, extras = declared()
    everything = runtime.union(*extras.values())
    providers = importlib.metadata.packages_distributions()
    files = [f for root in IMPORTING for f in ([REPO / root] if root.endswith(".py") else (REPO / root).rglob("*.py"))]
    missing = {}
    for path in files:
        for module in imported_packages(path):
            dists = {dist_name(d) for d in providers.get(module, [module])}
            if not dists & everything:
                missing.setdefault(f"{module} ({', '.join(sorted(dists))})", []).append(str(path.relative_to(REPO)))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_locks_pin_what_pyproject_declares():
    runtime, extras = declared()
    lock, dev = locked("requirements.txt"), locked("requirements-dev.txt")
    assert runtime <= lock.keys(), f"runtime dependencies missing from requirements.txt: {runtime - lock.keys()}"
    assert not TEST_ONLY & lock.keys(), f"test tools in the runtime lock: {TEST_ONLY & lock.keys()}"
    wanted = runtime.union(*extras.values())
    assert wanted <= dev.keys(), f"missing from requirements-dev.txt: {wanted - dev.keys()}"
    assert {n: v for n, v in dev.items() if n in lock} == lock, "the dev lock moved a runtime pin"
    assert lock["torch"] == "2.13.0", "the lock names torch without a local label (the CPU build installs from it)"
    for name in ("requirements.txt", "requirements-dev.txt"):
        assert "-e ." in (REPO / name).read_text().splitlines(), f"{name} no longer installs hubevo itself"


def test_every_declared_dependency_is_a_range_that_holds_the_locked_release_and_later_compatible_ones():
    """Installed beside a newer compatible torch or transformers, `pip install .` keeps it: the metadata names
    ranges (the tested release up to the next major; next minor for 0.x), never one exact release."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = locked("requirements-dev.txt")
    for line in [*project["dependencies"], *(r for reqs in project["optional-dependencies"].values() for r in reqs)]:
        req = Requirement(line)
        name = dist_name(line)
        assert not any(s.operator in ("==", "===") for s in req.specifier), f"{line}: an exact pin belongs in the lock"
        assert any(s.operator == ">=" for s in req.specifier) and any(s.operator == "<" for s in req.specifier), line
        tested = Version(lock[name].split("+")[0])
        assert req.specifier.contains(tested), f"{line} excludes the locked {tested}"
        if tested.major >= 1:
            assert req.specifier.contains(f"{tested.major}.{tested.minor + 1}.0"), f"{line} refuses the next minor"
            assert not req.specifier.contains(f"{tested.major + 1}.0.0"), f"{line} accepts the next major"
        else:
            assert req.specifier.contains(f"0.{tested.minor}.{tested.micro + 1}"), f"{line} refuses the next patch"
