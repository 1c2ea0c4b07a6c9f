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
    "gateway.messagelog",
    "gateway.localnet",
    "gateway.demo",
    "gateway.cli",
    "gateway.bench",
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
