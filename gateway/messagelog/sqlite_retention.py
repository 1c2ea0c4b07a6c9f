"""The node's retention on SQLite: deleting entries' content and data-tracker rows.

Like archiving (``sqlite_writes.prune_entries``), deleting an entry blanks its header,
body and signature and keeps its leaf index, leaf hash and body digest, so inclusion
proofs of the entries left and consistency proofs between tree heads are built from the
same stored leaves as before (docs/adr/0046-retention-that-runs-itself.md).
"""

from __future__ import annotations

import sqlite3
from typing import Final

from gateway.messagelog.records import DELETED, Expired, LogStoreError
from gateway.messagelog.sealing import Sealer
from gateway.messagelog.sqlite_bodies import forget_bodies
from gateway.messagelog.sqlite_writes import record_missing_reads

__all__ = ["expire"]

_DUE: Final = (
    "SELECT id FROM message_log WHERE logged_at < ? AND body_omitted != 'deleted'"
    " AND leaf_hash IS NOT NULL ORDER BY id"
)
_DELETE_CONTENT: Final = (
    "UPDATE message_log SET header = x'', body = x'', signature = '', body_omitted = ? WHERE id = ?"
)
_TRACKER_DUE: Final = (
    "SELECT id FROM message_log WHERE logged_at < ? AND body_omitted = 'deleted' ORDER BY id"
)


def expire(
    conn: sqlite3.Connection,
    entries_before: str,
    tracker_before: str,
    sealer: Sealer,
    seen_before: str | None = None,
) -> Expired:
    """Delete the content of entries logged before ``entries_before``, the tracker
    rows of deleted entries logged before ``tracker_before``, and the replay keys of
    requests created before ``seen_before`` (if given).

    Runs in the caller's transaction; all or nothing. A read whose tracker details
    cannot be recorded first (headers that no longer parse) fails the whole pass: the
    data tracker must keep answering for a read as long as its rows are due to stay.
    """
    due = [int(row[0]) for row in conn.execute(_DUE, (entries_before,))]
    unrecorded = set(record_missing_reads(conn, sealer)) & set(due)
    if unrecorded:
        raise LogStoreError(
            f"the data-subject reads of entries {sorted(unrecorded)} cannot be"
            " recorded for the data tracker; nothing was deleted"
        )
    for entry_id in due:
        conn.execute(_DELETE_CONTENT, (DELETED, entry_id))
    forget_bodies(conn, due)  # their segments are freed after the commit
    rows = 0
    for (entry_id,) in conn.execute(_TRACKER_DUE, (tracker_before,)).fetchall():
        rows += conn.execute("DELETE FROM data_subject WHERE entry_id = ?", (entry_id,)).rowcount
        rows += conn.execute(
            "DELETE FROM data_subject_read WHERE entry_id = ?", (entry_id,)
        ).rowcount
    seen = 0
    if seen_before is not None:
        seen = conn.execute("DELETE FROM seen_request WHERE created < ?", (seen_before,)).rowcount
    return Expired(len(due), rows, seen)
