"""The SQLite backend's side writes: what the writer thread runs besides entries.

Each function runs on the writer's connection inside a transaction the caller owns:
``MessageLog.write`` (its typed methods) for the configuration history, the node's own
OCSP answers, witness co-signatures and alerts, and the data tracker's read details,
which the group commit also writes with each response entry; and
``SqliteLogStore.archive``, which records missing read details before it blanks the
archived entries' content (``prune_entries``). With ``gateway.messagelog.sqlite``
(reads) and ``gateway.messagelog.sqlite_commit`` (the group commit's transactions) the
only SQL against the log (docs/adr/0018-message-log-package.md).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Final

from gateway.conf.tufclient import SIGNED_FILES
from gateway.core.encoding import format_time
from gateway.core.envelope import EnvelopeError
from gateway.core.merkle import CompactTree
from gateway.messagelog.leaves import op_rows, subtree_key, subtree_rows
from gateway.messagelog.records import (
    ARCHIVED,
    ArchivedEntry,
    CosignatureRow,
    LogStoreError,
    MessageLogError,
    OpRecord,
    ReadDetails,
    StoredStatus,
    read_details,
)
from gateway.messagelog.sealing import Sealer
from gateway.messagelog.sqlite_bodies import BodyReader, forget_bodies, free_segments, scrub

_log = logging.getLogger(__name__)

__all__ = [
    "INSERT_SUBTREE",
    "add_sealing_columns",
    "has_sealed_column",
    "has_subtrees",
    "insert_alert",
    "insert_cosignature",
    "insert_operational",
    "prune_entries",
    "prune_operational",
    "record_missing_reads",
    "record_read",
    "record_version",
    "seal_plain_rows",
    "store_read",
    "store_status",
    "store_subtrees",
]

_READ_SOURCE: Final = """
SELECT CAST(req.header AS BLOB), CAST(resp.header AS BLOB), {sealed}
FROM message_log AS resp
JOIN message_log AS req
  ON req.message_id = resp.message_id AND req.client = resp.client
 AND req.role = 'provider' AND req.kind = 'request'
WHERE resp.id = ? AND resp.role = 'provider' AND resp.kind = 'response'
  AND resp.body_omitted NOT IN ('archived', 'deleted')
  AND req.body_omitted NOT IN ('archived', 'deleted')
ORDER BY req.id
LIMIT 1
"""
_UNRECORDED: Final = (
    "SELECT DISTINCT ds.entry_id FROM data_subject AS ds WHERE NOT EXISTS"
    " (SELECT 1 FROM data_subject_read AS r WHERE r.entry_id = ds.entry_id) ORDER BY ds.entry_id"
)
_INSERT_READ: Final = (
    "INSERT OR IGNORE INTO data_subject_read (entry_id, method, path, status, user_id, issue)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_HAS_READS: Final = (
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'data_subject_read'"
)


def _create_reads() -> str:
    """The table's DDL from the schema itself, for a log file no current node has opened
    (SQLAlchemy is loaded for it only then)."""
    from sqlalchemy.dialects import sqlite as sqlite_dialect
    from sqlalchemy.schema import CreateTable

    from gateway.messagelog.schema import DataSubjectRead, schema_tables

    table = next(t for t in schema_tables() if t.name == DataSubjectRead.__tablename__)
    return str(CreateTable(table, if_not_exists=True).compile(dialect=sqlite_dialect.dialect()))


OPERATIONAL_COLUMNS: Final = tuple(f.name for f in dataclass_fields(OpRecord))
_INSERT_OPERATIONAL: Final = (
    f"INSERT INTO operational_data ({', '.join(OPERATIONAL_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in OPERATIONAL_COLUMNS)})"
)


def insert_operational(conn: sqlite3.Connection, records: Sequence[OpRecord]) -> int:
    """Write operational monitoring records in the caller's transaction; their count."""
    conn.executemany(_INSERT_OPERATIONAL, op_rows(records))
    return len(records)


def prune_operational(conn: sqlite3.Connection, before: str) -> int:
    """Delete the operational records whose request came in before ``before`` (RFC 3339
    as the log stores times, which sort as text); how many were deleted."""
    return conn.execute("DELETE FROM operational_data WHERE request_in < ?", (before,)).rowcount


