"""The message log is one package behind one storage boundary (docs/adr/0018).

* Only the backends' modules hold SQL against the log's tables: SQLite's
  (``gateway/messagelog/sqlite*.py``: ``sqlite.py`` for reads, ``sqlite_writes.py`` for
  side writes, ``sqlite_commit.py`` for the writer thread's transactions) and
  PostgreSQL's (``gateway/messagelog/postgres*.py``, docs/adr/0035); the node,
  ``gateway.audit``, the CLI, the demo and the benchmarks read and write through the
  package.
* Outside the package, code imports the package's public API only: ``gateway.messagelog``
  and its service modules, never the backend modules.
* No import cycle runs through the log's or the node's modules (the auditor API and the
  witness get a ``LogContext``, not the ``Node``).
* ``role`` and ``kind`` are enums whose stored values are the strings they always were.
"""

from __future__ import annotations

import ast
import asyncio
import re
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

import gateway
from gateway.messagelog import (
    Kind,
    LogRecord,
    LogStore,
    LogWriter,
    MessageLog,
    Role,
    SqliteLogStore,
    StoredEntry,
    read_entries,
)
from gateway.messagelog.postgres import PostgresLogStore
from gateway.messagelog.postgres_commit import PostgresWriterDb
from gateway.messagelog.schema import schema_tables
from gateway.messagelog.sqlite_writer import SqliteWriterDb
from gateway.messagelog.writer_queue import WriterDb

PACKAGE_ROOT = Path(gateway.__file__).resolve().parent
SQL_MODULES = frozenset(
    {
        "gateway/messagelog/sqlite.py",
        "gateway/messagelog/sqlite_admin.py",
        "gateway/messagelog/sqlite_commit.py",
        "gateway/messagelog/sqlite_writes.py",
        "gateway/messagelog/sqlite_foreign.py",
        "gateway/messagelog/sqlite_layout.py",
        "gateway/messagelog/sqlite_retention.py",
        "gateway/messagelog/sqlite_sealed.py",
        "gateway/messagelog/postgres.py",
        "gateway/messagelog/postgres_admin.py",
        "gateway/messagelog/postgres_commit.py",
        "gateway/messagelog/postgres_writes.py",
        "gateway/messagelog/postgres_foreign.py",
        "gateway/messagelog/postgres_retention.py",
    }
)
"""The two backends: the only modules that may speak SQL to the log."""
SQL_MODULE_NAMES = re.compile(r"gateway/messagelog/(sqlite|postgres)\w*\.py")
"""Where a backend module may be added; nothing else may ever join ``SQL_MODULES``."""
PUBLIC = frozenset(
    {
        "gateway.messagelog",
        "gateway.messagelog.auditor",
        "gateway.messagelog.context",
        "gateway.messagelog.leader",
        "gateway.messagelog.policy",
        "gateway.messagelog.schema",
        "gateway.messagelog.timestamper",
        "gateway.messagelog.tracker",
        "gateway.messagelog.witness",
    }
)
"""What code outside the package may import from it."""
_SQL_VERB = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_TABLE_REFERENCE = re.compile(r"\b(FROM|INTO|UPDATE|JOIN)\s+(\w+)", re.IGNORECASE)
NOW = datetime(2026, 5, 4, 9, 30, 0, 123000, tzinfo=UTC)


def _modules() -> list[Path]:
    return sorted(PACKAGE_ROOT.rglob("*.py"))


def _relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE_ROOT.parent))


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _log_tables() -> frozenset[str]:
    return frozenset(table.name for table in schema_tables())


