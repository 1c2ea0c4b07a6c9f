"""Retention: move old log entries into an audit bundle and prune them from the database.

A node cannot keep every signed message forever (storage, and data minimisation: the
bodies hold personal data), but auditors must still be able to prove years later that
an entry existed unchanged, and later tree heads must keep proving the entries after it.
So archiving never removes a row: it writes the entries logged before a date (those
covered by a timestamped tree head) to an ordinary audit bundle, checks that bundle,
and then blanks the rows' header, body and signature, marking them ``archived``. Each
row keeps its leaf index and leaf hash, so

* inclusion proofs for later entries and consistency proofs between heads are built
  from the same stored leaf hashes as before (nothing is rehashed);
* the node's start-up check accepts an archived row by its stored leaf hash, and still
  checks that the leaves reproduce every timestamped tree head;
* the data tracker keeps answering for the archived reads: before blanking, each
  response entry with data subjects gets its ``data_subject_read`` row (the node writes
  it with the entry; older entries get it here), and archiving refuses if one cannot;
* the archived entries are proven from the archive bundle alone (``gateway audit
  verify``), which holds their signatures, chains, OCSP responses, tree heads and
  proofs; a later whole-log bundle says from which leaf on it is complete.

The archived prefix grows from leaf 0: entries are logged in time order, and only
entries covered by a tree head can be archived.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from gateway.audit.bundle import BundleFormatError
from gateway.audit.export import ExportError, Selection, export_bundle
from gateway.audit.parallel import verify_file
from gateway.audit.sealed import seal_bundle
from gateway.audit.verify import AuditTrustAnchor
from gateway.messagelog import ArchivedEntry, LogStore, LogStoreError, open_store

__all__ = ["ArchiveError", "ArchiveResult", "archive_before", "seal_bundle_file"]


class ArchiveError(Exception):
    """Nothing was pruned; the message says why."""


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    entries: int
    first_leaf: int | None
    last_leaf: int | None
    bytes: int
    verified: bool
    """Whether the bundle was verified against an anchor before pruning."""


def _bundle_entries(path: Path) -> list[ArchivedEntry]:
    """Id, leaf hash (hex) and body digest of every entry record in a bundle file."""
    found = []
    with path.open("rb") as handle:
        for line in handle:
            if b'"type":"entry"' in line:
                record = json.loads(line)
                found.append(
                    ArchivedEntry(
                        int(record["id"]), str(record["leaf_hash"]), str(record["body_sha256"])
                    )
                )
    return found


def archive_before(
    db: LogStore | Path | str,
    before: datetime,
    out: Path,
    *,
    now: datetime,
    anchor: AuditTrustAnchor | None = None,
    recipients: Sequence[X25519PublicKey] = (),
    decrypt_key: X25519PrivateKey | None = None,
    seal: Callable[[Path], None] | None = None,
) -> ArchiveResult:
    """Archive the entries logged before ``before`` to the bundle ``out``, then prune them.

    With ``anchor`` the bundle is verified offline first and nothing is pruned unless it
    verifies. Each pruned row must still hold the leaf hash the bundle carries for it.
    With ``recipients`` the bundle is sealed to them (``gateway.audit.sealed``); it is
    then verified only if a recipient's ``decrypt_key`` is given as well.
    ``seal`` then gets the bundle before anything is pruned (the node's hook for
    encrypting bundles; if it raises, nothing is pruned).
    """
    if anchor is not None and recipients and decrypt_key is None:
        raise ArchiveError("a sealed archive is verified with a recipient's decryption key")
    if before.tzinfo is None:
        raise ValueError("give the archiving date with a time zone")
    # logged_at has millisecond precision: "until before - 1 ms" is "before".
    selection = Selection(until=before - timedelta(milliseconds=1))
    try:
        exported = export_bundle(db, out, selection, now=now, recipients=recipients)
    except ExportError as exc:
        raise ArchiveError(f"cannot export: {exc}") from None
    entries = (
        [ArchivedEntry(*item) for item in exported.index] if recipients else _bundle_entries(out)
    )
    if not entries:
        out.unlink(missing_ok=True)
        return ArchiveResult(0, None, None, 0, False)
    if anchor is not None:
        try:
            verify_file(out, anchor, decrypt_key=decrypt_key)  # AuditError: nothing pruned
        except BundleFormatError as exc:
            raise ArchiveError(f"the archive does not read back: {exc}") from None
    if seal is not None:
        seal(out)
    try:
        leaves = open_store(db).archive(entries)
    except LogStoreError as exc:
        raise ArchiveError(str(exc)) from None
    return ArchiveResult(len(entries), min(leaves), max(leaves), exported.bytes, anchor is not None)


def seal_bundle_file(path: Path, recipients: Sequence[X25519PublicKey]) -> None:
    """Replace the bundle at ``path`` by the same bundle sealed to ``recipients``
    (``gateway.audit.sealed``): for a writer that has the bundle on disk already, such
    as a retention pass's hook. Written beside it, synced and renamed over it, so the
    file is always one or the other, never half sealed."""
    sealed = seal_bundle(path.read_bytes(), recipients)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.sealing")
    try:
        with temporary.open("wb") as handle:
            handle.write(sealed)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