def record_version(
    conn: sqlite3.Connection,
    files: Sequence[tuple[str, bytes]],
    serial: int,
    applied_at: str,
) -> bool:
    """Store a configuration version unless it is the one recorded last; True if a row
    was added.

    Deduplicated on the document's digest against the latest row only: a restart or a
    refresh that re-applies the version in force adds nothing, while every change of
    document is a new row (fresher timestamp metadata alone is not a new version).
    """
    by_name = dict(files)
    if tuple(by_name) != SIGNED_FILES:
        raise ValueError(f"a configuration version is exactly {', '.join(SIGNED_FILES)}")
    digest = hashlib.sha256(by_name["globalconf.json"]).hexdigest()
    last = conn.execute(
        "SELECT document_sha256 FROM configuration_version ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if last is not None and last[0] == digest:
        return False
    conn.execute(
        "INSERT INTO configuration_version (serial, applied_at, document_sha256, root,"
        " timestamp, snapshot, targets, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (serial, applied_at, digest, *(by_name[n] for n in SIGNED_FILES)),
    )
    return True


def store_status(conn: sqlite3.Connection, ref: str, status: StoredStatus | None) -> None:
    """Keep ``status`` as certificate ``ref``'s last good response, or forget the kept
    one when ``status`` is None (on the log's writer).

    The DER goes to ``ocsp_response`` like every response the log relies on, so a tree
    head signed with it after a restart refers to a row that is already there. A
    revoked certificate's row is deleted, so no restart brings back its good answer.
    """
    if status is None:
        conn.execute("DELETE FROM own_ocsp_status WHERE cert_ref = ?", (ref,))
        return
    ocsp_ref = hashlib.sha256(status.der).hexdigest()
    conn.execute(
        "INSERT OR IGNORE INTO ocsp_response (ocsp_ref, der) VALUES (?, ?)", (ocsp_ref, status.der)
    )
    conn.execute(
        "INSERT OR REPLACE INTO own_ocsp_status (cert_ref, ocsp_ref, fetched_at, fetched_from)"
        " VALUES (?, ?, ?, ?)",
        (ref, ocsp_ref, format_time(status.fetched_at), status.fetched_from),
    )


def insert_cosignature(
    conn: sqlite3.Connection,
    row: CosignatureRow,
    cert: tuple[str, bytes, str],
    ocsp_der: bytes,
) -> None:
    """A co-signature with the witness's certificate ``(ref, DER, JWS header)`` and the
    OCSP response it relied on (kept once each, like an entry's)."""
    conn.execute(
        "INSERT OR IGNORE INTO signer_certificate (cert_ref, der, jws_header) VALUES (?, ?, ?)",
        cert,
    )
    if row.ocsp_ref and ocsp_der:
        conn.execute(
            "INSERT OR IGNORE INTO ocsp_response (ocsp_ref, der) VALUES (?, ?)",
            (row.ocsp_ref, ocsp_der),
        )
    conn.execute(
        "INSERT OR IGNORE INTO cosignature (log_node, witness, tree_size, document, signature,"
        " cosignature, cert_ref, ocsp_ref, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row.log_node,
            row.witness,
            row.tree_size,
            row.document,
            row.signature,
            row.cosignature,
            row.cert_ref,
            row.ocsp_ref,
            row.stored_at,
        ),
    )


def insert_alert(
    conn: sqlite3.Connection, peer: str, code: str, detail: str, evidence: str, detected_at: str
) -> None:
    """A witness alert (a split view or a refused head) with its evidence."""
    conn.execute(
        "INSERT INTO witness_alert (peer, code, detail, evidence, detected_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (peer, code, detail, evidence, detected_at),
    )


def has_sealed_column(conn: sqlite3.Connection, table: str = "message_log") -> bool:
    """Whether ``table`` has its at-rest column yet (a file no writer since opened has
    not: all its rows are plain)."""
    return any(str(c[1]) == "sealed" for c in conn.execute(f"PRAGMA table_info({table})"))


