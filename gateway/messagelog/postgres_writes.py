"""The PostgreSQL backend's side writes: what the writer runs besides entries.

The same functions, with the same names and arguments, as
``gateway.messagelog.sqlite_writes``, on a psycopg connection inside a transaction the
caller owns (the writer's ``write`` unit, the group commit for read details and
operational records, ``PostgresLogStore.archive``). The writer picks the module of its
backend, so its typed methods (``record_configuration``, ``keep_own_status``, ...) are
one code path on both (docs/adr/0035-postgresql-backend.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import fields as dataclass_fields
from typing import Any, Final

import psycopg

from gateway.conf.tufclient import SIGNED_FILES
from gateway.core.encoding import format_time
from gateway.core.envelope import EnvelopeError
from gateway.messagelog.leaves import op_rows
from gateway.messagelog.records import (
    ARCHIVED,
    ArchivedEntry,
    CosignatureRow,
    LogStoreError,
    OpRecord,
    ReadDetails,
    StoredStatus,
    read_details,
)
from gateway.messagelog.sealing import Sealer

__all__ = [
    "OPERATIONAL_COLUMNS",
    "insert_alert",
    "insert_cosignature",
    "insert_operational",
    "probe",
    "prune_entries",
    "prune_operational",
    "record_missing_reads",
    "record_read",
    "record_version",
    "seal_plain_rows",
    "store_read",
    "store_status",
]

Conn = psycopg.Connection[tuple[Any, ...]]

_READ_SOURCE: Final = """
SELECT req.header, resp.header, req.sealed, resp.sealed
FROM message_log AS resp
JOIN message_log AS req
  ON req.message_id = resp.message_id AND req.client = resp.client
 AND req.role = 'provider' AND req.kind = 'request'
WHERE resp.id = %s AND resp.role = 'provider' AND resp.kind = 'response'
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
    "INSERT INTO data_subject_read (entry_id, method, path, status, user_id, issue)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
OPERATIONAL_COLUMNS: Final = tuple(f.name for f in dataclass_fields(OpRecord))
_INSERT_OPERATIONAL: Final = (
    f"INSERT INTO operational_data ({', '.join(OPERATIONAL_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('%s' for _ in OPERATIONAL_COLUMNS)})"
)
INSERT_CERT: Final = (
    "INSERT INTO signer_certificate (cert_ref, der, jws_header) VALUES (%s, %s, %s)"
    " ON CONFLICT DO NOTHING"
)
INSERT_OCSP: Final = (
    "INSERT INTO ocsp_response (ocsp_ref, der) VALUES (%s, %s) ON CONFLICT DO NOTHING"
)


def insert_operational(conn: Conn, records: Sequence[OpRecord]) -> int:
    """Write operational monitoring records in the caller's transaction; their count."""
    with conn.cursor() as cur:
        cur.executemany(_INSERT_OPERATIONAL, op_rows(records))
    return len(records)


def prune_operational(conn: Conn, before: str) -> int:
    """Delete the operational records whose request came in before ``before``."""
    cur = conn.execute("DELETE FROM operational_data WHERE request_in < %s", (before,))
    return cur.rowcount


def probe(conn: Conn) -> None:
    """The readiness probe's write (``MessageLog.probe``): a row lock on the tree's
    frontier, taken and released by a committed transaction, so the probe meets the
    same server, locks and commit an exchange meets and changes nothing."""
    conn.execute("SELECT tree_size FROM log_tree_state WHERE id = 1 FOR UPDATE")
    conn.execute("UPDATE log_tree_state SET tree_size = tree_size WHERE id = 1")


