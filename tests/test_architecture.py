"""The package tree is the architecture (docs/architecture.md): imports run one way and never in a
circle, no module reaches into another's private names, modules stay small, every package says
what it is for. Imports inside functions count everywhere: a lazy import only hides a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "evaluators")
MAX_LINES = 400
MAX_LOOSE_SERVICE_MODULES = 6


def modules() -> dict[str, Path]:
    """Returns every module of service/ and evaluators/ by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "node_modules" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Returns the strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_imports_follow_the_layers_and_evaluators_never_import_service() -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_no_module_imports_itself_back_through_others_lazy_imports_included() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    # a package's __init__ that only re-exports its own modules is not a cycle between roles
    found = [c for c in cycles(edges) if not all(m.startswith(c[0] + ".") for m in c[1:])]
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_private_name_is_used_outside_its_module() -> None:
    known = modules()
    used = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        bound = {}  # local names bound to modules of ours
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if target in known:
                        bound[alias.asname or alias.name] = target
                    elif alias.name.startswith("_") and not alias.name.startswith("__"):
                        used.append(f"{name}: from {node.module} import {alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and alias.name in known:
                        bound[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and bound.get(node.value.id, name) != name and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                used.append(f"{name}: {bound[node.value.id]}.{node.attr}")
    assert not used, "private names used outside their module:\n" + "\n".join(sorted(set(used)))


def test_no_module_is_over_400_lines() -> None:
    big = {name: n for name, path in modules().items()
           if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not big, f"split these along the data flow: {big}"


def test_service_keeps_only_a_handful_of_loose_modules() -> None:
    loose = sorted(p.name for p in (ROOT / "service").glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= MAX_LOOSE_SERVICE_MODULES, loose


def test_every_package_says_what_it_is_for_and_what_it_may_import() -> None:
    silent = []
    for package in PACKAGES:
        for init in sorted((ROOT / package).rglob("__init__.py")):
            if "node_modules" in init.parts:
                continue
            doc = ast.get_docstring(ast.parse(init.read_text())) or ""
            if "import" not in doc.lower():
                silent.append(str(init.relative_to(ROOT)))
    assert not silent, "package docstrings that do not say what the package may import: " + \
        ", ".join(silent)
