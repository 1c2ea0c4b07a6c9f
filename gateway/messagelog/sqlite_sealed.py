"""The SQLite backend's reads of the tracker's tables, opened by the log's ``Sealer``.

Apart from ``sqlite.py`` so the columns sealing at rest added (``message_log.sealed``,
``data_subject.sealed``) and a file that predates them are handled in one place: a
file no current writer has opened yet reads as all plain (docs/message-log.md#at-rest).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from gateway.messagelog.records import ReadDetails, UsageRow
from gateway.messagelog.sealing import Sealer
from gateway.messagelog.sqlite_rows import stored_details
from gateway.messagelog.sqlite_writes import has_sealed_column

__all__ = ["check_lookup", "read_data_subjects", "read_subject_reads", "usage_row"]


def read_data_subjects(conn: sqlite3.Connection, sealer: Sealer) -> dict[int, list[str]]:
    """Every ``data_subject`` row's identifier by entry id, sealed ones opened."""
    sealed = "CAST(sealed AS BLOB)" if has_sealed_column(conn, "data_subject") else "NULL"
    found: dict[int, list[str]] = {}
    query = f"SELECT entry_id, subject, {sealed} FROM data_subject"  # noqa: S608
    for entry_id, subject, value in conn.execute(query):
        plain = sealer.open_subject(entry_id, str(subject), value)
        found.setdefault(int(entry_id), []).append(plain)
    return found


def check_lookup(conn: sqlite3.Connection, sealer: Sealer) -> str:
    """The sealed flags' columns for the usage query; refuses a search without the key
    in a log with sealed subjects, whose answer would silently leave them out."""
    if sealer.key is None and has_sealed_column(conn, "data_subject"):
        found = conn.execute("SELECT 1 FROM data_subject WHERE sealed IS NOT NULL LIMIT 1")
        if found.fetchone() is not None:
            sealer.lookup_sealed()
    return "resp.sealed, req.sealed" if has_sealed_column(conn) else "0, 0"


def usage_row(r: Sequence[object], sealer: Sealer) -> UsageRow:
    """A row of the usage query (the sealed flags of response and request last)."""
    header, request = r[6], r[7]
    assert isinstance(header, bytes) and isinstance(request, bytes)
    details = stored_details(r[10:15])
    return UsageRow(
        int(str(r[0])),
        str(r[1]),
        str(r[2]),
        str(r[3]),
        str(r[4]),
        str(r[5]),
        sealer.open_blob(r[0], header, r[15], "header"),
        sealer.open_blob(f"{r[0]}'s request", request, r[16], "header"),
        None if r[8] is None else int(str(r[8])),
        bool(r[9]),
        None if details is None else sealer.open_read(r[0], details, r[15]),
        int(str(r[9])) == 2,
    )


def read_subject_reads(conn: sqlite3.Connection, sealer: Sealer) -> dict[int, ReadDetails]:
    """Every ``data_subject_read`` row by entry id, sealed ones opened."""
    sealed = "m.sealed" if has_sealed_column(conn) else "0"
    query = (
        "SELECT r.entry_id, r.method, r.path, r.status, r.user_id, r.issue,"  # noqa: S608
        f" {sealed} FROM data_subject_read AS r LEFT JOIN message_log AS m ON m.id = r.entry_id"
    )
    return {
        int(e): sealer.open_read(
            e,
            ReadDetails(
                str(m), str(p), int(s), None if u is None else str(u), None if i is None else str(i)
            ),
            flag,
        )
        for e, m, p, s, u, i, flag in conn.execute(query)
    }
