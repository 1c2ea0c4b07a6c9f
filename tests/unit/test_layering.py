"""``gateway.core`` and ``gateway.pki`` stay pure: no I/O stack, no node, no clock.

They are the protocol and certificate logic every other part builds on and that the test
vectors pin down. They must not reach into the node, configuration, storage or demo
code, nor into network, TLS, event-loop, web or database libraries; and they never read
the time themselves: the caller passes ``now`` in, so checks are reproducible.

Across all of ``gateway/``: the product never imports the sandbox (``gateway.sandbox``)
or the sample registries, and no module imports itself back through others (no import
cycle).
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

import gateway

PACKAGE_ROOT = Path(gateway.__file__).resolve().parent
PURE_PACKAGES = ("core", "pki")

FORBIDDEN_MODULES = (
    "gateway.node",
    "gateway.conf",
    "gateway.store",
    "gateway.messagelog",
    "gateway.cli",
    "gateway.keys",
    "gateway.trust",
    "gateway.fsutil",
    "gateway.sandbox",
    "registries",
    "aiohttp",
    "fastapi",
    "starlette",
    "httpx",
    "sqlmodel",
    "sqlalchemy",
    "sqlite3",
    "uvicorn",
    "uvloop",
    "socket",
    "ssl",
    "asyncio",
)
CLOCK_CALLS = frozenset(
    {
        "datetime.now",
        "datetime.utcnow",
        "datetime.today",
        "date.today",
        "time.time",
        "time.time_ns",
    }
)
CLOCK_IMPORTS = frozenset({("time", "time"), ("time", "time_ns")})
CLOCK_FUNCTIONS = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "time.time",
        "time.time_ns",
    }
)


@dataclass(frozen=True)
class Violation:
    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` names, resolving relative imports."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f"{f}.") for f in FORBIDDEN_MODULES)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


def violations(source: str, module: str, *, is_package: bool = False) -> list[Violation]:
    """Forbidden imports and clock reads in one module's source."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}  # local name -> the module or object it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
    found: list[Violation] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                Violation(node.lineno, f"import {alias.name}")
                for alias in node.names
                if _forbidden(alias.name)
            ]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if _forbidden(target) or _forbidden(full):
                    found.append(Violation(node.lineno, f"from {target} import {alias.name}"))
                if (target, alias.name) in CLOCK_IMPORTS:
                    found.append(Violation(node.lineno, f"from {target} import {alias.name}"))
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name is None:
                continue
            head, _, rest = name.partition(".")
            resolved = ".".join(filter(None, [aliases.get(head, head), rest]))
            if resolved in CLOCK_FUNCTIONS or any(
                name == c or name.endswith(f".{c}") for c in CLOCK_CALLS
            ):
                found.append(Violation(node.lineno, f"calls {name}()"))
            if name in ("importlib.import_module", "__import__", "import_module"):
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    if _forbidden(arg.value):
                        found.append(Violation(node.lineno, f"imports {arg.value} dynamically"))
                else:
                    found.append(Violation(node.lineno, "imports a computed module name"))
    return found


def pure_modules() -> list[Path]:
    return sorted(p for pkg in PURE_PACKAGES for p in (PACKAGE_ROOT / pkg).rglob("*.py"))


def test_the_pure_packages_have_modules() -> None:
    names = {_module_name(p) for p in pure_modules()}
    assert {"gateway.core.envelope", "gateway.core.ids", "gateway.pki.validation"} <= names


@pytest.mark.parametrize(
    "path", pure_modules(), ids=lambda p: str(p.relative_to(PACKAGE_ROOT.parent))
)
def test_pure_module(path: Path) -> None:
    found = violations(
        path.read_text("utf-8"), _module_name(path), is_package=path.name == "__init__.py"
    )
    assert not found, f"{path.relative_to(PACKAGE_ROOT.parent)}: " + "; ".join(map(str, found))


# ---------------------------------------------------------------- the checker itself


