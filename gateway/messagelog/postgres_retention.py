"""The node's retention on PostgreSQL (``sqlite_retention``'s rules, the same SQL in
PostgreSQL's dialect; docs/adr/0046-retention-that-runs-itself.md)."""

from __future__ import annotations

from typing import Final

from gateway.messagelog.postgres_writes import Conn, record_missing_reads
from gateway.messagelog.records import DELETED, Expired, LogStoreError
from gateway.messagelog.sealing import Sealer

__all__ = ["expire"]

_DUE: Final = (
    "SELECT id FROM message_log WHERE logged_at < %s AND body_omitted != 'deleted'"
    " AND leaf_hash IS NOT NULL ORDER BY id FOR UPDATE"
)
_DELETE_CONTENT: Final = (
    "UPDATE message_log SET header = ''::bytea, body = ''::bytea, signature = '',"
    " body_omitted = %s WHERE id = %s"
)
_TRACKER_DUE: Final = (
    "SELECT id FROM message_log WHERE logged_at < %s AND body_omitted = 'deleted' ORDER BY id"
)


def expire(
    conn: Conn,
    entries_before: str,
    tracker_before: str,
    sealer: Sealer,
    seen_before: str | None = None,
) -> Expired:
    """``sqlite_retention.expire`` on PostgreSQL, in the caller's transaction."""
    due = [int(str(row[0])) for row in conn.execute(_DUE, (entries_before,)).fetchall()]
    unrecorded = set(record_missing_reads(conn, sealer)) & set(due)
    if unrecorded:
        raise LogStoreError(
            f"the data-subject reads of entries {sorted(unrecorded)} cannot be"
            " recorded for the data tracker; nothing was deleted"
        )
    for entry_id in due:
        conn.execute(_DELETE_CONTENT, (DELETED, entry_id))
    rows = 0
    for (entry_id,) in conn.execute(_TRACKER_DUE, (tracker_before,)).fetchall():
        rows += conn.execute("DELETE FROM data_subject WHERE entry_id = %s", (entry_id,)).rowcount
        rows += conn.execute(
            "DELETE FROM data_subject_read WHERE entry_id = %s", (entry_id,)
        ).rowcount
    seen = 0
    if seen_before is not None:
        seen = conn.execute("DELETE FROM seen_request WHERE created < %s", (seen_before,)).rowcount
    return Expired(len(due), rows, seen)
