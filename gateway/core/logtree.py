"""What the message log's Merkle tree commits to, and how to check a proof of time.

Three definitions, each a contract with auditors and with later tools (signed tree
heads, witnesses, audit bundles), documented in docs/message-log.md:

* the **leaf** of a log entry: canonical JSON of the entry's fields, with SHA-256
  digests in place of the header, body and signature. Digests rather than the bytes
  keep leaves small and let a future metadata-only or pruning mode drop the blobs while
  every proof stays valid. Version 2 (``gateway-log-leaf/v2``) adds
  ``subjects_sha256``, a salted commitment to the entry's data subjects
  (:func:`subjects_commitment`), so the data tracker's index cannot lose a row
  unnoticed; an entry logged before it keeps its version 1 leaf;
* the **tree-head document**: canonical JSON naming the node, the tree size and the root
  hash. Its SHA-256 is what the TSA timestamps (and what the member key will sign);
* :func:`verify_entry_time`: recompute an entry's leaf, check its inclusion in a tree
  head, and check the TSA's token over that tree head, against a pinned TSA certificate.

Both documents carry a ``type`` so they can never be mistaken for each other, nor for a
signed message header (also canonical JSON, signed with the same member keys).

Pure: no I/O; the caller supplies entries, proofs and certificates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from cryptography import x509

from gateway.core.canonical import NotCanonicalError, canonical_json, parse_canonical
from gateway.core.errors import ReasonedError
from gateway.core.merkle import HASH_SIZE, MerkleError, leaf_hash, verify_inclusion
from gateway.pki.tsa import TimestampError
from gateway.pki.tsa_verify import verify_timestamp_token

__all__ = [
    "LEAF_TYPE",
    "LEAF_TYPE_V2",
    "SUBJECTS_SALT_SIZE",
    "SUBJECTS_TYPE",
    "TREE_HEAD_TYPE",
    "LoggedEntry",
    "ProofError",
    "ProofFailure",
    "ProvenTime",
    "StampedTreeHead",
    "TreeHeadDocument",
    "encode_leaf",
    "entry_leaf",
    "parse_tree_head_document",
    "subjects_commitment",
    "tree_head_document",
    "verify_entry_time",
]

LEAF_TYPE: Final = "gateway-log-leaf/v1"
LEAF_TYPE_V2: Final = "gateway-log-leaf/v2"
"""A leaf that also commits to the entry's data subjects (``subjects_sha256``)."""
SUBJECTS_TYPE: Final = "gateway-log-subjects/v1"
SUBJECTS_SALT_SIZE: Final = 16
"""Bytes of per-entry salt: enough that no one can test a guessed identifier (an IDNr
has only 10^11 values) against a commitment without the salt."""
TREE_HEAD_TYPE: Final = "gateway-tree-head/v1"


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_leaf(
    *,
    role: str,
    kind: str,
    message_id: str,
    xroad_id: str,
    client: str,
    service: str,
    created: str,
    logged_at: str,
    header_sha256: str,
    body_sha256: str,
    signature_sha256: str,
    cert_ref: str,
    ocsp_ref: str,
    subjects_sha256: str | None = None,
) -> bytes:
    """The leaf data of one log entry (hashed with ``merkle.leaf_hash`` to a leaf hash).

    ``subjects_sha256`` None gives the version 1 leaf, as every entry logged before
    subject commitments had; a string (from :func:`subjects_commitment`) gives version 2,
    which has that one field more. The ``type`` names the version, so a leaf of one
    version can never be read as the other.

    Every digest is lowercase hex SHA-256: of the signed header bytes, of the body bytes,
    and of the signature string's UTF-8 bytes (a JWS is ASCII). ``cert_ref`` and
    ``ocsp_ref`` are already such digests (of the signer certificate and the OCSP
    response DER).

    Every value is a string, which ``canonical_json``'s value checks always accept, so
    the bytes are produced directly with the same encoding: an audit recomputes one leaf
    per entry, and the generic walk cost as much as the rest of the leaf.
    """
    s = _json_string
    values = (
        s(body_sha256),
        s(cert_ref),
        s(client),
        s(created),
        s(header_sha256),
        s(kind),
        s(logged_at),
        s(message_id),
        s(ocsp_ref),
        s(role),
        s(service),
        s(signature_sha256),
    )
    tail = (s(xroad_id),)
    if subjects_sha256 is None:
        return (_LEAF_V1 % (*values, *tail)).encode()
    return (_LEAF_V2 % (*values, s(subjects_sha256), *tail)).encode()


