"""Write an audit bundle from a node's message log.

Reads the log through its ``LogStore`` (``gateway.messagelog``; for a SQLite file,
read-only beside a running node's writer), selects entries,
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
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
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
from gateway.audit.sealed import seal_bundle
from gateway.core.encoding import b64url_decode, format_time
from gateway.core.logtree import parse_tree_head_document
from gateway.messagelog import (
    GONE,
    EntrySelection,
    LogStore,
    NotProvableError,
    StoredEntry,
    StoredVersion,
    open_store,
)

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
    index: tuple[tuple[int, str, str], ...] = ()
    """Id, leaf hash (hex) and body digest of each exported entry: what archiving
    prunes when the file is sealed and cannot be read back."""


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _chain(jws_header: str) -> list[bytes]:
    """The DER certificates of a JWS protected header's x5c."""
    header = json.loads(b64url_decode(jws_header))
    return [base64.b64decode(c, validate=True) for c in header.get("x5c", [])]


def export_bundle(
    db: LogStore | Path | str,
    out: Path,
    selection: Selection,
    *,
    now: datetime,
    extra_tsa: x509.Certificate | None = None,
    extra_ca: x509.Certificate | None = None,
    bodies: bool = True,
    globalconf: Path | None = None,
    recipients: Sequence[X25519PublicKey] = (),
) -> ExportResult:
    """Write the bundle for ``selection`` of the log ``db`` (a store, a PostgreSQL URL or
    the path of a SQLite log file) to ``out``.

    The bundle carries the configuration versions in force over the exported entries
    from the log's configuration history. A log without history falls back to
    ``globalconf``, the node's global configuration state directory: the bundle then
    carries the one snapshot applied last (``gateway.audit.configuration``).

    With ``recipients`` the file is the bundle sealed to them (``gateway.audit.sealed``),
    never written in the clear first.
    """
    store = open_store(db)
    heads = store.tree_heads()
    covered = heads[-1].tree_size if heads else 0
    try:
        leaves = store.leaf_hashes(covered)
    except NotProvableError as exc:
        raise ExportError(f"{store.location}: {exc}") from None
    evidence = store.export_evidence(_entry_selection(selection))
    rows = evidence.entries
    # Archived entries live in their archive bundle; their leaves still prove.
    archived = sum(1 for r in rows if r.body_omitted in GONE)
    rows = [r for r in rows if r.body_omitted not in GONE]
    archived_before = evidence.archived_before
    pending = sum(1 for r in rows if r.leaf_index is None or r.leaf_index >= covered)
    proven = [r for r in rows if r.leaf_index is not None and r.leaf_index < covered]
    signed = {
        size: SignedItem(h.document, h.signature, h.cert_ref, h.ocsp_ref)
        for size, h in evidence.signed.items()
    }
    cosigned = {
        size: [CosignItem(c.witness, c.cosignature, c.cert_ref, c.ocsp_ref) for c in cs]
        for size, cs in evidence.cosigned.items()
    }
    cert_refs = sorted(
        {r.cert_ref for r in proven}
        | {s.cert_ref for s in signed.values()}
        | {c.cert_ref for cs in cosigned.values() for c in cs}
    )
    ocsp_refs = sorted(
        {r.ocsp_ref for r in proven if r.ocsp_ref}
        | {s.ocsp_ref for s in signed.values() if s.ocsp_ref}
        | {c.ocsp_ref for cs in cosigned.values() for c in cs if c.ocsp_ref}
    )
    signer_rows = {
        ref: value for ref, value in evidence.signer_certificates.items() if ref in cert_refs
    }
    ocsp_rows = {ref: der for ref, der in evidence.ocsp.items() if ref in ocsp_refs}
    tsa_rows = evidence.tsa_certificates
    history = evidence.versions
    versions = _in_force(history, proven, selection)
    snapshot: list[tuple[str, bytes]] = []
    try:
        if not history and globalconf is not None:
            snapshot = read_snapshot(globalconf)
    except (SnapshotError, OSError) as exc:
        raise ExportError(f"configuration snapshot: {exc}") from None
    chosen = [
        h
        for h in heads
        if h.tree_size
        > min((r.leaf_index for r in proven if r.leaf_index is not None), default=covered)
    ]
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
    for row in proven:
        index = row.leaf_index
        if index is None or row.leaf_hash is None:
            raise ExportError(f"entry {row.id} has a leaf index but no leaf hash")
        proof_size = next(s for s in sizes if s > index)
        omitted = bool(row.body_omitted)
        entries.append(
            EntryItem(
                id=row.id,
                leaf_index=index,
                leaf_hash=row.leaf_hash,
                logged_at=row.logged_at,
                role=str(row.role),
                kind=str(row.kind),
                message_id=row.message_id,
                xroad_id=row.xroad_id,
                client=row.client,
                service=row.service,
                created=row.created,
                header=row.header,
                body=row.body if bodies and not omitted else None,
                body_sha256=str(row.body_sha256)
                if omitted
                else hashlib.sha256(row.body).hexdigest(),
                signature=row.signature,
                cert_ref=row.cert_ref,
                ocsp_ref=row.ocsp_ref,
                proof_size=proof_size,
                inclusion=tuple(levels.inclusion(index, proof_size)),
                subjects_sha256=row.subjects_sha256,
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
    lines: Iterable[bytes] = encode_bundle(bundle)
    if recipients:
        lines = [seal_bundle(b"".join(lines), recipients)]
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    written = 0
    try:
        with temporary.open("wb") as handle:
            for line in lines:
                handle.write(line)
                written += len(line)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(out)
    finally:
        temporary.unlink(missing_ok=True)
    exported = tuple((e.id, e.leaf_hash.hex(), e.body_sha256) for e in entries)
    return ExportResult(len(entries), pending, len(head_items), written, archived, exported)


def _in_force(
    history: list[StoredVersion], rows: list[StoredEntry], selection: Selection
) -> list[StoredVersion]:
    """The recorded versions in force over the exported rows (all of them for ``--all``)."""
    if selection.all or not history:
        return history
    try:
        applied = [datetime.fromisoformat(v.applied_at) for v in history]
        logged = [datetime.fromisoformat(r.logged_at) for r in rows]
    except ValueError as exc:
        raise ExportError(f"configuration history: {exc}") from None
    chosen = select_versions(applied, min(logged, default=None), max(logged, default=None))
    return history[chosen]


def _entry_selection(selection: Selection) -> EntrySelection:
    if selection.all:
        return EntrySelection(all=True)
    if selection.message_id is not None:
        return EntrySelection(message_id=selection.message_id)
    if selection.since is None and selection.until is None:
        raise ExportError("select entries with --message-id, --from/--to or --all")
    return EntrySelection(
        since=None if selection.since is None else format_time(selection.since),
        until=None if selection.until is None else format_time(selection.until),
    )
