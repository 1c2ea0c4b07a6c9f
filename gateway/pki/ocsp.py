"""OCSP (RFC 6960): build signed responses and verify them the way a relying node must.

Pure: certificates, keys and ``now`` in, bytes or a verified object out. Responses carry
no nonce, as in X-Road: a node fetches the status of its own certificates, caches it and
hands it to peers, so a response must be reusable until it goes stale, not bound to
one request.

Verification fails closed with an :class:`OcspError` whose ``reason`` is one of a small
fixed set (:class:`OcspFailure`), so callers map it to their own error codes without
parsing messages. The checks follow RFC 6960 section 3.2 and X-Road's ``OcspVerifier``:
the responder is the issuing CA or a certificate that CA issued with id-kp-OCSPSigning,
the signature holds, the single response names exactly the certificate asked about,
the status is *good*, and the response is fresh.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp

from gateway.core.errors import ReasonedError
from gateway.pki.keys import public_key_der, signature_hash
from gateway.pki.profiles import CertificateError, check_ocsp_responder_profile
from gateway.pki.status import CertStatus, Good, Revoked, Unknown

# X-Road's ocspFreshnessSeconds: a response older than this is stale.
DEFAULT_FRESHNESS = timedelta(seconds=3600)
# How far in the future a thisUpdate/producedAt may lie before the responder's clock is
# considered wrong rather than merely a little ahead of ours.
DEFAULT_SKEW = timedelta(seconds=60)

_CERT_ID_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class OcspFailure(StrEnum):
    """Why an OCSP response was not accepted. Never rename a value: callers match on it."""

    MALFORMED = "malformed"
    """Not a parseable OCSP response, or not the shape RFC 6960 requires."""
    UNSUCCESSFUL = "unsuccessful"
    """The responder answered an error status (tryLater, internalError, ...), unsigned."""
    UNAUTHORISED_RESPONDER = "unauthorised_responder"
    """Signed by neither the issuing CA nor an OCSP responder that CA delegated to."""
    BAD_SIGNATURE = "bad_signature"
    WRONG_CERTIFICATE = "wrong_certificate"
    """The response is about another certificate (serial or issuer differ)."""
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    STALE = "stale"
    """thisUpdate is older than the freshness window."""
    EXPIRED = "expired"
    """nextUpdate has passed."""
    NOT_YET_VALID = "not_yet_valid"
    """thisUpdate lies further in the future than the allowed skew."""


class OcspError(ReasonedError[OcspFailure]):
    """A refused OCSP response: ``reason`` for programs, ``detail`` for operators."""


@dataclass(frozen=True)
class CertId:
    """RFC 6960's CertID: which certificate a request or single response is about."""

    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial_number: int
    hash_algorithm: hashes.HashAlgorithm

    def is_issued_by(self, issuer: x509.Certificate) -> bool:
        """True if both issuer hashes match ``issuer`` under this CertID's algorithm."""
        name_hash, key_hash = issuer_hashes(issuer, self.hash_algorithm)
        return (name_hash, key_hash) == (self.issuer_name_hash, self.issuer_key_hash)


@dataclass(frozen=True)
class VerifiedStatus:
    """A good, fresh, correctly signed status for ``serial_number``."""

    serial_number: int
    this_update: datetime
    next_update: datetime | None
    produced_at: datetime
    responder: x509.Certificate
    """The certificate whose key signed: the CA itself or its delegated responder."""


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING value, which RFC 6960 hashes for issuerKeyHash.

    Per key type that is the uncompressed EC point (RFC 5480), the PKCS#1 RSAPublicKey
    (RFC 3279) or the raw EdDSA key (RFC 8410), exactly as the certificate encodes it.
    """
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raise ValueError(f"{type(key).__name__} keys are not supported for OCSP")


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    return hashlib.new(algorithm.name, data).digest()


def issuer_hashes(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of ``issuer`` under ``algorithm``."""
    if algorithm.name not in _CERT_ID_HASHES:
        raise ValueError(f"{algorithm.name} is not a CertID hash algorithm")
    return (
        _digest(algorithm, issuer.subject.public_bytes()),
        _digest(algorithm, _key_bits(issuer)),
    )


