"""A node on SQLite starts without the libraries only other backends and commands need.

Every ``gateway node serve`` process imports the node's modules before it serves; the
test suite and the loopback federation start hundreds of them and operators restart
them. SQLAlchemy and SQLModel (the schema's declarations), psycopg (the PostgreSQL
backend) and Alembic (``gateway db upgrade``) cost such a process about a third of a CPU
second and serve a SQLite log whose tables exist for nothing: the hot path is plain
``sqlite3`` (docs/architecture.md, ``messagelog/``; docs/performance.md, start-up).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from gateway.messagelog import Kind, Role, open_log
from gateway.messagelog.schema import schema_tables
from gateway.messagelog.schema_names import INDEX_NAMES, TABLE_NAMES

NOT_FOR_A_SQLITE_NODE = (
    "sqlalchemy",
    "sqlmodel",
    "psycopg",
    "alembic",
    "httpx",
    "jinja2",
    "rich",
    "fastapi",
    "uvicorn",
    "playwright",
)
"""Loaded by the schema's creation, the PostgreSQL backend, the CLI's clients and the
console: never by a node serving a SQLite log that exists."""


def loaded_by(code: str) -> list[str]:
    """The modules of ``NOT_FOR_A_SQLITE_NODE`` a fresh interpreter holds after ``code``
    (the test process itself has imported everything already)."""
    heavy = set(NOT_FOR_A_SQLITE_NODE)
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_the_modules_of_gateway_node_serve_load_none_of_them() -> None:
    # What ``gateway node serve`` imports before it serves (gateway/node/cli.py).
    code = (
        "import gateway.cli, gateway.node.cli\n"
        "import gateway.node.config, gateway.node.server, gateway.node.workers\n"
    )
    assert loaded_by(code) == []


def test_opening_an_existing_sqlite_log_loads_none_of_them(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"

    async def create() -> None:
        # The first start creates the tables: that one may use SQLAlchemy.
        async with open_log(path, clock=lambda: datetime.now(UTC)) as log:
            await log.probe()

    asyncio.run(create())
    # A restart: the writer opens the file, checks its tree, commits a write through its
    # thread; a reader counts the entries.
    code = f"""
import asyncio
from datetime import UTC, datetime
from pathlib import Path
from gateway.messagelog import open_log

async def restart() -> None:
    async with open_log(Path({str(path)!r}), clock=lambda: datetime.now(UTC)) as log:
        await log.probe()
        assert log.store.count_entries() == 0

asyncio.run(restart())
"""
    assert loaded_by(code) == []


def test_creating_a_new_sqlite_log_loads_none_of_them(tmp_path: Path) -> None:
    # A node's first start: the writer creates every table from sqlite_ddl's text, then
    # the log serves a write and a read as on any later start.
    path = tmp_path / "new" / "log.sqlite"
    code = f"""
import asyncio
from datetime import UTC, datetime
from pathlib import Path
from gateway.messagelog import open_log

async def first_start() -> None:
    async with open_log(Path({str(path)!r}), clock=lambda: datetime.now(UTC)) as log:
        await log.probe()
        assert log.store.count_entries() == 0

asyncio.run(first_start())
"""
    assert loaded_by(code) == []
    tables = {table.name for table in schema_tables()}
    with closing(sqlite3.connect(path)) as conn:
        names = {str(n) for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    assert tables | INDEX_NAMES <= names


def test_the_names_a_node_checks_are_the_schema_s_tables_and_indexes() -> None:
    # A table or index added to the schema but not here would never be created in an
    # existing file: the node would take the file as complete.
    assert {table.name for table in schema_tables()} == TABLE_NAMES
    assert {i.name for table in schema_tables() for i in table.indexes} == INDEX_NAMES


def test_the_schema_s_enums_are_the_ones_the_node_uses() -> None:
    from gateway.messagelog import schema

    assert schema.Role is Role and schema.Kind is Kind
    assert schema.ROLES == ("consumer", "provider", "node")
    assert schema.KINDS == ("request", "response", "admin")
