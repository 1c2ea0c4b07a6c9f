"""Signed tree heads (STH) and witness co-signatures: the document, signing, checking.

A timestamped tree head (``gateway.core.logtree``) proves *when* a log had a given root;
it does not prove *who* vouches for it, and a node could keep two forks of its log and
show each to a different party. A **signed tree head** closes the first gap: the log
owner signs, with its member's signing key (ES256 JWS with ``x5c``, detached payload,
exactly as messages are signed, ``gateway.core.envelope``), the canonical document

```json
{"node": "...", "root_hash": "<hex>", "timestamp": "<TSA genTime>",
 "tree_size": n, "type": "gateway-signed-tree-head/v1"}
```

whose ``timestamp`` is the genTime of the TSA's token over the same size and root, so
the time in it is the TSA's, not the node's say-so. **Witnesses** (partner nodes) close
the second gap: each fetches the peer's latest STH, checks that it extends the last one
it saw (RFC 9162 consistency proof) and co-signs the *same* document bytes with its own
member key. Two STHs signed by one node that cannot both be true (same size, different
roots; or a larger tree that does not extend a smaller one) are a transferable proof
that the node showed two histories: :func:`check_extends` names that as a split view.

Pure: no I/O; the current time is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from gateway.core.canonical import NotCanonicalError, canonical_json, parse_canonical
from gateway.core.encoding import format_time
from gateway.core.envelope import EnvelopeError
from gateway.core.errors import ReasonedError
from gateway.core.ids import MemberId, NodeId
from gateway.core.jws import SignatureVerifier, Signer, VerifiedSignature
from gateway.core.merkle import HASH_SIZE, MerkleError, verify_consistency

__all__ = [
    "STH_TYPE",
    "SignedTreeHead",
    "TreeHeadError",
    "TreeHeadFailure",
    "check_extends",
    "parse_sth",
    "sign_sth",
    "sth_document",
    "verify_sth_signature",
]

STH_TYPE: Final = "gateway-signed-tree-head/v1"


class TreeHeadFailure(StrEnum):
    """Why a signed tree head or co-signature was refused. Values are stable."""

    MALFORMED = "malformed"
    """The document is not a canonical ``gateway-signed-tree-head/v1``."""
    SIGNATURE = "signature"
    """The JWS does not verify, or its certificate is not trusted at the time."""
    SIGNER = "signer"
    """The JWS verifies but was made by another member than the one that had to sign."""
    SPLIT_VIEW = "split_view"
    """Two heads signed by one node cannot both describe one append-only log."""


class TreeHeadError(ReasonedError[TreeHeadFailure]):
    """A refused tree head: ``reason`` for programs, ``detail`` for people."""


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    """The content of an STH document (the signature travels beside it)."""

    node: str
    tree_size: int
    root_hash: bytes
    timestamp: datetime

    @property
    def member(self) -> MemberId:
        """The member whose key must sign this node's tree heads."""
        return NodeId.parse(self.node).owner


def sth_document(node: str, tree_size: int, root_hash: bytes, timestamp: datetime) -> bytes:
    """The canonical bytes the log owner signs and every witness co-signs."""
    if tree_size < 0:
        raise ValueError("a tree size cannot be negative")
    if len(root_hash) != HASH_SIZE:
        raise ValueError(f"a root hash has {HASH_SIZE} bytes, not {len(root_hash)}")
    return canonical_json(
        {
            "type": STH_TYPE,
            "node": node,
            "tree_size": tree_size,
            "root_hash": root_hash.hex(),
            "timestamp": format_time(timestamp, "microseconds"),
        }
    )


def parse_sth(data: bytes) -> SignedTreeHead:
    """Read an STH document, refusing anything that is not exactly its canonical form."""
    try:
        value = parse_canonical(data)
    except NotCanonicalError as exc:
        raise TreeHeadError(TreeHeadFailure.MALFORMED, f"STH document: {exc}") from None
    node, size = value.get("node"), value.get("tree_size")
    root, stamp = value.get("root_hash"), value.get("timestamp")
    if (
        set(value) != {"type", "node", "tree_size", "root_hash", "timestamp"}
        or value["type"] != STH_TYPE
        or not isinstance(node, str)
        or not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
        or not isinstance(root, str)
        or not isinstance(stamp, str)
    ):
        raise TreeHeadError(TreeHeadFailure.MALFORMED, f"not a {STH_TYPE} document")
    try:
        NodeId.parse(node)
        root_hash = bytes.fromhex(root)
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise TreeHeadError(TreeHeadFailure.MALFORMED, f"STH document: {exc}") from None
    if len(root_hash) != HASH_SIZE or root != root_hash.hex():
        raise TreeHeadError(TreeHeadFailure.MALFORMED, "root_hash is not 32 bytes of lowercase hex")
    if format_time(moment, "microseconds") != stamp:
        raise TreeHeadError(TreeHeadFailure.MALFORMED, "timestamp is not in its one spelling")
    return SignedTreeHead(node, size, root_hash, moment)


def sign_sth(signer: Signer, document: bytes) -> str:
    """The log owner's signature or a witness's co-signature: the same JWS over the
    same bytes, so one verifier checks both."""
    parse_sth(document)  # never sign something that is not an STH
    return signer.sign(document)


def verify_sth_signature(
    verifier: SignatureVerifier,
    document: bytes,
    jws: str,
    now: datetime,
    *,
    signer: MemberId,
) -> tuple[SignedTreeHead, VerifiedSignature]:
    """Check that ``signer`` signed (or co-signed) ``document`` with a certificate that
    chains to the verifier's roots and is valid at ``now``.

    For the owner's signature ``signer`` is the member of the node the document names;
    for a co-signature it is the witness's member.
    """
    head = parse_sth(document)
    try:
        verified = verifier.verify(jws, document, now)
    except EnvelopeError as exc:
        raise TreeHeadError(TreeHeadFailure.SIGNATURE, exc.message) from None
    if verified.signer != signer:
        raise TreeHeadError(
            TreeHeadFailure.SIGNER,
            f"signed by {verified.signer}, but only {signer} may sign here",
        )
    return head, verified


def check_extends(
    old: SignedTreeHead, new: SignedTreeHead, consistency: Sequence[bytes] | None
) -> None:
    """Raise ``SPLIT_VIEW`` unless ``new`` describes the same log as ``old``, grown.

    Same size: the roots must be equal (no proof needed). Larger: ``consistency`` must
    be RFC 9162 PROOF(old size, new tree). Smaller: a log never shrinks, so a node that
    signs a smaller head after a larger one shows a rolled-back history.
    """
    if old.node != new.node:
        raise ValueError("tree heads of two different nodes are not compared")
    if new.tree_size == old.tree_size:
        if new.root_hash != old.root_hash:
            raise TreeHeadError(
                TreeHeadFailure.SPLIT_VIEW,
                f"{new.node} signed two roots for size {new.tree_size}: "
                f"{old.root_hash.hex()} and {new.root_hash.hex()}",
            )
        return
    if new.tree_size < old.tree_size:
        raise TreeHeadError(
            TreeHeadFailure.SPLIT_VIEW,
            f"{new.node} signed a tree of size {new.tree_size} after one of size "
            f"{old.tree_size}: its log went back",
        )
    try:
        verify_consistency(
            old.tree_size, new.tree_size, old.root_hash, new.root_hash, consistency or ()
        )
    except MerkleError as exc:
        raise TreeHeadError(
            TreeHeadFailure.SPLIT_VIEW,
            f"{new.node}'s tree of size {new.tree_size} does not extend its tree of size "
            f"{old.tree_size}: {exc}",
        ) from None