def sql_against_the_log(source: str) -> list[str]:
    """String constants in ``source`` that are SQL statements naming a log table."""
    tables = _log_tables()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = " ".join(node.value.split())
            named = {m.group(2) for m in _TABLE_REFERENCE.finditer(text)}
            if _SQL_VERB.search(text) and named & tables:
                found.append(text[:60])
    return found


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any level, ``TYPE_CHECKING`` included), with
    the parent packages Python runs first; not the module's own ancestors, which are
    being initialised already when it runs."""
    module = _name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
        for target in targets:
            parts = target.split(".")
            found.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return {
        m
        for m in found
        if m.startswith("gateway.") and m != module and not module.startswith(f"{m}.")
    }


def _graph() -> dict[str, set[str]]:
    names = {_name(p): p for p in _modules()}
    return {name: _imports(path) & set(names) for name, path in names.items()}


def _cycle_through(graph: dict[str, set[str]], prefixes: tuple[str, ...]) -> list[str] | None:
    """An import cycle that passes through a module under one of ``prefixes``."""
    for start in sorted(graph):
        if not start.startswith(prefixes):
            continue
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen: set[str] = set()
        while stack:
            current, path = stack.pop()
            for nxt in sorted(graph.get(current, ())):
                if nxt == start:
                    return [*path, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return None


# ---------------------------------------------------------------- the layout


@pytest.mark.parametrize("path", _modules(), ids=_relative)
def test_only_the_backend_speaks_sql_to_the_log(path: Path) -> None:
    if _relative(path) in SQL_MODULES:
        return
    found = sql_against_the_log(path.read_text("utf-8"))
    assert not found, f"{_relative(path)} holds SQL against the message log: {found}"


def test_only_backend_modules_may_hold_sql() -> None:
    assert all(SQL_MODULE_NAMES.fullmatch(m) for m in SQL_MODULES)


def test_the_backend_does_hold_the_sql() -> None:
    """The scan finds what it looks for (it would pass vacuously otherwise)."""
    for relative in SQL_MODULES:
        source = (PACKAGE_ROOT.parent / relative).read_text("utf-8")
        assert sql_against_the_log(source), relative


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE message_log SET header = x'' WHERE id = ?",
        "SELECT COUNT(*) FROM witness_alert",
        "INSERT OR IGNORE INTO cosignature (log_node) VALUES (?)",
        "select entry_id, subject from data_subject",
        "DELETE FROM own_ocsp_status WHERE cert_ref = ?",
    ],
)
def test_the_sql_scan_flags(statement: str) -> None:
    assert sql_against_the_log(f"QUERY = {statement!r}\n")


def test_the_sql_scan_allows_other_text() -> None:
    assert not sql_against_the_log('X = "select a message_log entry by its id"\n')
    assert not sql_against_the_log('Y = "SELECT name FROM members"\n')


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if not _name(p).startswith("gateway.messagelog")],
    ids=_relative,
)
def test_outside_code_uses_the_public_api(path: Path) -> None:
    # ``from gateway.messagelog import X`` makes ``gateway.messagelog.X`` a candidate;
    # only the package's real modules count.
    modules = {_name(p) for p in (PACKAGE_ROOT / "messagelog").glob("*.py")}
    private = {m for m in _imports(path) if m in modules} - PUBLIC
    assert not private, f"{_relative(path)} imports {sorted(private)} (not the package's API)"


def test_no_import_cycle_through_the_log_or_the_node() -> None:
    cycle = _cycle_through(_graph(), ("gateway.messagelog", "gateway.node"))
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"gateway.node.a": {"gateway.messagelog.b"}, "gateway.messagelog.b": {"gateway.node.a"}}
    assert _cycle_through(graph, ("gateway.node",)) == [
        "gateway.node.a",
        "gateway.messagelog.b",
        "gateway.node.a",
    ]


# ---------------------------------------------------------------- the boundary and the enums


def _writer_conforms(log: MessageLog) -> LogWriter:
    return log  # mypy checks the SQLite writer against the writer protocol


def _store_conforms(store: SqliteLogStore) -> LogStore:
    return store  # and its read side against the store protocol


def _postgres_store_conforms(store: PostgresLogStore) -> LogStore:
    return store  # the PostgreSQL reads too


def _writer_dbs_conform(lite: SqliteWriterDb, pg: PostgresWriterDb) -> list[WriterDb]:
    return [lite, pg]  # and both backends' transactions against what the writer drives


def test_role_and_kind_are_enums_stored_as_the_same_strings(tmp_path: Path) -> None:
    path = tmp_path / "messagelog.sqlite"
    assert [str(r) for r in Role] == ["consumer", "provider", "node"]
    assert [str(k) for k in Kind] == ["request", "response", "admin"]

    async def scenario() -> None:
        async with MessageLog(path, clock=lambda: NOW) as log:
            assert isinstance(log, LogWriter) and isinstance(log.store, LogStore)
            await log.append(
                [
                    LogRecord(
                        role=Role.CONSUMER,
                        kind=Kind.REQUEST,
                        message_id="m-1",
                        xroad_id="x-1",
                        client="DE-NRW/GOV/05974028/ordnungsamt",
                        service="DE-NRW/GOV/05974040/gewerbeamt/lookup",
                        created="2026-05-04T09:30:00.000Z",
                        header=b"{}",
                        body=b"{}",
                        signature="sig",
                        cert_ref="",
                    )
                ]
            )

    asyncio.run(scenario())
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT role, kind FROM message_log").fetchall() == [
            ("consumer", "request")
        ]
    (entry,) = read_entries(path)
    assert isinstance(entry, StoredEntry)
    assert (entry.role, entry.kind) == (Role.CONSUMER, Kind.REQUEST)
    assert entry.role is Role.CONSUMER and entry.kind is Kind.REQUEST
    assert SqliteLogStore(path).count_entries() == 1
