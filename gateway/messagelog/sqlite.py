"""The SQLite backend's reads: every query against the log's file.

:class:`SqliteLogStore` implements ``gateway.messagelog.store.LogStore`` over the node's
log file; each call opens its own read-only connection (WAL lets it read while the
node's writer commits), except :meth:`SqliteLogStore.archive`, a short second writer.
The side writes (and the archive's pruning) are in ``gateway.messagelog.sqlite_writes``,
the group-commit transactions (entries, the tree frontier, tree heads) in
``gateway.messagelog.sqlite_commit``. Outside these three modules nothing in ``gateway``
speaks SQL to the log (tests/unit/test_messagelog_package.py checks it).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import gateway.messagelog.sqlite_admin as admin
from gateway.conf.tufclient import SIGNED_FILES
from gateway.core.envelope import parse_time
from gateway.messagelog.records import (
    GONE,
    MAX_OPERATIONAL_ROWS,
    ArchivedEntry,
    CosignatureRow,
    EntrySelection,
    Expired,
    ExportEvidence,
    LogNotFoundError,
    LogStoreError,
    NotProvableError,
    OpRecord,
    ReadDetails,
    SignedHead,
    StoredAdminRecord,
    StoredEntry,
    StoredSettings,
    StoredStatus,
    StoredTreeHead,
    StoredVersion,
    TimestampStatus,
    UsageRow,
    WitnessAlertRow,
)
from gateway.messagelog.sealing import Sealer
from gateway.messagelog.sqlite_bodies import BodyReader, blank_and_free
from gateway.messagelog.sqlite_layout import read_subtrees
from gateway.messagelog.sqlite_retention import expire
from gateway.messagelog.sqlite_rows import (
    cosignature_row,
    signed_head,
    stored_entry,
    stored_tree_head,
)
from gateway.messagelog.sqlite_sealed import (
    check_lookup,
    read_data_subjects,
    read_subject_reads,
    usage_row,
)
from gateway.messagelog.sqlite_writes import (
    OPERATIONAL_COLUMNS,
    has_sealed_column,
    prune_entries,
    seal_plain_rows,
)

__all__ = ["SqliteLogStore", "read_versions"]

# -- entries ------------------------------------------------------------------------------

_USAGE_QUERY: Final = """
SELECT resp.id, resp.logged_at, resp.client, resp.service, resp.message_id, resp.xroad_id,
       resp.header, req.header, resp.leaf_index,
       CASE WHEN resp.body_omitted = 'deleted' OR req.body_omitted = 'deleted' THEN 2
            WHEN resp.body_omitted = 'archived' OR req.body_omitted = 'archived' THEN 1
            ELSE 0 END,
       r.method, r.path, r.status, r.user_id, r.issue, {sealed}
FROM data_subject AS ds
JOIN message_log AS resp ON resp.id = ds.entry_id
JOIN message_log AS req
  ON req.message_id = resp.message_id AND req.client = resp.client
 AND req.role = 'provider' AND req.kind = 'request'
