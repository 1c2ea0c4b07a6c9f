"""RFC 3161 time stamps: queries, replies and tokens, and every way a token is refused.

Tokens that ``build_timestamp_response`` would never produce (a genTime outside the TSA
certificate's validity, a signer id naming another certificate) are made by
:func:`_resign`, which edits a real token and signs it again with the TSA's own key: the
verifier must catch them on content, not because the signature happens to break.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from asn1crypto import cms, core, tsp  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.pki import tsa as tsa_module
from gateway.pki.ca import create_root_ca, issue_service_certificate, make_service_csr
from gateway.pki.keys import generate_key
from gateway.pki.profiles import CertificateError, ServiceKind
from gateway.pki.tsa import (
    DEFAULT_POLICY_OID,
    DEFAULT_SKEW,
    HashName,
    TimestampError,
    TimestampFailure,
    VerifiedTimestamp,
    build_rejection,
    build_timestamp_request,
    build_timestamp_response,
    message_imprint,
    parse_timestamp_request,
)
from gateway.pki.tsa_verify import (
    timestamp_token_of,
    verify_timestamp_response,
    verify_timestamp_token,
)

ISSUED = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
NOW = datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
"""With a fraction of a second, which RFC 3161 genTime may carry and must keep."""
DATA = b"tree head 42 of DE-NRW/GOV/05974040/ss1"
IMPRINT = message_imprint(DATA)
OTHER_POLICY = "1.3.6.1.4.1.99999.1"


@dataclass(frozen=True)
class Pki:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    tsa_key: ec.EllipticCurvePrivateKey
    tsa: x509.Certificate
    other_key: ec.EllipticCurvePrivateKey
    other: x509.Certificate
    """Another TSA of the same CA: trusted by nobody who configured ``tsa``."""


def _issue_tsa(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    csr = make_service_csr(key, "DE-NRW time-stamping authority")
    return issue_service_certificate(csr, ServiceKind.TSA, ca_key, ca, ISSUED, days=30)


@functools.cache
def _pki() -> Pki:
    ca_key = generate_key()
    ca = create_root_ca("Development CA DE-NRW", ca_key, ISSUED)
    tsa_key, other_key = generate_key(), generate_key()
    return Pki(
        ca_key,
        ca,
        tsa_key,
        _issue_tsa(ca_key, ca, tsa_key),
        other_key,
        _issue_tsa(ca_key, ca, other_key),
    )


def _custom_tsa_cert(
    eku: list[x509.ObjectIdentifier] | None,
    critical: bool,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> x509.Certificate:
    """A certificate for the TSA key as a careless CA might issue it, signed by the real CA."""
    p = _pki()
    public_key = (key or p.tsa_key).public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "careless TSA")]))
        .issuer_name(p.ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(ISSUED)
        .not_valid_after(ISSUED + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=critical)
    return builder.sign(p.ca_key, hashes.SHA256())


def _query(
    imprint: bytes = IMPRINT,
    *,
    hash_algorithm: HashName = "sha256",
    nonce: int | None = 4711,
    cert_req: bool = True,
    policy_oid: str | None = None,
) -> bytes:
    return build_timestamp_request(
        imprint,
        hash_algorithm=hash_algorithm,
        nonce=nonce,
        cert_req=cert_req,
        policy_oid=policy_oid,
    )


def _reply(query: bytes | None = None, gen_time: datetime = NOW, serial: int = 17) -> bytes:
    p = _pki()
    query = _query() if query is None else query
    return build_timestamp_response(query, p.tsa, p.tsa_key, (), gen_time, serial)


def _token(query: bytes | None = None, gen_time: datetime = NOW) -> bytes:
    return timestamp_token_of(_reply(query, gen_time))


def _verify(token: bytes, **kwargs: Any) -> VerifiedTimestamp:
    options: dict[str, Any] = {"now": NOW, "issuer": _pki().ca, **kwargs}
    tsa_cert = options.pop("tsa_cert", _pki().tsa)
    imprint = options.pop("imprint", IMPRINT)
    return verify_timestamp_token(token, tsa_cert, imprint, **options)


def _refusal(token: bytes, **kwargs: Any) -> TimestampError:
    with pytest.raises(TimestampError) as info:
        _verify(token, **kwargs)
    return info.value


class _Reply(core.Sequence):  # type: ignore[misc]
    """RFC 3161's TimeStampResp, declared here independently of the code under test."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def _fail_info(response: bytes) -> tuple[str, set[str], list[str]]:
    """(status, failInfo names, statusString) of a reply."""
    status = _Reply.load(response, strict=True)["status"]
    return (
        status["status"].native,
        set(status["fail_info"].native or ()),
        list(status["status_string"].native or ()),
    )


