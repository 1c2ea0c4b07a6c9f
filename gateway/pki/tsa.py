"""RFC 3161 time stamps: build queries and replies, and verify tokens against a pinned TSA.

Pure: the TSA's key, certificate, time and serial number are passed in. Tokens are CMS
SignedData (RFC 5652) over a DER TSTInfo with the signed attributes content-type,
message-digest, signing-time and ESS signing-certificate-v2 (RFC 5816), signed with
ECDSA, so ``openssl ts -verify`` accepts them.

This module is the query, the reply and the TSA's side of them, plus what the verifier
shares (the types, the reply's ASN.1 shape, the TSA certificate's profile check).
Verification, which trusts exactly one configured TSA certificate as X-Road trusts the
TSA certificates listed in its global configuration, is ``gateway.pki.tsa_verify``.
Every refusal is a :class:`TimestampError` with a stable ``reason``
(:class:`TimestampFailure`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal

# asn1crypto ships no type information; its objects are typed as Any here.
from asn1crypto import cms, core, tsp  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core.errors import ReasonedError
from gateway.pki.keys import public_key_der, signature_hash
from gateway.pki.profiles import CertificateError, check_tsa_profile

HashName = Literal["sha256", "sha384", "sha512"]
HASH_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
"""Imprint algorithms a query may use; SHA-1 and MD5 are refused as ``badAlg``."""

DEFAULT_POLICY_OID = "2.25.251230808394048384528784013567864402667"
"""The development TSA's policy: a UUID OID (X.667), which needs no registered arc."""

# How far a genTime may lie ahead of the verifier's clock.
DEFAULT_SKEW = timedelta(seconds=60)


class TimestampFailure(StrEnum):
    """Why a time stamp was not accepted. Never rename a value: callers match on it."""

    MALFORMED = "malformed"
    REJECTED = "rejected"
    """The TSA answered a status other than granted."""
    BAD_SIGNATURE = "bad_signature"
    """The signature or the signed message digest does not match the token."""
    UNTRUSTED_TSA = "untrusted_tsa"
    """Signed by someone other than the configured TSA certificate."""
    BAD_TSA_CERTIFICATE = "bad_tsa_certificate"
    """The configured certificate may not sign time stamps (RFC 3161 section 2.3)."""
    IMPRINT_MISMATCH = "imprint_mismatch"
    NONCE_MISMATCH = "nonce_mismatch"
    POLICY_MISMATCH = "policy_mismatch"
    BAD_TIME = "bad_time"
    """genTime lies outside the TSA certificate's validity or ahead of the clock."""


class TimestampError(ReasonedError[TimestampFailure]):
    """A refused time stamp: ``reason`` for programs, ``detail`` for operators."""


class TimeStampResp(core.Sequence):  # type: ignore[misc]
    """TimeStampResp with timeStampToken OPTIONAL, as RFC 3161 section 2.4.2 declares it.

    asn1crypto's ``tsp.TimeStampResp`` makes the token mandatory, so it can neither
    build nor read a rejection, which by definition carries no token.
    """

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


# What asn1crypto raises on input it cannot parse: it decodes lazily, so a damaged field
# surfaces wherever it is first read, not at load().
PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError)


@dataclass(frozen=True)
class TimestampRequest:
    """The parts of a TimeStampReq that shape the reply."""

    imprint: bytes
    hash_algorithm: HashName
    nonce: int | None
    cert_req: bool
    policy_oid: str | None


@dataclass(frozen=True)
class VerifiedTimestamp:
    """A token that the configured TSA signed over ``imprint`` at ``gen_time``."""

    gen_time: datetime
    serial_number: int
    policy_oid: str
    hash_algorithm: HashName
    imprint: bytes
    nonce: int | None
    tsa_certificate: x509.Certificate


def hash_name(name: str) -> HashName:
    if name == "sha256":
        return "sha256"
    if name == "sha384":
        return "sha384"
    if name == "sha512":
        return "sha512"
    raise ValueError(f"hash algorithm {name!r} is not accepted; use sha256, sha384 or sha512")


def message_imprint(data: bytes, hash_algorithm: HashName = "sha256") -> bytes:
    """The digest of ``data`` that a query carries instead of the data itself."""
    return hashlib.new(hash_name(hash_algorithm), data).digest()