LEFT JOIN data_subject_read AS r ON r.entry_id = resp.id
WHERE ds.subject IN (?, ?) AND resp.role = 'provider' AND resp.kind = 'response'
ORDER BY resp.id
"""


_REQUEST_OF: Final = (
    "SELECT CAST(header AS BLOB), body_omitted, {sealed} FROM message_log WHERE message_id = ?"
    " AND client = ? AND role = 'provider' AND kind = 'request' ORDER BY id LIMIT 1"
)


_HEAD_COLUMNS: Final = (
    "SELECT id, tree_size, CAST(root_hash AS BLOB), last_entry_id, CAST(document AS BLOB),"
    " gen_time, CAST(token AS BLOB), tsa_name, tsa_cert_ref, stored_at FROM tree_head"
)


_SIGNED_COLUMNS: Final = (
    "SELECT tree_size, CAST(document AS BLOB), signature, cert_ref, ocsp_ref FROM signed_tree_head"
)


_COSIGNATURE_COLUMNS: Final = (
    "SELECT log_node, witness, tree_size, CAST(document AS BLOB), signature, cosignature,"
    " cert_ref, ocsp_ref, stored_at FROM cosignature"
)


_ENTRY_COLUMNS: Final = (
    # (column, expression, fallback for a log file written before the column existed).
    # Blobs are cast so that a value someone rewrote as TEXT still reads (and fails to
    # verify) instead of failing to decode.
    ("id", "id", None),
    ("logged_at", "logged_at", None),
    ("role", "role", None),
    ("kind", "kind", None),
    ("message_id", "message_id", None),
    ("xroad_id", "xroad_id", None),
    ("client", "client", None),
    ("service", "service", None),
    ("created", "created", None),
    ("header", "CAST(header AS BLOB)", None),
    ("body", "CAST(body AS BLOB)", None),
    ("signature", "signature", None),
    ("cert_ref", "cert_ref", None),
    ("ocsp_ref", "ocsp_ref", "''"),
    ("leaf_index", "leaf_index", "NULL"),
    ("leaf_hash", "CAST(leaf_hash AS BLOB)", "NULL"),
    ("body_sha256", "body_sha256", "NULL"),
    ("body_omitted", "body_omitted", "''"),
    ("subjects_salt", "subjects_salt", "NULL"),
    ("subjects_sha256", "subjects_sha256", "NULL"),
    ("sealed", "sealed", "0"),
)


def _select_entries(conn: sqlite3.Connection) -> str:
    """``SELECT <every entry column> FROM message_log``, older files' missing columns
    read as their defaults."""
    present = {str(c[1]) for c in conn.execute("PRAGMA table_info(message_log)")}
    if not present:
        raise LogStoreError("the file holds no message log")
    parts = [
        expression if name in present or fallback is None else fallback
        for name, expression, fallback in _ENTRY_COLUMNS
    ]
    return f"SELECT {', '.join(parts)} FROM message_log"  # noqa: S608 (constant names)


class SqliteLogStore:
    """``LogStore`` over one node's SQLite log file (read-only connections)."""

    def __init__(self, path: Path, sealer: Sealer | None = None) -> None:
        self._path = path
        self._sealer = sealer or Sealer()
        """Opens the rows sealed at rest (``gateway.messagelog.sealing``)."""

    @property
    def path(self) -> Path:
        return self._path

    @property
    def location(self) -> str:
        return str(self._path)

    def __repr__(self) -> str:
        return f"SqliteLogStore({str(self._path)!r})"

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        if not self._path.exists():
            raise LogNotFoundError(f"{self._path} does not exist")
        conn = sqlite3.connect(f"{self._path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            raise LogStoreError(f"{self._path}: {exc}") from None
        finally:
            conn.close()

    # -- entries ----------------------------------------------------------------------

    def entries(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        message_id: str | None = None,
        party: str | None = None,
        leaf_index: int | None = None,
    ) -> list[StoredEntry]:
        with self._reader() as conn:
            query = _select_entries(conn) + " WHERE id > ?"
            params: list[object] = [after]
            if message_id is not None:
                query += " AND message_id = ?"
                params.append(message_id)
            if leaf_index is not None:
                query += " AND leaf_index = ?"
                params.append(leaf_index)
            if party is not None:
                # An admin entry is no exchange of a party's, whatever it names.
                query += " AND kind != 'admin' AND (client = ? OR substr(service, 1, ?) = ?)"
                params += [party, len(party) + 1, party + "/"]
            query += " ORDER BY id"
            if limit is not None:
                query += " LIMIT ?"
                params.append(limit)
            rows = BodyReader(conn, self._path).rows(conn.execute(query, params))
            return [stored_entry(row, self._sealer) for row in rows]

    def entry(self, entry_id: int) -> StoredEntry | None:
        with self._reader() as conn:
            found = conn.execute(_select_entries(conn) + " WHERE id = ?", (entry_id,))
            row = next(BodyReader(conn, self._path).rows(found), None)
        return None if row is None else stored_entry(row, self._sealer)

    def count_entries(self) -> int:
        with self._reader() as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM message_log").fetchone()
        return int(count)

    def leaf_hashes(self, size: int) -> list[bytes]:
        leaves: list[bytes] = []
        with self._reader() as conn:
            for index, leaf in conn.execute(
                "SELECT leaf_index, CAST(leaf_hash AS BLOB) FROM message_log"
                " WHERE leaf_index IS NOT NULL ORDER BY id LIMIT ?",
                (size,),
            ):
                if index != len(leaves) or not isinstance(leaf, bytes):
                    raise NotProvableError(f"leaf {len(leaves)} is missing or out of order")
                leaves.append(leaf)
        if len(leaves) != size:
            raise NotProvableError(f"the log holds {len(leaves)} leaves, not {size}")
        return leaves

    def subtrees(self, names: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        if not names:
            return {}
        with self._reader() as conn:
            return read_subtrees(conn, names)

    def leaves_through(self, last_entry_id: int) -> list[tuple[object, object]]:
        """(leaf_index, leaf_hash) of every entry up to ``last_entry_id``, id order, as
        stored (the caller refuses gaps with the message it needs)."""
        with self._reader() as conn:
            return list(
                conn.execute(
                    "SELECT leaf_index, CAST(leaf_hash AS BLOB) FROM message_log"
                    " WHERE id <= ? ORDER BY id",
                    (last_entry_id,),
                )
            )

    def data_subjects(self) -> dict[int, list[str]]:
        with self._reader() as conn:
            return read_data_subjects(conn, self._sealer)

    def usage(self, subject: str) -> list[UsageRow]:
        with self._reader() as conn:
            query = _USAGE_QUERY.format(sealed=check_lookup(conn, self._sealer))
            rows = conn.execute(query, self._sealer.lookup(subject)).fetchall()
        return [usage_row(r, self._sealer) for r in rows]

    def data_subject_reads(self) -> dict[int, ReadDetails] | None:
        with self._reader() as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'data_subject_read'"
            ).fetchone()
            return None if exists is None else read_subject_reads(conn, self._sealer)

    def provider_request(self, message_id: str, client: str) -> tuple[bytes, str] | None:
        with self._reader() as conn:
            query = _REQUEST_OF.format(sealed="sealed" if has_sealed_column(conn) else "0")
            row = conn.execute(query, (message_id, client)).fetchone()
        if row is None:
            return None
        header = self._sealer.open_blob(f"{message_id}'s request", bytes(row[0]), row[2], "header")
        return header, str(row[1] or "")

    # -- tree heads, signatures, witnessing ---------------------------------------------

    def tree_heads(self) -> list[StoredTreeHead]:
        with self._reader() as conn:
            return [
                stored_tree_head(row) for row in conn.execute(_HEAD_COLUMNS + " ORDER BY tree_size")
            ]

    def first_head_covering(self, leaf_index: int) -> StoredTreeHead | None:
        with self._reader() as conn:
            row = conn.execute(
                _HEAD_COLUMNS + " WHERE tree_size > ? ORDER BY tree_size LIMIT 1", (leaf_index,)
            ).fetchone()
        return None if row is None else stored_tree_head(row)

    def timestamp_status(self) -> TimestampStatus:
        with self._reader() as conn:
            last = conn.execute(
                "SELECT leaf_index FROM message_log ORDER BY id DESC LIMIT 1"
            ).fetchone()
            size = 0 if last is None or last[0] is None else int(last[0]) + 1
            head = conn.execute(
                "SELECT tree_size, last_entry_id FROM tree_head ORDER BY tree_size DESC LIMIT 1"
            ).fetchone()
            stamped, last_id = (0, 0) if head is None else (int(head[0]), int(head[1]))
            oldest = conn.execute(
                "SELECT logged_at FROM message_log WHERE id > ? ORDER BY id LIMIT 1", (last_id,)
            ).fetchone()
        return TimestampStatus(size, stamped, None if oldest is None else str(oldest[0]))

    def signed_heads(self) -> list[SignedHead]:
        with self._reader() as conn:
            return [signed_head(r) for r in conn.execute(_SIGNED_COLUMNS + " ORDER BY tree_size")]

    def latest_signed_head(self) -> SignedHead | None:
        with self._reader() as conn:
            row = conn.execute(_SIGNED_COLUMNS + " ORDER BY tree_size DESC LIMIT 1").fetchone()
        return None if row is None else signed_head(row)

    def cosignatures(
        self, *, log_node: str | None = None, witness: str | None = None
    ) -> list[CosignatureRow]:
        query = _COSIGNATURE_COLUMNS + " WHERE 1 = 1"
        params: list[object] = []
        if log_node is not None:
            query += " AND log_node = ?"
            params.append(log_node)
        if witness is not None:
            query += " AND witness = ?"
            params.append(witness)
        query += " ORDER BY log_node, tree_size, witness"
        with self._reader() as conn:
            return [cosignature_row(row) for row in conn.execute(query, params)]

    def witness_alerts(self) -> list[WitnessAlertRow]:
        with self._reader() as conn:
            return [
                WitnessAlertRow(int(a), str(b), str(c), str(d), str(e), str(f))
                for a, b, c, d, e, f in conn.execute(
                    "SELECT id, peer, code, detail, evidence, detected_at FROM witness_alert"
                    " ORDER BY id"
                )
            ]

    def ocsp_responses(self, refs: Iterable[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        with self._reader() as conn:
            for ref in sorted(set(refs)):
                row = conn.execute(
                    "SELECT CAST(der AS BLOB) FROM ocsp_response WHERE ocsp_ref = ?", (ref,)
                ).fetchone()
                if row is not None:
                    found[ref] = bytes(row[0])
        return found

    # -- export, archive, configuration history, own OCSP -------------------------------

    def export_evidence(self, selection: EntrySelection) -> ExportEvidence:
        with self._reader() as conn:
            where, params = _where(selection)
            select = _select_entries(conn)
            entries = [
                stored_entry(row, self._sealer)
                for row in BodyReader(conn, self._path).rows(
                    conn.execute(f"{select} WHERE {where} ORDER BY id", params)
                )
            ]
            present = {str(c[1]) for c in conn.execute("PRAGMA table_info(message_log)")}
            archived_before = 0
            if "body_omitted" in present:
                (archived_before,) = conn.execute(
                    "SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM message_log"
                    " WHERE body_omitted IN (?, ?)",
                    GONE,
                ).fetchone()
            signed, cosigned = _head_signatures(conn)
            signer_certificates = {
                str(ref): (bytes(der), str(jws))
                for ref, der, jws in conn.execute(
                    "SELECT cert_ref, CAST(der AS BLOB), jws_header FROM signer_certificate"
                )
            }
            ocsp = {
                str(ref): bytes(der)
                for ref, der in conn.execute(
                    "SELECT ocsp_ref, CAST(der AS BLOB) FROM ocsp_response"
                )
            }
            tsa_certificates = {
                str(ref): bytes(der)
                for ref, der in conn.execute(
                    "SELECT cert_ref, CAST(der AS BLOB) FROM tsa_certificate"
                )
            }
            versions = read_versions(conn)
        return ExportEvidence(
            entries=entries,
            archived_before=int(archived_before),
            signed=signed,
            cosigned=cosigned,
            signer_certificates=signer_certificates,
            ocsp=ocsp,
            tsa_certificates=tsa_certificates,
            versions=versions,
        )

    def archive(self, entries: Sequence[ArchivedEntry]) -> list[int]:
        # A second writer next to a running node: WAL lets both in turn, and the node's
        # writer waits for this short transaction (its busy timeout).
        if not self._path.exists():
            raise LogNotFoundError(f"{self._path} does not exist")
        return blank_and_free(self._path, lambda conn: prune_entries(conn, entries, self._sealer))

    def seal_rows(self) -> int:
        if not self._path.exists():
            raise LogNotFoundError(f"{self._path} does not exist")
        return seal_plain_rows(self._path, self._sealer)

    def expire(
        self, entries_before: str, tracker_before: str, seen_before: str | None = None
    ) -> Expired:
        if not self._path.exists():
            raise LogNotFoundError(f"{self._path} does not exist")
        return blank_and_free(
            self._path,
            lambda conn: expire(conn, entries_before, tracker_before, self._sealer, seen_before),
        )

    def configuration_versions(self) -> list[StoredVersion]:
        with self._reader() as conn:
            return read_versions(conn)

    def own_statuses(self) -> list[StoredStatus]:
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT s.cert_ref, CAST(r.der AS BLOB), s.fetched_at, s.fetched_from"
                " FROM own_ocsp_status s JOIN ocsp_response r ON r.ocsp_ref = s.ocsp_ref"
            ).fetchall()
        return [
            StoredStatus(str(ref), bytes(der), parse_time(str(at)), str(url))
            for ref, der, at, url in rows
        ]

    def witness_alert_count(self) -> int:
        with self._reader() as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM witness_alert").fetchone()
        return int(count)

    def operational_records(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        client: str | None = None,
        party: str | None = None,
        limit: int = MAX_OPERATIONAL_ROWS,
    ) -> list[OpRecord]:
        clauses: list[str] = []
        params: list[object] = []
        for clause, value in (
            ("request_in >= ?", since),
            ("request_in < ?", until),
            ("client = ?", client),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if party is not None:
            prefix = party + "/"
            clauses.append("(client = ? OR substr(service, 1, ?) = ?)")
            params.extend((party, len(prefix), prefix))
        where = " AND ".join(clauses) or "1 = 1"
        query = (
            f"SELECT {', '.join(OPERATIONAL_COLUMNS)} FROM operational_data "  # noqa: S608
            f"WHERE {where} ORDER BY request_in, id LIMIT ?"
        )
        with self._reader() as conn:
            rows = conn.execute(query, (*params, limit)).fetchall()
        records = []
        for row in rows:
            values: dict[str, Any] = dict(zip(OPERATIONAL_COLUMNS, row, strict=True))
            values["succeeded"] = bool(values["succeeded"])
            records.append(OpRecord(**values))
        return records

    # -- the admin audit trail and the node's settings ---------------------------------

    def latest_settings(self) -> StoredSettings | None:
        with self._reader() as conn:
            return admin.latest_settings(conn)

    def admin_records(
        self, since: str | None = None, limit: int | None = None
    ) -> list[StoredAdminRecord]:
        with self._reader() as conn:
            return admin.admin_records(conn, since, limit)


def _where(selection: EntrySelection) -> tuple[str, tuple[object, ...]]:
    if selection.all:
        return "1 = 1", ()
    if selection.message_id is not None:
        return "message_id = ?", (selection.message_id,)
    clauses, params = [], []
    if selection.since is not None:
        clauses.append("logged_at >= ?")
        params.append(selection.since)
    if selection.until is not None:
        clauses.append("logged_at <= ?")
        params.append(selection.until)
    if not clauses:
        raise ValueError("an entry selection needs a message id, a time range or all")
    return " AND ".join(clauses), tuple(params)


def _head_signatures(
    conn: sqlite3.Connection,
) -> tuple[dict[int, SignedHead], dict[int, list[CosignatureRow]]]:
    """The member key's signatures over tree heads, and the witnesses' co-signatures
    collected for them (none in a log written before signed tree heads existed)."""
    try:
        signed = {head.tree_size: head for head in map(signed_head, conn.execute(_SIGNED_COLUMNS))}
        cosigned: dict[int, list[CosignatureRow]] = {}
        for row in conn.execute(
            "SELECT c.log_node, c.witness, c.tree_size, CAST(c.document AS BLOB), c.signature,"
            " c.cosignature, c.cert_ref, c.ocsp_ref, c.stored_at FROM cosignature c"
            " JOIN signed_tree_head s ON s.tree_size = c.tree_size"
            " WHERE c.log_node = (SELECT json_extract(CAST(document AS TEXT), '$.node')"
            " FROM signed_tree_head LIMIT 1) ORDER BY c.tree_size, c.witness"
        ):
            cosignature = cosignature_row(row)
            own = signed.get(cosignature.tree_size)
            if own is not None and own.document == cosignature.document:
                cosigned.setdefault(cosignature.tree_size, []).append(cosignature)
    except sqlite3.OperationalError:  # a log file from before signed tree heads
        return {}, {}
    return signed, cosigned


def read_versions(conn: sqlite3.Connection) -> list[StoredVersion]:
    """Every recorded version in the order applied; none for a log from before history."""
    try:
        rows = conn.execute(
            "SELECT id, serial, applied_at, CAST(root AS BLOB), CAST(timestamp AS BLOB),"
            " CAST(snapshot AS BLOB), CAST(targets AS BLOB), CAST(document AS BLOB)"
            " FROM configuration_version ORDER BY id"
        ).fetchall()
    except sqlite3.OperationalError:  # no such table: a log file from before history
        return []
    return [
        StoredVersion(
            int(r[0]),
            int(r[1]),
            str(r[2]),
            tuple((name, bytes(data)) for name, data in zip(SIGNED_FILES, r[3:], strict=True)),
        )
        for r in rows
    ]
