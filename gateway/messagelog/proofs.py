"""Read side of the log's Merkle tree: tree heads, the backlog, and proofs.

Off the hot path (CLI, audits, the auditor API, witnesses): everything is read through a
``LogStore`` (``gateway.messagelog.store``), which reads beside the node's writer. Each
function takes that store, or the path of a SQLite log file for the tools that are given
one. Proofs are built from the stored Merkle subtrees (O(log n) rows in one read, whatever
the log's size; docs/adr/0043) and checked with the pure
``gateway.core.logtree.verify_entry_time``: the entry itself is always rehashed from its
stored bytes, never taken from its leaf hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from gateway.core.atrest import DataKey
from gateway.core.logtree import LoggedEntry, ProvenTime, verify_entry_time
from gateway.core.merkle import MerkleError
from gateway.core.merkle_nodes import (
    consistency_from_subtrees,
    consistency_subtrees,
    inclusion_from_subtrees,
    inclusion_subtrees,
)
from gateway.messagelog.location import is_postgres_url
from gateway.messagelog.records import (
    ARCHIVED,
    DELETED,
    CosignatureRow,
    NotProvableError,
    SignedHead,
    StoredTreeHead,
    TimestampStatus,
    WitnessAlertRow,
)
from gateway.messagelog.sealing import Sealer
from gateway.messagelog.sqlite import SqliteLogStore
from gateway.messagelog.store import LogStore

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
    "open_store",
    "prove_entry",
    "read_cosignatures",
    "read_ocsp",
    "read_tree_heads",
    "read_witness_alerts",
    "signed_heads",
    "timestamp_status",
]


def open_store(source: LogStore | Path | str, data_key: DataKey | None = None) -> LogStore:
    """``source`` itself, the store over a PostgreSQL log given its ``postgresql://``
    URL, or the store over the SQLite log file at that path; ``data_key`` opens the
    rows sealed at rest (without it, reading one is a ``LogStoreError``)."""
    sealer = Sealer(data_key)
    if isinstance(source, str):
        if is_postgres_url(source):
            from gateway.messagelog.postgres import PostgresLogStore

            return PostgresLogStore(source, sealer)
        return SqliteLogStore(Path(source), sealer)
    return SqliteLogStore(source, sealer) if isinstance(source, Path) else source


@dataclass(frozen=True, slots=True)
class EntryProof:
    """Everything needed to prove when one entry existed, short of the trusted TSA cert."""

    entry_id: int
    leaf_index: int
    entry: LoggedEntry
    head: StoredTreeHead
    inclusion: list[bytes]


def read_tree_heads(source: LogStore | Path | str) -> list[StoredTreeHead]:
    """Every timestamped tree head, smallest first."""
    return open_store(source).tree_heads()


def timestamp_status(source: LogStore | Path | str) -> TimestampStatus:
    """How many entries the log holds, how many are timestamped, since when others wait."""
    return open_store(source).timestamp_status()


def entry_proof(source: LogStore | Path | str, entry_id: int) -> EntryProof:
    """The entry, the first tree head covering it, and its inclusion proof in that head."""
    store = open_store(source)
    stored = store.entry(entry_id)
    if stored is None:
        raise NotProvableError(f"the log has no entry {entry_id}")
    leaf_index = stored.leaf_index
    if stored.body_omitted == DELETED:
        raise NotProvableError(
            f"entry {entry_id} was deleted by the node's retention ([retention] in node.toml):"
            " its content is gone; an archive bundle written before holds its proof, if any"
        )
    if stored.body_omitted == ARCHIVED:
        raise NotProvableError(
            f"entry {entry_id} was archived: its proof is in the archive bundle "
            "(gateway log archive; verify it with gateway audit verify)"
        )
    if leaf_index is None:
        raise NotProvableError(
            f"entry {entry_id} has no leaf yet (a log from before the Merkle tree; "
            "start the node once to add it)"
        )
    head = store.first_head_covering(leaf_index)
    if head is None:
        raise NotProvableError(
            f"entry {entry_id} (leaf {leaf_index}) is not covered by a timestamped tree "
            "head yet; it is pending until the node's next successful time stamp"
        )
    leaf, path = _inclusion(store, leaf_index, head.tree_size)
    if leaf != stored.leaf_hash:
        raise NotProvableError(
            f"entry {entry_id}'s stored leaf does not match leaf {leaf_index} of the tree"
        )
    return EntryProof(entry_id, leaf_index, stored.leaf_entry(), head, path)


def prove_entry(
    source: LogStore | Path | str,
    entry_id: int,
    tsa_cert: x509.Certificate,
    *,
    issuer: x509.Certificate | None = None,
) -> tuple[EntryProof, ProvenTime]:
    """Build the entry's proof of time and verify it against the pinned TSA certificate.

    Raises ``NotProvableError`` if no proof can be built, ``ProofError`` if one can but
    does not verify (the entry, the tree or the token was altered, or another TSA).
    """
    proof = entry_proof(source, entry_id)
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


def signed_heads(source: LogStore | Path | str) -> list[SignedHead]:
    """Every signed tree head, smallest first."""
    return open_store(source).signed_heads()


def latest_signed_head(source: LogStore | Path | str) -> SignedHead | None:
    """The largest signed tree head, or None before the first one."""
    return open_store(source).latest_signed_head()


def leaf_hashes(source: LogStore | Path | str, size: int) -> list[bytes]:
    """The first ``size`` stored leaf hashes, refusing gaps (entries removed)."""
    return open_store(source).leaf_hashes(size)


def consistency(source: LogStore | Path | str, first: int, second: int) -> list[bytes]:
    """RFC 9162 PROOF(first, D[second]) from the stored subtrees: one read of O(log n)
    rows at any log size (docs/adr/0043)."""
    if not 0 <= first <= second:
        raise NotProvableError(f"no consistency proof from size {first} to size {second}")
    if second == 0:
        return []
    # The last leaf is read with the rest: a tree larger than the log misses it.
    hashes = open_store(source).subtrees(consistency_subtrees(first, second) | {(0, second - 1)})
    if (0, second - 1) not in hashes:
        raise NotProvableError(_missing(second))
    try:
        return consistency_from_subtrees(first, second, hashes)
    except MerkleError as exc:
        raise NotProvableError(
            f"no consistency proof from size {first} to {second}: {exc}"
        ) from None


def inclusion(
    source: LogStore | Path | str, leaf_index: int, tree_size: int
) -> tuple[bytes, list[bytes]]:
    """The leaf hash at ``leaf_index`` and its RFC 9162 PATH in the tree of ``tree_size``,
    from the stored subtrees (docs/adr/0043)."""
    if not 0 <= leaf_index < tree_size:
        raise NotProvableError(f"leaf {leaf_index} is not in a tree of size {tree_size}")
    return _inclusion(open_store(source), leaf_index, tree_size)


def _missing(size: int) -> str:
    return (
        f"the log holds fewer than {size} leaves, or their subtrees are not stored yet "
        "(a log from before them gets them at the node's next start)"
    )


def _inclusion(store: LogStore, leaf_index: int, tree_size: int) -> tuple[bytes, list[bytes]]:
    # The last leaf is read with the rest: a tree larger than the log misses it.
    names = inclusion_subtrees(leaf_index, tree_size) | {(0, tree_size - 1)}
    hashes = store.subtrees(names)
    if (0, tree_size - 1) not in hashes:
        raise NotProvableError(_missing(tree_size))
    try:
        return inclusion_from_subtrees(leaf_index, tree_size, hashes)
    except MerkleError as exc:
        raise NotProvableError(f"no inclusion proof of leaf {leaf_index}: {exc}") from None


def read_cosignatures(
    source: LogStore | Path | str, *, log_node: str | None = None, witness: str | None = None
) -> list[CosignatureRow]:
    """Co-signatures, by log node and tree size; optionally of one log or one witness."""
    return open_store(source).cosignatures(log_node=log_node, witness=witness)


def read_witness_alerts(source: LogStore | Path | str) -> list[WitnessAlertRow]:
    """Every split view or refused peer head this node has recorded, oldest first."""
    return open_store(source).witness_alerts()


def read_ocsp(source: LogStore | Path | str, refs: Iterable[str]) -> dict[str, bytes]:
    """The stored OCSP responses (DER) with these refs."""
    return open_store(source).ocsp_responses(refs)
