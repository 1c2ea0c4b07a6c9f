"""The PostgreSQL backend's reads: every query against a log kept in PostgreSQL.

:class:`PostgresLogStore` implements ``gateway.messagelog.store.LogStore`` over one
database; each call runs on a connection of its own in one ``REPEATABLE READ``
transaction (a consistent snapshot, like SQLite's read transaction), beside the node's
writers. The rows become the same record types as SQLite's (``sqlite_rows``). The side
writes are in ``postgres_writes``, the group commit's transactions in ``postgres_commit``
(docs/adr/0035-postgresql-backend.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, Final

import psycopg

import gateway.messagelog.postgres_admin as admin
from gateway.conf.tufclient import SIGNED_FILES
from gateway.core.envelope import parse_time
from gateway.messagelog.leaves import subtree_key
from gateway.messagelog.postgres_retention import expire
from gateway.messagelog.postgres_schema import connect, redacted
from gateway.messagelog.postgres_writes import OPERATIONAL_COLUMNS, prune_entries, seal_plain_rows
from gateway.messagelog.records import (
    GONE,
    MAX_OPERATIONAL_ROWS,
    ArchivedEntry,
    CosignatureRow,
    EntrySelection,
    Expired,
    ExportEvidence,
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
from gateway.messagelog.sqlite_rows import (
    cosignature_row,
    signed_head,
    stored_details,
    stored_entry,
    stored_tree_head,
)

__all__ = ["PostgresLogStore"]

Conn = psycopg.Connection[tuple[Any, ...]]

_ENTRIES: Final = (
    "SELECT id, logged_at, role, kind, message_id, xroad_id, client, service, created, header,"
    " body, signature, cert_ref, ocsp_ref, leaf_index, leaf_hash, body_sha256, body_omitted,"
    " subjects_salt, subjects_sha256, sealed FROM message_log"
)
_USAGE_QUERY: Final = """
SELECT resp.id, resp.logged_at, resp.client, resp.service, resp.message_id, resp.xroad_id,
       resp.header, req.header, resp.leaf_index,
       CASE WHEN resp.body_omitted = 'deleted' OR req.body_omitted = 'deleted' THEN 2
            WHEN resp.body_omitted = 'archived' OR req.body_omitted = 'archived' THEN 1
            ELSE 0 END,
       r.method, r.path, r.status, r.user_id, r.issue, resp.sealed, req.sealed
FROM data_subject AS ds
JOIN message_log AS resp ON resp.id = ds.entry_id
JOIN message_log AS req
  ON req.message_id = resp.message_id AND req.client = resp.client
 AND req.role = 'provider' AND req.kind = 'request'