def _responder_key_hash(cert: x509.Certificate) -> bytes:
    """RFC 6960 ResponderID byKey: SHA-1 of the responder's public key bits."""
    return hashlib.sha1(_key_bits(cert)).digest()  # noqa: S324 - fixed by RFC 6960


def cert_id_for(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    algorithm: hashes.HashAlgorithm | None = None,
) -> CertId:
    """The CertID of ``cert``; SHA-256 unless told otherwise (OpenSSL's default is SHA-1)."""
    algorithm = algorithm or hashes.SHA256()
    name_hash, key_hash = issuer_hashes(issuer, algorithm)
    return CertId(name_hash, key_hash, cert.serial_number, algorithm)


def build_ocsp_request(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    """A DER OCSPRequest for one certificate, without a nonce."""
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, algorithm or hashes.SHA256())
        .build()
    )
    return request.public_bytes(serialization.Encoding.DER)


def parse_ocsp_request(der: bytes) -> CertId:
    """The single CertID of a DER OCSPRequest.

    A request naming several certificates is refused as malformed: X-Road and OpenSSL
    ask about one at a time, and one CertID per response keeps caching simple.
    """
    try:
        request = ocsp.load_der_ocsp_request(der)
        algorithm = request.hash_algorithm
        cert_id = CertId(
            request.issuer_name_hash,
            request.issuer_key_hash,
            request.serial_number,
            algorithm,
        )
    except (ValueError, UnsupportedAlgorithm, NotImplementedError) as exc:
        raise OcspError(
            OcspFailure.MALFORMED, f"not a single-certificate OCSP request: {exc}"
        ) from None
    if algorithm.name not in _CERT_ID_HASHES:
        raise OcspError(OcspFailure.MALFORMED, f"CertID hash {algorithm.name} is not supported")
    return cert_id


def build_ocsp_response(
    cert_id: CertId,
    status: CertStatus,
    this_update: datetime,
    next_update: datetime | None,
    responder_cert: x509.Certificate,
    responder_key: ec.EllipticCurvePrivateKey,
    issuer_cert: x509.Certificate,
    *,
    responder_id: ocsp.OCSPResponderEncoding = ocsp.OCSPResponderEncoding.HASH,
) -> bytes:
    """A signed, successful DER OCSPResponse about ``cert_id``.

    The CertID is echoed exactly as asked (same hash algorithm), which is what a client
    matches on. The responder certificate travels in ``certs`` so a client holding only
    the CA certificate can check the delegation. Refuses to say *good* or *revoked* about
    a certificate of another issuer: only *unknown* may be signed for those.
    """
    _require_aware(this_update)
    if next_update is not None:
        _require_aware(next_update)
        if next_update < this_update:
            raise ValueError("next_update must not be before this_update")
    if public_key_der(responder_key) != public_key_der(responder_cert):
        raise ValueError("the responder key does not belong to the responder certificate")
    if public_key_der(responder_cert) != public_key_der(issuer_cert):
        try:
            check_ocsp_responder_profile(responder_cert)
            responder_cert.verify_directly_issued_by(issuer_cert)
        except (CertificateError, InvalidSignature, ValueError, TypeError) as exc:
            raise ValueError(f"the responder is not delegated by the issuer: {exc}") from None
    if not isinstance(status, Unknown) and not cert_id.is_issued_by(issuer_cert):
        raise ValueError("the CertID names another issuer; only 'unknown' may be answered")

    revocation_time: datetime | None = None
    revocation_reason: x509.ReasonFlags | None = None
    if isinstance(status, Good):
        cert_status = ocsp.OCSPCertStatus.GOOD
    elif isinstance(status, Revoked):
        cert_status = ocsp.OCSPCertStatus.REVOKED
        revocation_time = status.time
        # RFC 5280 section 5.3.1: leave the reason out rather than say "unspecified".
        if status.reason is not x509.ReasonFlags.unspecified:
            revocation_reason = status.reason
    else:
        cert_status = ocsp.OCSPCertStatus.UNKNOWN

    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            cert_id.issuer_name_hash,
            cert_id.issuer_key_hash,
            cert_id.serial_number,
            cert_id.hash_algorithm,
            cert_status,
            this_update,
            next_update,
            revocation_time,
            revocation_reason,
        )
        .responder_id(responder_id, responder_cert)
        .certificates([responder_cert])
    )
    response = builder.sign(responder_key, signature_hash(responder_key))
    return response.public_bytes(serialization.Encoding.DER)