def record_version(
    conn: Conn, files: Sequence[tuple[str, bytes]], serial: int, applied_at: str
) -> bool:
    """Store a configuration version unless it is the one recorded last; True if added
    (the rule of ``sqlite_writes.record_version``)."""
    by_name = dict(files)
    if tuple(by_name) != SIGNED_FILES:
        raise ValueError(f"a configuration version is exactly {', '.join(SIGNED_FILES)}")
    digest = hashlib.sha256(by_name["globalconf.json"]).hexdigest()
    # Two processes of one node applying the same version add it once.
    conn.execute("LOCK TABLE configuration_version IN SHARE ROW EXCLUSIVE MODE")
    last = conn.execute(
        "SELECT document_sha256 FROM configuration_version ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if last is not None and last[0] == digest:
        return False
    conn.execute(
        "INSERT INTO configuration_version (serial, applied_at, document_sha256, root,"
        " timestamp, snapshot, targets, document) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (serial, applied_at, digest, *(by_name[n] for n in SIGNED_FILES)),
    )
    return True


def store_status(conn: Conn, ref: str, status: StoredStatus | None) -> None:
    """Keep ``status`` as certificate ``ref``'s last good response, or forget it."""
    if status is None:
        conn.execute("DELETE FROM own_ocsp_status WHERE cert_ref = %s", (ref,))
        return
    ocsp_ref = hashlib.sha256(status.der).hexdigest()
    conn.execute(INSERT_OCSP, (ocsp_ref, status.der))
    conn.execute(
        "INSERT INTO own_ocsp_status (cert_ref, ocsp_ref, fetched_at, fetched_from)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (cert_ref) DO UPDATE SET"
        " ocsp_ref = EXCLUDED.ocsp_ref, fetched_at = EXCLUDED.fetched_at,"
        " fetched_from = EXCLUDED.fetched_from",
        (ref, ocsp_ref, format_time(status.fetched_at), status.fetched_from),
    )


def insert_cosignature(
    conn: Conn, row: CosignatureRow, cert: tuple[str, bytes, str], ocsp_der: bytes
) -> None:
    """A co-signature with the witness's certificate and the OCSP response it relied on."""
    conn.execute(INSERT_CERT, cert)
    if row.ocsp_ref and ocsp_der:
        conn.execute(INSERT_OCSP, (row.ocsp_ref, ocsp_der))
    conn.execute(
        "INSERT INTO cosignature (log_node, witness, tree_size, document, signature,"
        " cosignature, cert_ref, ocsp_ref, stored_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
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
    conn: Conn, peer: str, code: str, detail: str, evidence: str, detected_at: str
) -> None:
    """A witness alert (a split view or a refused head) with its evidence."""
    conn.execute(
        "INSERT INTO witness_alert (peer, code, detail, evidence, detected_at)"
        " VALUES (%s, %s, %s, %s, %s)",
        (peer, code, detail, evidence, detected_at),
    )


def record_read(conn: Conn, entry_id: int, sealer: Sealer) -> bool:
    """Store the read details of provider response ``entry_id`` from its headers (opened
    by ``sealer``; the row sealed like its entry); False if they cannot be taken (no
    request entry, archived, unparsable)."""
    source = conn.execute(_READ_SOURCE, (entry_id,)).fetchone()
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


def store_read(conn: Conn, entry_id: int, details: ReadDetails) -> None:
    """Store ``details`` as the ``data_subject_read`` row of entry ``entry_id``."""
    conn.execute(
        _INSERT_READ,
        (entry_id, details.method, details.path, details.status, details.user_id, details.issue),
    )


def record_missing_reads(conn: Conn, sealer: Sealer) -> list[int]:
    """Fill in ``data_subject_read`` for entries with data subjects that have none; the
    entries that still have none, oldest first."""
    missing = []
    for (entry_id,) in conn.execute(_UNRECORDED).fetchall():
        if not record_read(conn, int(str(entry_id)), sealer):
            missing.append(int(str(entry_id)))
    return missing


def prune_entries(conn: Conn, entries: Sequence[ArchivedEntry], sealer: Sealer) -> list[int]:
    """Blank the content of entries now kept in an archive bundle; their leaf indexes
    (all or nothing, in ``PostgresLogStore.archive``'s transaction)."""
    unrecorded = set(record_missing_reads(conn, sealer)) & {e.entry_id for e in entries}
    if unrecorded:
        raise LogStoreError(
            f"the data-subject reads of entries {sorted(unrecorded)} cannot be"
            " recorded for the data tracker; nothing was pruned"
        )
    leaves = []
    for item in entries:
        row = conn.execute(
            "SELECT leaf_index, leaf_hash FROM message_log WHERE id = %s FOR UPDATE",
            (item.entry_id,),
        ).fetchone()
        if row is None or not isinstance(row[1], bytes) or row[1].hex() != item.leaf_hash_hex:
            raise LogStoreError(
                f"entry {item.entry_id} changed while it was archived; nothing was pruned"
            )
        leaves.append(int(str(row[0])))
        conn.execute(
            "UPDATE message_log SET header = ''::bytea, body = ''::bytea, signature = '',"
            " body_sha256 = %s, body_omitted = %s WHERE id = %s",
            (item.body_sha256, ARCHIVED, item.entry_id),
        )
    return leaves


def seal_plain_rows(conn: Conn, sealer: Sealer) -> int:
    """Seal every exchange entry stored in the clear, with its data subjects and tracker
    row (``gateway log encrypt``); the number sealed. In the caller's transaction; the
    old row versions stay on disk until VACUUM reclaims them."""
    sealer.required()
    plain = conn.execute(
        "SELECT id, header, body FROM message_log WHERE sealed = 0 AND kind <> 'admin'"
        " ORDER BY id FOR UPDATE"
    ).fetchall()
    for entry_id, header, body in plain:
        sealed = sealer.seal_entry(bytes(header), bytes(body), admin=False)
        conn.execute(
            "UPDATE message_log SET header = %s, body = %s, sealed = %s WHERE id = %s",
            (*sealed, entry_id),
        )
        subjects = conn.execute(
            "SELECT subject FROM data_subject WHERE entry_id = %s AND sealed IS NULL",
            (entry_id,),
        ).fetchall()
        for (subject,) in subjects:
            ((tag, value),) = sealer.subject_rows([str(subject)])
            conn.execute(
                "UPDATE data_subject SET subject = %s, sealed = %s"
                " WHERE entry_id = %s AND subject = %s",
                (tag, value, entry_id, subject),
            )
        read = conn.execute(
            "SELECT method, path, status, user_id, issue FROM data_subject_read"
            " WHERE entry_id = %s",
            (entry_id,),
        ).fetchone()
        if read is not None:
            details = sealer.seal_read(ReadDetails(*read))
            conn.execute(
                "UPDATE data_subject_read SET path = %s, user_id = %s, issue = %s"
                " WHERE entry_id = %s",
                (details.path, details.user_id, details.issue, entry_id),
            )
    return len(plain)
