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

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from gateway.audit.export import ExportError, Selection, export_bundle
from gateway.audit.parallel import verify_file
from gateway.audit.verify import AuditTrustAnchor
from gateway.node.tracker import record_missing_reads

__all__ = ["ArchiveError", "ArchiveResult", "archive_before"]

ARCHIVED = "archived"


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


@contextlib.contextmanager
def _writer(db: Path) -> Iterator[sqlite3.Connection]:
    # A second writer next to a running node: WAL lets both in turn, and the node's
    # writer waits for this short transaction (its busy timeout).
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left
        yield conn
    finally:
        conn.close()


def _bundle_entries(path: Path) -> list[tuple[int, str, str]]:
    """(id, leaf hash hex, body digest) of every entry record in a bundle file."""
    found = []
    with path.open("rb") as handle:
        for line in handle:
            if b'"type":"entry"' in line:
                record = json.loads(line)
                found.append((int(record["id"]), record["leaf_hash"], record["body_sha256"]))
    return found


def archive_before(
    db: Path,
    before: datetime,
    out: Path,
    *,
    now: datetime,
    anchor: AuditTrustAnchor | None = None,
) -> ArchiveResult:
    """Archive the entries logged before ``before`` to the bundle ``out``, then prune them.

    With ``anchor`` the bundle is verified offline first and nothing is pruned unless it
    verifies. Each pruned row must still hold the leaf hash the bundle carries for it.
    """
    if before.tzinfo is None:
        raise ValueError("give the archiving date with a time zone")
    # logged_at has millisecond precision: "until before - 1 ms" is "before".
    selection = Selection(until=before - timedelta(milliseconds=1))
    try:
        exported = export_bundle(db, out, selection, now=now)
    except ExportError as exc:
        raise ArchiveError(f"cannot export: {exc}") from None
    entries = _bundle_entries(out)
    if not entries:
        out.unlink(missing_ok=True)
        return ArchiveResult(0, None, None, 0, False)
    if anchor is not None:
        verify_file(out, anchor)  # raises AuditError: nothing pruned
    with _writer(db) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # The data tracker must still answer for these reads once their headers are
            # gone: every one gets its read details first, or nothing is pruned.
            unrecorded = set(record_missing_reads(conn)) & {e[0] for e in entries}
            if unrecorded:
                raise ArchiveError(
                    f"the data-subject reads of entries {sorted(unrecorded)} cannot be"
                    " recorded for the data tracker; nothing was pruned"
                )
            leaves = []
            for entry_id, leaf_hex, digest in entries:
                row = conn.execute(
                    "SELECT leaf_index, CAST(leaf_hash AS BLOB) FROM message_log WHERE id = ?",
                    (entry_id,),
                ).fetchone()
                if row is None or bytes(row[1]).hex() != leaf_hex:
                    raise ArchiveError(
                        f"entry {entry_id} changed while it was archived; nothing was pruned"
                    )
                leaves.append(int(row[0]))
                conn.execute(
                    "UPDATE message_log SET header = x'', body = x'', signature = '',"
                    " body_sha256 = ?, body_omitted = ? WHERE id = ?",
                    (digest, ARCHIVED, entry_id),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return ArchiveResult(len(entries), min(leaves), max(leaves), exported.bytes, anchor is not None)