def _resign(
    token: bytes,
    key: ec.EllipticCurvePrivateKey,
    *,
    tst: Callable[[Any], None] | None = None,
    signer: x509.Certificate | None = None,
) -> bytes:
    """``token`` with its TSTInfo edited by ``tst`` and/or its signer id pointed at
    ``signer``, with a message digest and signature that are correct again."""
    content_info = cms.ContentInfo.load(token)
    signed_data = content_info["content"]
    tst_info = tsp.TSTInfo.load(signed_data["encap_content_info"]["content"].contents)
    if tst is not None:
        tst(tst_info)
    tst_der = tst_info.dump(force=True)
    signed_data["encap_content_info"] = {
        "content_type": "tst_info",
        "content": core.ParsableOctetString(tst_der),
    }
    signer_info = signed_data["signer_infos"][0]
    attrs = []
    for attr in signer_info["signed_attrs"]:
        if attr["type"].native == "message_digest":
            attr = cms.CMSAttribute(
                {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]}
            )
        attrs.append(attr)
    signed_attrs = cms.CMSAttributes(attrs)
    signature = key.sign(signed_attrs.dump(force=True), ec.ECDSA(hashes.SHA256()))
    signer_info["signed_attrs"] = signed_attrs
    signer_info["signature"] = signature
    if signer is not None:
        named = asn1_x509.Certificate.load(signer.public_bytes(serialization.Encoding.DER))
        signer_info["sid"] = cms.SignerIdentifier(
            {
                "issuer_and_serial_number": {
                    "issuer": named.issuer,
                    "serial_number": named.serial_number,
                }
            }
        )
    dumped: bytes = content_info.dump(force=True)
    return dumped


def _set_gen_time(when: datetime) -> Callable[[Any], None]:
    def edit(tst_info: Any) -> None:
        tst_info["gen_time"] = core.GeneralizedTime(when)

    return edit


def _embedded_certificates(token: bytes) -> list[bytes]:
    certificates = cms.ContentInfo.load(token)["content"]["certificates"]
    return [c.chosen.dump() for c in certificates] if certificates.native else []


# --- round trips ----------------------------------------------------------------------------


def test_query_reply_verify_round_trip() -> None:
    p = _pki()
    reply = _reply(_query(policy_oid=DEFAULT_POLICY_OID), serial=2**158 + 1)

    stamp = verify_timestamp_response(
        reply,
        p.tsa,
        IMPRINT,
        now=NOW,
        expected_nonce=4711,
        issuer=p.ca,
        expected_policy=DEFAULT_POLICY_OID,
    )

    assert stamp == VerifiedTimestamp(
        gen_time=NOW,
        serial_number=2**158 + 1,
        policy_oid=DEFAULT_POLICY_OID,
        hash_algorithm="sha256",
        imprint=IMPRINT,
        nonce=4711,
        tsa_certificate=p.tsa,
    )
    assert _fail_info(reply)[0] == "granted"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=256),
    hash_algorithm=st.sampled_from(["sha256", "sha384", "sha512"]),
    nonce=st.none() | st.integers(min_value=0, max_value=2**160),
    cert_req=st.booleans(),
    seconds=st.integers(min_value=0, max_value=29 * 24 * 3600),
)
def test_round_trip_for_any_imprint_and_nonce(
    data: bytes, hash_algorithm: HashName, nonce: int | None, cert_req: bool, seconds: int
) -> None:
    p = _pki()
    imprint = message_imprint(data, hash_algorithm)
    when = ISSUED + timedelta(seconds=seconds)
    query = _query(imprint, hash_algorithm=hash_algorithm, nonce=nonce, cert_req=cert_req)

    parsed = parse_timestamp_request(query)
    assert (parsed.imprint, parsed.hash_algorithm, parsed.nonce, parsed.cert_req) == (
        imprint,
        hash_algorithm,
        nonce,
        cert_req,
    )
    stamp = verify_timestamp_response(
        _reply(query, when),
        p.tsa,
        imprint,
        hash_algorithm,
        now=when,
        expected_nonce=nonce,
        issuer=p.ca,
    )
    assert (stamp.gen_time, stamp.imprint, stamp.nonce, stamp.hash_algorithm) == (
        when,
        imprint,
        nonce,
        hash_algorithm,
    )


