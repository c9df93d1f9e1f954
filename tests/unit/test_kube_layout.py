"""The kube package has no runtime import cycle: its modules import each other one way, and modules that need
``Kube`` for annotations import it under TYPE_CHECKING only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "lib"
KUBE_MODULES = ["meshtrace.kube", "meshtrace.kube.client", "meshtrace.kube.credentials", "meshtrace.kube.errors",
                "meshtrace.kube.istioctl", "meshtrace.kube.pods", "meshtrace.kube.wait"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def runtime_imports(path: Path, known: set[str]) -> set[str]:
    """Modules of ``known`` that ``path`` imports when it runs (top level or in functions; not TYPE_CHECKING)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names if a.name in known)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(anchor + ([child.module] if child.module else []))
                for a in child.names:  # `from . import pods` imports the submodule
                    if f"{base}.{a.name}" in known:
                        out.add(f"{base}.{a.name}")
                    elif base in known:
                        out.add(base)
            visit(child)

    visit(ast.parse(path.read_text()))
    out.discard(name)
    return out


def graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in (LIB / "meshtrace").rglob("*.py")}
    known = set(files)
    return {name: runtime_imports(path, known) for name, path in files.items()}


def cycles_through(g: dict[str, set[str]], start: str) -> list[list[str]]:
    """Import paths that lead from ``start`` back to it."""
    found, stack = [], [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in g.get(node, ()):
            if nxt == start:
                found.append(path + [start])
            elif nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return found


def test_the_graph_sees_imports_and_skips_type_checking_ones() -> None:
    g = graph()
    assert "meshtrace.kube.wait" in g["meshtrace.kube.client"] and "meshtrace.kube.pods" in g["meshtrace.kube.wait"]
    assert "meshtrace.kube.client" not in g["meshtrace.kube.wait"], "wait.py imports Kube for type checking only"


@pytest.mark.parametrize("module", KUBE_MODULES)
def test_no_kube_module_imports_itself_back_at_run_time(module: str) -> None:
    assert cycles_through(graph(), module) == []


def test_the_flat_kube_modules_are_gone() -> None:
    for old in ("kube.py", "kube_wait.py", "kube_pods.py", "kube_istioctl.py"):
        assert not (LIB / "meshtrace" / old).exists(), old


@pytest.mark.parametrize("module", KUBE_MODULES + ["meshtrace.stages.diagnose_facts"])
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    cp = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120,
                        env={"PYTHONPATH": str(LIB), "PATH": "/usr/bin:/bin"})
    assert cp.returncode == 0, cp.stderr


def test_the_stable_names_still_import() -> None:
    from meshtrace.kube import ApplyResult, Kube, api_error, connect  # noqa: F401
