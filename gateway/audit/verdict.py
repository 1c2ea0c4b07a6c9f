"""What the offline verifier answers: a report, or one failure with a stable reason.

Shared by the verifier's modules (``verify.py`` for the entries, ``heads.py`` for the
tree heads) and by everything that reads a verdict (the audit CLI, archiving, the
bench). ``gateway.audit.verify`` re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509

from gateway.audit.configuration import ConfigSnapshot, InForce, InForceRun
from gateway.core.errors import ReasonedError
from gateway.pki.ocsp import DEFAULT_FRESHNESS


class AuditFailure(StrEnum):
    """Why a bundle was refused. Never rename a value: scripts match on it."""

    MALFORMED = "malformed"
    """A record does not parse, or a value is not the shape the format requires."""
    MANIFEST_MISMATCH = "manifest_mismatch"
    """The records differ from what the manifest lists (missing, extra or moved)."""
    INCOMPLETE = "incomplete"
    """A bundle of the whole log lacks entries its last tree head covers."""
    REFERENCE = "reference"
    """A certificate or OCSP response is not the SHA-256 its reference names."""
    HEAD_DOCUMENT = "head_document"
    """The tree-head document is not canonical, or names another node, size or root."""
    HEAD_ORDER = "head_order"
    """Tree heads do not grow in size, or a later one has an earlier genTime."""
    UNTRUSTED_TSA = "untrusted_tsa"
    """The tree head's TSA certificate is not one the anchor trusts."""
    TIMESTAMP = "timestamp"
    """The token is not the trusted TSA's time stamp over the tree-head document."""
    CONSISTENCY = "consistency"
    """A tree head does not extend the previous one (the log was rewritten)."""
    NO_TREE_HEAD = "no_tree_head"
    """The entry's proof does not lead into the first tree head in the bundle covering it."""
    LEAF_MISMATCH = "leaf_mismatch"
    """The entry's fields do not recompute to the leaf hash the proof is for."""
    NOT_INCLUDED = "not_included"
    """The inclusion proof does not lead from the leaf to the tree head's root."""
    LOGGED_AFTER_HEAD = "logged_after_head"
    """The covering tree head's genTime is before the entry's logged_at."""
    BODY_MISMATCH = "body_mismatch"
    """The body (or its digest) is not the one the signed header names."""
    HEADER_MISMATCH = "header_mismatch"
    """The entry's columns disagree with its signed header."""
    CERTIFICATE = "certificate"
    """The signer's chain does not verify to a trusted CA at the signing time, or is not
    the certificate the entry's cert_ref names."""
    SIGNER = "signer"
    """The certificate belongs to another member than the one that had to sign."""
    SIGNATURE = "signature"
    """The JWS does not verify over the header."""
    OCSP = "ocsp"
    """No OCSP response, or it does not show the signer good at the signing time."""
    HEAD_SIGNATURE = "head_signature"
    """A signed tree head is not the member's signature, valid at the head's genTime
    with good OCSP status, over this node, size, root and genTime."""
    CONFIGURATION = "configuration"
    """The global configuration snapshot is incomplete, or its TUF metadata does not
    verify (signatures, thresholds, versions, hashes), or the document is not the target."""
    COSIGNATURE = "cosignature"
    """A witness co-signature does not verify, is by the log's own member, or lacks a
    good OCSP status from after the head's genTime."""


class AuditError(ReasonedError[AuditFailure]):
    """A refused bundle: ``reason`` for programs, ``piece`` and ``detail`` for people.

    The message leads with the piece (``"<piece>: <reason>: <detail>"``) so an auditor
    finds the record the refusal is about.
    """

    def __init__(self, reason: AuditFailure, piece: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.args = (f"{piece}: {self.args[0]}",)
        self.piece = piece


@dataclass(frozen=True, slots=True)
class AuditTrustAnchor:
    """What the auditor trusts: CA certificates, TSA certificates, the OCSP window."""

    cas: tuple[x509.Certificate, ...]
    tsas: tuple[x509.Certificate, ...]
    ocsp_freshness: timedelta = DEFAULT_FRESHNESS


@dataclass(frozen=True, slots=True)
class AuditReport:
    """A bundle that verified completely."""

    node: str
    entries: int
    tree_heads: int
    signatures: int
    certificates: int
    ocsp_responses: int
    first_gen_time: datetime | None
    last_gen_time: datetime | None
    first_leaf: int | None
    last_leaf: int | None
    signed_heads: int = 0
    cosignatures: int = 0
    configuration: ConfigSnapshot | None = None
    """The single snapshot, or the version applied last of ``configurations``."""
    configurations: tuple[InForce, ...] = ()
    """Every configuration version carried, verified, in the order applied."""
    in_force: tuple[InForceRun, ...] = ()
    """Which version each run of entries was logged under (index into
    ``configurations``; None before the first one)."""
    admin_records: int = 0
    """How many of ``entries`` are the node's admin records (docs/message-log.md 13),
    each signed by the node's owner and included like every other entry."""
