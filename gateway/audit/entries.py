"""The offline verifier's checks of a bundle's manifest, references and entries.

For each entry, in bundle order: the covering tree head, the body, the leaf, the
inclusion proof (``gateway.core.merkle.InclusionChecker``), logged before the head's
genTime, the signed header against the entry's columns, the signer's chain at the
signing time (parsed by ``gateway.core.jws.parse_jws_chain``), the signature
(batched, ``gateway.audit.signatures``) and the OCSP response at the signing time.
Driven by ``gateway.audit.verify``; pure like it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.audit.bundle import Bundle, EntryItem, HeadItem, leaf_ranges
from gateway.audit.heads import check_tree_heads
from gateway.audit.signatures import (
    SignatureChecker,
    SignatureTask,
    issuer_of,
)
from gateway.audit.verdict import AuditError, AuditFailure, AuditTrustAnchor
from gateway.core.adminrecord import AdminRecord, AdminRecordError, admin_message_id
from gateway.core.encoding import EncodingError, b64url, b64url_decode
from gateway.core.envelope import EnvelopeError, parse_time
from gateway.core.ids import InvalidIdentifierError, MemberId, NodeId, ServiceId, parse_client
from gateway.core.jws import cert_ref, parse_jws_chain
from gateway.core.logtree import entry_leaf
from gateway.core.merkle import InclusionChecker, MerkleError, leaf_hash
from gateway.pki.ocsp import (
    DEFAULT_SKEW,
    OcspError,
    verify_ocsp_response,
)
from gateway.pki.ocsp import VerifiedStatus as OcspStatus
from gateway.pki.profiles import CertificateError
from gateway.pki.validation import verify_signing_certificate

# -- per-certificate and per-response caches ------------------------------------------------


@dataclass(slots=True)
class _Signer:
    member: MemberId
    certificate: x509.Certificate
    ref: str
    issuer: x509.Certificate
    public_point: bytes
    valid_from: datetime
    valid_until: datetime
    allowed: set[str] = field(default_factory=set)
    """Client or service strings already checked to belong to ``member``."""


@dataclass(slots=True)
class _Ocsp:
    status: OcspStatus
    delegated: bool


ADMIN: Final = "admin"
"""The kind of an admin entry: the node's owner signs it, not a party to an exchange."""
_EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()


def _member_of(kind: str, client: str, service: str) -> MemberId:
    if kind == "request":
        return parse_client(client).member
    return ServiceId.parse(service).member


