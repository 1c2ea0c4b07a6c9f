"""Write an audit bundle from a node's message log file.

Reads the SQLite log read-only (WAL lets a running node keep writing), selects entries,
and writes every piece an auditor needs to check them offline: the entries' bytes,
their signers' certificate chains and OCSP responses, every tree head covering them
with its token and TSA certificate, an inclusion proof per entry into the first tree
head covering it, and a consistency proof between successive tree heads. Entries not
yet covered by a tree head cannot be proven and are left out (and counted).

The bundle is written to a temporary file and renamed, so a reader never sees half of
one. Format: ``gateway.audit.bundle``, docs/audit-bundle.md.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.audit.bundle import (
    Bundle,
    CertificateItem,
    ConfigItem,
    ConfigVersion,
    CosignItem,
    EntryItem,
    HeadItem,
    Manifest,
    OcspItem,
    SignedItem,
    encode_bundle,
    leaf_ranges,
)
from gateway.audit.configuration import SnapshotError, read_snapshot, select_versions
from gateway.audit.proofs import TreeLevels
from gateway.core.encoding import b64url_decode, format_time
from gateway.core.logtree import parse_tree_head_document
from gateway.node.confhistory import StoredVersion, read_versions
from gateway.node.logproofs import NotProvableError, leaf_hashes, read_tree_heads

__all__ = ["ExportError", "ExportResult", "Selection", "export_bundle"]


class ExportError(Exception):
    """The bundle cannot be written; the message says why."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which entries: one message id (both its request and response entries), a
    ``logged_at`` range (inclusive), or everything the tree heads cover."""

    message_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    all: bool = False

    def as_json(self) -> dict[str, Any]:
        if self.all:
            return {"all": True}
        if self.message_id is not None:
            return {"message_id": self.message_id}
        result: dict[str, Any] = {}
        if self.since is not None:
            result["from"] = format_time(self.since)
        if self.until is not None:
            result["to"] = format_time(self.until)
        return result


@dataclass(frozen=True, slots=True)
class ExportResult:
    entries: int
    pending: int
    """Selected entries left out because no tree head covers them yet."""
    tree_heads: int
    bytes: int
    archived: int = 0
    """Selected entries left out because they were archived (their bundle holds them)."""


@contextlib.contextmanager
def _reader(path: Path) -> Iterator[sqlite3.Connection]:
    if not path.exists():
        raise ExportError(f"{path} does not exist")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


_ENTRY_COLUMNS = (
    "SELECT id, leaf_index, CAST(leaf_hash AS BLOB), logged_at, role, kind, message_id,"
    " xroad_id, client, service, created, CAST(header AS BLOB), CAST(body AS BLOB),"
    " signature, cert_ref, ocsp_ref, {digest_columns} FROM message_log"
)
_DIGEST_COLUMNS = "body_sha256, body_omitted"
_NO_DIGEST_COLUMNS = "NULL, ''"  # a log file from before digest-only bodies
_SUBJECTS_COLUMN = ", subjects_sha256"
_NO_SUBJECTS_COLUMN = ", NULL"  # a log file from before subject commitments


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _chain(jws_header: str) -> list[bytes]:
    """The DER certificates of a JWS protected header's x5c."""
    header = json.loads(b64url_decode(jws_header))
    return [base64.b64decode(c, validate=True) for c in header.get("x5c", [])]