def subjects_commitment(salt: bytes, subjects: Iterable[str]) -> str:
    """SHA-256 (lowercase hex) committing to an entry's data subjects, hiding them.

    The digest is over the canonical JSON ``{"type", "salt" (hex), "subjects" (sorted,
    distinct)}``: sorted and deduplicated because the ``data_subject`` rows it is
    recomputed from are an unordered set; salted because the leaf goes to every auditor
    and an unsalted digest of one IDNr could be found by trying all of them. An entry
    with no subjects commits to the empty list under its own salt, so an auditor cannot
    tell which entries disclosed a person, and deleting every row of an entry shows just
    as deleting one does.
    """
    if len(salt) != SUBJECTS_SALT_SIZE:
        raise ValueError(f"a subjects salt has {SUBJECTS_SALT_SIZE} bytes, not {len(salt)}")
    document = canonical_json(
        {"type": SUBJECTS_TYPE, "salt": salt.hex(), "subjects": sorted(set(subjects))}
    )
    return _sha256_hex(document)


_json_string: Final = json.encoder.encode_basestring
"""The string encoder ``json.dumps(..., ensure_ascii=False)`` uses (in C)."""


def _leaf_template(leaf_type: str, *, subjects: bool) -> str:
    """The canonical JSON of a leaf with a ``%s`` for each string but ``type``: keys
    sorted as ``canonical_json`` sorts them, its separators, its string encoder for
    the values (test_log_tree pins the bytes). Filling a fixed template costs a fifth
    of ``JSONEncoder.encode`` of the same dict, and an audit recomputes every leaf."""
    keys = [*_LEAF_KEYS, *(("subjects_sha256",) if subjects else ())]
    parts = [
        f'"{key}":{_json_string(leaf_type) if key == "type" else "%s"}' for key in sorted(keys)
    ]
    return "{" + ",".join(parts) + "}"


_LEAF_KEYS: Final = (
    "type",
    "role",
    "kind",
    "message_id",
    "xroad_id",
    "client",
    "service",
    "created",
    "logged_at",
    "header_sha256",
    "body_sha256",
    "signature_sha256",
    "cert_ref",
    "ocsp_ref",
)
_LEAF_V1: Final = _leaf_template(LEAF_TYPE, subjects=False)
_LEAF_V2: Final = _leaf_template(LEAF_TYPE_V2, subjects=True)


@dataclass(frozen=True, slots=True)
class LoggedEntry:
    """A message log entry as stored: the fields its leaf is computed from."""

    role: str
    kind: str
    message_id: str
    xroad_id: str
    client: str
    service: str
    created: str
    logged_at: str
    header: bytes
    body: bytes
    signature: str
    cert_ref: str
    ocsp_ref: str
    body_digest: str | None = None
    """The body's SHA-256 (hex) when the log keeps the digest only (metadata logging
    mode, a body above the logged size limit, or an archived entry): the leaf commits to
    the digest either way, so it is the same leaf whether or not the body is kept."""
    subjects_sha256: str | None = None
    """The entry's :func:`subjects_commitment` (version 2 leaf); None for an entry logged
    before subject commitments, whose leaf stays version 1."""


def entry_leaf(entry: LoggedEntry) -> bytes:
    """The leaf data of a stored entry, recomputed from its bytes (and from
    ``body_digest`` instead of the body when the log keeps the digest only)."""
    return encode_leaf(
        role=entry.role,
        kind=entry.kind,
        message_id=entry.message_id,
        xroad_id=entry.xroad_id,
        client=entry.client,
        service=entry.service,
        created=entry.created,
        logged_at=entry.logged_at,
        header_sha256=_sha256_hex(entry.header),
        body_sha256=entry.body_digest if entry.body_digest is not None else _sha256_hex(entry.body),
        signature_sha256=_sha256_hex(entry.signature.encode("utf-8")),
        cert_ref=entry.cert_ref,
        ocsp_ref=entry.ocsp_ref,
        subjects_sha256=entry.subjects_sha256,
    )


@dataclass(frozen=True, slots=True)
class TreeHeadDocument:
    """A node's claim "my log's first ``tree_size`` entries have this root"."""

    node: str
    tree_size: int
    root_hash: bytes


def tree_head_document(node: str, tree_size: int, root_hash: bytes) -> bytes:
    """The canonical bytes whose SHA-256 the TSA timestamps."""
    if tree_size < 0:
        raise ValueError("a tree size cannot be negative")
    if len(root_hash) != HASH_SIZE:
        raise ValueError(f"a root hash has {HASH_SIZE} bytes, not {len(root_hash)}")
    return canonical_json(
        {
            "type": TREE_HEAD_TYPE,
            "node": node,
            "tree_size": tree_size,
            "root_hash": root_hash.hex(),
        }
    )