@pytest.mark.parametrize(
    "source",
    [
        "import ssl",
        "import asyncio.events",
        "import sqlite3 as db",
        "from aiohttp import web",
        "from gateway.node.server import Node",
        "from gateway import sandbox",
        "from gateway.sandbox import localnet",
        "from gateway.sandbox.cities import SOEST",
        "import registries.portal.app",
        "from gateway import cli as c",
        "from ..node import config",
        "from .. import store",
        "from sqlmodel import Session",
        "import fastapi, json",
        "import httpx",
        "from starlette.requests import Request",
        "import uvicorn",
        "import socket",
        "from gateway.conf.directory import Directory",
        "from gateway.sandbox import demo",
        "import sqlalchemy.orm",
        "from datetime import datetime\nx = datetime.now()",
        "import datetime\nx = datetime.datetime.now(datetime.UTC)",
        "from datetime import datetime as dt\nx = dt.utcnow()",
        "from datetime import date\nx = date.today()",
        "import time\nx = time.time()",
        "import time as clock\nx = clock.time()",
        "from time import time as t",
        "from datetime import date as d\nx = d.today()",
        "from time import time",
        "import importlib\nm = importlib.import_module('gateway.node.server')",
        "import importlib\nm = importlib.import_module(name)",
    ],
)
def test_checker_flags(source: str) -> None:
    assert violations(source, "gateway.core.example"), source


@pytest.mark.parametrize(
    "source",
    [
        "import json\nimport hashlib",
        "from gateway.core.errors import Code",
        "from .errors import Code",
        "from ..pki.profiles import CertificateError",
        "from cryptography import x509",
        "from datetime import UTC, datetime, timedelta\ndef f(now: datetime) -> datetime:\n"
        "    return now + timedelta(seconds=1)",
        "import time\nx = time.monotonic",
        "from gateway.nodes import x",
    ],
)
def test_checker_allows(source: str) -> None:
    assert violations(source, "gateway.core.example") == [], source


# ---------------------------------------------------------------- core and pki one way
#
# ``gateway.core``'s protocol modules (the envelope, the log tree, tree heads) use
# ``gateway.pki`` to check certificates, OCSP responses and time stamps; ``gateway.pki``
# uses only core's base modules, which in turn use nothing but each other. So the two
# packages never import each other in a circle. And ``gateway.pki`` is pure in the
# stronger sense of docs/adr/0016: no file or OS I/O; key, certificate and CSR files
# are ``gateway.keys``, the CA directory and revocation database ``gateway.trust``.

CORE_BASE_MODULES = ("gateway.core.ids", "gateway.core.errors", "gateway.core.encoding")
IO_MODULES = ("os", "fcntl", "pathlib", "shutil", "tempfile", "glob")
IO_CALLS = frozenset({"open", "io.open", "os.open", "os.fdopen"})
IO_METHODS = frozenset(
    {"read_bytes", "read_text", "write_bytes", "write_text", "mkdir", "unlink", "touch"}
)


def _is_under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def _gateway_imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every ``gateway`` module or object one module's source imports, by line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _is_under(a.name, ("gateway",))]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            if _is_under(target, ("gateway",)):
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return found


def pki_violations(source: str, module: str, *, is_package: bool = False) -> list[Violation]:
    """Imports of core's protocol modules or other gateway code, and file or OS I/O."""
    tree = ast.parse(source)
    allowed = ("gateway.pki", *CORE_BASE_MODULES)
    found = [
        Violation(line, f"imports {name}")
        for line, name in _gateway_imports(tree, module, is_package)
        if not _is_under(name, allowed)
    ]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                Violation(node.lineno, f"import {a.name}")
                for a in node.names
                if _is_under(a.name, IO_MODULES)
            ]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            if _is_under(target, IO_MODULES):
                found.append(Violation(node.lineno, f"from {target} import ..."))
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in IO_CALLS:
                found.append(Violation(node.lineno, f"calls {name}()"))
            elif isinstance(node.func, ast.Attribute) and node.func.attr in IO_METHODS:
                found.append(Violation(node.lineno, f"calls .{node.func.attr}()"))
    return found


def core_base_violations(source: str, module: str) -> list[Violation]:
    """A base module of core imports only other base modules: no pki, no protocol."""
    tree = ast.parse(source)
    return [
        Violation(line, f"imports {name}")
        for line, name in _gateway_imports(tree, module, False)
        if not _is_under(name, CORE_BASE_MODULES)
    ]


def pki_modules() -> list[Path]:
    return sorted((PACKAGE_ROOT / "pki").rglob("*.py"))


def test_core_has_its_base_modules() -> None:
    names = {_module_name(p) for p in pure_modules()}
    assert set(CORE_BASE_MODULES) <= names