def add_sealing_columns(conn: sqlite3.Connection) -> None:
    """Give a log file written before sealing at rest its flag and sealed-subject
    columns; its rows stay plain (flag 0, no sealed subject) and read as before."""
    if not has_sealed_column(conn):
        conn.execute("ALTER TABLE message_log ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0")
    if not has_sealed_column(conn, "data_subject"):
        conn.execute("ALTER TABLE data_subject ADD COLUMN sealed BLOB")


def record_read(conn: sqlite3.Connection, entry_id: int, sealer: Sealer) -> bool:
    """Store the read details of provider response entry ``entry_id`` from its headers.

    Runs inside the caller's transaction (the log's writer, or archiving before it
    blanks the headers). False if they cannot be taken: no request entry, headers
    already archived, or headers that do not parse; the caller decides what that means.
    Sealed headers are opened with ``sealer``, and the row is sealed like its entry.
    """
    flags = "req.sealed, resp.sealed" if has_sealed_column(conn) else "0, 0"
    source = conn.execute(_READ_SOURCE.format(sealed=flags), (entry_id,)).fetchone()
    if source is None:
        return False
    try:
        request = sealer.open_blob(entry_id, bytes(source[0]), source[2], "header")
        response = sealer.open_blob(entry_id, bytes(source[1]), source[3], "header")
        details = read_details(request, response)
    except EnvelopeError:
        return False
    store_read(conn, entry_id, sealer.seal_read(details) if source[3] else details)
    return True


def store_read(conn: sqlite3.Connection, entry_id: int, details: ReadDetails) -> None:
    """Store ``details`` (sealed already if its entry is) as entry ``entry_id``'s
    ``data_subject_read`` row."""
    conn.execute(
        _INSERT_READ,
        (entry_id, details.method, details.path, details.status, details.user_id, details.issue),
    )


def record_missing_reads(conn: sqlite3.Connection, sealer: Sealer) -> list[int]:
    """Fill in ``data_subject_read`` for entries with data subjects that have no row yet.

    For log files written before the table existed. Creates the table if it is missing
    (archiving may open a file no current node has). Returns the entries that still have
    no row (their headers are archived already or do not parse), oldest first.
    """
    if conn.execute(_HAS_READS).fetchone() is None:
        conn.execute(_create_reads())
    missing = []
    for (entry_id,) in conn.execute(_UNRECORDED).fetchall():
        if not record_read(conn, int(entry_id), sealer):
            missing.append(int(entry_id))
    return missing


def prune_entries(
    conn: sqlite3.Connection, entries: Sequence[ArchivedEntry], sealer: Sealer
) -> list[int]:
    """Blank the content of entries now kept in an archive bundle; their leaf indexes.

    Runs in ``SqliteLogStore.archive``'s transaction, which rolls back on any error: an
    entry whose leaf changed since the bundle was written, or whose data-subject read
    cannot be recorded for the data tracker, prunes nothing.
    """
    # The data tracker must still answer for these reads once their headers
    # are gone: every one gets its read details first, or nothing is pruned.
    unrecorded = set(record_missing_reads(conn, sealer)) & {e.entry_id for e in entries}
    if unrecorded:
        raise LogStoreError(
            f"the data-subject reads of entries {sorted(unrecorded)} cannot be"
            " recorded for the data tracker; nothing was pruned"
        )
    leaves = []
    for item in entries:
        row = conn.execute(
            "SELECT leaf_index, CAST(leaf_hash AS BLOB) FROM message_log WHERE id = ?",
            (item.entry_id,),
        ).fetchone()
        if row is None or bytes(row[1]).hex() != item.leaf_hash_hex:
            raise LogStoreError(
                f"entry {item.entry_id} changed while it was archived; nothing was pruned"
            )
        leaves.append(int(row[0]))
        conn.execute(
            "UPDATE message_log SET header = x'', body = x'', signature = '',"
            " body_sha256 = ?, body_omitted = ? WHERE id = ?",
            (item.body_sha256, ARCHIVED, item.entry_id),
        )
    forget_bodies(conn, [item.entry_id for item in entries])  # freed after the commit
    return leaves


