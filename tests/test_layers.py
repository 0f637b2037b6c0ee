"""The import graph of ``proxy``: no module imports itself back, and config sits below routing.

Every import counts: module level, inside functions and under ``TYPE_CHECKING``, because a
lazy import is still a dependency (and was how config and routing used to hide their cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import proxy

ROOT = Path(proxy.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """The proxy modules ``path`` imports (``from a import b`` is a.b when b is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in known:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(path, known) - {name} for name, path in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path (first == last), or None. Depth-first search with colours."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles_and_accepts_dags() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_import_parser_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from proxy.routing import Router\n"
        "def f():\n    from proxy.config import load\n    import proxy.errors\n"
    )
    assert imports(source, set(modules())) == {"proxy.routing", "proxy.config.load", "proxy.errors"}


def test_no_module_of_proxy_imports_itself_back() -> None:
    assert find_cycle(graph()) is None


def test_config_imports_nothing_above_it() -> None:
    edges = graph()
    for name, targets in edges.items():
        if name == "proxy.config" or name.startswith("proxy.config."):
            above = {t for t in targets if not t.startswith("proxy.config") and t != "proxy.errors"}
            assert not above, f"{name} imports {above}"


def test_routing_imports_no_provider_transport_or_server() -> None:
    for name, targets in graph().items():
        if name.startswith("proxy.routing"):
            allowed = ("proxy.routing", "proxy.config", "proxy.errors")
            assert all(t.startswith(allowed) for t in targets), f"{name} imports {targets}"