@pytest.mark.parametrize(
    "path", pki_modules(), ids=lambda p: str(p.relative_to(PACKAGE_ROOT.parent))
)
def test_pki_uses_only_core_base_modules_and_no_io(path: Path) -> None:
    found = pki_violations(
        path.read_text("utf-8"), _module_name(path), is_package=path.name == "__init__.py"
    )
    assert not found, f"{path.relative_to(PACKAGE_ROOT.parent)}: " + "; ".join(map(str, found))


@pytest.mark.parametrize("module", CORE_BASE_MODULES)
def test_core_base_modules_import_no_pki_and_no_protocol(module: str) -> None:
    path = PACKAGE_ROOT.parent.joinpath(*module.split(".")).with_suffix(".py")
    found = core_base_violations(path.read_text("utf-8"), module)
    assert not found, f"{module}: " + "; ".join(map(str, found))


@pytest.mark.parametrize(
    "source",
    [
        "from gateway.core.envelope import b64url",
        "from gateway.core import envelope",
        "from ..core.treehead import TreeHeadError",
        "import gateway.core.logtree",
        "from gateway.fsutil import replace_atomically",
        "from gateway.keys.files import load_certificate",
        "from gateway.trust.revocation import status_of",
        "import os",
        "import fcntl",
        "from pathlib import Path",
        "import tempfile",
        "data = open('ca.pem', 'rb').read()",
        "def f(path):\n    return path.read_bytes()",
        "def f(path, pem):\n    path.write_bytes(pem)",
        "def f(path):\n    path.parent.mkdir(parents=True)",
    ],
)
def test_pki_checker_flags(source: str) -> None:
    assert pki_violations(source, "gateway.pki.example"), source


@pytest.mark.parametrize(
    "source",
    [
        "from gateway.core.encoding import b64url, b64url_decode",
        "from gateway.core.errors import ReasonedError",
        "from gateway.core.ids import MemberId, NodeId",
        "from gateway.core import ids",
        "from gateway.pki.profiles import CertificateError",
        "from .ocsp import OcspError",
        "from cryptography import x509\nimport hashlib",
        "x = cert.public_bytes(serialization.Encoding.PEM)",
        "moment = now.replace(microsecond=0)",
    ],
)
def test_pki_checker_allows(source: str) -> None:
    assert pki_violations(source, "gateway.pki.example") == [], source


@pytest.mark.parametrize(
    "source",
    [
        "from gateway.pki.profiles import CertificateError",
        "from gateway.core.envelope import EnvelopeError",
        "from gateway.core.canonical import canonical_json",
        "import gateway.pki.ocsp",
    ],
)
def test_core_base_checker_flags(source: str) -> None:
    assert core_base_violations(source, "gateway.core.example"), source


def test_core_base_checker_allows_the_base() -> None:
    source = "from gateway.core.errors import Code\nfrom gateway.core.encoding import b64url"
    assert core_base_violations(source, "gateway.core.example") == []


# ---------------------------------------------------------------- the product and its sandbox
#
# Every module of ``gateway/`` is read (``ast``: module-level, function-level and
# ``TYPE_CHECKING`` imports alike). The sandbox (``gateway.sandbox``: demo, local
# network, compose set-up, benchmarks) and the sample registries (``registries/``) may
# use the product; the product never uses them, so it runs and is read without them
# (docs/adr/0017-product-apart-from-its-sandbox.md). ``gateway.cli`` is the one entry
# point: it reaches the sandbox and the registries only from inside its functions (where
# it registers their subcommands and runs them), never at module level, so importing it
# does not import them.

