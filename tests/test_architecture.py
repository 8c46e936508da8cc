"""The layer rule of ``docs/architecture.md``: imports point down only, no cycle between
modules (function-local imports included), no private name imported across modules.

The import graph is read from the source with ``ast`` (nothing is imported), the way
``../shared/tools/import_graph.py`` reads it; when that script sits beside the checkout it is
run too and must agree.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "recommender"
SHARED_TOOL = REPO.parent / "shared" / "tools" / "import_graph.py"

# (layer, rank, top-level parts of the package). A module may import from its own layer and
# from layers of lower rank; layers of equal rank do not import each other.
LAYERS = [
    ("core", 0, {"core"}),
    ("data", 1, {"data"}),
    ("measures", 1, {"metrics", "topk"}),
    ("models", 2, {"models"}),
    ("evaluation", 3, {"evaluation"}),
    ("reporting", 4, {"reporting"}),
    ("serve", 4, {"serve"}),
    ("cli", 5, {"cli"}),
]
ROOT = PACKAGE.name  # ``recommender/__init__.py``: the package itself, importable from anywhere


def package_modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root`` (packages by their name)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports_of(module: str, path: Path, modules: dict[str, Path]
               ) -> list[tuple[str, str | None]]:
    """``(target module, imported name or None)`` for every import statement of ``path``,
    wherever it sits (function bodies included); relative imports resolved."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if path.name == "__init__.py" else 0)
                target = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.append((full, None) if full in modules else (target, alias.name))
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
    return found


def import_graph(root: Path = PACKAGE) -> tuple[dict[str, set[str]], list[str]]:
    """Edges between the package's modules, and the private names taken across modules.

    A module importing its own parent package (``from recommender.data import x`` inside
    ``recommender.data.splits``) is not an edge: a package's ``__init__`` re-exports its
    children, it is not their dependency.
    """
    modules = package_modules(root)
    edges: dict[str, set[str]] = {}
    private: list[str] = []
    for module, path in modules.items():
        for target, name in imports_of(module, path, modules):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if not target or target == module or not target.startswith(root.name):
                continue
            if not module.startswith(target + "."):
                edges.setdefault(module, set()).add(target)
            if name and name.startswith("_") and not name.startswith("__"):
                private.append(f"{module} imports {target}.{name}")
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The cycles a depth-first search meets, each as a closed path of module names."""
    colour: dict[str, int] = {}
    found: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if colour.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif not colour.get(nxt):
                visit(nxt, stack)
        stack.pop()
        colour[node] = 2

    for node in sorted(set(edges) | {t for ts in edges.values() for t in ts}):
        if not colour.get(node):
            visit(node, [])
    return found


def layer_of(module: str) -> tuple[str, int] | None:
    """``(layer, rank)`` of a module of the package; None for the package root or an unknown
    top-level part."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    for name, rank, tops in LAYERS:
        if parts[1] in tops:
            return name, rank
    return None


def test_every_module_has_a_layer():
    unplaced = [m for m in package_modules() if m != ROOT and layer_of(m) is None]
    assert not unplaced, (f"modules outside every layer: {', '.join(unplaced)}; add their "
                          "top-level part to LAYERS here and to docs/architecture.md")


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """Edges from a layer to a layer of equal or higher rank (the package root aside)."""
    wrong = []
    for module, targets in sorted(edges.items()):
        source = layer_of(module)
        if source is None:  # the package root imports core to quiet TensorFlow
            continue
        for target in sorted(targets):
            if layer_of(target) is None:
                continue
            layer, rank = layer_of(target)
            if layer != source[0] and rank >= source[1]:
                wrong.append(f"{module} ({source[0]}) imports {target} ({layer})")
    return wrong


def test_imports_point_down():
    wrong = upward_imports(import_graph()[0])
    assert not wrong, "imports that do not point down:\n" + "\n".join(wrong)


def test_no_import_cycle():
    found = cycles(import_graph()[0])
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_private_name_across_modules():
    private = import_graph()[1]
    assert not private, "private names imported across modules:\n" + "\n".join(private)


def test_checker_sees_local_imports(tmp_path):
    """A cycle hidden in a function body is still a cycle; a private import is still found;
    an import up or sideways (in a function too) breaks the layers."""
    package = tmp_path / "pkg"
    for folder in ("", "core", "data", "models"):
        (package / folder).mkdir(exist_ok=True)
        (package / folder / "__init__.py").write_text("")
    (package / "core" / "a.py").write_text("from pkg.core.b import f\n")
    (package / "core" / "b.py").write_text("def f():\n    from pkg.core.a import _g\n")
    (package / "data" / "c.py").write_text("def h():\n    import pkg.models.d\n")
    (package / "models" / "d.py").write_text("from pkg.core import a\n")
    edges, private = import_graph(package)
    assert cycles(edges) == [["pkg.core.a", "pkg.core.b", "pkg.core.a"]]
    assert private == ["pkg.core.b imports pkg.core.a._g"]
    assert upward_imports(edges) == ["pkg.data.c (data) imports pkg.models.d (models)"]


def test_shared_tool_agrees():
    """``../shared/tools/import_graph.py`` (the project's own checker) finds nothing either."""
    if not SHARED_TOOL.is_file():
        pytest.skip(f"{SHARED_TOOL} not found (the checkout has no ../shared beside it)")
    done = subprocess.run([sys.executable, str(SHARED_TOOL), PACKAGE.name], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