class EntryVerifier:
    """The manifest, references and entries of one bundle, checked in bundle order.

    Keeps what later entries reuse: signers by protected header, OCSP outcomes by
    (response, certificate), the inclusion checker's authenticated nodes, and the
    tree heads (from :func:`gateway.audit.heads.check_tree_heads`) entries prove into.
    """

    def __init__(self, bundle: Bundle, anchor: AuditTrustAnchor, checker: SignatureChecker) -> None:
        self.bundle = bundle
        self.anchor = anchor
        self.checker = checker
        self.signers: dict[str, _Signer] = {}
        self.ocsp: dict[str, bytes] = {}
        self.ocsp_ok: dict[tuple[str, str], _Ocsp] = {}
        self.inclusion = InclusionChecker()
        self.head_sizes: list[int] = []
        self.heads: dict[int, tuple[HeadItem, datetime]] = {}
        self.pending: list[SignatureTask] = []
        self.signatures = 0
        self.admin_records = 0
        """Admin entries (``gateway.core.adminrecord``) verified so far."""

    # -- manifest ------------------------------------------------------------------------

    def manifest(self) -> None:
        """The tree heads and the certificate and OCSP counts the manifest lists."""
        m, b = self.bundle.manifest, self.bundle
        sizes = tuple(h.tree_size for h in b.heads)
        if sizes != m.tree_heads:
            raise AuditError(
                AuditFailure.MANIFEST_MISMATCH,
                "tree heads",
                f"the manifest lists sizes {list(m.tree_heads)}, the bundle holds {list(sizes)}",
            )
        if len(b.certificates) != m.certificates or len(b.ocsp) != m.ocsp_responses:
            raise AuditError(
                AuditFailure.MANIFEST_MISMATCH,
                "manifest",
                f"lists {m.certificates} certificates and {m.ocsp_responses} OCSP responses, "
                f"the bundle holds {len(b.certificates)} and {len(b.ocsp)}",
            )
        signed = tuple(h.tree_size for h in b.heads if h.signed is not None)
        cosigned = sum(len(h.cosignatures) for h in b.heads)
        if signed != m.signed_heads or cosigned != m.cosignatures:
            raise AuditError(
                AuditFailure.MANIFEST_MISMATCH,
                "signed tree heads",
                f"the manifest lists signed heads {list(m.signed_heads)} and "
                f"{m.cosignatures} co-signatures, the bundle holds {list(signed)} and {cosigned}",
            )

    def listing(self, keys: Sequence[tuple[int, int]]) -> None:
        """The entries, as (leaf index, id) in bundle order, against the manifest: the
        same leaves, increasing, and for a whole-log bundle every leaf the heads cover."""
        m = self.bundle.manifest
        leaves = [leaf for leaf, _ in keys]
        if leaf_ranges(leaves) != m.entries:
            expected = [i for first, last in m.entries for i in range(first, last + 1)]
            for position, (leaf, entry_id) in enumerate(keys):
                if position >= len(expected) or leaf != expected[position]:
                    want = f"leaf {expected[position]}" if position < len(expected) else "nothing"
                    raise AuditError(
                        AuditFailure.MANIFEST_MISMATCH,
                        f"entry {entry_id} (leaf {leaf})",
                        f"the manifest lists {want} at position {position}",
                    )
            raise AuditError(
                AuditFailure.MANIFEST_MISMATCH,
                "entries",
                f"the manifest lists {len(expected)} entries, the bundle holds {len(keys)}",
            )
        for previous, (leaf, entry_id) in zip(leaves, keys[1:], strict=False):
            if leaf <= previous:
                raise AuditError(
                    AuditFailure.MANIFEST_MISMATCH,
                    f"entry {entry_id} (leaf {leaf})",
                    "entries are out of order",
                )
        if m.selection.get("all") is True:
            # Leaves below archived_before_leaf were archived (gateway log archive) to
            # an earlier bundle; everything from there to the last head must be here.
            first = m.selection.get("archived_before_leaf", 0)
            if not isinstance(first, int) or isinstance(first, bool) or first < 0:
                raise AuditError(
                    AuditFailure.MALFORMED, "manifest", "archived_before_leaf is not a leaf index"
                )
            covered = self.head_sizes[-1] if self.head_sizes else 0
            if len(leaves) != covered - first or (leaves and leaves[-1] != covered - 1):
                raise AuditError(
                    AuditFailure.INCOMPLETE,
                    "entries",
                    f"a whole-log bundle must hold leaves {first} to {covered - 1}, "
                    f"it holds {len(leaves)} entries",
                )

    def references(self) -> None:
        seen: set[str] = set()
        for cert in self.bundle.certificates:
            if hashlib.sha256(cert.der).hexdigest() != cert.ref or cert.ref in seen:
                raise AuditError(
                    AuditFailure.REFERENCE,
                    f"certificate {cert.ref[:16]}",
                    "not the SHA-256 of its DER, or listed twice",
                )
            seen.add(cert.ref)
        for response in self.bundle.ocsp:
            if hashlib.sha256(response.der).hexdigest() != response.ref or (
                response.ref in self.ocsp
            ):
                raise AuditError(
                    AuditFailure.REFERENCE,
                    f"OCSP response {response.ref[:16]}",
                    "not the SHA-256 of its DER, or listed twice",
                )
            self.ocsp[response.ref] = response.der

    # -- tree heads ----------------------------------------------------------------------

    def tree_heads(self) -> None:
        for head, gen_time in check_tree_heads(self.bundle, self.anchor, self.ocsp):
            self.heads[head.tree_size] = (head, gen_time)
            self.head_sizes.append(head.tree_size)

    # -- entries -------------------------------------------------------------------------

    def entry(self, position: int, e: EntryItem) -> None:
        piece = entry_name(e)
        index = bisect.bisect_right(self.head_sizes, e.leaf_index)
        if index == len(self.head_sizes) or self.head_sizes[index] != e.proof_size:
            first = self.head_sizes[index] if index < len(self.head_sizes) else None
            raise AuditError(
                AuditFailure.NO_TREE_HEAD,
                piece,
                f"the proof leads into tree head {e.proof_size}; the first one in the bundle "
                f"covering leaf {e.leaf_index} is {first}",
            )
        head, gen_time = self.heads[e.proof_size]
        if e.body is not None and hashlib.sha256(e.body).hexdigest() != e.body_sha256:
            raise AuditError(AuditFailure.BODY_MISMATCH, piece, "the body is not body_sha256")
        if leaf_hash(entry_leaf(e.logged_entry())) != e.leaf_hash:
            raise AuditError(
                AuditFailure.LEAF_MISMATCH,
                piece,
                "the entry does not recompute to its leaf hash: it was altered",
            )
        try:
            self.inclusion.verify(
                e.leaf_hash, e.leaf_index, head.tree_size, e.inclusion, head.root_hash
            )
        except MerkleError as exc:
            raise AuditError(AuditFailure.NOT_INCLUDED, piece, str(exc)) from None
        try:
            logged_at = datetime.fromisoformat(e.logged_at)
        except ValueError:
            raise AuditError(AuditFailure.MALFORMED, piece, "logged_at is not RFC 3339") from None
        if gen_time < logged_at:
            raise AuditError(
                AuditFailure.LOGGED_AFTER_HEAD,
                piece,
                f"logged at {e.logged_at}, after tree head {head.tree_size}'s genTime "
                f"{gen_time.isoformat()}",
            )
        if e.kind == ADMIN:
            signed_at = self._admin_header(piece, e)
            signer = self._signer(piece, e, signed_at)
            self._signature(piece, position, e, signer)
            if e.ocsp_ref:  # the node kept no OCSP answer when it logged the change
                self._ocsp(piece, e, signer, signed_at)
            self.admin_records += 1
            return
        signed_at = self._header(piece, e)
        signer = self._signer(piece, e, signed_at)
        self._signature(piece, position, e, signer)
        self._ocsp(piece, e, signer, signed_at)

    def _admin_header(self, piece: str, e: EntryItem) -> datetime:
        """An admin entry's header is the signed record; its columns must be the
        record's, as ``MessageLog.append_admin`` wrote them (docs/message-log.md 13)."""
        try:
            record = AdminRecord.from_bytes(e.header)
        except AdminRecordError as exc:
            raise AuditError(AuditFailure.HEADER_MISMATCH, piece, str(exc)) from None
        expected = {
            "role": (e.role, "node"),
            "message_id": (e.message_id, admin_message_id(e.header)),
            "xroad_id": (e.xroad_id, record.action),
            "client": (e.client, record.actor),
            "service": (e.service, record.target),
            "created": (e.created, record.created),
        }
        for name, (column, value) in expected.items():
            if column != value:
                raise AuditError(
                    AuditFailure.HEADER_MISMATCH,
                    piece,
                    f"the entry's {name} is {column!r}, the signed record's {value!r}",
                )
        if e.body_sha256 != _EMPTY_SHA256 or e.body:
            raise AuditError(AuditFailure.BODY_MISMATCH, piece, "an admin entry has no body")
        return record.at

    def _header(self, piece: str, e: EntryItem) -> datetime:
        try:
            header: Any = json.loads(e.header)
        except ValueError:
            raise AuditError(AuditFailure.HEADER_MISMATCH, piece, "header is not JSON") from None
        if not isinstance(header, dict):
            raise AuditError(AuditFailure.HEADER_MISMATCH, piece, "header is not an object")
        expected = {
            "type": e.kind,
            "id": e.message_id,
            "xroad_id": e.xroad_id,
            "client": e.client,
            "service": e.service,
            "created": e.created,
        }
        for key, value in expected.items():
            if header.get(key) != value:
                raise AuditError(
                    AuditFailure.HEADER_MISMATCH,
                    piece,
                    f"the signed header's {key} is {header.get(key)!r}, the entry's {value!r}",
                )
        digest = b64url(bytes.fromhex(e.body_sha256))
        if header.get("body_sha256") != digest or (
            e.body is not None and header.get("body_length") != len(e.body)
        ):
            raise AuditError(
                AuditFailure.BODY_MISMATCH, piece, "the body is not the one the header signs"
            )
        try:
            return parse_time(e.created)
        except EnvelopeError as exc:
            raise AuditError(AuditFailure.MALFORMED, piece, exc.message) from None

    def _signer(self, piece: str, e: EntryItem, at: datetime) -> _Signer:
        parts = e.signature.split(".")
        if len(parts) != 3 or parts[1] != "":
            raise AuditError(
                AuditFailure.SIGNATURE, piece, "not a compact JWS with detached payload"
            )
        signer = self.signers.get(parts[0])
        if signer is None:
            signer = self._new_signer(piece, parts[0], at)
            self.signers[parts[0]] = signer
        elif not signer.valid_from <= at <= signer.valid_until:
            raise AuditError(
                AuditFailure.CERTIFICATE,
                piece,
                f"the signer's chain is not valid at the signing time {e.created}",
            )
        if e.cert_ref != signer.ref:
            raise AuditError(
                AuditFailure.CERTIFICATE, piece, "cert_ref does not name the JWS's certificate"
            )
        owner = e.client if e.kind == "request" else e.service
        if e.kind == ADMIN:
            owner = f"node {self.bundle.manifest.node}"
        if owner not in signer.allowed:
            try:
                expected = self._member_of(e)
            except InvalidIdentifierError as exc:
                raise AuditError(AuditFailure.MALFORMED, piece, exc.message) from None
            if expected != signer.member:
                raise AuditError(
                    AuditFailure.SIGNER,
                    piece,
                    f"signed by {signer.member}, but a {e.kind} must be signed by {expected}",
                )
            signer.allowed.add(owner)
        return signer

    def _member_of(self, e: EntryItem) -> MemberId:
        """Who had to sign ``e``: the client's member for a request, the service's for
        a response, the node's owner (whose tree heads these are) for an admin entry."""
        if e.kind == ADMIN:
            return NodeId.parse(self.bundle.manifest.node).owner
        return _member_of(e.kind, e.client, e.service)

    def _new_signer(self, piece: str, segment: str, at: datetime) -> _Signer:
        try:
            chain = parse_jws_chain(segment)
        except EnvelopeError as exc:
            raise AuditError(AuditFailure.SIGNATURE, piece, f"JWS header: {exc}") from None
        try:
            member = verify_signing_certificate(chain[0], chain[1:], self.anchor.cas, at)
        except (CertificateError, ValueError) as exc:
            raise AuditError(AuditFailure.CERTIFICATE, piece, str(exc)) from None
        key = chain[0].public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise AuditError(AuditFailure.CERTIFICATE, piece, "ES256 needs a P-256 key")
        try:
            issuer = issuer_of(chain[0], [*chain[1:], *self.anchor.cas])
        except CertificateError as exc:
            raise AuditError(AuditFailure.CERTIFICATE, piece, str(exc)) from None
        path = [*chain, *(r for r in self.anchor.cas if r.subject == chain[-1].issuer)]
        return _Signer(
            member,
            chain[0],
            cert_ref(chain[0]),
            issuer,
            key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint),
            max(c.not_valid_before_utc for c in path),
            min(c.not_valid_after_utc for c in path),
        )

    def _signature(self, piece: str, position: int, e: EntryItem, signer: _Signer) -> None:
        segment, _, encoded = e.signature.split(".")
        try:
            signature = b64url_decode(encoded)
        except EncodingError:
            raise AuditError(AuditFailure.SIGNATURE, piece, "not canonical base64url") from None
        if len(signature) != 64:
            raise AuditError(AuditFailure.SIGNATURE, piece, "an ES256 signature has 64 bytes")
        signing_input = f"{segment}.{b64url(e.header)}".encode("ascii")
        self.pending.append(SignatureTask(position, signer.public_point, signing_input, signature))
        self.signatures += 1
        if len(self.pending) >= 1024:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.checker.submit(self.pending)
            self.pending = []

    def _ocsp(self, piece: str, e: EntryItem, signer: _Signer, at: datetime) -> None:
        if not e.ocsp_ref:
            raise AuditError(AuditFailure.OCSP, piece, "the entry names no OCSP response")
        key = (e.ocsp_ref, e.cert_ref)
        cached = self.ocsp_ok.get(key)
        if cached is None:
            der = self.ocsp.get(e.ocsp_ref)
            if der is None:
                raise AuditError(
                    AuditFailure.OCSP,
                    piece,
                    f"OCSP response {e.ocsp_ref[:16]}… is not in the bundle",
                )
            try:
                status = verify_ocsp_response(
                    der, signer.certificate, signer.issuer, at, self.anchor.ocsp_freshness
                )
            except OcspError as exc:
                raise AuditError(AuditFailure.OCSP, piece, str(exc)) from None
            self.ocsp_ok[key] = _Ocsp(status, status.responder is not signer.issuer)
            return
        status = cached.status
        # Signature, responder and certificate were checked on first use; only the times
        # (verify_ocsp_response's step 5, and a delegated responder's validity) remain.
        problem = None
        if status.this_update > at + DEFAULT_SKEW:
            problem = f"not_yet_valid: thisUpdate {status.this_update.isoformat()}"
        elif status.this_update < at - self.anchor.ocsp_freshness:
            problem = f"stale: thisUpdate {status.this_update.isoformat()}"
        elif status.next_update is not None and status.next_update < at:
            problem = f"expired: nextUpdate {status.next_update.isoformat()}"
        elif cached.delegated and not (
            status.responder.not_valid_before_utc <= at <= status.responder.not_valid_after_utc
        ):
            problem = "unauthorised_responder: the responder certificate is not valid then"
        if problem is not None:
            raise AuditError(AuditFailure.OCSP, piece, f"{problem} at {e.created}")


def entry_name(e: EntryItem) -> str:
    return f"entry {e.id} (leaf {e.leaf_index}, {e.kind} {e.message_id})"


def check_entries(
    verifier: EntryVerifier, start: int, entries: Sequence[EntryItem]
) -> AuditError | None:
    """Verify ``entries`` (at positions ``start``…) in order; the first failure, if any.

    A signature the checker finds bad wins if it lies at or before the scan's failure.
    """
    scan_error: AuditError | None = None
    scan_position = start + len(entries)
    for offset, entry in enumerate(entries):
        try:
            verifier.entry(start + offset, entry)
        except AuditError as exc:
            scan_error, scan_position = exc, start + offset
            break
    verifier.flush()
    bad = verifier.checker.first_failure()
    if bad is not None and bad <= scan_position:
        return AuditError(
            AuditFailure.SIGNATURE, entry_name(entries[bad - start]), "the JWS does not verify"
        )
    return scan_error