LEFT JOIN data_subject_read AS r ON r.entry_id = resp.id
WHERE ds.subject IN (%s, %s) AND resp.role = 'provider' AND resp.kind = 'response'
ORDER BY resp.id
"""
_HEADS: Final = (
    "SELECT id, tree_size, root_hash, last_entry_id, document, gen_time, token, tsa_name,"
    " tsa_cert_ref, stored_at FROM tree_head"
)
_SIGNED: Final = "SELECT tree_size, document, signature, cert_ref, ocsp_ref FROM signed_tree_head"
_COSIGNATURES: Final = (
    "SELECT log_node, witness, tree_size, document, signature, cosignature, cert_ref,"
    " ocsp_ref, stored_at FROM cosignature"
)


class PostgresLogStore:
    """``LogStore`` over one node's log in a PostgreSQL database."""

    def __init__(self, url: str, sealer: Sealer | None = None) -> None:
        self._url = url
        self._sealer = sealer or Sealer()
        """Opens the rows sealed at rest (``gateway.messagelog.sealing``)."""

    @property
    def url(self) -> str:
        return self._url

    @property
    def location(self) -> str:
        return redacted(self._url)

    def __repr__(self) -> str:
        return f"PostgresLogStore({self.location!r})"

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Conn]:
        conn = connect(self._url)
        try:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn
            conn.rollback()
        except psycopg.errors.UndefinedTable:
            raise LogStoreError(
                f"{self.location} holds no message log: run `gateway db upgrade` first"
            ) from None
        except psycopg.Error as exc:
            raise LogStoreError(f"{self.location}: {_first_line(exc)}") from None
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
        query = _ENTRIES + " WHERE id > %s"
        params: list[object] = [after]
        if message_id is not None:
            query += " AND message_id = %s"
            params.append(message_id)
        if leaf_index is not None:
            query += " AND leaf_index = %s"
            params.append(leaf_index)
        if party is not None:
            # An admin entry is no exchange of a party's, whatever it names.
            query += " AND kind != 'admin' AND (client = %s OR substr(service, 1, %s) = %s)"
            params += [party, len(party) + 1, party + "/"]
        query += " ORDER BY id"
        if limit is not None:
            query += " LIMIT %s"
            params.append(limit)
        with self._reader() as conn:
            return [stored_entry(row, self._sealer) for row in conn.execute(query, params)]

    def entry(self, entry_id: int) -> StoredEntry | None:
        with self._reader() as conn:
            row = conn.execute(_ENTRIES + " WHERE id = %s", (entry_id,)).fetchone()
        return None if row is None else stored_entry(row, self._sealer)

    def count_entries(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM message_log"))

    def _one(self, query: str, params: Sequence[object] = ()) -> Any:
        with self._reader() as conn:
            row = conn.execute(query, params).fetchone()
        assert row is not None
        return row[0]

    def subtrees(self, names: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        if not names:
            return {}
        keys = [subtree_key(level, position) for level, position in names]
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT s.level, s.position, s.hash FROM merkle_subtree s"
                " JOIN unnest(%s::bigint[]) AS w(node) ON s.node = w.node",
                (keys,),
            ).fetchall()
        return {(int(level), int(position)): bytes(h) for level, position, h in rows}

    def leaf_hashes(self, size: int) -> list[bytes]:
        leaves: list[bytes] = []
        with self._reader() as conn:
            for index, leaf in conn.execute(
                "SELECT leaf_index, leaf_hash FROM message_log"
                " WHERE leaf_index IS NOT NULL ORDER BY id LIMIT %s",
                (size,),
            ):
                if index != len(leaves) or not isinstance(leaf, bytes):
                    raise NotProvableError(f"leaf {len(leaves)} is missing or out of order")
                leaves.append(leaf)
        if len(leaves) != size:
            raise NotProvableError(f"the log holds {len(leaves)} leaves, not {size}")
        return leaves

    def leaves_through(self, last_entry_id: int) -> list[tuple[object, object]]:
        with self._reader() as conn:
            return [
                (index, leaf)
                for index, leaf in conn.execute(
                    "SELECT leaf_index, leaf_hash FROM message_log WHERE id <= %s ORDER BY id",
                    (last_entry_id,),
                )
            ]

    def data_subjects(self) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        with self._reader() as conn:
            for entry_id, subject, value in conn.execute(
                "SELECT entry_id, subject, sealed FROM data_subject ORDER BY entry_id, subject"
            ):
                plain = self._sealer.open_subject(
                    entry_id, str(subject), None if value is None else bytes(value)
                )
                found.setdefault(int(entry_id), []).append(plain)
        return found

    def usage(self, subject: str) -> list[UsageRow]:
        with self._reader() as conn:
            if self._sealer.key is None:
                found = conn.execute("SELECT 1 FROM data_subject WHERE sealed IS NOT NULL LIMIT 1")
                if found.fetchone() is not None:
                    self._sealer.lookup_sealed()  # no answer that leaves sealed reads out
            rows = conn.execute(_USAGE_QUERY, self._sealer.lookup(subject)).fetchall()
        open_blob = self._sealer.open_blob
        return [
            UsageRow(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                str(r[4]),
                str(r[5]),
                open_blob(r[0], bytes(r[6]), r[15], "header"),
                open_blob(f"{r[0]}'s request", bytes(r[7]), r[16], "header"),
                None if r[8] is None else int(r[8]),
                bool(r[9]),
                self._opened_details(r[0], stored_details(r[10:15]), r[15]),
                int(r[9]) == 2,
            )
            for r in rows
        ]

    def _opened_details(
        self, entry_id: object, details: ReadDetails | None, sealed: object
    ) -> ReadDetails | None:
        return None if details is None else self._sealer.open_read(entry_id, details, sealed)

    def data_subject_reads(self) -> dict[int, ReadDetails] | None:
        with self._reader() as conn:
            return {
                int(e): self._sealer.open_read(
                    e,
                    ReadDetails(
                        str(m),
                        str(p),
                        int(s),
                        None if u is None else str(u),
                        None if i is None else str(i),
                    ),
                    sealed,
                )
                for e, m, p, s, u, i, sealed in conn.execute(
                    "SELECT r.entry_id, r.method, r.path, r.status, r.user_id, r.issue, m.sealed"
                    " FROM data_subject_read AS r LEFT JOIN message_log AS m ON m.id = r.entry_id"
                )
            }

    def provider_request(self, message_id: str, client: str) -> tuple[bytes, str] | None:
        with self._reader() as conn:
            row = conn.execute(
                "SELECT header, body_omitted, sealed FROM message_log WHERE message_id = %s"
                " AND client = %s AND role = 'provider' AND kind = 'request' ORDER BY id LIMIT 1",
                (message_id, client),
            ).fetchone()
        if row is None:
            return None
        header = self._sealer.open_blob(f"{message_id}'s request", bytes(row[0]), row[2], "header")
        return header, str(row[1] or "")

    # -- tree heads, signatures, witnessing ---------------------------------------------

    def tree_heads(self) -> list[StoredTreeHead]:
        with self._reader() as conn:
            return [stored_tree_head(row) for row in conn.execute(_HEADS + " ORDER BY tree_size")]

    def first_head_covering(self, leaf_index: int) -> StoredTreeHead | None:
        with self._reader() as conn:
            row = conn.execute(
                _HEADS + " WHERE tree_size > %s ORDER BY tree_size LIMIT 1", (leaf_index,)
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
                "SELECT logged_at FROM message_log WHERE id > %s ORDER BY id LIMIT 1", (last_id,)
            ).fetchone()
        return TimestampStatus(size, stamped, None if oldest is None else str(oldest[0]))

    def signed_heads(self) -> list[SignedHead]:
        with self._reader() as conn:
            return [signed_head(r) for r in conn.execute(_SIGNED + " ORDER BY tree_size")]

    def latest_signed_head(self) -> SignedHead | None:
        with self._reader() as conn:
            row = conn.execute(_SIGNED + " ORDER BY tree_size DESC LIMIT 1").fetchone()
        return None if row is None else signed_head(row)

    def cosignatures(
        self, *, log_node: str | None = None, witness: str | None = None
    ) -> list[CosignatureRow]:
        query = _COSIGNATURES + " WHERE 1 = 1"
        params: list[object] = []
        if log_node is not None:
            query += " AND log_node = %s"
            params.append(log_node)
        if witness is not None:
            query += " AND witness = %s"
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
        wanted = sorted(set(refs))
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT ocsp_ref, der FROM ocsp_response WHERE ocsp_ref = ANY(%s)", (wanted,)
            ).fetchall()
        return {str(ref): bytes(der) for ref, der in rows}

    # -- export, archive, configuration history, own OCSP -------------------------------

    def export_evidence(self, selection: EntrySelection) -> ExportEvidence:
        where, params = _where(selection)
        with self._reader() as conn:
            entries = [
                stored_entry(row, self._sealer)
                for row in conn.execute(f"{_ENTRIES} WHERE {where} ORDER BY id", params)
            ]
            row = conn.execute(
                "SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM message_log"
                " WHERE body_omitted IN (%s, %s)",
                GONE,
            ).fetchone()
            archived_before = 0 if row is None else int(row[0])
            signed, cosigned = _head_signatures(conn)
            signer_certificates = {
                str(ref): (bytes(der), str(jws))
                for ref, der, jws in conn.execute(
                    "SELECT cert_ref, der, jws_header FROM signer_certificate"
                )
            }
            ocsp = {
                str(ref): bytes(der)
                for ref, der in conn.execute("SELECT ocsp_ref, der FROM ocsp_response")
            }
            tsa_certificates = {
                str(ref): bytes(der)
                for ref, der in conn.execute("SELECT cert_ref, der FROM tsa_certificate")
            }
            versions = _versions(conn)
        return ExportEvidence(
            entries=entries,
            archived_before=archived_before,
            signed=signed,
            cosigned=cosigned,
            signer_certificates=signer_certificates,
            ocsp=ocsp,
            tsa_certificates=tsa_certificates,
            versions=versions,
        )

    def archive(self, entries: Sequence[ArchivedEntry]) -> list[int]:
        # A short writer next to the node's: the rows it blanks are locked FOR UPDATE.
        # PostgreSQL keeps the old row versions until VACUUM reclaims them
        # (docs/deployment.md: archiving on PostgreSQL).
        conn = connect(self._url)
        try:
            leaves = prune_entries(conn, entries, self._sealer)
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            raise LogStoreError(f"{self.location}: {_first_line(exc)}") from None
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
        return leaves

    def seal_rows(self) -> int:
        conn = connect(self._url)
        try:
            count = seal_plain_rows(conn, self._sealer)
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            raise LogStoreError(f"{self.location}: {_first_line(exc)}") from None
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
        return count

    def expire(
        self, entries_before: str, tracker_before: str, seen_before: str | None = None
    ) -> Expired:
        conn = connect(self._url)
        try:
            expired = expire(conn, entries_before, tracker_before, self._sealer, seen_before)
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            raise LogStoreError(f"{self.location}: {_first_line(exc)}") from None
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
        return expired

    def configuration_versions(self) -> list[StoredVersion]:
        with self._reader() as conn:
            return _versions(conn)

    def own_statuses(self) -> list[StoredStatus]:
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT s.cert_ref, r.der, s.fetched_at, s.fetched_from"
                " FROM own_ocsp_status s JOIN ocsp_response r ON r.ocsp_ref = s.ocsp_ref"
            ).fetchall()
        return [
            StoredStatus(str(ref), bytes(der), parse_time(str(at)), str(url))
            for ref, der, at, url in rows
        ]

    def witness_alert_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM witness_alert"))

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
            ("request_in >= %s", since),
            ("request_in < %s", until),
            ("client = %s", client),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if party is not None:
            prefix = party + "/"
            clauses.append("(client = %s OR substr(service, 1, %s) = %s)")
            params.extend((party, len(prefix), prefix))
        where = " AND ".join(clauses) or "1 = 1"
        query = (
            f"SELECT {', '.join(OPERATIONAL_COLUMNS)} FROM operational_data "  # noqa: S608
            f"WHERE {where} ORDER BY request_in, id LIMIT %s"
        )
        with self._reader() as conn:
            rows = conn.execute(query, (*params, limit)).fetchall()
        return [OpRecord(**dict(zip(OPERATIONAL_COLUMNS, row, strict=True))) for row in rows]

    # -- the admin audit trail and the node's settings ---------------------------------

    def latest_settings(self) -> StoredSettings | None:
        with self._reader() as conn:
            return admin.latest_settings(conn)

    def admin_records(
        self, since: str | None = None, limit: int | None = None
    ) -> list[StoredAdminRecord]:
        with self._reader() as conn:
            return admin.admin_records(conn, since, limit)