def export_bundle(
    db: Path,
    out: Path,
    selection: Selection,
    *,
    now: datetime,
    extra_tsa: x509.Certificate | None = None,
    extra_ca: x509.Certificate | None = None,
    bodies: bool = True,
    globalconf: Path | None = None,
) -> ExportResult:
    """Write the bundle for ``selection`` of the log ``db`` to ``out``.

    The bundle carries the configuration versions in force over the exported entries
    from the log's history (``gateway.node.confhistory``). A log without history falls
    back to ``globalconf``, the node's global configuration state directory: the
    bundle then carries the one snapshot applied last (``gateway.audit.configuration``).
    """
    heads = read_tree_heads(db)
    covered = heads[-1].tree_size if heads else 0
    try:
        leaves = leaf_hashes(db, covered)
    except NotProvableError as exc:
        raise ExportError(f"{db}: {exc}") from None
    with _reader(db) as conn:
        where, params = _where(selection)
        present = {str(c[1]) for c in conn.execute("PRAGMA table_info(message_log)")}
        columns = _DIGEST_COLUMNS if "body_omitted" in present else _NO_DIGEST_COLUMNS
        columns += _SUBJECTS_COLUMN if "subjects_sha256" in present else _NO_SUBJECTS_COLUMN
        select = _ENTRY_COLUMNS.format(digest_columns=columns)
        rows = conn.execute(f"{select} WHERE {where} ORDER BY id", params).fetchall()
        # Archived entries live in their archive bundle; their leaves still prove.
        archived = sum(1 for r in rows if r[17] == "archived")
        rows = [r for r in rows if r[17] != "archived"]
        archived_before = 0
        if "body_omitted" in present:
            (archived_before,) = conn.execute(
                "SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM message_log"
                " WHERE body_omitted = 'archived'"
            ).fetchone()
        pending = sum(1 for r in rows if r[1] is None or int(r[1]) >= covered)
        rows = [r for r in rows if r[1] is not None and int(r[1]) < covered]
        signed, cosigned = _head_signatures(conn)
        cert_refs = sorted(
            {str(r[14]) for r in rows}
            | {s.cert_ref for s in signed.values()}
            | {c.cert_ref for cs in cosigned.values() for c in cs}
        )
        ocsp_refs = sorted(
            {str(r[15]) for r in rows if r[15]}
            | {s.ocsp_ref for s in signed.values() if s.ocsp_ref}
            | {c.ocsp_ref for cs in cosigned.values() for c in cs if c.ocsp_ref}
        )
        signer_rows = {
            str(ref): (bytes(der), str(jws))
            for ref, der, jws in conn.execute(
                "SELECT cert_ref, CAST(der AS BLOB), jws_header FROM signer_certificate"
            )
            if ref in cert_refs
        }
        ocsp_rows = {
            str(ref): bytes(der)
            for ref, der in conn.execute("SELECT ocsp_ref, CAST(der AS BLOB) FROM ocsp_response")
            if ref in ocsp_refs
        }
        tsa_rows = {
            str(ref): bytes(der)
            for ref, der in conn.execute("SELECT cert_ref, CAST(der AS BLOB) FROM tsa_certificate")
        }
        history = read_versions(conn)
    versions = _in_force(history, rows, selection)
    snapshot: list[tuple[str, bytes]] = []
    try:
        if not history and globalconf is not None:
            snapshot = read_snapshot(globalconf)
    except (SnapshotError, OSError) as exc:
        raise ExportError(f"configuration snapshot: {exc}") from None
    chosen = [h for h in heads if h.tree_size > min((int(r[1]) for r in rows), default=covered)]
    if selection.all:
        chosen = heads
    node = parse_tree_head_document(heads[0].document).node if heads else ""

    levels = TreeLevels(leaves)
    head_items: list[HeadItem] = []
    for position, head in enumerate(chosen):
        previous = chosen[position - 1].tree_size if position else None
        head_items.append(
            HeadItem(
                tree_size=head.tree_size,
                root_hash=head.root_hash,
                gen_time=head.gen_time,
                document=head.document,
                token=head.token,
                tsa_cert_ref=head.tsa_cert_ref,
                consistency_from=previous,
                consistency=()
                if previous is None
                else tuple(levels.consistency(previous, head.tree_size)),
                signed=signed.get(head.tree_size),
                cosignatures=tuple(cosigned.get(head.tree_size, ())),
            )
        )
    sizes = [h.tree_size for h in chosen]
    entries: list[EntryItem] = []
    for row in rows:
        index = int(row[1])
        proof_size = next(s for s in sizes if s > index)
        body = bytes(row[12])
        omitted = bool(row[17])
        entries.append(
            EntryItem(
                id=int(row[0]),
                leaf_index=index,
                leaf_hash=bytes(row[2]),
                logged_at=str(row[3]),
                role=str(row[4]),
                kind=str(row[5]),
                message_id=str(row[6]),
                xroad_id=str(row[7]),
                client=str(row[8]),
                service=str(row[9]),
                created=str(row[10]),
                header=bytes(row[11]),
                body=body if bodies and not omitted else None,
                body_sha256=str(row[16]) if omitted else hashlib.sha256(body).hexdigest(),
                signature=str(row[13]),
                cert_ref=str(row[14]),
                ocsp_ref=str(row[15]),
                proof_size=proof_size,
                inclusion=tuple(levels.inclusion(index, proof_size)),
                subjects_sha256=None if row[18] is None else str(row[18]),
            )
        )

    certificates: dict[str, CertificateItem] = {}

    def add(der: bytes, role: str) -> None:
        ref = hashlib.sha256(der).hexdigest()
        certificates.setdefault(ref, CertificateItem(ref, role, der))

    for ref in cert_refs:
        if ref not in signer_rows:
            raise ExportError(f"the log has no signer certificate {ref}")
        der, jws_header = signer_rows[ref]
        add(der, "signer")
        for extra in _chain(jws_header)[1:] if jws_header else []:
            add(extra, "intermediate")
    for ref in sorted({h.tsa_cert_ref for h in chosen}):
        if ref in tsa_rows:
            add(tsa_rows[ref], "tsa")
    if extra_tsa is not None:
        add(_der(extra_tsa), "tsa")
    if extra_ca is not None:
        add(_der(extra_ca), "ca")
    missing = sorted(set(ocsp_refs) - set(ocsp_rows))
    if missing:
        raise ExportError(f"the log has no OCSP response {missing[0]}")

    bundle = Bundle(
        Manifest(
            node=node,
            exported_at=format_time(now),
            selection={**selection.as_json(), "archived_before_leaf": int(archived_before)}
            if selection.all and archived_before
            else selection.as_json(),
            log_size=covered,
            tree_heads=tuple(sizes),
            entries=leaf_ranges(e.leaf_index for e in entries),
            certificates=len(certificates),
            ocsp_responses=len(ocsp_refs),
            signed_heads=tuple(h.tree_size for h in head_items if h.signed is not None),
            cosignatures=sum(len(h.cosignatures) for h in head_items),
            configuration=tuple(name for name, _ in snapshot),
            configurations=tuple(
                ConfigVersion(v.serial, v.applied_at, tuple(name for name, _ in v.files))
                for v in versions
            ),
        ),
        certificates=list(certificates.values()),
        ocsp=[OcspItem(ref, ocsp_rows[ref]) for ref in ocsp_refs],
        configuration=[ConfigItem(name, data) for name, data in snapshot]
        + [
            ConfigItem(name, data, position)
            for position, v in enumerate(versions)
            for name, data in v.files
        ],
        heads=head_items,
        entries=entries,
    )
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    written = 0
    try:
        with temporary.open("wb") as handle:
            for line in encode_bundle(bundle):
                handle.write(line)
                written += len(line)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(out)
    finally:
        temporary.unlink(missing_ok=True)
    return ExportResult(len(entries), pending, len(head_items), written, archived)


