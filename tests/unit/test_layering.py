"""``gateway.core`` and ``gateway.pki`` stay pure: no I/O stack, no node, no clock.

They are the protocol and certificate logic every other part builds on and that the test
vectors pin down. They must not reach into the node, configuration, storage or demo
code, nor into network, TLS, event-loop, web or database libraries; and they never read
the time themselves: the caller passes ``now`` in, so checks are reproducible.
"""

from __future__ import annotations

import ast
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
    "gateway.localnet",
    "gateway.demo",
    "gateway.cli",
    "gateway.bench",
    "gateway.keys",
    "gateway.trust",
    "gateway.fsutil",
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
        "from gateway import localnet",
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
        "from gateway import demo",
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