REPOSITORY_ROOT = PACKAGE_ROOT.parent
SANDBOX = "gateway.sandbox"
REGISTRIES = "registries"
ENTRY_POINTS = frozenset({"gateway.cli", "gateway.__main__"})
OUTSIDE_THE_PRODUCT = (SANDBOX, REGISTRIES)


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to an absolute module name."""

    importer: str
    target: str
    line: int
    in_function: bool


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def _modules_under(root: Path) -> dict[str, Path]:
    """Every module below ``root`` (a package directory), by dotted name."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(REPOSITORY_ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(source: str, module: str, *, is_package: bool = False) -> list[Import]:
    """Every import in ``source``, wherever it stands; ``from X import Y`` names ``X.Y``
    (resolved against the known modules by the caller) as well as ``X``."""
    tree = ast.parse(source)
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(module, a.name, node.lineno, in_function) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            # Python runs ``X`` (a package's ``__init__``) before it looks up ``Y``.
            found.append(Import(module, target, node.lineno, in_function))
            for alias in node.names:
                found.append(Import(module, f"{target}.{alias.name}", node.lineno, in_function))
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def _resolve(target: str, known: dict[str, Path]) -> str:
    """The longest known module that ``target`` names (``a.b.C`` -> ``a.b``), else ``target``."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return target


def _all_imports(root: Path, known: dict[str, Path]) -> list[Import]:
    found: list[Import] = []
    for module, path in _modules_under(root).items():
        for imp in imports_of(
            path.read_text("utf-8"), module, is_package=path.name == "__init__.py"
        ):
            found.append(
                Import(imp.importer, _resolve(imp.target, known), imp.line, imp.in_function)
            )
    return found


def _known_modules() -> dict[str, Path]:
    return {**_modules_under(PACKAGE_ROOT), **_modules_under(REPOSITORY_ROOT / REGISTRIES)}


def layering_violations(imports: list[Import]) -> list[str]:
    """What breaks the rules above, one line per import."""
    found: list[str] = []
    for imp in imports:
        where = f"{imp.importer} line {imp.line}: imports {imp.target}"
        outside = any(_within(imp.target, p) for p in OUTSIDE_THE_PRODUCT)
        if _within(imp.importer, SANDBOX):
            continue
        if _within(imp.importer, REGISTRIES):
            if _within(imp.target, SANDBOX):
                found.append(f"{where} (the registries use the product, not the sandbox)")
        elif imp.importer in ENTRY_POINTS:
            if outside and not imp.in_function:
                found.append(f"{where} at module level (only inside a function)")
        elif outside:
            found.append(f"{where} (the product never imports the sandbox or the registries)")
    return list(dict.fromkeys(found))  # once per statement, not per imported name


def import_graph(imports: list[Import], package: str = "gateway") -> dict[str, dict[str, int]]:
    """importer -> {imported module: first line}, among the modules of ``package``."""
    graph: dict[str, dict[str, int]] = {}
    for imp in imports:
        if not _within(imp.importer, package):
            continue
        edges = graph.setdefault(imp.importer, {})
        if _within(imp.target, package) and imp.target != imp.importer:
            edges.setdefault(imp.target, imp.line)
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """Tarjan's algorithm: the components of more than one module (each holds a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[frozenset[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return components


def describe_cycle(graph: dict[str, dict[str, int]], component: frozenset[str]) -> str:
    """A shortest cycle through ``component``'s first module, each step with the line of
    its import (breadth first, so the report names no more modules than it must)."""
    start = min(component)
    parent: dict[str, str] = {}
    queue, last = deque([start]), start
    while queue:
        here = queue.popleft()
        if start in graph[here]:
            last = here
            break
        for nxt in sorted(w for w in graph[here] if w in component):
            if nxt != start and nxt not in parent:
                parent[nxt] = here
                queue.append(nxt)
    path = [last]
    while path[-1] != start:
        path.append(parent[path[-1]])
    path = [*reversed(path), start]
    steps = (f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(path))
    return " -> ".join([*steps, start])


def test_the_product_never_imports_the_sandbox_or_the_registries() -> None:
    known = _known_modules()
    imports = _all_imports(PACKAGE_ROOT, known) + _all_imports(REPOSITORY_ROOT / REGISTRIES, known)
    assert any(i.importer == "gateway.cli" and _within(i.target, SANDBOX) for i in imports)
    found = layering_violations(imports)
    assert not found, "\n".join(found)


def test_no_import_cycle_in_gateway() -> None:
    graph = import_graph(_all_imports(PACKAGE_ROOT, _known_modules()))
    assert len(graph) > 50, "the walk found too few modules"
    cycles = [describe_cycle(graph, c) for c in strongly_connected(graph)]
    assert not cycles, "import cycles in gateway/:\n" + "\n".join(cycles)


# ---------------------------------------------------------------- the layering checkers