def test_cert_req_decides_whether_the_token_carries_the_tsa_certificate() -> None:
    p = _pki()
    tsa_der = p.tsa.public_bytes(serialization.Encoding.DER)
    with_cert = _token(_query(cert_req=True))
    without = _token(_query(cert_req=False))

    assert _embedded_certificates(with_cert) == [tsa_der]
    assert _embedded_certificates(without) == []
    # The verifier uses the configured certificate, so a bare token verifies just as well.
    assert _verify(without).serial_number == _verify(with_cert).serial_number == 17


def test_a_certificate_embedded_in_the_token_is_never_trusted() -> None:
    """The token carries ``tsa``; configured with ``other`` the verifier must refuse."""
    token = _token(_query(cert_req=True))
    assert _refusal(token, tsa_cert=_pki().other).reason is TimestampFailure.UNTRUSTED_TSA


# --- what the client asked for ----------------------------------------------------------------


def test_nonce_is_echoed_and_a_different_or_missing_one_is_refused() -> None:
    assert _verify(_token(_query(nonce=2**70))).nonce == 2**70
    assert _refusal(_token(), expected_nonce=4712).reason is TimestampFailure.NONCE_MISMATCH
    no_nonce = _token(_query(nonce=None))
    assert _verify(no_nonce).nonce is None
    assert _refusal(no_nonce, expected_nonce=4711).reason is TimestampFailure.NONCE_MISMATCH


def test_a_token_for_other_data_is_an_imprint_mismatch() -> None:
    token = _token()
    other = message_imprint(b"tree head 43")
    assert _refusal(token, imprint=other).reason is TimestampFailure.IMPRINT_MISMATCH
    # Same data, but the caller expects another algorithm than the token stamps.
    sha512 = message_imprint(DATA, "sha512")
    refused = _refusal(token, imprint=sha512, hash_algorithm="sha512")
    assert refused.reason is TimestampFailure.IMPRINT_MISMATCH


def test_policy_mismatch_and_unaccepted_policy() -> None:
    p = _pki()
    token = _token()
    assert _verify(token).policy_oid == DEFAULT_POLICY_OID
    refused = _refusal(token, expected_policy=OTHER_POLICY)
    assert refused.reason is TimestampFailure.POLICY_MISMATCH

    reply = _reply(_query(policy_oid=OTHER_POLICY))
    status, fail_info, text = _fail_info(reply)
    assert (status, fail_info) == ("rejection", {"unaccepted_policy"})
    assert DEFAULT_POLICY_OID in text[0]
    with pytest.raises(TimestampError) as info:
        verify_timestamp_response(reply, p.tsa, IMPRINT)
    assert info.value.reason is TimestampFailure.REJECTED
    assert "unaccepted_policy" in info.value.detail


def test_a_sha1_imprint_is_refused_as_bad_alg() -> None:
    p = _pki()
    with pytest.raises(ValueError, match="sha1"):
        sha1: Any = "sha1"  # what an untyped caller could pass
        build_timestamp_request(
            hashlib.sha1(DATA, usedforsecurity=False).digest(), hash_algorithm=sha1
        )
    sha1_query = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha1"},
                "hashed_message": hashlib.sha1(DATA, usedforsecurity=False).digest(),
            },
            "cert_req": True,
        }
    ).dump()

    reply = _reply(sha1_query)

    assert _fail_info(reply)[:2] == ("rejection", {"bad_alg"})
    with pytest.raises(TimestampError) as info:
        verify_timestamp_response(reply, p.tsa, IMPRINT)
    assert info.value.reason is TimestampFailure.REJECTED
    with pytest.raises(TimestampError) as parsed:
        parse_timestamp_request(sha1_query)
    assert parsed.value.reason is TimestampFailure.MALFORMED


