"""Revision 0006's layout on a SQLite log: taken up when a node opens an older file, and
the subtree reads that work on either layout.

Revision 0006 cuts the B-tree pages a commit writes (docs/adr/0072-fewer-pages-per-log-commit.md):
``merkle_subtree`` keyed by ``node`` (``leaves.subtree_key``, its rowid) instead of
``(level, position)``, ``seen_request`` a ``WITHOUT ROWID`` table, no index on
``operational_data.client``. ``gateway db upgrade`` does it with Alembic; a node on a
SQLite file that was never upgraded does the same when it opens the file
(:func:`take_up`), as it adds an older file's columns, since the writer's statements
name ``node``. A reader (the CLI on a file a node of an earlier release wrote) finds
subtrees on either layout (:func:`read_subtrees`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection
from pathlib import Path
from typing import Final

from gateway.messagelog.leaves import subtree_key
from gateway.messagelog.sqlite_ddl import STATEMENTS

__all__ = ["read_subtrees", "take_up"]

_log = logging.getLogger(__name__)

_CLIENT_INDEX: Final = "ix_operational_data_client"
_KEY_FROM_COLUMNS: Final = "(((position + 1) << level) << 6) | level"
"""``leaves.subtree_key`` in SQL, for the rows of an older file."""


def _create(table: str) -> tuple[str, ...]:
    """The head schema's statements of ``table``: the table first, then its indexes."""
    return tuple(
        s
        for s in STATEMENTS
        if s.startswith(f"CREATE TABLE {table} (") or f" ON {table} (" in s.split("\n")[0]
    )


def _sql(conn: sqlite3.Connection, table: str) -> str:
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return "" if row is None else " ".join(str(row[0]).upper().split())


def _rebuild(conn: sqlite3.Connection, table: str, columns: str, source: str) -> None:
    """Recreate ``table`` from the head schema's statements with its rows, in the
    caller's transaction: ``source`` gives ``columns`` from the old table."""
    for (index,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql NOT NULL",
        (table,),
    ).fetchall():
        conn.execute(f'DROP INDEX "{index}"')
    conn.execute(f"ALTER TABLE {table} RENAME TO {table}_older")
    create, *indexes = _create(table)
    conn.execute(create)
    conn.execute(f"INSERT INTO {table} ({columns}) SELECT {source} FROM {table}_older")  # noqa: S608
    conn.execute(f"DROP TABLE {table}_older")
    for statement in indexes:
        conn.execute(statement)


def take_up(conn: sqlite3.Connection, path: Path) -> bool:
    """Bring an older file's tables to revision 0006's layout in one transaction, keeping
    every row; True if anything changed. A file that has it is only looked at."""
    subtrees_keyed = "NODE INTEGER" in _sql(conn, "merkle_subtree")
    seen_without_rowid = _sql(conn, "seen_request").endswith("WITHOUT ROWID")
    client_index = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (_CLIENT_INDEX,)
    ).fetchone()
    if subtrees_keyed and seen_without_rowid and client_index is None:
        return False
    _log.warning("%s: taking up the log layout of revision 0006 (one-time upgrade)", path)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if client_index is not None:
            conn.execute(f"DROP INDEX {_CLIENT_INDEX}")
        if not seen_without_rowid:
            columns = "client, message_id, created"
            _rebuild(conn, "seen_request", columns, columns)
        if not subtrees_keyed:
            source = f"{_KEY_FROM_COLUMNS}, level, position, hash"
            _rebuild(conn, "merkle_subtree", "node, level, position, hash", source)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return True


def read_subtrees(
    conn: sqlite3.Connection, names: Collection[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """The stored hashes of the subtrees ``names`` (``(level, position)``), one read; {}
    in a file from before the subtrees that no node has opened since."""
    columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(merkle_subtree)")}
    if not columns:
        return {}
    if "node" in columns:
        keys = json.dumps([subtree_key(level, position) for level, position in names])
        query = (
            "SELECT s.level, s.position, CAST(s.hash AS BLOB) FROM json_each(?) AS w"
            " JOIN merkle_subtree AS s ON s.node = w.value"
        )
    else:  # the layout before revision 0006, written by a node of an earlier release
        keys = json.dumps([[level, position] for level, position in names])
        query = (
            "SELECT s.level, s.position, CAST(s.hash AS BLOB) FROM json_each(?) AS w"
            " JOIN merkle_subtree AS s ON s.level = json_extract(w.value, '$[0]')"
            " AND s.position = json_extract(w.value, '$[1]')"
        )
    rows = conn.execute(query, (keys,)).fetchall()
    return {(int(level), int(position)): bytes(h) for level, position, h in rows}
