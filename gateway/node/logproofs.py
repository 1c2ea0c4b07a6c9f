"""Read side of the log's Merkle tree: tree heads, the backlog, and proofs of time.

Off the hot path (CLI, audits, tests); opens its own read-only connection, which WAL
allows while the node's writer keeps committing. Proofs are built from the stored leaf
hashes and checked with the pure ``gateway.core.logtree.verify_entry_time``: the entry
itself is always rehashed from its stored bytes, never taken from its leaf hash.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from gateway.core.logtree import LoggedEntry, ProvenTime, StampedTreeHead, verify_entry_time
from gateway.core.merkle import inclusion_proof

__all__ = [
    "EntryProof",
    "NotProvableError",
    "StoredTreeHead",
    "TimestampStatus",
    "entry_proof",
    "prove_entry",
    "read_tree_heads",
    "timestamp_status",
]


class NotProvableError(Exception):
    """No proof of time can be built for the entry; the message says why."""


@dataclass(frozen=True, slots=True)
class StoredTreeHead:
    """One row of ``tree_head``."""

    id: int
    tree_size: int
    root_hash: bytes
    last_entry_id: int
    document: bytes
    gen_time: str
    token: bytes
    tsa_name: str
    tsa_cert_ref: str
    stored_at: str

    def stamped(self) -> StampedTreeHead:
        return StampedTreeHead(self.tree_size, self.root_hash, self.document, self.token)


@dataclass(frozen=True, slots=True)
class TimestampStatus:
    """Entries in the log versus entries covered by its latest tree head."""

    tree_size: int
    stamped_size: int
    oldest_pending: str | None

    @property
    def pending(self) -> int:
        return self.tree_size - self.stamped_size


@dataclass(frozen=True, slots=True)
class EntryProof:
    """Everything needed to prove when one entry existed, short of the trusted TSA cert."""

    entry_id: int
    leaf_index: int
    entry: LoggedEntry
    head: StoredTreeHead
    inclusion: list[bytes]


@contextlib.contextmanager
def _reader(path: Path) -> Iterator[sqlite3.Connection]:
    if not path.exists():
        raise FileNotFoundError(path)
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


# Blobs are cast so that a value someone rewrote as TEXT still reads (and fails to
# verify) instead of failing to decode.
_HEAD_COLUMNS = (
    "SELECT id, tree_size, CAST(root_hash AS BLOB), last_entry_id, CAST(document AS BLOB),"
    " gen_time, CAST(token AS BLOB), tsa_name, tsa_cert_ref, stored_at FROM tree_head"
)


def _head(row: tuple[object, ...]) -> StoredTreeHead:
    (head_id, size, root, last_id, document, gen_time, token, tsa, cert_ref, stored_at) = row
    assert isinstance(root, bytes) and isinstance(document, bytes) and isinstance(token, bytes)
    return StoredTreeHead(
        int(str(head_id)),
        int(str(size)),
        root,
        int(str(last_id)),
        document,
        str(gen_time),
        token,
        str(tsa),
        str(cert_ref),
        str(stored_at),
    )


def read_tree_heads(path: Path) -> list[StoredTreeHead]:
    """Every timestamped tree head, smallest first."""
    with _reader(path) as conn:
        return [_head(row) for row in conn.execute(_HEAD_COLUMNS + " ORDER BY tree_size")]


def timestamp_status(path: Path) -> TimestampStatus:
    """How many entries the log holds, how many are timestamped, since when others wait."""
    with _reader(path) as conn:
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


def entry_proof(path: Path, entry_id: int) -> EntryProof:
    """The entry, the first tree head covering it, and its inclusion proof in that head."""
    with _reader(path) as conn:
        row = conn.execute(
            "SELECT logged_at, role, kind, message_id, xroad_id, client, service, created,"
            " CAST(header AS BLOB), CAST(body AS BLOB), signature, cert_ref, ocsp_ref,"
            " leaf_index FROM message_log"
            " WHERE id = ?",
            (entry_id,),
        ).fetchone()
        if row is None:
            raise NotProvableError(f"the log has no entry {entry_id}")
        leaf_index = row[13]
        if leaf_index is None:
            raise NotProvableError(
                f"entry {entry_id} has no leaf yet (a log from before the Merkle tree; "
                "start the node once to add it)"
            )
        head_row = conn.execute(
            _HEAD_COLUMNS + " WHERE tree_size > ? ORDER BY tree_size LIMIT 1", (leaf_index,)
        ).fetchone()
        if head_row is None:
            raise NotProvableError(
                f"entry {entry_id} (leaf {leaf_index}) is not covered by a timestamped tree "
                "head yet; it is pending until the node's next successful time stamp"
            )
        head = _head(head_row)
        leaves: list[bytes] = []
        for index, leaf in conn.execute(
            "SELECT leaf_index, CAST(leaf_hash AS BLOB) FROM message_log WHERE id <= ? ORDER BY id",
            (head.last_entry_id,),
        ):
            if index != len(leaves) or not isinstance(leaf, bytes):
                raise NotProvableError(
                    f"leaf {len(leaves)} of the tree head of size {head.tree_size} is missing "
                    "or out of order; entries were removed from the log"
                )
            leaves.append(leaf)
    if len(leaves) != head.tree_size:
        raise NotProvableError(
            f"the tree head of size {head.tree_size} covers {len(leaves)} stored leaves"
        )
    entry = LoggedEntry(
        logged_at=str(row[0]),
        role=str(row[1]),
        kind=str(row[2]),
        message_id=str(row[3]),
        xroad_id=str(row[4]),
        client=str(row[5]),
        service=str(row[6]),
        created=str(row[7]),
        header=bytes(row[8]),
        body=bytes(row[9]),
        signature=str(row[10]),
        cert_ref=str(row[11]),
        ocsp_ref=str(row[12]),
    )
    return EntryProof(
        entry_id,
        int(leaf_index),
        entry,
        head,
        inclusion_proof(int(leaf_index), head.tree_size, leaves),
    )


def prove_entry(
    path: Path,
    entry_id: int,
    tsa_cert: x509.Certificate,
    *,
    issuer: x509.Certificate | None = None,
) -> tuple[EntryProof, ProvenTime]:
    """Build the entry's proof of time and verify it against the pinned TSA certificate.

    Raises ``NotProvableError`` if no proof can be built, ``ProofError`` if one can but
    does not verify (the entry, the tree or the token was altered, or another TSA).
    """
    proof = entry_proof(path, entry_id)
    proven = verify_entry_time(
        proof.entry,
        proof.leaf_index,
        proof.inclusion,
        proof.head.stamped(),
        tsa_cert,
        issuer=issuer,
    )
    return proof, proven
