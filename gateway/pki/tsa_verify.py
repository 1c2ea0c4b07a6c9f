"""Verifying an RFC 3161 time-stamp token against the one trusted TSA certificate.

The node's timestamper, the tree-head checks in core and the offline audit verifier
all accept a token only through here: its CMS SignedData is parsed strictly, its one
SignerInfo must name the configured TSA certificate (issuer and serial or key id, and
the ESS signing-certificate attribute), the signature over the signed attributes must
verify with that certificate's key, and the TSTInfo must stamp the expected imprint
(nonce and policy when given) at a genTime within the certificate's validity and not
ahead of the clock. Certificates embedded in a token are never used to decide who
signed it. Building queries and answering them (the TSA's side) and the types and
errors both sides share are in ``gateway.pki.tsa``.

Pure: the trusted certificate and the time are passed in.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

# asn1crypto ships no type information; its objects are typed as Any here.
from asn1crypto import algos, cms, core, tsp  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from gateway.pki.tsa import (
    DEFAULT_SKEW,
    HASH_ALGORITHMS,
    PARSE_ERRORS,
    HashName,
    TimestampError,
    TimestampFailure,
    TimeStampResp,
    VerifiedTimestamp,
    asn1_certificate,
    check_tsa_certificate,
    hash_name,
)

__all__ = ["timestamp_token_of", "verify_timestamp_response", "verify_timestamp_token"]


def timestamp_token_of(response_der: bytes) -> bytes:
    """The token (a DER ContentInfo) in a granted TimeStampResp.

    The token is returned as received and parsed only by the verifier, which reads just
    the parts it needs: certificates a TSA adds for convenience are never decoded here.
    """
    try:
        response = TimeStampResp.load(response_der, strict=True)
        status_info = response["status"]
        status = status_info["status"].native
        if status not in ("granted", "granted_with_mods"):
            text = "; ".join(status_info["status_string"].native or [])
            fail = ", ".join(sorted(status_info["fail_info"].native or []))
        token = response["time_stamp_token"]
        has_token = not isinstance(token, core.Void)
    except PARSE_ERRORS as exc:
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
) -> tuple[cms.SignerInfo, bytes, tsp.TSTInfo, bytes]:
    """The token's signer info, TSTInfo (DER and parsed) and signed attributes as the
    signature covers them (:func:`_set_of_encoding`), the latter taken before anything
    reads them: asn1crypto re-encodes a value once ``.native`` has walked it, which
    cost a token more than all its other checks (an audit verifies one per tree head),
    while the bytes as received are what was signed."""
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
    attrs = signer_info["signed_attrs"]
    signed = _set_of_encoding(attrs)
    if attrs.native is None:
        raise ValueError("the signer info has no signed attributes")
    return signer_info, tst_der, tst_info, signed


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
    check_tsa_certificate(tsa_cert)
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
    except PARSE_ERRORS as exc:
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
    signer_info, tst_der, tst_info, signed = _parse_token(token_der)
    attrs: cms.CMSAttributes = signer_info["signed_attrs"]
    attrs.native  # noqa: B018 - parse every attribute before trusting any of them

    tsa = asn1_certificate(tsa_cert)
    _check_signer_id(signer_info, tsa)
    _verify_signature(signer_info, signed, tsa_cert)
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
        hash_algorithm=hash_name(token_hash),
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
