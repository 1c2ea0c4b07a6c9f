"""The offline verifier's checks of a bundle's tree heads.

Each tree head is a document the node's TSA time-stamped (RFC 3161), proven to extend
the previous one (RFC 9162 consistency), and optionally signed by the node's member and
co-signed by witnesses (docs/audit-bundle.md). Pure, like ``gateway.audit.verify``:
every time check uses the token's genTime.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from asn1crypto import cms  # type: ignore[import-untyped]  # ships no type information
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.audit.bundle import Bundle, HeadItem
from gateway.audit.signatures import issuer_of
from gateway.audit.verdict import AuditError, AuditFailure, AuditTrustAnchor
from gateway.core.envelope import EnvelopeError
from gateway.core.ids import InvalidIdentifierError, MemberId, NodeId
from gateway.core.jws import SignatureVerifier, VerifiedSignature, cert_ref, parse_jws_chain
from gateway.core.logtree import ProofError, parse_tree_head_document
from gateway.core.merkle import MerkleError, verify_consistency
from gateway.core.treehead import TreeHeadError, parse_sth, verify_sth_signature
from gateway.pki.ocsp import OcspError, OcspFailure, verify_ocsp_response
from gateway.pki.profiles import CertificateError
from gateway.pki.tsa import TimestampError, TimestampFailure
from gateway.pki.tsa_verify import verify_timestamp_token


def check_tree_heads(
    bundle: Bundle, anchor: AuditTrustAnchor, ocsp_by_ref: dict[str, bytes]
) -> list[tuple[HeadItem, datetime]]:
    """Every tree head of ``bundle`` in order, each with its token's genTime, or the
    first bad one as :class:`AuditError`: the timestamped document names the bundle's
    node, size and root; the token is a trusted TSA's over it, in its one spelling;
    sizes and genTimes grow; each head extends the previous one (consistency proof);
    and a signed head carries good owner and witness signatures."""
    tsas = {cert_ref(c): c for c in anchor.tsas}
    checked: list[tuple[HeadItem, datetime]] = []
    previous: tuple[HeadItem, datetime] | None = None
    for head in bundle.heads:
        piece = f"tree head {head.tree_size}"
        if previous is not None and head.tree_size <= previous[0].tree_size:
            raise AuditError(AuditFailure.HEAD_ORDER, piece, "tree heads must grow in size")
        try:
            document = parse_tree_head_document(head.document)
        except ProofError as exc:
            raise AuditError(AuditFailure.HEAD_DOCUMENT, piece, exc.detail) from None
        if (document.node, document.tree_size, document.root_hash) != (
            bundle.manifest.node,
            head.tree_size,
            head.root_hash,
        ):
            raise AuditError(
                AuditFailure.HEAD_DOCUMENT,
                piece,
                f"the timestamped document is node {document.node}, size "
                f"{document.tree_size}, root {document.root_hash.hex()}",
            )
        tsa = tsas.get(head.tsa_cert_ref)
        if tsa is None:
            raise AuditError(
                AuditFailure.UNTRUSTED_TSA,
                piece,
                f"TSA certificate {head.tsa_cert_ref[:16]}… is not in the anchor",
            )
        try:
            stamp = verify_timestamp_token(
                head.token, tsa, hashlib.sha256(head.document).digest(), "sha256"
            )
            check_token_shape(head.token, tsa.public_bytes(Encoding.DER))
        except TimestampError as exc:
            raise AuditError(AuditFailure.TIMESTAMP, piece, str(exc)) from None
        try:
            stated = datetime.fromisoformat(head.gen_time)
        except ValueError:
            raise AuditError(AuditFailure.MALFORMED, piece, "gen_time is not RFC 3339") from None
        if stated != stamp.gen_time:
            raise AuditError(
                AuditFailure.TIMESTAMP,
                piece,
                f"gen_time {head.gen_time} is not the token's {stamp.gen_time.isoformat()}",
            )
        if previous is None:
            if head.consistency_from is not None or head.consistency:
                raise AuditError(
                    AuditFailure.CONSISTENCY, piece, "the first tree head has no predecessor"
                )
        else:
            old, old_time = previous
            if stamp.gen_time < old_time:
                raise AuditError(
                    AuditFailure.HEAD_ORDER,
                    piece,
                    f"genTime {stamp.gen_time.isoformat()} is before that of tree head "
                    f"{old.tree_size}",
                )
            if head.consistency_from != old.tree_size:
                raise AuditError(
                    AuditFailure.CONSISTENCY,
                    piece,
                    f"the consistency proof starts at size {head.consistency_from}, "
                    f"the previous tree head is {old.tree_size}",
                )
            try:
                verify_consistency(
                    old.tree_size,
                    head.tree_size,
                    old.root_hash,
                    head.root_hash,
                    head.consistency,
                )
            except MerkleError as exc:
                raise AuditError(AuditFailure.CONSISTENCY, piece, str(exc)) from None
        if head.signed is not None:
            check_head_signatures(
                head, bundle.manifest.node, stamp.gen_time, anchor, ocsp_by_ref, piece
            )
        elif head.cosignatures:
            raise AuditError(
                AuditFailure.COSIGNATURE, piece, "co-signatures of an unsigned tree head"
            )
        previous = (head, stamp.gen_time)
        checked.append(previous)
    return checked


def check_head_signatures(
    head: HeadItem,
    node: str,
    gen_time: datetime,
    anchor: AuditTrustAnchor,
    ocsp_by_ref: dict[str, bytes],
    piece: str,
) -> None:
    """The owner's signed tree head and every witness co-signature of one tree head.

    The signed document must name the bundle's node and this head's size and root, with
    the token's genTime as its time; the owner's JWS must be its member's, with a chain
    valid at genTime and an OCSP response good at genTime (the rules entries follow).
    A co-signature must verify over the same bytes, be made by the witness node's
    member (never the owner's: a log cannot witness itself), with a chain valid at
    genTime and an OCSP response good no earlier than genTime - F, since a witness signs
    some time after the head was made.
    """
    signed = head.signed
    assert signed is not None
    try:
        sth = parse_sth(signed.document)
    except TreeHeadError as exc:
        raise AuditError(AuditFailure.HEAD_SIGNATURE, piece, exc.detail) from None
    if (sth.node, sth.tree_size, sth.root_hash, sth.timestamp) != (
        node,
        head.tree_size,
        head.root_hash,
        gen_time,
    ):
        raise AuditError(
            AuditFailure.HEAD_SIGNATURE,
            piece,
            f"the signed document names node {sth.node}, size {sth.tree_size}, root "
            f"{sth.root_hash.hex()[:16]}…, time {sth.timestamp.isoformat()}",
        )
    verifier = SignatureVerifier(anchor.cas)
    owner = sth.member
    checked = _head_jws(
        verifier,
        signed.document,
        signed.signature,
        gen_time,
        owner,
        AuditFailure.HEAD_SIGNATURE,
        piece,
    )
    if checked.cert_ref != signed.cert_ref:
        raise AuditError(AuditFailure.HEAD_SIGNATURE, piece, "cert_ref is not the JWS's")
    _head_ocsp(
        checked,
        signed.ocsp_ref,
        ocsp_by_ref,
        gen_time,
        anchor,
        AuditFailure.HEAD_SIGNATURE,
        piece,
        cosigned=False,
    )
    witnesses: set[str] = set()
    for c in head.cosignatures:
        where = f"{piece}, co-signature of {c.witness}"
        try:
            witness = NodeId.parse(c.witness)
        except InvalidIdentifierError as exc:
            raise AuditError(AuditFailure.COSIGNATURE, where, exc.message) from None
        if witness.owner == owner or c.witness in witnesses:
            raise AuditError(
                AuditFailure.COSIGNATURE, where, "by the log's own member, or listed twice"
            )
        witnesses.add(c.witness)
        verified = _head_jws(
            verifier,
            signed.document,
            c.cosignature,
            gen_time,
            witness.owner,
            AuditFailure.COSIGNATURE,
            where,
        )
        if verified.cert_ref != c.cert_ref:
            raise AuditError(AuditFailure.COSIGNATURE, where, "cert_ref is not the JWS's")
        _head_ocsp(
            verified,
            c.ocsp_ref,
            ocsp_by_ref,
            gen_time,
            anchor,
            AuditFailure.COSIGNATURE,
            where,
            cosigned=True,
        )


def _head_jws(
    verifier: SignatureVerifier,
    document: bytes,
    jws: str,
    at: datetime,
    member: MemberId,
    reason: AuditFailure,
    piece: str,
) -> VerifiedSignature:
    try:
        _, verified = verify_sth_signature(verifier, document, jws, at, signer=member)
    except TreeHeadError as exc:
        raise AuditError(reason, piece, f"{exc.reason.value}: {exc.detail}") from None
    return verified


def _head_ocsp(
    verified: VerifiedSignature,
    ref: str,
    ocsp_by_ref: dict[str, bytes],
    at: datetime,
    anchor: AuditTrustAnchor,
    reason: AuditFailure,
    piece: str,
    *,
    cosigned: bool,
) -> None:
    der = ocsp_by_ref.get(ref) if ref else None
    if der is None:
        raise AuditError(reason, piece, "no OCSP response for the signer in the bundle")
    cert = verified.certificate
    try:
        issuer = issuer_of(cert, [*parse_jws_chain(verified.jws_header)[1:], *anchor.cas])
        when = at
        if cosigned:
            # Checked at the response's own thisUpdate, which must not lie before the
            # head's genTime minus F: the witness was good when it co-signed.
            when = x509.ocsp.load_der_ocsp_response(der).this_update_utc
            if when < at - anchor.ocsp_freshness:
                raise OcspError(OcspFailure.STALE, f"thisUpdate {when.isoformat()}")
        verify_ocsp_response(der, cert, issuer, when, anchor.ocsp_freshness)
    except (OcspError, CertificateError, ValueError, EnvelopeError) as exc:
        raise AuditError(reason, piece, f"OCSP: {exc}") from None


def check_token_shape(token: bytes, tsa_der: bytes) -> None:
    """Refuse any byte of the token that its signature does not cover and that could
    differ without changing what it proves: a bundle holds exactly one spelling of it.

    ``verify_timestamp_token`` checks what RFC 3161 makes a token mean (TSTInfo,
    signed attributes, signature). CMS also carries unsigned parts: the certificate
    set, CRLs, unsigned attributes, version numbers and the digest algorithm set. Here
    they must be exactly what a TSA issuing for the pinned certificate writes (and
    algorithm parameters absent or NULL), so that an altered token byte is always a
    refusal, never a silent pass (the tests flip bytes throughout a token).
    """
    try:
        info = cms.ContentInfo.load(token, strict=True)
        signed = info["content"]
        signer = signed["signer_infos"][0]
        algorithm = signer["digest_algorithm"]["algorithm"].native
        certificates = signed["certificates"]
        ders = [] if certificates.native is None else [c.dump() for c in certificates]
        identifiers = [
            *signed["digest_algorithms"],
            signer["digest_algorithm"],
            signer["signature_algorithm"],
        ]
        problems = [
            any(a["parameters"].dump() not in (b"", b"\x05\x00") for a in identifiers)
            and "algorithm parameters",
            signed["version"].native != "v3" and "SignedData version",
            [d["algorithm"].native for d in signed["digest_algorithms"]] != [algorithm]
            and "digest algorithms",
            signed["crls"].native is not None and "CRLs",
            any(d != tsa_der for d in ders) and "a certificate other than the TSA's",
            signer["unsigned_attrs"].native is not None and "unsigned attributes",
            signer["version"].native
            != ("v1" if signer["sid"].name == "issuer_and_serial_number" else "v3")
            and "SignerInfo version",
        ]
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise TimestampError(TimestampFailure.MALFORMED, f"token: {exc}") from None
    found = [p for p in problems if p]
    if found:
        raise TimestampError(TimestampFailure.MALFORMED, f"token carries unexpected {found[0]}")