def _check_imprint_length(imprint: bytes, hash_algorithm: HashName) -> None:
    expected = HASH_ALGORITHMS[hash_algorithm]().digest_size
    if len(imprint) != expected:
        raise ValueError(f"a {hash_algorithm} imprint has {expected} bytes, got {len(imprint)}")


def build_timestamp_request(
    imprint: bytes,
    *,
    hash_algorithm: HashName = "sha256",
    nonce: int | None = None,
    cert_req: bool = True,
    policy_oid: str | None = None,
) -> bytes:
    """A DER TimeStampReq for a digest computed by the caller (see :func:`message_imprint`)."""
    hash_name(hash_algorithm)
    _check_imprint_length(imprint, hash_algorithm)
    fields: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": hash_algorithm},
            "hashed_message": imprint,
        },
        "cert_req": cert_req,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    if policy_oid is not None:
        fields["req_policy"] = policy_oid
    dumped: bytes = tsp.TimeStampReq(fields).dump()
    return dumped


def parse_timestamp_request(der: bytes) -> TimestampRequest:
    """Read a TimeStampReq, refusing (as ``malformed``) anything this TSA cannot honour."""
    try:
        req = tsp.TimeStampReq.load(der, strict=True)
        if req["version"].native != "v1":
            raise ValueError(f"version {req['version'].native} is not v1")
        if req["extensions"].native:
            raise ValueError("request extensions are not supported")
        imprint = req["message_imprint"]
        hash_algorithm = hash_name(imprint["hash_algorithm"]["algorithm"].native)
        hashed: bytes = imprint["hashed_message"].native
        _check_imprint_length(hashed, hash_algorithm)
        has_policy = req["req_policy"].native is not None
        return TimestampRequest(
            imprint=hashed,
            hash_algorithm=hash_algorithm,
            nonce=req["nonce"].native,
            cert_req=bool(req["cert_req"].native),
            policy_oid=req["req_policy"].dotted if has_policy else None,
        )
    except PARSE_ERRORS as exc:
        raise TimestampError(TimestampFailure.MALFORMED, f"bad time-stamp query: {exc}") from None


def build_rejection(fail_info: str, text: str) -> bytes:
    """An unsigned TimeStampResp with status rejection (fail_info as asn1crypto names it)."""
    status = {"status": "rejection", "status_string": [text], "fail_info": {fail_info}}
    dumped: bytes = TimeStampResp({"status": status}).dump()
    return dumped


def asn1_certificate(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _signed_attributes(
    tst_der: bytes, tsa: asn1_x509.Certificate, gen_time: datetime, digest_name: HashName
) -> cms.CMSAttributes:
    ess_cert_id = tsp.ESSCertIDv2(
        {
            "hash_algorithm": {"algorithm": "sha256"},
            "cert_hash": hashlib.sha256(tsa.dump()).digest(),
            "issuer_serial": {
                "issuer": [asn1_x509.GeneralName({"directory_name": tsa.issuer})],
                "serial_number": tsa.serial_number,
            },
        }
    )
    # RFC 5652 section 11.3: UTCTime up to 2049, GeneralizedTime after.
    signing_time = gen_time.replace(microsecond=0)
    time_choice = "utc_time" if signing_time.year < 2050 else "generalized_time"
    return cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute(
                {"type": "signing_time", "values": [cms.Time({time_choice: signing_time})]}
            ),
            cms.CMSAttribute(
                {
                    "type": "message_digest",
                    "values": [hashlib.new(digest_name, tst_der).digest()],
                }
            ),
            cms.CMSAttribute(
                {
                    "type": "signing_certificate_v2",
                    "values": [tsp.SigningCertificateV2({"certs": [ess_cert_id]})],
                }
            ),
        ]
    )


