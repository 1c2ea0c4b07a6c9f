"""The SQLite backend's part of the admin audit trail: settings rows, reads, the upgrade.

An admin change is an ordinary leaf of the log (role ``node``, kind ``admin``) written by
the group commit (``sqlite_commit.insert_batch``); what is particular to it is here: the
``node_settings`` row stored in the same transaction, the OCSP response it names (the one
the node kept for its signing certificate), the reads of the trail and of the settings in
force, and the one-time upgrade of a log file whose CHECK constraints predate the new
role and kind. Part of the SQLite backend with ``sqlite.py``, ``sqlite_writes.py`` and
``sqlite_commit.py`` (docs/adr/0018).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Final

from sqlalchemy import Table, inspect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from gateway.core.adminrecord import AdminRecord, AdminRecordError
from gateway.messagelog.records import (
    LogNotFoundError,
    LogStoreError,
    SettingsConflict,
    StoredAdminRecord,
    StoredSettings,
)
from gateway.messagelog.schema import KINDS, ROLES, LogEntry

__all__ = [
    "admin_records",
    "insert_settings",
    "kept_ocsp_ref",
    "latest_settings",
    "settings_conflict",
    "snapshot_file",
    "widen_checks",
]

_log = logging.getLogger(__name__)

_INSERT_SETTINGS: Final = (
    "INSERT INTO node_settings (version, document, changed_at, entry_id)"
    " SELECT COALESCE(MAX(version), 0) + 1, ?, ?, ? FROM node_settings"
)
_NEWEST_VERSION: Final = "SELECT COALESCE(MAX(version), 0) FROM node_settings"
_KEPT_OCSP: Final = "SELECT ocsp_ref FROM own_ocsp_status WHERE cert_ref = ?"
_LATEST_SETTINGS: Final = (
    "SELECT version, CAST(document AS BLOB), changed_at, entry_id FROM node_settings"
    " ORDER BY version DESC LIMIT 1"
)
_ADMIN_ENTRIES: Final = (
    "SELECT id, leaf_index, logged_at, CAST(header AS BLOB), cert_ref, body_omitted"
    " FROM message_log WHERE role = 'node' AND kind = 'admin'"
)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


# -- the writer's side (inside the admin entry's transaction) ---------------------------


def kept_ocsp_ref(conn: sqlite3.Connection, cert_ref: str) -> str:
    """The OCSP response the node kept for its certificate ``cert_ref`` (its DER is in
    ``ocsp_response`` already), or "" if it keeps none: the evidence the admin entry names
    that its signing certificate was good when the change was made."""
    row = conn.execute(_KEPT_OCSP, (cert_ref,)).fetchone()
    return "" if row is None else str(row[0])


def settings_conflict(conn: sqlite3.Connection, base: int | None) -> SettingsConflict | None:
    """Why a settings version derived from version ``base`` cannot be stored (a newer
    one is), or None; checked in the write transaction, so nothing slips in between."""
    if base is None:
        return None
    newest = int(conn.execute(_NEWEST_VERSION).fetchone()[0])
    if newest == base:
        return None
    return SettingsConflict(f"settings version {base} is no longer the newest ({newest} is)")


def insert_settings(
    conn: sqlite3.Connection, document: bytes, changed_at: str, entry_id: int
) -> int:
    """Store a settings version for the admin entry ``entry_id``; its version number,
    the newest one plus one: versions are one sequence without gaps, decided here."""
    cur = conn.execute(_INSERT_SETTINGS, (document, changed_at, entry_id))
    assert cur.lastrowid is not None
    return cur.lastrowid


# -- reads -------------------------------------------------------------------------------


def latest_settings(conn: sqlite3.Connection) -> StoredSettings | None:
    """The newest settings version; None if no change stored one (or the file predates
    the table)."""
    if not _has_table(conn, "node_settings"):
        return None
    row = conn.execute(_LATEST_SETTINGS).fetchone()
    if row is None:
        return None
    return StoredSettings(int(row[0]), bytes(row[1]), str(row[2]), int(row[3]))


def admin_records(
    conn: sqlite3.Connection, since: str | None, limit: int | None
) -> list[StoredAdminRecord]:
    """Admin entries logged at or after ``since`` (RFC 3339 as the log stores times),
    oldest first, at most ``limit``.

    An entry whose record was archived (``gateway log archive``) is skipped: its record
    is in the archive bundle. One whose stored record does not parse fails the read
    (``LogStoreError``): the trail is evidence, and a silently dropped record is what
    it exists to rule out.
    """
    query = _ADMIN_ENTRIES + " AND body_omitted NOT IN ('archived', 'deleted')"
    params: list[object] = []
    if since is not None:
        query += " AND logged_at >= ?"
        params.append(since)
    query += " ORDER BY id"
    if limit is not None:
        query += " LIMIT ?"
        params.append(limit)
    found = []
    for entry_id, leaf_index, logged_at, header, cert_ref, _ in conn.execute(query, params):
        try:
            record = AdminRecord.from_bytes(bytes(header))
        except AdminRecordError as exc:
            raise LogStoreError(f"admin entry {entry_id}: {exc}") from None
        found.append(
            StoredAdminRecord(
                int(entry_id),
                None if leaf_index is None else int(leaf_index),
                str(logged_at),
                record,
                str(cert_ref),
            )
        )
    return found


# -- the upgrade of an older file ---------------------------------------------------------


def _entry_table() -> Table:
    table = inspect(LogEntry).local_table
    if not isinstance(table, Table):
        raise TypeError("LogEntry is not mapped to a plain table")
    return table


def widen_checks(conn: sqlite3.Connection, path: Path) -> bool:
    """Rebuild ``message_log`` if its CHECK constraints refuse a role or kind the schema
    has now (a file from before admin entries); True if it was rebuilt.

    SQLite cannot alter a constraint, so the table is recreated with the current
    definition and every row copied with its id, in one transaction: the rows, their
    leaves and the ``AUTOINCREMENT`` counter are what they were, so the tree and every
    id handed out as evidence stay valid. Runs once, when the writer opens the file,
    after the columns added since the first release are in place.
    """
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'message_log'"
    ).fetchone()
    if row is None or all(f"'{value}'" in str(row[0]) for value in (*ROLES, *KINDS)):
        return False
    _log.warning("%s: widening message_log's role and kind constraints (one-time upgrade)", path)
    table = _entry_table()
    dialect = sqlite_dialect.dialect()
    create = str(CreateTable(table).compile(dialect=dialect)).strip()
    prefix = "CREATE TABLE message_log "
    if not create.startswith(prefix):
        raise LogStoreError(f"unexpected table definition: {create[:40]!r}")
    create = "CREATE TABLE message_log_widened " + create[len(prefix) :]
    indexes = [str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes]
    present = [str(c[1]) for c in conn.execute("PRAGMA table_info(message_log)")]
    columns = ", ".join(c.name for c in table.columns if c.name in present)
    conn.execute("BEGIN IMMEDIATE")
    try:
        seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'message_log'").fetchone()
        conn.execute(create)
        conn.execute(
            f"INSERT INTO message_log_widened ({columns}) SELECT {columns} FROM message_log"  # noqa: S608
        )
        conn.execute("DROP TABLE message_log")
        conn.execute("ALTER TABLE message_log_widened RENAME TO message_log")
        for statement in indexes:
            conn.execute(statement)
        if seq is not None:
            conn.execute(
                "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'message_log'",
                (int(seq[0]),),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return True


def snapshot_file(path: Path, out: Path) -> None:
    """A consistent copy of the log file ``path`` at ``out`` (SQLite's online backup
    API: pages copied under a read transaction, so a running node's writer may go on;
    ``gateway node backup``)."""
    if not path.exists():
        raise LogNotFoundError(f"{path} does not exist")
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(out)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
