"""RFC 3161 time stamps: build queries and replies, and verify tokens against a pinned TSA.

Pure: the TSA's key, certificate, time and serial number are passed in. Tokens are CMS
SignedData (RFC 5652) over a DER TSTInfo with the signed attributes content-type,
message-digest, signing-time and ESS signing-certificate-v2 (RFC 5816), signed with
ECDSA, so ``openssl ts -verify`` accepts them.

Verification trusts exactly one configured TSA certificate, as X-Road trusts the TSA
certificates listed in its global configuration: certificates embedded in a token are
never used to decide who signed it. Every refusal is a :class:`TimestampError` with a
stable ``reason`` (:class:`TimestampFailure`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal

# asn1crypto ships no type information; its objects are typed as Any here.
from asn1crypto import algos, cms, core, tsp  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

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


class _TimeStampResp(core.Sequence):  # type: ignore[misc]
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
_PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError)


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


def _hash_name(name: str) -> HashName:
    if name == "sha256":
        return "sha256"
    if name == "sha384":
        return "sha384"
    if name == "sha512":
        return "sha512"
    raise ValueError(f"hash algorithm {name!r} is not accepted; use sha256, sha384 or sha512")


def message_imprint(data: bytes, hash_algorithm: HashName = "sha256") -> bytes:
    """The digest of ``data`` that a query carries instead of the data itself."""
    return hashlib.new(_hash_name(hash_algorithm), data).digest()


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
    _hash_name(hash_algorithm)
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
        hash_algorithm = _hash_name(imprint["hash_algorithm"]["algorithm"].native)
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
    except _PARSE_ERRORS as exc:
        raise TimestampError(TimestampFailure.MALFORMED, f"bad time-stamp query: {exc}") from None


def build_rejection(fail_info: str, text: str) -> bytes:
    """An unsigned TimeStampResp with status rejection (fail_info as asn1crypto names it)."""
    status = {"status": "rejection", "status_string": [text], "fail_info": {fail_info}}
    dumped: bytes = _TimeStampResp({"status": status}).dump()
    return dumped


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
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
    except _PARSE_ERRORS:
        return build_rejection("bad_data_format", "the query is not a DER TimeStampReq")
    if algorithm_name not in HASH_ALGORITHMS:
        return build_rejection("bad_alg", f"hash algorithm {algorithm_name} is not accepted")
    try:
        request = parse_timestamp_request(request_der)
    except TimestampError as exc:
        return build_rejection("bad_data_format", exc.detail)
    if request.policy_oid is not None and request.policy_oid != policy_oid:
        return build_rejection("unaccepted_policy", f"this TSA only issues under {policy_oid}")

    tsa = _asn1_cert(tsa_cert)
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

    digest_name = _hash_name(signature_hash(tsa_key).name)
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
        signed_data["certificates"] = [tsa, *(_asn1_cert(c) for c in chain)]
    token = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})
    dumped: bytes = _TimeStampResp(
        {"status": {"status": "granted"}, "time_stamp_token": token}
    ).dump()
    return dumped


def timestamp_token_of(response_der: bytes) -> bytes:
    """The token (a DER ContentInfo) in a granted TimeStampResp.

    The token is returned as received and parsed only by the verifier, which reads just
    the parts it needs: certificates a TSA adds for convenience are never decoded here.
    """
    try:
        response = _TimeStampResp.load(response_der, strict=True)
        status_info = response["status"]
        status = status_info["status"].native
        if status not in ("granted", "granted_with_mods"):
            text = "; ".join(status_info["status_string"].native or [])
            fail = ", ".join(sorted(status_info["fail_info"].native or []))
        token = response["time_stamp_token"]
        has_token = not isinstance(token, core.Void)
    except _PARSE_ERRORS as exc:
        raise TimestampError(TimestampFailure.MALFORMED, f"not a TimeStampResp: {exc}") from None
    if status not in ("granted", "granted_with_mods"):
        raise TimestampError(
            TimestampFailure.REJECTED,
            f"the TSA answered {status}"
            + (f" ({fail})" if fail else "")
            + (f": {text}" if text else ""),
        )
    if not has_token:
        raise TimestampError(TimestampFailure.MALFORMED, "granted without a token")
    dumped: bytes = token.dump()
    return dumped


def _set_of_encoding(attrs: cms.CMSAttributes) -> bytes:
    """The signed attributes as received, re-tagged from [0] IMPLICIT to SET OF."""
    received: bytes = attrs.dump()
    return b"\x31" + received[1:]


def _attribute(attrs: cms.CMSAttributes, name: str) -> Any:
    values = [a["values"] for a in attrs if a["type"].native == name]
    if len(values) != 1 or len(values[0]) != 1:
        raise TimestampError(
            TimestampFailure.MALFORMED, f"signed attribute {name} must occur exactly once"
        )
    return values[0][0]


def _check_signer_id(signer_info: cms.SignerInfo, tsa: asn1_x509.Certificate) -> None:
    sid = signer_info["sid"]
    if sid.name == "issuer_and_serial_number":
        chosen = sid.chosen
        same = chosen["issuer"] == tsa.issuer and chosen["serial_number"].native == (
            tsa.serial_number
        )
    else:
        same = tsa.key_identifier is not None and sid.chosen.native == tsa.key_identifier
    if not same:
        raise TimestampError(
            TimestampFailure.UNTRUSTED_TSA, "the token names another signer than the trusted TSA"
        )


def _check_ess(attrs: cms.CMSAttributes, tsa: asn1_x509.Certificate) -> None:
    """The signing-certificate attribute must point at the trusted TSA certificate.

    It binds the certificate into the signature (RFC 5035), so a token cannot be
    re-attributed to another certificate that shares the key.
    """
    names = {a["type"].native for a in attrs}
    if "signing_certificate_v2" in names:
        cert_id = _attribute(attrs, "signing_certificate_v2")["certs"][0]
        algorithm = cert_id["hash_algorithm"]["algorithm"].native
    elif "signing_certificate" in names:
        cert_id = _attribute(attrs, "signing_certificate")["certs"][0]
        algorithm = "sha1"
    else:
        raise TimestampError(
            TimestampFailure.MALFORMED, "no ESS signing-certificate attribute (RFC 3161 2.4.2)"
        )
    if algorithm not in ("sha1", *HASH_ALGORITHMS):
        raise TimestampError(
            TimestampFailure.MALFORMED, f"ESS certificate hash {algorithm} is not supported"
        )
    if hashlib.new(algorithm, tsa.dump()).digest() != cert_id["cert_hash"].native:
        raise TimestampError(
            TimestampFailure.UNTRUSTED_TSA,
            "the token's signing-certificate attribute names another certificate",
        )
    issuer_serial = cert_id["issuer_serial"]
    if issuer_serial.native is not None and (
        issuer_serial["serial_number"].native != tsa.serial_number
    ):
        raise TimestampError(
            TimestampFailure.UNTRUSTED_TSA,
            "the token's signing-certificate attribute names another serial",
        )


def _verify_signature(
    signer_info: cms.SignerInfo, signed_bytes: bytes, cert: x509.Certificate
) -> None:
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    sig_algorithm: algos.SignedDigestAlgorithm = signer_info["signature_algorithm"]
    if digest_name not in HASH_ALGORITHMS:
        raise TimestampError(
            TimestampFailure.BAD_SIGNATURE, f"digest algorithm {digest_name} is not accepted"
        )
    try:
        named_hash = sig_algorithm.hash_algo
    except ValueError:
        named_hash = digest_name
    if named_hash != digest_name:
        raise TimestampError(
            TimestampFailure.BAD_SIGNATURE,
            f"signature hash {named_hash} differs from the digest algorithm {digest_name}",
        )
    algorithm = HASH_ALGORITHMS[digest_name]()
    signature: bytes = signer_info["signature"].native
    public_key = cert.public_key()
    try:
        kind = sig_algorithm.signature_algo
    except ValueError:
        raise TimestampError(
            TimestampFailure.BAD_SIGNATURE,
            f"signature algorithm {sig_algorithm['algorithm'].dotted} is not supported",
        ) from None
    try:
        if kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, signed_bytes, ec.ECDSA(algorithm))
        elif kind == "rsassa_pkcs1v15" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, signed_bytes, padding.PKCS1v15(), algorithm)
        else:
            raise TimestampError(
                TimestampFailure.BAD_SIGNATURE,
                f"a {kind} signature does not fit the TSA's {type(public_key).__name__}",
            )
    except InvalidSignature:
        raise TimestampError(
            TimestampFailure.BAD_SIGNATURE, "the token signature does not verify"
        ) from None


def _parse_token(
    token_der: bytes,
) -> tuple[cms.SignerInfo, bytes, tsp.TSTInfo]:
    content_info = cms.ContentInfo.load(token_der, strict=True)
    if content_info["content_type"].native != "signed_data":
        raise ValueError(f"content type {content_info['content_type'].native}, not signed_data")
    signed_data = content_info["content"]
    encap = signed_data["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise ValueError(f"encapsulated {encap['content_type'].native}, not tst_info")
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise ValueError(f"{len(signer_infos)} signer infos; a token has exactly one")
    tst_der: bytes = encap["content"].contents
    tst_info = tsp.TSTInfo.load(tst_der, strict=True)
    if tst_info.native["version"] != "v1":  # .native parses every field: damage shows here
        raise ValueError(f"TSTInfo version {tst_info['version'].native} is not v1")
    signer_info = signer_infos[0]
    if signer_info["signed_attrs"].native is None:
        raise ValueError("the signer info has no signed attributes")
    return signer_info, tst_der, tst_info


def verify_timestamp_token(
    token_der: bytes,
    tsa_cert: x509.Certificate,
    expected_imprint: bytes,
    hash_algorithm: HashName = "sha256",
    *,
    now: datetime | None = None,
    expected_nonce: int | None = None,
    issuer: x509.Certificate | None = None,
    expected_policy: str | None = None,
    skew: timedelta = DEFAULT_SKEW,
) -> VerifiedTimestamp:
    """Accept ``token_der`` only if the trusted TSA signed it over ``expected_imprint``.

    ``tsa_cert`` comes from configuration, not from the token. It must fit RFC 3161's
    profile (critical id-kp-timeStamping, nothing else) and, when ``issuer`` is given,
    be issued by it. genTime must lie within the TSA certificate's validity (a token
    outlives its TSA certificate, so validity is judged at genTime, not now) and, when
    ``now`` is given, not ahead of it by more than ``skew``.
    """
    try:
        check_tsa_profile(tsa_cert)
    except CertificateError as exc:
        raise TimestampError(TimestampFailure.BAD_TSA_CERTIFICATE, str(exc)) from None
    if issuer is not None:
        try:
            if tsa_cert.issuer != issuer.subject:
                raise ValueError("issuer name differs")
            tsa_cert.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            raise TimestampError(
                TimestampFailure.UNTRUSTED_TSA,
                f"the TSA certificate is not issued by {issuer.subject.rfc4514_string()}",
            ) from None
    if now is not None and (now.tzinfo is None or now.utcoffset() is None):
        raise ValueError("now must be a timezone-aware datetime")
    try:
        return _check_token(
            token_der,
            tsa_cert,
            expected_imprint,
            hash_algorithm,
            now,
            expected_nonce,
            expected_policy,
            skew,
        )
    except _PARSE_ERRORS as exc:
        # asn1crypto parses lazily: a damaged field can surface at any read below.
        raise TimestampError(TimestampFailure.MALFORMED, f"not a time-stamp token: {exc}") from None


def _check_token(
    token_der: bytes,
    tsa_cert: x509.Certificate,
    expected_imprint: bytes,
    hash_algorithm: HashName,
    now: datetime | None,
    expected_nonce: int | None,
    expected_policy: str | None,
    skew: timedelta,
) -> VerifiedTimestamp:
    signer_info, tst_der, tst_info = _parse_token(token_der)
    attrs: cms.CMSAttributes = signer_info["signed_attrs"]
    attrs.native  # noqa: B018 - parse every attribute before trusting any of them

    tsa = _asn1_cert(tsa_cert)
    _check_signer_id(signer_info, tsa)
    _verify_signature(signer_info, _set_of_encoding(attrs), tsa_cert)
    if _attribute(attrs, "content_type").native != "tst_info":
        raise TimestampError(TimestampFailure.BAD_SIGNATURE, "signed content type is not tst_info")
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    if _attribute(attrs, "message_digest").native != hashlib.new(digest_name, tst_der).digest():
        raise TimestampError(
            TimestampFailure.BAD_SIGNATURE, "the signed message digest does not match TSTInfo"
        )
    _check_ess(attrs, tsa)

    imprint = tst_info["message_imprint"]
    token_hash = imprint["hash_algorithm"]["algorithm"].native
    if token_hash != hash_algorithm or imprint["hashed_message"].native != expected_imprint:
        raise TimestampError(
            TimestampFailure.IMPRINT_MISMATCH,
            f"the token stamps another {token_hash} digest than the expected {hash_algorithm}",
        )
    nonce: int | None = tst_info["nonce"].native
    if expected_nonce is not None and nonce != expected_nonce:
        raise TimestampError(
            TimestampFailure.NONCE_MISMATCH, f"nonce {nonce} differs from the query's"
        )
    policy = tst_info["policy"].dotted
    if expected_policy is not None and policy != expected_policy:
        raise TimestampError(
            TimestampFailure.POLICY_MISMATCH, f"policy {policy}, expected {expected_policy}"
        )
    gen_time: datetime = tst_info["gen_time"].native
    if not tsa_cert.not_valid_before_utc <= gen_time <= tsa_cert.not_valid_after_utc:
        raise TimestampError(
            TimestampFailure.BAD_TIME,
            f"genTime {gen_time.isoformat()} is outside the TSA certificate's validity",
        )
    if now is not None and gen_time > now + skew:
        raise TimestampError(
            TimestampFailure.BAD_TIME,
            f"genTime {gen_time.isoformat()} is ahead of {now.isoformat()} by more than "
            f"{skew.total_seconds():g} s",
        )
    return VerifiedTimestamp(
        gen_time=gen_time,
        serial_number=tst_info["serial_number"].native,
        policy_oid=policy,
        hash_algorithm=_hash_name(token_hash),
        imprint=imprint["hashed_message"].native,
        nonce=nonce,
        tsa_certificate=tsa_cert,
    )


def verify_timestamp_response(
    response_der: bytes,
    tsa_cert: x509.Certificate,
    expected_imprint: bytes,
    hash_algorithm: HashName = "sha256",
    *,
    now: datetime | None = None,
    expected_nonce: int | None = None,
    issuer: x509.Certificate | None = None,
    expected_policy: str | None = None,
    skew: timedelta = DEFAULT_SKEW,
) -> VerifiedTimestamp:
    """:func:`verify_timestamp_token` on the token of a granted TimeStampResp."""
    return verify_timestamp_token(
        timestamp_token_of(response_der),
        tsa_cert,
        expected_imprint,
        hash_algorithm,
        now=now,
        expected_nonce=expected_nonce,
        issuer=issuer,
        expected_policy=expected_policy,
        skew=skew,
    )
