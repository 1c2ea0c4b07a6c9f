"""The PostgreSQL backend's part of the admin audit trail: settings rows and reads.

The counterpart of ``gateway.messagelog.sqlite_admin`` (docs/message-log.md 13): the
``node_settings`` row stored in the admin entry's transaction, the OCSP response the
entry names, and the reads of the trail and of the settings in force. A PostgreSQL log
never had the narrower CHECK constraints, so there is no upgrade of the table here: its
schema comes from ``gateway db upgrade``.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

from gateway.core.adminrecord import AdminRecord, AdminRecordError
from gateway.messagelog.records import (
    LogStoreError,
    SettingsConflict,
    StoredAdminRecord,
    StoredSettings,
)

__all__ = [
    "SETTINGS_CHANNEL",
    "admin_records",
    "insert_settings",
    "kept_ocsp_ref",
    "latest_settings",
    "newest_settings_version",
    "settings_conflict",
]

SETTINGS_CHANNEL: Final = "gateway_settings"
"""The channel a new settings version is announced on (``NOTIFY``, sent at commit);
every process of the node's cluster listens on it (``postgres_notify``)."""

Conn = psycopg.Connection[tuple[Any, ...]]

_ADMIN_ENTRIES: Final = (
    "SELECT id, leaf_index, logged_at, header, cert_ref FROM message_log"
    " WHERE role = 'node' AND kind = 'admin' AND body_omitted NOT IN ('archived', 'deleted')"
)


def kept_ocsp_ref(conn: Conn, cert_ref: str) -> str:
    """The OCSP response the node kept for its certificate ``cert_ref``, or ""."""
    row = conn.execute(
        "SELECT ocsp_ref FROM own_ocsp_status WHERE cert_ref = %s", (cert_ref,)
    ).fetchone()
    return "" if row is None else str(row[0])


def newest_settings_version(conn: Conn) -> int:
    """The newest settings version's number (0 before the first): one indexed row."""
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM node_settings").fetchone()
    assert row is not None
    return int(row[0])


def settings_conflict(conn: Conn, base: int | None) -> SettingsConflict | None:
    """Why a settings version derived from version ``base`` cannot be stored (a newer
    one is), or None. Asked while the batch holds the log's frontier row locked, which
    every writer of the database takes first: no other version can slip in between."""
    if base is None:
        return None
    newest = newest_settings_version(conn)
    if newest == base:
        return None
    return SettingsConflict(f"settings version {base} is no longer the newest ({newest} is)")


def insert_settings(conn: Conn, document: bytes, changed_at: str, entry_id: int) -> int:
    """Store a settings version for the admin entry ``entry_id``; its version number.

    The number is the newest one plus one, taken under the frontier lock, not from the
    column's sequence: a rolled-back batch would leave a gap in a sequence. The
    announcement on ``SETTINGS_CHANNEL`` is part of the transaction, so the other
    processes hear of the version only once it is committed.
    """
    row = conn.execute(
        "INSERT INTO node_settings (version, document, changed_at, entry_id)"
        " SELECT COALESCE(MAX(version), 0) + 1, %s, %s, %s FROM node_settings"
        " RETURNING version",
        (document, changed_at, entry_id),
    ).fetchone()
    assert row is not None
    version = int(row[0])
    conn.execute("SELECT pg_notify(%s, %s)", (SETTINGS_CHANNEL, str(version)))
    return version


def latest_settings(conn: Conn) -> StoredSettings | None:
    """The newest settings version; None if no change stored one."""
    row = conn.execute(
        "SELECT version, document, changed_at, entry_id FROM node_settings"
        " ORDER BY version DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return StoredSettings(int(row[0]), bytes(row[1]), str(row[2]), int(row[3]))


def admin_records(conn: Conn, since: str | None, limit: int | None) -> list[StoredAdminRecord]:
    """Admin entries logged at or after ``since``, oldest first, at most ``limit``;
    archived ones skipped, an unparsable one fails the read (``sqlite_admin``'s rule)."""
    query = _ADMIN_ENTRIES
    params: list[object] = []
    if since is not None:
        query += " AND logged_at >= %s"
        params.append(since)
    query += " ORDER BY id"
    if limit is not None:
        query += " LIMIT %s"
        params.append(limit)
    found = []
    for entry_id, leaf_index, logged_at, header, cert_ref in conn.execute(query, params):
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