def _req(**changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": IMPRINT},
        "cert_req": True,
        **changes,
    }
    dumped: bytes = tsp.TimeStampReq(fields).dump()
    return dumped


MALFORMED_QUERIES = {
    "empty": b"",
    "not-der": b"GET /tsa HTTP/1.1\r\n",
    "truncated": _req()[:-3],
    "trailing-garbage": _req() + b"\x00",
    "version-2": _req(version=2),
    "short-imprint": _req(
        message_imprint={"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x01"}
    ),
    "extensions": _req(
        extensions=[{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}]
    ),
}


@pytest.mark.parametrize("query", MALFORMED_QUERIES.values(), ids=MALFORMED_QUERIES.keys())
def test_malformed_queries_get_bad_data_format(query: bytes) -> None:
    with pytest.raises(TimestampError) as info:
        parse_timestamp_request(query)
    assert info.value.reason is TimestampFailure.MALFORMED
    assert _fail_info(_reply(query))[:2] == ("rejection", {"bad_data_format"})


def test_rejections_and_broken_replies_are_told_apart() -> None:
    p = _pki()
    rejection = build_rejection("system_failure", "the HSM is offline")
    with pytest.raises(TimestampError) as info:
        timestamp_token_of(rejection)
    assert info.value.reason is TimestampFailure.REJECTED
    assert "system_failure" in info.value.detail
    assert "the HSM is offline" in info.value.detail

    granted_without_token = b"\x30\x05\x30\x03\x02\x01\x00"
    for broken in (b"", b"\x30\x00", granted_without_token, _reply()[:-1]):
        with pytest.raises(TimestampError) as info:
            verify_timestamp_response(broken, p.tsa, IMPRINT)
        assert info.value.reason is TimestampFailure.MALFORMED, broken


# --- who signed -------------------------------------------------------------------------------


def test_a_token_of_another_tsa_is_untrusted() -> None:
    p = _pki()
    other = build_timestamp_response(_query(), p.other, p.other_key, (), NOW, 5)
    token = timestamp_token_of(other)
    assert _refusal(token).reason is TimestampFailure.UNTRUSTED_TSA
    assert _verify(token, tsa_cert=p.other).serial_number == 5


def test_another_key_claiming_to_be_the_tsa_has_a_bad_signature() -> None:
    """The other TSA names our certificate as signer: only the signature gives it away."""
    p = _pki()
    token = _resign(_token(), p.other_key, signer=p.tsa)
    assert _refusal(token).reason is TimestampFailure.BAD_SIGNATURE


def test_the_signing_certificate_attribute_binds_the_exact_certificate() -> None:
    """A second certificate for the same key (say, a revoked one) cannot adopt its tokens.

    The signer id is outside the signature, so pointing it at the twin still verifies the
    signature; the ESS signing-certificate attribute, which is signed, refuses it.
    """
    p = _pki()
    twin = _custom_tsa_cert([ExtendedKeyUsageOID.TIME_STAMPING], True)
    retargeted = _resign(_token(), p.tsa_key, signer=twin)
    assert _refusal(retargeted, tsa_cert=twin).reason is TimestampFailure.UNTRUSTED_TSA


def test_the_resign_helper_itself_yields_valid_tokens() -> None:
    """Without this, every refusal of a re-signed token below could be the helper's fault."""
    p = _pki()
    assert _verify(_resign(_token(), p.tsa_key)) == _verify(_token())