class ProofFailure(StrEnum):
    """Why a proof of time was refused. Never rename a value: callers match on it."""

    MALFORMED = "malformed"
    """The tree-head document or the proof is not well formed."""
    NOT_INCLUDED = "not_included"
    """The entry, as stored now, is not in the timestamped tree: it was altered, or the
    proof belongs to another entry or tree."""
    DOCUMENT_MISMATCH = "document_mismatch"
    """The timestamped document names another tree size or root than the proof uses."""
    TIMESTAMP = "timestamp"
    """The token is not the pinned TSA's time stamp over the tree-head document."""


class ProofError(ReasonedError[ProofFailure]):
    """A refused proof of time: ``reason`` for programs, ``detail`` for people."""


def parse_tree_head_document(data: bytes) -> TreeHeadDocument:
    """Read a tree-head document, refusing any bytes that are not exactly its canonical form."""
    try:
        value = parse_canonical(data)
    except NotCanonicalError as exc:
        raise ProofError(ProofFailure.MALFORMED, f"tree-head document: {exc}") from None
    node, size, root = value.get("node"), value.get("tree_size"), value.get("root_hash")
    if (
        set(value) != {"type", "node", "tree_size", "root_hash"}
        or value["type"] != TREE_HEAD_TYPE
        or not isinstance(node, str)
        or not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
        or not isinstance(root, str)
    ):
        raise ProofError(ProofFailure.MALFORMED, f"not a {TREE_HEAD_TYPE} document")
    try:
        root_hash = bytes.fromhex(root)
    except ValueError:
        raise ProofError(ProofFailure.MALFORMED, "root_hash is not hex") from None
    if len(root_hash) != HASH_SIZE or root != root_hash.hex():
        raise ProofError(ProofFailure.MALFORMED, "root_hash is not 32 bytes of lowercase hex")
    return TreeHeadDocument(node, size, root_hash)


@dataclass(frozen=True, slots=True)
class StampedTreeHead:
    """A tree head as the log stores it: the document the TSA stamped and its token."""

    tree_size: int
    root_hash: bytes
    document: bytes
    token: bytes


@dataclass(frozen=True, slots=True)
class ProvenTime:
    """An entry proven to exist no later than ``gen_time``, by the TSA and the tree."""

    gen_time: datetime
    node: str
    leaf_index: int
    tree_size: int
    root_hash: bytes
    imprint: bytes
    tsa_serial: int


def verify_entry_time(
    entry: LoggedEntry,
    leaf_index: int,
    inclusion: Sequence[bytes],
    head: StampedTreeHead,
    tsa_cert: x509.Certificate,
    *,
    issuer: x509.Certificate | None = None,
) -> ProvenTime:
    """Prove when ``entry`` existed, trusting only ``tsa_cert`` (and ``issuer``, if given).

    Nothing stored is taken on faith: the leaf is recomputed from the entry's bytes, the
    root from the inclusion proof, the tree-head document is parsed and must name that
    tree size and root, and the token must be the pinned TSA's signature over the
    document's SHA-256. The proven time is the token's genTime.
    """
    leaf = leaf_hash(entry_leaf(entry))
    try:
        verify_inclusion(leaf, leaf_index, head.tree_size, inclusion, head.root_hash)
    except MerkleError as exc:
        raise ProofError(ProofFailure.NOT_INCLUDED, str(exc)) from None
    document = parse_tree_head_document(head.document)
    if document.tree_size != head.tree_size or document.root_hash != head.root_hash:
        raise ProofError(
            ProofFailure.DOCUMENT_MISMATCH,
            f"the timestamped document is for size {document.tree_size} and root "
            f"{document.root_hash.hex()}, the proof for size {head.tree_size} and root "
            f"{head.root_hash.hex()}",
        )
    imprint = hashlib.sha256(head.document).digest()
    try:
        stamp = verify_timestamp_token(head.token, tsa_cert, imprint, "sha256", issuer=issuer)
    except TimestampError as exc:
        raise ProofError(ProofFailure.TIMESTAMP, str(exc)) from None
    return ProvenTime(
        gen_time=stamp.gen_time,
        node=document.node,
        leaf_index=leaf_index,
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        imprint=imprint,
        tsa_serial=stamp.serial_number,
    )