def seal_plain_rows(path: Path, sealer: Sealer) -> int:
    """Seal every exchange entry a log file holds in the clear (``gateway log encrypt``),
    with its data subjects and tracker row; the number of entries sealed.

    One transaction next to a running node, as archiving is. Leaves, digests and ids
    stay: only how the rows are stored changes. ``secure_delete`` zeroes the freed
    cells and a final checkpoint empties the WAL, so the plaintext does not linger in
    the file (a reader holding an old snapshot can keep the WAL from being truncated;
    run it with the node stopped to be sure).
    """
    sealer.required()
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        add_sealing_columns(conn)
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            plain = conn.execute(
                "SELECT id, CAST(header AS BLOB), CAST(body AS BLOB) FROM message_log"
                " WHERE sealed = 0 AND kind != 'admin' ORDER BY id"
            ).fetchall()
            bodies = BodyReader(conn, path)
            for entry_id, header, body in plain:
                # A body in a segment file moves, sealed, into its row; its plaintext
                # there is overwritten once this commits.
                body = body or bodies.body(int(entry_id)) or b""
                sealed = sealer.seal_entry(bytes(header), bytes(body), admin=False)
                conn.execute(
                    "UPDATE message_log SET header = ?, body = ?, sealed = ? WHERE id = ?",
                    (*sealed, entry_id),
                )
                subjects = conn.execute(
                    "SELECT subject FROM data_subject WHERE entry_id = ? AND sealed IS NULL",
                    (entry_id,),
                ).fetchall()
                for (subject,) in subjects:
                    ((tag, value),) = sealer.subject_rows([str(subject)])
                    conn.execute(
                        "UPDATE data_subject SET subject = ?, sealed = ?"
                        " WHERE entry_id = ? AND subject = ?",
                        (tag, value, entry_id, subject),
                    )
                read = conn.execute(
                    "SELECT method, path, status, user_id, issue FROM data_subject_read"
                    " WHERE entry_id = ?",
                    (entry_id,),
                ).fetchone()
                if read is not None:
                    details = sealer.seal_read(ReadDetails(*read))
                    conn.execute(
                        "UPDATE data_subject_read SET path = ?, user_id = ?, issue = ?"
                        " WHERE entry_id = ?",
                        (details.path, details.user_id, details.issue, entry_id),
                    )
            moved = forget_bodies(conn, [int(row[0]) for row in plain])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        scrub(path, moved)
        free_segments(conn, path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return len(plain)


INSERT_SUBTREE: Final = (
    "INSERT INTO merkle_subtree (node, level, position, hash) VALUES (?, ?, ?, ?)"
)
"""Takes ``leaves.subtree_rows`` (docs/adr/0072-fewer-pages-per-log-commit.md)."""


def has_subtrees(conn: sqlite3.Connection, size: int) -> bool:
    """Whether the log's subtrees are stored: the last leaf's row is written in the same
    transaction as its entry, and the backfill writes all of them in one, so it stands
    for the rest (one indexed read at start-up, at any size)."""
    if size == 0:
        return True
    found = conn.execute(
        "SELECT 1 FROM merkle_subtree WHERE node = ?", (subtree_key(0, size - 1),)
    ).fetchone()
    return found is not None


def store_subtrees(conn: sqlite3.Connection, path: Path, tree: CompactTree) -> None:
    """Write every subtree of a log from before ``merkle_subtree`` existed, once, from
    its stored leaf hashes (checked against the frontier before anything is written)."""
    _log.warning("%s: storing the Merkle subtrees of %d entries, once", path, tree.size)
    rows = conn.execute(
        "SELECT leaf_index, CAST(leaf_hash AS BLOB) FROM message_log"
        " WHERE leaf_index IS NOT NULL ORDER BY id"
    )
    check = CompactTree()
    subtrees: list[tuple[int, int, bytes]] = []
    for index, leaf in rows:
        if index != check.size or not isinstance(leaf, bytes):
            raise MessageLogError(f"{path}: leaf {check.size} is missing or out of order")
        subtrees.extend(check.append(leaf))
    if check != tree:
        raise MessageLogError(f"{path}: the stored leaves do not match the saved frontier")
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM merkle_subtree")
        conn.executemany(INSERT_SUBTREE, subtree_rows(subtrees))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