def _first_line(exc: BaseException) -> str:
    """The server's message without the statement excerpt psycopg appends."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _where(selection: EntrySelection) -> tuple[str, tuple[object, ...]]:
    if selection.all:
        return "1 = 1", ()
    if selection.message_id is not None:
        return "message_id = %s", (selection.message_id,)
    clauses, params = [], []
    if selection.since is not None:
        clauses.append("logged_at >= %s")
        params.append(selection.since)
    if selection.until is not None:
        clauses.append("logged_at <= %s")
        params.append(selection.until)
    if not clauses:
        raise ValueError("an entry selection needs a message id, a time range or all")
    return " AND ".join(clauses), tuple(params)


def _head_signatures(conn: Conn) -> tuple[dict[int, SignedHead], dict[int, list[CosignatureRow]]]:
    """The member key's signatures over tree heads, and the witnesses' co-signatures
    collected for them."""
    signed = {head.tree_size: head for head in map(signed_head, conn.execute(_SIGNED))}
    cosigned: dict[int, list[CosignatureRow]] = {}
    for row in conn.execute(
        "SELECT c.log_node, c.witness, c.tree_size, c.document, c.signature, c.cosignature,"
        " c.cert_ref, c.ocsp_ref, c.stored_at FROM cosignature c"
        " JOIN signed_tree_head s ON s.tree_size = c.tree_size"
        " WHERE c.log_node = (SELECT convert_from(document, 'UTF8')::json ->> 'node'"
        " FROM signed_tree_head LIMIT 1) ORDER BY c.tree_size, c.witness"
    ):
        cosignature = cosignature_row(row)
        own = signed.get(cosignature.tree_size)
        if own is not None and own.document == cosignature.document:
            cosigned.setdefault(cosignature.tree_size, []).append(cosignature)
    return signed, cosigned


def _versions(conn: Conn) -> list[StoredVersion]:
    rows = conn.execute(
        "SELECT id, serial, applied_at, root, timestamp, snapshot, targets, document"
        " FROM configuration_version ORDER BY id"
    ).fetchall()
    return [
        StoredVersion(
            int(r[0]),
            int(r[1]),
            str(r[2]),
            tuple((name, bytes(data)) for name, data in zip(SIGNED_FILES, r[3:], strict=True)),
        )
        for r in rows
    ]
