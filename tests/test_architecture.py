"""The package's shape: imports point one way, and each layer keeps to its job."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rip", "analysis")


def modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(module imported, name imported or "", line) for every import in the file, function bodies included.

    `from a import b` counts as importing module `a.b` when that is a module, else `a`.
    """
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.append((submodule, "", node.lineno) if submodule in known else
                             (node.module, alias.name, node.lineno))
    return [(module, name, line) for module, name, line in found if module.split(".")[0] in PACKAGES]


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {module for module, _, _ in imports(path, known) if module != name} for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a list of modules (first = last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    """No module reaches itself through imports, counting those inside functions."""
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_private_name_crosses_modules():
    known = modules()
    crossing = [f"{path.relative_to(ROOT)}:{line} imports {module}.{name}"
                for path in known.values() for module, name, line in imports(path, known) if name.startswith("_")]
    assert crossing == []


@pytest.mark.parametrize("layer, forbidden", [
    ("rip.protocol", ("mlflow", "optuna", "rip.tracking.recorder", "rip.runner", "rip.sweeps", "rip.tuning")),
    ("rip.inpainters", ("mlflow", "optuna", "rip.config", "rip.protocol", "rip.runner")),
    ("rip.metrics", ("mlflow", "optuna", "rip.config", "rip.protocol", "rip.runner")),
    ("rip.images", ("mlflow", "optuna", "torch", "rip.config", "rip.protocol")),
    ("rip.tracking.tags", ("mlflow", "rip", "analysis")),
])
def test_lower_layers_do_not_reach_up(layer, forbidden):
    """The engine knows nothing of MLflow; components know nothing of the layers that compose them."""
    offending = []
    for name, path in modules().items():
        if name != layer and not name.startswith(layer + "."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                       [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            offending += [f"{name} imports {target}" for target in targets
                          if any(target == f or target.startswith(f + ".") for f in forbidden)]
    assert offending == []