def _in_force(
    history: list[StoredVersion], rows: list[Any], selection: Selection
) -> list[StoredVersion]:
    """The recorded versions in force over the exported rows (all of them for ``--all``)."""
    if selection.all or not history:
        return history
    try:
        applied = [datetime.fromisoformat(v.applied_at) for v in history]
        logged = [datetime.fromisoformat(str(r[3])) for r in rows]
    except ValueError as exc:
        raise ExportError(f"configuration history: {exc}") from None
    chosen = select_versions(applied, min(logged, default=None), max(logged, default=None))
    return history[chosen]


def _head_signatures(
    conn: sqlite3.Connection,
) -> tuple[dict[int, SignedItem], dict[int, list[CosignItem]]]:
    """The member key's signatures over tree heads, and the witnesses' co-signatures
    collected for them (none in a log written before signed tree heads existed)."""
    try:
        signed = {
            int(size): SignedItem(bytes(document), str(sig), str(cert), str(ocsp))
            for size, document, sig, cert, ocsp in conn.execute(
                "SELECT tree_size, CAST(document AS BLOB), signature, cert_ref, ocsp_ref"
                " FROM signed_tree_head"
            )
        }
        cosigned: dict[int, list[CosignItem]] = {}
        for size, document, witness, cosig, cert, ocsp in conn.execute(
            "SELECT c.tree_size, CAST(c.document AS BLOB), c.witness, c.cosignature,"
            " c.cert_ref, c.ocsp_ref FROM cosignature c"
            " JOIN signed_tree_head s ON s.tree_size = c.tree_size"
            " WHERE c.log_node = (SELECT json_extract(CAST(document AS TEXT), '$.node')"
            " FROM signed_tree_head LIMIT 1) ORDER BY c.tree_size, c.witness"
        ):
            own = signed.get(int(size))
            if own is not None and own.document == bytes(document):
                cosigned.setdefault(int(size), []).append(
                    CosignItem(str(witness), str(cosig), str(cert), str(ocsp))
                )
    except sqlite3.OperationalError:  # a log file from before signed tree heads
        return {}, {}
    return signed, cosigned


def _where(selection: Selection) -> tuple[str, tuple[object, ...]]:
    if selection.all:
        return "1 = 1", ()
    if selection.message_id is not None:
        return "message_id = ?", (selection.message_id,)
    clauses, params = [], []
    if selection.since is not None:
        clauses.append("logged_at >= ?")
        params.append(format_time(selection.since))
    if selection.until is not None:
        clauses.append("logged_at <= ?")
        params.append(format_time(selection.until))
    if not clauses:
        raise ExportError("select entries with --message-id, --from/--to or --all")
    return " AND ".join(clauses), tuple(params)
