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
from gateway.core.merkle import consistency_proof, inclusion_proof

__all__ = [
    "CosignatureRow",
    "EntryProof",
    "NotProvableError",
    "SignedHead",
    "StoredTreeHead",
    "TimestampStatus",
    "WitnessAlertRow",
    "consistency",
    "entry_proof",
    "inclusion",
    "latest_signed_head",
    "leaf_hashes",
    "log_entries",
    "prove_entry",
    "read_cosignatures",
    "read_ocsp",
    "read_tree_heads",
    "read_witness_alerts",
    "signed_heads",
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
            " leaf_index, body_sha256, body_omitted, subjects_sha256 FROM message_log"
            " WHERE id = ?",
            (entry_id,),
        ).fetchone()
        if row is None:
            raise NotProvableError(f"the log has no entry {entry_id}")
        leaf_index = row[13]
        if row[15] == "archived":
            raise NotProvableError(
                f"entry {entry_id} was archived: its proof is in the archive bundle "
                "(gateway log archive; verify it with gateway audit verify)"
            )
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
        body_digest=str(row[14]) if row[15] else None,
        subjects_sha256=None if row[16] is None else str(row[16]),
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


# -- signed tree heads, proofs for the auditor API and witnesses ----------------------------


@dataclass(frozen=True, slots=True)
class SignedHead:
    """One row of ``signed_tree_head``: the member key's signature over a tree head."""

    tree_size: int
    document: bytes
    signature: str
    cert_ref: str
    ocsp_ref: str


_SIGNED_COLUMNS = (
    "SELECT tree_size, CAST(document AS BLOB), signature, cert_ref, ocsp_ref FROM signed_tree_head"
)


def _signed(row: tuple[object, ...]) -> SignedHead:
    size, document, signature, cert_ref, ocsp_ref = row
    assert isinstance(document, bytes)
    return SignedHead(int(str(size)), document, str(signature), str(cert_ref), str(ocsp_ref))


def signed_heads(path: Path) -> list[SignedHead]:
    """Every signed tree head, smallest first."""
    with _reader(path) as conn:
        return [_signed(r) for r in conn.execute(_SIGNED_COLUMNS + " ORDER BY tree_size")]


def latest_signed_head(path: Path) -> SignedHead | None:
    """The largest signed tree head, or None before the first one."""
    with _reader(path) as conn:
        row = conn.execute(_SIGNED_COLUMNS + " ORDER BY tree_size DESC LIMIT 1").fetchone()
    return None if row is None else _signed(row)


def leaf_hashes(path: Path, size: int) -> list[bytes]:
    """The first ``size`` stored leaf hashes, refusing gaps (entries removed)."""
    leaves: list[bytes] = []
    with _reader(path) as conn:
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


def consistency(path: Path, first: int, second: int) -> list[bytes]:
    """RFC 9162 PROOF(first, D[second]) from the stored leaf hashes."""
    if not 0 <= first <= second:
        raise NotProvableError(f"no consistency proof from size {first} to size {second}")
    return consistency_proof(first, second, leaf_hashes(path, second))


def inclusion(path: Path, leaf_index: int, tree_size: int) -> tuple[bytes, list[bytes]]:
    """The leaf hash at ``leaf_index`` and its RFC 9162 PATH in the tree of ``tree_size``."""
    if not 0 <= leaf_index < tree_size:
        raise NotProvableError(f"leaf {leaf_index} is not in a tree of size {tree_size}")
    leaves = leaf_hashes(path, tree_size)
    return leaves[leaf_index], inclusion_proof(leaf_index, tree_size, leaves)


_ENTRY_KEYS = (
    "id",
    "leaf_index",
    "leaf_hash",
    "logged_at",
    "role",
    "kind",
    "message_id",
    "xroad_id",
    "client",
    "service",
    "created",
    "header",
    "body",
    "signature",
    "cert_ref",
    "ocsp_ref",
    "body_sha256",
    "body_omitted",
    "subjects_sha256",
)