def _imports(sources: dict[str, str]) -> list[Import]:
    known = {name: Path(name) for name in sources}
    return [
        Import(i.importer, _resolve(i.target, known), i.line, i.in_function)
        for name, source in sources.items()
        for i in imports_of(source, name)
    ]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("gateway.node.server", "from gateway.sandbox.localnet import LocalNet"),
        ("gateway.audit.cli", "def f() -> None:\n    from gateway.sandbox.bench import audit"),
        (
            "gateway.core.ids",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from gateway.sandbox.cities import City",
        ),
        ("gateway.central.service", "import registries.portal.app"),
        ("gateway.fsutil", "from registries.portal import federation"),
        ("gateway.node.server", "from gateway import sandbox"),
        ("gateway.cli", "from gateway.sandbox.demo import run_demo"),
        ("gateway.cli", "from registries.standalone import add_server_arguments"),
        ("registries.portal.app", "from gateway.sandbox.cities import SOEST"),
        ("registries.portal.app", "def f() -> None:\n    import gateway.sandbox.localnet"),
    ],
)
def test_layering_checker_flags(module: str, source: str) -> None:
    assert layering_violations(_imports({module: source})), source


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("gateway.sandbox.demo", "from gateway.node.messagelog import read_entries"),
        ("gateway.sandbox.setup", "from registries.portal.cli import DEFAULT_CLIENT"),
        ("gateway.cli", "def f() -> None:\n    from gateway.sandbox.demo import run_demo"),
        ("gateway.cli", "async def f() -> None:\n    from registries.ihk.app import serve"),
        ("registries.portal.app", "from gateway.core.ids import ServiceId"),
        ("gateway.node.server", "from gateway.sandboxes import x"),
        ("gateway.node.server", "import registries_of_record"),
    ],
)
def test_layering_checker_allows(module: str, source: str) -> None:
    assert layering_violations(_imports({module: source})) == [], source


def test_cycle_finder() -> None:
    graph = import_graph(
        _imports(
            {
                "gateway.a": "from gateway.b import x",
                "gateway.b": "def f() -> None:\n    from gateway import c",
                "gateway.c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    import gateway.a",
                "gateway.d": "from gateway.a import x\nfrom gateway.e import y",
                "gateway.e": "import json",
            }
        )
    )
    assert strongly_connected(graph) == [frozenset({"gateway.a", "gateway.b", "gateway.c"})]
    cycle = describe_cycle(graph, frozenset({"gateway.a", "gateway.b", "gateway.c"}))
    assert cycle == "gateway.a (line 1) -> gateway.b (line 2) -> gateway.c (line 3) -> gateway.a"
    acyclic = {k: v for k, v in graph.items() if k != "gateway.c"}
    assert strongly_connected(acyclic) == []


# ---------------------------------------------------------------- the console over the APIs
#
# ``gateway.console`` holds no logic of its own: every page is a call of a management API
# over HTTP, so it never imports the central's, the node's or the log's code (which would
# let it read their databases or bypass their role checks). It may use core (identifiers,
# roles, errors), the network layer, and the offline verifier, which is pure
# (docs/adr/0039-console-sign-in-with-an-api-key.md).

CONSOLE = "gateway.console"
CONSOLE_MAY_USE = ("gateway.console", "gateway.core", "gateway.net", "gateway.audit")


def console_violations(imports: list[Import]) -> list[str]:
    return [
        f"{i.importer} line {i.line}: imports {i.target} (the console goes through the APIs)"
        for i in imports
        if _within(i.importer, CONSOLE)
        and _within(i.target, "gateway")
        and not any(_within(i.target, allowed) for allowed in CONSOLE_MAY_USE)
    ]


def test_the_console_reaches_the_central_and_node_only_over_http() -> None:
    imports = _all_imports(PACKAGE_ROOT / "console", _known_modules())
    assert any(_within(i.target, "gateway.audit") for i in imports), "the walk found nothing"
    found = console_violations(imports)
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "from gateway.central.apikeys import authenticate",
        "from gateway.node.settings import SettingsManager",
        "import gateway.messagelog",
        "def f() -> None:\n    from gateway.central import registry",
    ],
)
def test_console_checker_flags(source: str) -> None:
    assert console_violations(_imports({"gateway.console.app": source})), source


def test_console_checker_allows() -> None:
    source = "from gateway.audit.report import report_lines\nfrom gateway.core.roles import ApiRole"
    assert console_violations(_imports({"gateway.console.app": source})) == []
