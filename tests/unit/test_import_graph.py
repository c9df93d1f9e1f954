"""No module of lib/meshtrace or lib/meshlab imports another that imports it back at run time.

The graph is built from the AST: module-level imports only (an import inside a function runs late, and one
under ``if TYPE_CHECKING:`` never runs), with ``from pkg import name`` counted as an import of ``pkg.name``
when that is a module and of ``pkg`` otherwise. Importing a package runs its ``__init__``, so an edge to
``a.b.c`` is also an edge to ``a.b`` and ``a``, except to the packages the importing module sits in: those
are being imported already, and only a name taken from their ``__init__`` makes an edge to them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "lib"
PACKAGES = ("meshtrace", "meshlab")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((LIB / pkg).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: the module body, and try/if blocks that are not
    ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    walk(node.body)
                walk(node.orelse)
            elif isinstance(node, ast.Try):
                walk(node.body)
                for handler in node.handlers:
                    walk(handler.body)
                walk(node.orelse)
                walk(node.finalbody)

    walk(tree.body)
    return found


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def edges(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ours that importing ``name`` imports."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    here = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _top_level_imports(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        for target in targets:
            for m in _with_parents(target):
                # the packages this module sits in are being imported already: an edge to one of them is
                # an import only where a name is taken from its __init__ (``target`` itself)
                if m in known and m != name and (m == target or not name.startswith(m + ".")):
                    out.add(m)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: edges(name, path, known) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_the_imports() -> None:
    g = graph()
    assert {"meshlab.apiserver", "meshlab.apiserver.admission"} <= g["meshlab.lab"]  # a package and a module
    assert "meshlab.apiserver" not in g["meshlab.apiserver.bodies"]  # its own package, for a submodule only
    assert "meshlab.context" not in g["meshlab.mesh.podnet"]  # a TYPE_CHECKING import is no edge
    assert "meshlab.backend.jaeger" in g["meshlab.backend"]  # a relative import is an edge
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_one_that_imports_it_back(package: str) -> None:
    g = {k: {w for w in v if w.split(".")[0] == package} for k, v in graph().items() if k.split(".")[0] == package}
    real = cycles(g)
    assert real == [], "import cycles at run time:\n" + "\n".join(" ↔ ".join(c) for c in real)
