"""No import cycle anywhere in ``gateway/``.

A cycle means two modules that cannot be read, tested or replaced one without the
other. Every import counts, including those under ``TYPE_CHECKING`` and inside
functions: a cycle that only the type checker sees is still one concept split in two.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from tests.unit.test_layering import PACKAGE_ROOT, _absolute, _module_name

KNOWN_CYCLES: dict[frozenset[str], str] = {
    frozenset({"gateway.node.auditor", "gateway.node.server", "gateway.node.witness"}): (
        "the auditor API and the witness are handed the whole Node until the message "
        "log's package gives them their own context"
    ),
}
"""Cycles still to be removed, each run as a strict xfail: the suite says loudly (XPASS)
the day one disappears and its entry must go."""


def imports(source: str, module: str, known: Iterable[str], *, is_package: bool) -> set[str]:
    """The modules of ``known`` that ``source`` (module ``module``) imports."""
    names = set(known)
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # ``from gateway.node import server`` imports the module gateway.node.server;
            # ``from gateway.node.server import Node`` the module that defines Node.
            base = _absolute(node, module, is_package)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base
                for alias in node.names
            ]
        for target in targets:
            while target and target not in names:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def import_graph(root: Path = PACKAGE_ROOT) -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in sorted(root.rglob("*.py"))}
    return {
        name: imports(path.read_text("utf-8"), name, paths, is_package=path.name == "__init__.py")
        for name, path in paths.items()
    }


def cycles(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                child = pending.pop()
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _unexpected() -> list[str]:
    return sorted(" <-> ".join(sorted(c)) for c in cycles(import_graph()) if c not in KNOWN_CYCLES)


def test_the_graph_covers_the_package() -> None:
    graph = import_graph()
    assert {"gateway.node.server", "gateway.core.protocol", "gateway.cli"} <= set(graph)
    assert "gateway.core.protocol" in graph["gateway.node.serverproxy"]


def test_no_import_cycle_in_gateway() -> None:
    found = _unexpected()
    assert not found, "import cycles: " + "; ".join(found)


@pytest.mark.parametrize(
    "cycle",
    [
        pytest.param(c, id=" ".join(sorted(c)), marks=pytest.mark.xfail(strict=True, reason=r))
        for c, r in KNOWN_CYCLES.items()
    ],
)
def test_known_cycle_is_gone(cycle: frozenset[str]) -> None:
    assert cycle not in cycles(import_graph())


# ---------------------------------------------------------------- the checker itself


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [{"a", "b"}]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [{"a", "b", "c"}]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [{"a", "b"}, {"c", "d"}]),
        ({"a": {"a"}}, []),
    ],
)
def test_cycles(graph: dict[str, set[str]], expected: list[set[str]]) -> None:
    assert sorted(map(sorted, cycles(graph))) == sorted(map(sorted, expected))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from gateway.node.server import Node", {"gateway.node.server"}),
        ("from gateway.node import server", {"gateway.node.server"}),
        ("import gateway.node.server", {"gateway.node.server"}),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from gateway.node.server import Node",
            {"gateway.node.server"},
        ),
        ("def f():\n    from . import server", {"gateway.node.server"}),
        ("from .server import Node", {"gateway.node.server"}),
        ("import json", set()),
    ],
)
def test_imports(source: str, expected: set[str]) -> None:
    known = {"gateway.node.server", "gateway.node.auditor", "gateway.node"}
    assert imports(source, "gateway.node.auditor", known, is_package=False) == expected
