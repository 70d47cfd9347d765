"""The rules between the packages, read from the source (ast, nothing imported):

- draggan imports none of inversion and pipeline; inversion does not import pipeline;
- library code (draggan, inversion) never prints or writes to stdout/stderr, and never
  reads YAML;
- no import cycle among our modules (function-level and type-only imports count);
- only pipeline/store/store.py names the store's folders and files.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("draggan", "inversion", "pipeline")
FORBIDDEN = {"draggan": {"inversion", "pipeline"}, "inversion": {"pipeline"}}
STORE_NAMES = {
    "refs",
    "partial",
    "generators",
    "artifacts",
    "digests.json",
    "manifest.json",
    "checkpoints",
}


def _modules() -> dict[str, Path]:
    """{dotted module name: file} of our three packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _imported(name: str, tree: ast.Module) -> set[str]:
    """Every module ``name`` imports (anywhere in the file), as dotted names; a
    ``from package import submodule`` counts as importing the submodule only."""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            subs = [f"{base}.{alias.name}" for alias in node.names]
            if all(sub in MODULES for sub in subs):
                out.update(subs)
            else:
                out.add(base)
    return out


IMPORTS = {name: _imported(name, tree) for name, tree in TREES.items()}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_libraries_do_not_import_the_layers_above(package):
    wrong = sorted(
        f"{name} imports {module}"
        for name, modules in IMPORTS.items()
        if name.split(".")[0] == package
        for module in modules
        if module.split(".")[0] in FORBIDDEN[package]
    )
    assert wrong == []


def test_library_code_does_not_print_or_read_yaml():
    wrong = []
    for name, tree in TREES.items():
        if name.split(".")[0] == "pipeline":
            continue
        for node in ast.walk(tree):
            text = ast.unparse(node) if isinstance(node, (ast.Call, ast.Attribute)) else ""
            if isinstance(node, ast.Call) and text.startswith("print("):
                wrong.append(f"{name}: {text[:60]}")
            elif isinstance(node, ast.Attribute) and text in ("sys.stdout", "sys.stderr"):
                wrong.append(f"{name}: {text}")
        if any(module.split(".")[0] == "yaml" for module in IMPORTS[name]):
            wrong.append(f"{name} imports yaml")
    assert wrong == []


def test_no_import_cycles():
    graph = {
        name: {m for m in modules if m in MODULES and m != name}
        for name, modules in IMPORTS.items()
    }
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycles.append(" -> ".join(path[path.index(other) :] + [other]))
            elif other not in state:
                visit(other)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []


def test_only_the_store_names_its_layout():
    wrong = []
    for name, tree in TREES.items():
        if name == "pipeline.store.store" or not name.startswith("pipeline"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in STORE_NAMES:
                wrong.append(f"{name}: {node.value!r}")
    assert wrong == []


def test_the_rules_see_a_violation(tmp_path):
    """The checks above read real imports: a cycle and a forbidden import are found."""
    tree = ast.parse("from pipeline.store import Store\nimport inversion.state\n")
    assert {"pipeline.store", "inversion.state"} <= _imported("draggan.loading", tree)
    assert "draggan.generator" in IMPORTS["draggan.building"]
    assert "draggan.building" in IMPORTS["draggan.loading"]