def log_entries(
    path: Path,
    *,
    after: int = 0,
    limit: int = 100,
    message_id: str | None = None,
    party: str | None = None,
    leaf_index: int | None = None,
) -> list[dict[str, object]]:
    """Entries (id order, ids above ``after``) as plain values; ``party`` keeps only the
    exchanges a client took part in: as the client, or as the provider subsystem."""
    query = (
        "SELECT id, leaf_index, CAST(leaf_hash AS BLOB), logged_at, role, kind, message_id,"
        " xroad_id, client, service, created, CAST(header AS BLOB), CAST(body AS BLOB),"
        " signature, cert_ref, ocsp_ref, body_sha256, body_omitted, subjects_sha256"
        " FROM message_log WHERE id > ?"
    )
    params: list[object] = [after]
    if message_id is not None:
        query += " AND message_id = ?"
        params.append(message_id)
    if leaf_index is not None:
        query += " AND leaf_index = ?"
        params.append(leaf_index)
    if party is not None:
        query += " AND (client = ? OR substr(service, 1, ?) = ?)"
        params += [party, len(party) + 1, party + "/"]
    query += " ORDER BY id LIMIT ?"
    params.append(limit)
    with _reader(path) as conn:
        return [dict(zip(_ENTRY_KEYS, row, strict=True)) for row in conn.execute(query, params)]


@dataclass(frozen=True, slots=True)
class CosignatureRow:
    """One row of ``cosignature`` (see ``gateway.messagelog.schema.Cosignature``)."""

    log_node: str
    witness: str
    tree_size: int
    document: bytes
    signature: str
    cosignature: str
    cert_ref: str
    ocsp_ref: str
    stored_at: str


def read_cosignatures(
    path: Path, *, log_node: str | None = None, witness: str | None = None
) -> list[CosignatureRow]:
    """Co-signatures, by log node and tree size; optionally of one log or one witness."""
    query = (
        "SELECT log_node, witness, tree_size, CAST(document AS BLOB), signature, cosignature,"
        " cert_ref, ocsp_ref, stored_at FROM cosignature WHERE 1 = 1"
    )
    params: list[object] = []
    if log_node is not None:
        query += " AND log_node = ?"
        params.append(log_node)
    if witness is not None:
        query += " AND witness = ?"
        params.append(witness)
    query += " ORDER BY log_node, tree_size, witness"
    with _reader(path) as conn:
        return [
            CosignatureRow(str(a), str(b), int(c), bytes(d), str(e), str(f), str(g), str(h), str(i))
            for a, b, c, d, e, f, g, h, i in conn.execute(query, params)
        ]


@dataclass(frozen=True, slots=True)
class WitnessAlertRow:
    """One row of ``witness_alert``."""

    id: int
    peer: str
    code: str
    detail: str
    evidence: str
    detected_at: str


def read_witness_alerts(path: Path) -> list[WitnessAlertRow]:
    """Every split view or refused peer head this node has recorded, oldest first."""
    with _reader(path) as conn:
        return [
            WitnessAlertRow(int(a), str(b), str(c), str(d), str(e), str(f))
            for a, b, c, d, e, f in conn.execute(
                "SELECT id, peer, code, detail, evidence, detected_at FROM witness_alert"
                " ORDER BY id"
            )
        ]


def read_ocsp(path: Path, refs: set[str]) -> dict[str, bytes]:
    """The stored OCSP responses (DER) with these refs."""
    found: dict[str, bytes] = {}
    with _reader(path) as conn:
        for ref in sorted(refs):
            row = conn.execute(
                "SELECT CAST(der AS BLOB) FROM ocsp_response WHERE ocsp_ref = ?", (ref,)
            ).fetchone()
            if row is not None:
                found[ref] = bytes(row[0])
    return found