def test_tampered_tst_info_is_a_bad_signature() -> None:
    token = _token()
    assert token.count(IMPRINT) == 1
    forged = message_imprint(b"what the attacker wants stamped")
    tampered = token.replace(IMPRINT, forged)
    refused = _refusal(tampered, imprint=forged)
    assert refused.reason is TimestampFailure.BAD_SIGNATURE
    assert "message digest" in refused.detail


def test_tampered_signed_attributes_are_a_bad_signature() -> None:
    token = _token(_query(cert_req=False))
    signing_time = NOW.strftime("%y%m%d%H%M%SZ").encode()
    assert token.count(signing_time) == 1
    later = token.replace(
        signing_time, (NOW + timedelta(hours=1)).strftime("%y%m%d%H%M%SZ").encode()
    )
    assert _refusal(later).reason is TimestampFailure.BAD_SIGNATURE

    tst_der = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].contents
    digest = hashlib.sha256(tst_der).digest()
    assert token.count(digest) == 1
    flipped = token.replace(digest, bytes([digest[0] ^ 1]) + digest[1:])
    assert _refusal(flipped).reason is TimestampFailure.BAD_SIGNATURE


def test_a_flipped_signature_bit_is_a_bad_signature() -> None:
    token = _token()
    signature: bytes = cms.ContentInfo.load(token)["content"]["signer_infos"][0]["signature"].native
    assert token.count(signature) == 1
    tampered = token.replace(signature, signature[:-1] + bytes([signature[-1] ^ 1]))
    assert _refusal(tampered).reason is TimestampFailure.BAD_SIGNATURE


def test_wrong_issuer_is_refused() -> None:
    p = _pki()
    other_ca_key = generate_key()
    other_ca = create_root_ca("Some other CA", other_ca_key, ISSUED)
    # Same name as the real CA, different key: a name match alone must not do.
    impostor = create_root_ca("Development CA DE-NRW", other_ca_key, ISSUED)
    token = _token()
    for issuer in (other_ca, impostor):
        refused = _refusal(token, issuer=issuer)
        assert refused.reason is TimestampFailure.UNTRUSTED_TSA
    assert _verify(token, issuer=p.ca).gen_time == NOW
    assert _verify(token, issuer=None).gen_time == NOW


# --- the TSA certificate ----------------------------------------------------------------------


BAD_TSA_CERTIFICATES = {
    "eku-not-critical": ([ExtendedKeyUsageOID.TIME_STAMPING], False),
    "eku-with-extra-purpose": (
        [ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.SERVER_AUTH],
        True,
    ),
    "no-eku": (None, False),
    "wrong-eku": ([ExtendedKeyUsageOID.CODE_SIGNING], True),
}


