"""The layout keeps its promises, read from the code's own imports (imports inside functions and under
`TYPE_CHECKING` count): no module imports a higher layer, no import circle, `Run` only in the run package,
strategies that see data only, and a short top level. The layer order is `hubevo/__init__.py`'s table."""

import ast
from collections import defaultdict
from pathlib import Path

import hubevo

ROOT = Path(__file__).resolve().parents[1]


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of hubevo and the Space."""
    out = {}
    for package in ("hubevo", "space"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imported(node: ast.AST, *, module: str, is_package: bool, known) -> list[str]:
    """The dotted names an import statement brings in (`from x import y` names the submodule x.y if there is one)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module.split(".") if is_package else module.split(".")[:-1]
    source = ".".join([*base[:len(base) - node.level + 1], *([node.module] if node.module else [])]) \
        if node.level else node.module
    return [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, each import resolved to the longest module name it reaches."""
    known = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in imported(node, module=name, is_package=path.name == "__init__.py", known=known):
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
        graph.setdefault(name, set())
    return graph


def layer_of(module: str) -> int:
    """The layer of `module`: the row of `hubevo.LAYERS` that names it or, failing that, its package."""
    rows = {name: index for index, (names, _) in enumerate(hubevo.LAYERS) for name in names.split()}
    for prefix in (".".join(module.split(".")[:n]) for n in range(module.count(".") + 1, 0, -1)):
        if prefix in rows and (prefix == module or prefix != "hubevo"):
            return rows[prefix]
    raise AssertionError(f"{module} is in no layer of hubevo.LAYERS: add its package to the table")


def test_every_module_belongs_to_a_declared_layer():
    for module in modules():
        layer_of(module)


def test_no_module_imports_a_higher_layer():
    upward = sorted(f"{a} (layer {layer_of(a)}) -> {b} (layer {layer_of(b)})"
                    for a, targets in import_graph().items() for b in targets if layer_of(b) > layer_of(a))
    assert upward == []


def test_there_is_no_import_circle():
    graph, state, circles = import_graph(), {}, []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                circles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_the_table_is_in_the_readme_and_the_package_docstring_as_in_the_code():
    readme = (ROOT / "README.md").read_text()
    for names, job in hubevo.LAYERS:
        shown = ", ".join(n.removeprefix("hubevo.") for n in names.split() if n != "hubevo")
        assert f"| {shown} | {job} |" in readme, names
        assert f"| {shown} | {job} |" in hubevo.__doc__, names


def test_run_lives_only_in_the_run_package():
    """Strategies see a PopulationView, backends see CandidateJobs, publishing sees a RunFolder: only the
    orchestrator knows the live `Run`."""
    offenders = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        defines = [n.lineno for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Run"]
        imports = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                   and (n.module or "").startswith("hubevo.run") and any(a.name == "Run" for a in n.names)]
        if (defines or imports) and not name.startswith("hubevo.run."):
            offenders.append(name)
    assert offenders == []


def test_strategies_see_data_only():
    """No strategy loads, merges or scores a model: what it needs from weights the loop reads ahead."""
    heavy = ("torch", "transformers", "mergekit", "lm_eval", "peft", "trl", "hubevo.breed.materialize",
             "hubevo.breed.projection", "hubevo.execute", "hubevo.evaluation.evaluator")
    graph = import_graph()
    found = {}
    for name, path in modules().items():
        if not name.startswith("hubevo.search"):
            continue
        names = {*graph[name]}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        bad = sorted(n for n in names if any(n == h or n.startswith(h + ".") for h in heavy))
        if bad:
            found[name] = bad
    assert found == {}


def test_the_top_level_holds_packages_and_at_most_eight_modules():
    top = sorted(p.name for p in (ROOT / "hubevo").glob("*.py"))
    assert len(top) <= 8, top