def build_timestamp_response(
    request_der: bytes,
    tsa_cert: x509.Certificate,
    tsa_key: ec.EllipticCurvePrivateKey,
    chain: list[x509.Certificate] | tuple[x509.Certificate, ...],
    gen_time: datetime,
    serial: int,
    policy_oid: str = DEFAULT_POLICY_OID,
) -> bytes:
    """A DER TimeStampResp answering ``request_der``: granted with a token, or a rejection.

    A query the TSA cannot honour gets an unsigned rejection (badDataFormat, badAlg,
    unacceptedPolicy) instead of an exception, because that is what the client must
    receive. The TSA certificate (then ``chain``) is included only when the query sets
    certReq, as RFC 3161 section 2.4.1 requires. Refuses to sign at all (ValueError or
    CertificateError) with a key or certificate that does not fit the TSA profile, or
    at a ``gen_time`` outside the certificate's validity: every verifier would refuse
    such a token, and those are the operator's mistakes, not the client's.
    """
    if gen_time.tzinfo is None or gen_time.utcoffset() is None:
        raise ValueError("gen_time must be a timezone-aware datetime")
    if not 0 < serial < 2**159:
        raise ValueError("serial must be positive and fit in 160 bits (RFC 3161)")
    if public_key_der(tsa_key) != public_key_der(tsa_cert):
        raise ValueError("the TSA key does not belong to the TSA certificate")
    check_tsa_profile(tsa_cert)
    if not tsa_cert.not_valid_before_utc <= gen_time <= tsa_cert.not_valid_after_utc:
        raise ValueError(
            f"the TSA certificate is not valid at {gen_time.isoformat()} (valid "
            f"{tsa_cert.not_valid_before_utc.isoformat()} to "
            f"{tsa_cert.not_valid_after_utc.isoformat()})"
        )
    try:
        req = tsp.TimeStampReq.load(request_der, strict=True)
        algorithm_name = req["message_imprint"]["hash_algorithm"]["algorithm"].native
    except PARSE_ERRORS:
        return build_rejection("bad_data_format", "the query is not a DER TimeStampReq")
    if algorithm_name not in HASH_ALGORITHMS:
        return build_rejection("bad_alg", f"hash algorithm {algorithm_name} is not accepted")
    try:
        request = parse_timestamp_request(request_der)
    except TimestampError as exc:
        return build_rejection("bad_data_format", exc.detail)
    if request.policy_oid is not None and request.policy_oid != policy_oid:
        return build_rejection("unaccepted_policy", f"this TSA only issues under {policy_oid}")

    tsa = asn1_certificate(tsa_cert)
    tst_fields: dict[str, Any] = {
        "version": "v1",
        "policy": policy_oid,
        "message_imprint": {
            "hash_algorithm": {"algorithm": request.hash_algorithm},
            "hashed_message": request.imprint,
        },
        "serial_number": serial,
        "gen_time": gen_time.astimezone(UTC),
        "tsa": asn1_x509.GeneralName({"directory_name": tsa.subject}),
    }
    if request.nonce is not None:
        tst_fields["nonce"] = request.nonce
    tst_der: bytes = tsp.TSTInfo(tst_fields).dump()

    digest_name = hash_name(signature_hash(tsa_key).name)
    attrs = _signed_attributes(tst_der, tsa, gen_time.astimezone(UTC), digest_name)
    # The signature covers the attributes' DER as a SET OF (tag 0x31), not as the [0]
    # IMPLICIT field they become inside SignerInfo (RFC 5652 section 5.4).
    signature = tsa_key.sign(attrs.dump(), ec.ECDSA(HASH_ALGORITHMS[digest_name]()))
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {"issuer": tsa.issuer, "serial_number": tsa.serial_number}
                    )
                }
            ),
            "digest_algorithm": {"algorithm": digest_name},
            "signed_attrs": attrs,
            "signature_algorithm": {"algorithm": f"{digest_name}_ecdsa"},
            "signature": signature,
        }
    )
    signed_data: dict[str, Any] = {
        "version": "v3",
        "digest_algorithms": [{"algorithm": digest_name}],
        "encap_content_info": {
            "content_type": "tst_info",
            "content": core.ParsableOctetString(tst_der),
        },
        "signer_infos": [signer_info],
    }
    if request.cert_req:
        signed_data["certificates"] = [tsa, *(asn1_certificate(c) for c in chain)]
    token = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})
    dumped: bytes = TimeStampResp(
        {"status": {"status": "granted"}, "time_stamp_token": token}
    ).dump()
    return dumped


def check_tsa_certificate(tsa_cert: x509.Certificate) -> None:
    """Refuse (``BAD_TSA_CERTIFICATE``) a configured TSA certificate outside RFC 3161's
    profile: what the issuing side refuses to sign with, the verifying side refuses to
    trust."""
    try:
        check_tsa_profile(tsa_cert)
    except CertificateError as exc:
        raise TimestampError(TimestampFailure.BAD_TSA_CERTIFICATE, str(exc)) from None