def build_error_response(status: ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned error response (malformedRequest, internalError, tryLater, ...)."""
    if status is ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise ValueError("a successful response must be signed; use build_ocsp_response")
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )


def _verify_signature(response: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    public_key = signer.public_key()
    try:
        algorithm = response.signature_hash_algorithm
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            if algorithm is None:
                raise ValueError("ECDSA signature without a hash algorithm")
            public_key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        elif isinstance(public_key, rsa.RSAPublicKey):
            if algorithm is None:
                raise ValueError("RSA signature without a hash algorithm")
            public_key.verify(
                response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm
            )
        elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            public_key.verify(response.signature, response.tbs_response_bytes)
        else:
            raise ValueError(f"{type(public_key).__name__} keys are not supported")
    except InvalidSignature:
        raise OcspError(
            OcspFailure.BAD_SIGNATURE, "the response signature does not verify"
        ) from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise OcspError(
            OcspFailure.BAD_SIGNATURE, f"the response signature cannot be checked: {exc}"
        ) from None


def _matches_responder_id(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    """Whether the response's ResponderID names ``cert``; the id is decoded lazily, so
    a damaged one is refused as ``malformed`` here, not raised as the library's error."""
    try:
        key_hash = response.responder_key_hash
        name = response.responder_name if key_hash is None else None
    except (ValueError, TypeError) as exc:  # TypeError: a name attribute of a wrong type
        raise OcspError(OcspFailure.MALFORMED, f"the responder id cannot be read: {exc}") from None
    if key_hash is not None:
        return key_hash == _responder_key_hash(cert)
    return name == cert.subject


def _delegation_of(
    response: ocsp.OCSPResponse,
    candidate: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
) -> x509.Certificate | str | None:
    """``candidate`` (or the issuer) if it may have signed, a refusal, or None if the
    responder id does not name it."""
    if not _matches_responder_id(response, candidate):
        return None
    if public_key_der(candidate) == public_key_der(issuer):
        return issuer
    name = candidate.subject.rfc4514_string() or "<empty subject>"
    if candidate.issuer != issuer.subject:
        return f"{name} is not issued by {issuer.subject.rfc4514_string()}"
    try:
        candidate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return f"{name} does not verify with the issuing CA's key"
    try:
        check_ocsp_responder_profile(candidate)
    except CertificateError as exc:
        return f"{name}: {exc}"
    if not candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc:
        return (
            f"{name} is not valid now (valid {candidate.not_valid_before_utc.isoformat()} "
            f"to {candidate.not_valid_after_utc.isoformat()})"
        )
    return candidate


def _find_responder(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime
) -> x509.Certificate:
    """The certificate entitled to have signed ``response``.

    The issuer is recognised by its key, never by a name: an embedded certificate that
    merely copies the CA's name is just another candidate that must prove delegation.
    Embedded certificates are attacker-supplied and decoded lazily, so one that cannot be
    read is a refused candidate, not an exception for the caller.
    """
    if _matches_responder_id(response, issuer):
        return issuer
    refusals: list[str] = []
    try:
        embedded = response.certificates
    except ValueError as exc:
        raise OcspError(OcspFailure.MALFORMED, f"embedded certificates: {exc}") from None
    for candidate in embedded:
        try:
            verdict = _delegation_of(response, candidate, issuer, now)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            refusals.append(f"an embedded certificate cannot be read: {exc}")
            continue
        if isinstance(verdict, x509.Certificate):
            return verdict
        if verdict is not None:
            refusals.append(verdict)
    detail = "; ".join(refusals) or "no certificate matching the responder id was supplied"
    raise OcspError(OcspFailure.UNAUTHORISED_RESPONDER, detail)


def _single_for(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    seen: list[str] = []
    for single in response.responses:
        try:
            algorithm = single.hash_algorithm
        except UnsupportedAlgorithm:
            seen.append("a CertID with an unsupported hash")
            continue
        if algorithm.name not in _CERT_ID_HASHES:
            seen.append(f"a CertID hashed with {algorithm.name}")
            continue
        cert_id = CertId(
            single.issuer_name_hash, single.issuer_key_hash, single.serial_number, algorithm
        )
        if cert_id.serial_number == cert.serial_number and cert_id.is_issued_by(issuer):
            return single
        seen.append(f"serial {single.serial_number:x}")
    detail = ", ".join(seen) or "no single responses"
    raise OcspError(
        OcspFailure.WRONG_CERTIFICATE,
        f"no status for serial {cert.serial_number:x} from {issuer.subject.rfc4514_string()} "
        f"(the response covers {detail})",
    )


def verify_ocsp_response(
    der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
    freshness: timedelta = DEFAULT_FRESHNESS,
    *,
    skew: timedelta = DEFAULT_SKEW,
) -> VerifiedStatus:
    """Accept ``der`` only as a fresh, authorised *good* status of ``cert``.

    Time rules (X-Road's, plus a skew allowance): refused as ``stale`` if
    ``thisUpdate < now - freshness``, ``expired`` if ``nextUpdate < now``, and
    ``not_yet_valid`` if thisUpdate is later than ``now + skew``.
    A correctly signed *revoked* status is reported as ``revoked`` before the time
    checks: revocation is final, and the operator should read the real reason rather
    than "stale".
    """
    _require_aware(now)
    if freshness <= timedelta(0) or skew < timedelta(0):
        raise ValueError("freshness must be positive and skew not negative")
    if cert.issuer != issuer.subject:
        raise OcspError(
            OcspFailure.WRONG_CERTIFICATE,
            f"{cert.subject.rfc4514_string()} is issued by {cert.issuer.rfc4514_string()}, "
            f"not by {issuer.subject.rfc4514_string()}",
        )
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise OcspError(OcspFailure.MALFORMED, f"not an OCSP response: {exc}") from None
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(
            OcspFailure.UNSUCCESSFUL, f"the responder answered {response.response_status.name}"
        )
    responder = _find_responder(response, issuer, now)
    _verify_signature(response, responder)
    single = _single_for(response, cert, issuer)

    status = single.certificate_status
    if status is ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason
        revoked_at = single.revocation_time_utc
        raise OcspError(
            OcspFailure.REVOKED,
            f"serial {cert.serial_number:x} was revoked at "
            f"{revoked_at.isoformat() if revoked_at else '?'}"
            + (f" ({reason.value})" if reason is not None else ""),
        )

    this_update = single.this_update_utc
    next_update = single.next_update_utc
    produced_at = response.produced_at_utc
    # producedAt is not checked against the clock: the signing library stamps it with
    # its own wall clock, and X-Road bases freshness on thisUpdate alone.
    if this_update > now + skew:
        raise OcspError(
            OcspFailure.NOT_YET_VALID,
            f"thisUpdate {this_update.isoformat()} is more than {skew.total_seconds():g} s "
            f"ahead of {now.isoformat()}",
        )
    if this_update < now - freshness:
        raise OcspError(
            OcspFailure.STALE,
            f"thisUpdate {this_update.isoformat()} is older than "
            f"{freshness.total_seconds():g} s at {now.isoformat()}",
        )
    if next_update is not None and next_update < now:
        raise OcspError(OcspFailure.EXPIRED, f"nextUpdate {next_update.isoformat()} has passed")
    if status is ocsp.OCSPCertStatus.UNKNOWN:
        raise OcspError(
            OcspFailure.UNKNOWN,
            f"the responder does not know serial {cert.serial_number:x}",
        )
    return VerifiedStatus(cert.serial_number, this_update, next_update, produced_at, responder)
