"""Every test can fail: its body asserts, expects an exception or a warning, or calls a helper that does.

Helpers are followed one level: a function the test module itself defines, or one defined in
tests/conftest.py, tests/helpers/ or the other shared modules beside the tests, counts when its own
body checks or its name starts with `assert_`, `check_` or `expect_`. A library's `assert_*`
(`np.testing.assert_allclose`, `torch.testing.assert_close`) counts too; hubevo's own `check_*`
functions do not, as they are what the tests test. Fixtures do not count: what a test names, its
body must check.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CHECKING_PREFIXES = ("assert_", "check_", "expect_")
PYTEST_CHECKS = {"raises", "warns", "fail", "deprecated_call"}


def called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def checks_itself(function: ast.AST) -> bool:
    """An `assert`, `raise AssertionError`, `pytest.raises/warns/fail` or a library's `x.assert_*()` in the body."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(raised, ast.Name) and raised.id == "AssertionError":
                return True
        if isinstance(node, ast.Call) and isinstance(func := node.func, ast.Attribute):
            if func.attr.startswith("assert_"):
                return True
            if func.attr in PYTEST_CHECKS and isinstance(func.value, ast.Name) and func.value.id == "pytest":
                return True
    return False


def functions(tree: ast.Module) -> dict[str, ast.AST]:
    """Module-level functions and the methods of module-level classes, by name."""
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            found.update({n.name: n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))})
    return found


def checkers(defined: dict[str, ast.AST]) -> set[str]:
    """The helpers among `defined` that check: by their body, or by their name."""
    return {name for name, fn in defined.items()
            if not name.startswith("test_") and (name.startswith(CHECKING_PREFIXES) or checks_itself(fn))}


def shared_checkers() -> set[str]:
    """The checking helpers of the shared test modules (conftest.py, helpers/, every file not named test_*.py)."""
    shared = [p for p in TESTS.rglob("*.py") if not p.name.startswith("test_")]
    return set().union(*(checkers(functions(ast.parse(path.read_text()))) for path in shared))


def silent_tests(path: Path, shared: set[str]) -> list[str]:
    defined = functions(ast.parse(path.read_text(), filename=str(path)))
    local = shared | checkers(defined)
    silent = []
    for name, fn in defined.items():
        if not name.startswith("test_") or checks_itself(fn):
            continue
        calls = {called_name(n) for n in ast.walk(fn) if isinstance(n, ast.Call)}
        if not calls & local:
            silent.append(f"{path.name}::{name}")
    return silent


def test_every_test_checks_something():
    shared = shared_checkers()
    silent = [test for path in sorted(TESTS.rglob("test_*.py")) for test in silent_tests(path, shared)]
    assert not silent, f"tests whose body checks nothing (no assert, pytest.raises or asserting helper): {silent}"


def test_a_test_without_a_check_is_found(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\n"
        "def helper(x):\n    assert x\n\n"
        "def quiet(x):\n    return x\n\n"
        "def test_asserts():\n    assert 1\n\n"
        "def test_raises():\n    with pytest.raises(ValueError):\n        int('x')\n\n"
        "def test_calls_an_asserting_helper():\n    helper(1)\n\n"
        "def test_compares_arrays():\n    np.testing.assert_allclose(1, 1)\n\n"
        "def test_only_calls():\n    quiet(1)\n\n"
        "def test_shared_check():\n    wait_until(lambda: True)\n\n"
        "def check_answer(x):\n    return x\n\n"
        "def test_named_check():\n    check_answer(1)\n\n"
        "def test_calls_the_code_under_test():\n    check_write_access('alice')\n"
    )
    found = silent_tests(tmp_path / "test_sample.py", shared={"wait_until"})
    assert found == ["test_sample.py::test_only_calls", "test_sample.py::test_calls_the_code_under_test"]