@pytest.mark.parametrize(
    ("eku", "critical"), BAD_TSA_CERTIFICATES.values(), ids=BAD_TSA_CERTIFICATES.keys()
)
def test_a_certificate_outside_the_tsa_profile_neither_signs_nor_verifies(
    eku: list[x509.ObjectIdentifier] | None, critical: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _pki()
    careless = _custom_tsa_cert(eku, critical)
    with pytest.raises(CertificateError, match="TSA certificate"):
        build_timestamp_response(_query(), careless, p.tsa_key, (), NOW, 1)

    # A token that is perfect in every other respect: made with the profile check off.
    with monkeypatch.context() as patched:
        patched.setattr(tsa_module, "check_tsa_profile", lambda cert: None)
        token = timestamp_token_of(
            build_timestamp_response(_query(), careless, p.tsa_key, (), NOW, 1)
        )
        assert _verify(token, tsa_cert=careless).serial_number == 1
    refused = _refusal(token, tsa_cert=careless)
    assert refused.reason is TimestampFailure.BAD_TSA_CERTIFICATE


def test_the_builder_refuses_a_key_that_is_not_the_certificates() -> None:
    p = _pki()
    with pytest.raises(ValueError, match="does not belong"):
        build_timestamp_response(_query(), p.tsa, p.other_key, (), NOW, 1)


@pytest.mark.parametrize("serial", [0, -1, 2**159])
def test_the_builder_refuses_serials_rfc_3161_does_not_allow(serial: int) -> None:
    p = _pki()
    with pytest.raises(ValueError, match="serial"):
        build_timestamp_response(_query(), p.tsa, p.tsa_key, (), NOW, serial)


# --- time -------------------------------------------------------------------------------------


def test_gen_time_outside_the_tsa_certificate_validity_is_bad_time() -> None:
    p = _pki()
    for when in (
        p.tsa.not_valid_before_utc - timedelta(seconds=1),
        p.tsa.not_valid_after_utc + timedelta(seconds=1),
    ):
        token = _resign(_token(), p.tsa_key, tst=_set_gen_time(when))
        refused = _refusal(token, now=None)
        assert refused.reason is TimestampFailure.BAD_TIME
        assert "validity" in refused.detail
    # Validity is judged at genTime: a token stays good after its TSA certificate expires.
    later = p.tsa.not_valid_after_utc + timedelta(days=365)
    assert _verify(_token(), now=later).gen_time == NOW


def test_the_builder_will_not_stamp_outside_its_certificate_validity() -> None:
    p = _pki()
    with pytest.raises(ValueError, match="not valid"):
        _reply(gen_time=p.tsa.not_valid_after_utc + timedelta(seconds=1))
    with pytest.raises(ValueError, match="timezone"):
        _reply(gen_time=NOW.replace(tzinfo=None))


def test_gen_time_ahead_of_now_beyond_the_skew_is_bad_time() -> None:
    token = _token()
    assert _verify(token, now=NOW - DEFAULT_SKEW).gen_time == NOW
    refused = _refusal(token, now=NOW - DEFAULT_SKEW - timedelta(seconds=1))
    assert refused.reason is TimestampFailure.BAD_TIME
    assert "ahead" in refused.detail
    assert _verify(token, now=NOW - timedelta(seconds=5), skew=timedelta(seconds=5)).nonce == 4711
    with pytest.raises(ValueError, match="timezone"):
        _verify(token, now=NOW.replace(tzinfo=None))


# --- damaged input never escapes as anything but a TimestampError -----------------------------


@functools.cache
def _reference() -> tuple[bytes, bytes, VerifiedTimestamp]:
    query = _query()
    reply = _reply(query)
    return query, reply, _verify(timestamp_token_of(reply), expected_nonce=4711)


def _mutate(der: bytes, edits: list[tuple[int, int]]) -> bytes:
    damaged = bytearray(der)
    for position, value in edits:
        damaged[position % len(damaged)] = value
    return bytes(damaged)


EDITS = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(0, 255)),
    min_size=1,
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(edits=EDITS, truncate=st.integers(min_value=0, max_value=5))
def test_a_damaged_reply_verifies_unchanged_or_is_refused(
    edits: list[tuple[int, int]], truncate: int
) -> None:
    """Regression: asn1crypto parses lazily, and damage once escaped as UnicodeDecodeError,
    KeyError or AttributeError from deep inside the verifier."""
    _, reply, expected = _reference()
    damaged = _mutate(reply, edits)
    damaged = damaged[: len(damaged) - truncate]
    try:
        stamp = verify_timestamp_response(
            damaged, _pki().tsa, IMPRINT, now=NOW, expected_nonce=4711, issuer=_pki().ca
        )
    except TimestampError:
        return
    assert stamp == expected


@settings(max_examples=100, deadline=None)
@given(edits=EDITS)
def test_a_damaged_query_is_answered_not_raised(edits: list[tuple[int, int]]) -> None:
    """Regression: every rejection once crashed, because asn1crypto's TimeStampResp
    requires a token that a rejection cannot have."""
    query, _, _ = _reference()
    damaged = _mutate(query, edits)
    reply = _reply(damaged)
    try:
        request = parse_timestamp_request(damaged)
    except TimestampError:
        assert _fail_info(reply)[0] == "rejection"
        return
    if request.policy_oid not in (None, DEFAULT_POLICY_OID):
        assert _fail_info(reply)[1] == {"unaccepted_policy"}
        return
    stamp = verify_timestamp_response(
        reply, _pki().tsa, request.imprint, request.hash_algorithm, expected_nonce=request.nonce
    )
    assert stamp.imprint == request.imprint
