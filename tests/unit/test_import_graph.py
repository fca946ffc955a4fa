"""No import cycles among the modules of ``panel`` and ``provisioners``.

The graph is built with ``ast`` from what each module imports when it is imported: the
statements of its top level, including those inside top-level ``if``/``try``/``with``
blocks. Imports inside functions are not edges (they run later, which is exactly how
cycles get hidden), so a cycle broken by moving an import into a function still fails
the second test below, which reads every import of a module wherever it stands.

Imports under ``if TYPE_CHECKING:`` count as edges too. They never run, so they cannot
break an import at run time, but they are still a dependency of one module on another:
a cycle that only type checking sees is the same tangle of responsibilities, hidden.
Counting them keeps the rule simple (a module never depends, in any way, on one that
depends on it) and keeps the fix the same: move the code to the module it belongs in.

Importing ``a.b.c`` also imports the packages ``a`` and ``a.b``; those edges are kept.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("panel", "provisioners")


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _statements(body: list[ast.stmt], deep: bool) -> Iterator[ast.stmt]:
    """The statements that run when the module is imported (``deep``: all of them)."""
    for node in body:
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and not deep:
            if isinstance(node, ast.ClassDef):  # a class body runs at import time
                yield from _statements(node.body, deep)
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                yield from _statements([c for c in children if isinstance(c, ast.stmt)], deep)
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                yield from _statements(handler.body, deep)


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _targets(module: str, node: ast.stmt) -> Iterator[str]:
    """The modules of ``panel``/``provisioners`` that ``node`` imports.

    A module's own parent packages are always initialised before it, so the packages that
    only lie on the way to an imported module are no edge back to them; a name taken from
    the parent package itself (``from panel.x import name`` inside ``panel.x.y``) is."""
    explicit: list[str] = []
    if isinstance(node, ast.Import):
        explicit = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".")
            if not _is_package(module):
                base.pop()
            base = base[: len(base) - (node.level - 1)]
            source = ".".join([*base, *([node.module] if node.module else [])])
        else:
            source = node.module or ""
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            explicit.append(sub if sub in MODULES else source)
    own = _ancestors(module)
    for name in explicit:
        if name in MODULES and name != module:
            yield name
        for passed in _ancestors(name):
            if passed in MODULES and passed not in own:
                yield passed


def import_graph(deep: bool = False) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[module] = {
            target
            for node in _statements(tree.body, deep)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for target in _targets(module, node)
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each given as
    one cycle through it, starting at its first module in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(_one_cycle(graph, c) for c in components)


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth first)."""
    start = min(component)
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")


def _describe(found: list[list[str]]) -> str:
    return "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_graph_sees_the_imports() -> None:
    graph = import_graph()
    assert "panel.core.db" in graph["panel.hosts.models"]
    assert "panel.web.core" in graph["panel.web.router"] or any(
        "panel.web.core" in graph[m] for m in graph["panel.web.router"]
    )
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_at_import_time() -> None:
    found = cycles(import_graph())
    assert not found, f"import cycles: {_describe(found)}"


def test_no_import_cycles_hidden_in_functions() -> None:
    found = cycles(import_graph(deep=True))
    assert not found, f"import cycles (counting imports inside functions): {_describe(found)}"


if __name__ == "__main__":  # pragma: no cover - a reader's tool: print the cycles
    for deep in (False, True):
        print("deep" if deep else "top level", _describe(cycles(import_graph(deep))) or "none")
    pytest.main([__file__])
