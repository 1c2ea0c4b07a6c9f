"""OCSP responses (RFC 6960), the responder certificate profile and the revocation database.

Every :class:`OcspFailure` has a crafted response that produces it; the crafted ones are
signed with ``cryptography``'s builder directly, because ``build_ocsp_response`` refuses
to sign for responders that are not delegated, which is exactly what a forger would do.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.ids import NodeId
from gateway.keys.files import load_certificate, new_key_and_csr
from gateway.pki.ca import (
    create_root_ca,
    issue_certificate,
    issue_service_certificate,
    make_csr,
    make_service_csr,
)
from gateway.pki.keys import generate_key
from gateway.pki.ocsp import (
    DEFAULT_FRESHNESS,
    DEFAULT_SKEW,
    OcspError,
    OcspFailure,
    build_error_response,
    build_ocsp_request,
    build_ocsp_response,
    cert_id_for,
    parse_ocsp_request,
    verify_ocsp_response,
)
from gateway.pki.profiles import (
    CertificateError,
    CertKind,
    ServiceKind,
    check_ocsp_responder_profile,
    node_id_of,
)
from gateway.pki.status import GOOD, UNKNOWN, RevocationError, Revoked, parse_reason, parse_serial
from gateway.trust.ca_store import init_ca, issue_from_csr, issue_service
from gateway.trust.revocation import REVOKED_DB_NAME, load_revocations, revoke, status_of

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NODE = NodeId("DE-NRW", "GOV", "05974040", "ss1")
F = DEFAULT_FRESHNESS


@dataclass(frozen=True)
class Pki:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    responder_key: ec.EllipticCurvePrivateKey
    responder: x509.Certificate
    leaf: x509.Certificate
    other_leaf: x509.Certificate


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> x509.Certificate:
    csr = make_csr(generate_key(), CertKind.AUTH, NODE)
    return issue_certificate(csr, CertKind.AUTH, ca_key, ca, NOW)


def _responder(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, days: int = 90
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = generate_key()
    csr = make_service_csr(key, "DE-NRW OCSP responder")
    return key, issue_service_certificate(csr, ServiceKind.OCSP, ca_key, ca, NOW, days)


@functools.cache
def _pki() -> Pki:
    ca_key = generate_key()
    ca = create_root_ca("Development CA DE-NRW", ca_key, NOW)
    responder_key, responder = _responder(ca_key, ca)
    return Pki(ca_key, ca, responder_key, responder, _leaf(ca_key, ca), _leaf(ca_key, ca))


def _good(
    this_update: datetime = NOW,
    next_update: datetime | None = NOW + F,
    *,
    encoding: ocsp.OCSPResponderEncoding = ocsp.OCSPResponderEncoding.HASH,
) -> bytes:
    p = _pki()
    return build_ocsp_response(
        cert_id_for(p.leaf, p.ca),
        GOOD,
        this_update,
        next_update,
        p.responder,
        p.responder_key,
        p.ca,
        responder_id=encoding,
    )


def _forged(
    signer: x509.Certificate,
    signer_key: ec.EllipticCurvePrivateKey,
    *,
    about: x509.Certificate | None = None,
    certs: list[x509.Certificate] | None = None,
    encoding: ocsp.OCSPResponderEncoding = ocsp.OCSPResponderEncoding.HASH,
) -> bytes:
    """A good status for the leaf signed by anyone, as ``build_ocsp_response`` never would."""
    p = _pki()
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            about or p.leaf, p.ca, hashes.SHA1(), ocsp.OCSPCertStatus.GOOD, NOW, NOW + F, None, None
        )
        .responder_id(encoding, signer)
    )
    embedded = [signer] if certs is None else certs
    if embedded:  # an empty list means "no certs field at all"
        builder = builder.certificates(embedded)
    response = builder.sign(signer_key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


def _reason(der: bytes, now: datetime = NOW, **kwargs: timedelta) -> OcspFailure:
    p = _pki()
    with pytest.raises(OcspError) as info:
        verify_ocsp_response(der, p.leaf, p.ca, now, **kwargs)
    return info.value.reason


def _flip(der: bytes, index: int) -> bytes:
    return der[:index] + bytes([der[index] ^ 0x01]) + der[index + 1 :]


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding", [ocsp.OCSPResponderEncoding.HASH, ocsp.OCSPResponderEncoding.NAME]
)
def test_good_status_round_trip_with_delegated_responder(
    encoding: ocsp.OCSPResponderEncoding,
) -> None:
    p = _pki()
    verified = verify_ocsp_response(_good(encoding=encoding), p.leaf, p.ca, NOW)
    assert verified.serial_number == p.leaf.serial_number
    assert verified.this_update == NOW
    assert verified.next_update == NOW + F
    assert verified.responder == p.responder
    parsed = ocsp.load_der_ocsp_response(_good(encoding=encoding))
    assert parsed.certificates == [p.responder]
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD


def test_the_ca_itself_may_answer_and_sha256_cert_ids_work() -> None:
    p = _pki()
    cert_id = cert_id_for(p.leaf, p.ca, hashes.SHA256())
    der = build_ocsp_response(cert_id, GOOD, NOW, None, p.ca, p.ca_key, p.ca)
    verified = verify_ocsp_response(der, p.leaf, p.ca, NOW)
    assert verified.responder == p.ca
    assert verified.next_update is None


def test_revoked_round_trip_carries_time_and_reason() -> None:
    p = _pki()
    revoked_at = NOW - timedelta(hours=2)
    der = build_ocsp_response(
        cert_id_for(p.leaf, p.ca),
        Revoked(revoked_at, x509.ReasonFlags.key_compromise),
        NOW,
        NOW + F,
        p.responder,
        p.responder_key,
        p.ca,
    )
    parsed = ocsp.load_der_ocsp_response(der)
    assert parsed.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert parsed.revocation_time_utc == revoked_at
    assert parsed.revocation_reason is x509.ReasonFlags.key_compromise
    with pytest.raises(OcspError) as info:
        verify_ocsp_response(der, p.leaf, p.ca, NOW)
    assert info.value.reason is OcspFailure.REVOKED
    assert "keyCompromise" in info.value.detail
    # Revocation is final: reported as such even once the response is stale.
    assert _reason(der, NOW + 2 * F) is OcspFailure.REVOKED


def test_unspecified_reason_is_left_out_as_rfc_5280_asks() -> None:
    p = _pki()
    der = build_ocsp_response(
        cert_id_for(p.leaf, p.ca),
        Revoked(NOW, x509.ReasonFlags.unspecified),
        NOW,
        NOW + F,
        p.responder,
        p.responder_key,
        p.ca,
    )
    assert ocsp.load_der_ocsp_response(der).revocation_reason is None


def test_unknown_round_trip() -> None:
    p = _pki()
    der = build_ocsp_response(
        cert_id_for(p.leaf, p.ca), UNKNOWN, NOW, NOW + F, p.responder, p.responder_key, p.ca
    )
    assert ocsp.load_der_ocsp_response(der).certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert _reason(der) is OcspFailure.UNKNOWN


def test_request_round_trip_and_cert_id_echo() -> None:
    p = _pki()
    for algorithm in (hashes.SHA1(), hashes.SHA256(), hashes.SHA512()):
        cert_id = parse_ocsp_request(build_ocsp_request(p.leaf, p.ca, algorithm))
        assert cert_id == cert_id_for(p.leaf, p.ca, algorithm)
        assert cert_id.is_issued_by(p.ca)
        der = build_ocsp_response(cert_id, GOOD, NOW, NOW + F, p.responder, p.responder_key, p.ca)
        single = ocsp.load_der_ocsp_response(der)
        assert single.hash_algorithm.name == algorithm.name
        assert single.issuer_key_hash == cert_id.issuer_key_hash
        verify_ocsp_response(der, p.leaf, p.ca, NOW)


def test_builder_refuses_what_a_responder_must_never_sign() -> None:
    p = _pki()
    cert_id = cert_id_for(p.leaf, p.ca)
    foreign_key = generate_key()
    foreign_ca = create_root_ca("Some Other CA", foreign_key, NOW)
    foreign_id = cert_id_for(_leaf(foreign_key, foreign_ca), foreign_ca)
    with pytest.raises(ValueError, match="another issuer"):
        build_ocsp_response(foreign_id, GOOD, NOW, None, p.responder, p.responder_key, p.ca)
    # "unknown" is the honest answer about another CA's certificate.
    build_ocsp_response(foreign_id, UNKNOWN, NOW, None, p.responder, p.responder_key, p.ca)
    with pytest.raises(ValueError, match="does not belong"):
        build_ocsp_response(cert_id, GOOD, NOW, None, p.responder, generate_key(), p.ca)
    leaf_key = generate_key()
    leaf = issue_certificate(
        make_csr(leaf_key, CertKind.AUTH, NODE), CertKind.AUTH, p.ca_key, p.ca, NOW
    )
    with pytest.raises(ValueError, match="not delegated"):
        build_ocsp_response(cert_id, GOOD, NOW, None, leaf, leaf_key, p.ca)
    with pytest.raises(ValueError, match="next_update"):
        build_ocsp_response(
            cert_id, GOOD, NOW, NOW - timedelta(1), p.responder, p.responder_key, p.ca
        )
    with pytest.raises(ValueError, match="signed"):
        build_error_response(ocsp.OCSPResponseStatus.SUCCESSFUL)


def test_malformed_requests_are_refused() -> None:
    p = _pki()
    with pytest.raises(OcspError) as info:
        parse_ocsp_request(b"\x30\x03\x02\x01\x01")
    assert info.value.reason is OcspFailure.MALFORMED
    request = build_ocsp_request(p.leaf, p.ca)
    with pytest.raises(OcspError):
        parse_ocsp_request(request[:-3])


# --- every failure reason -------------------------------------------------------------------


def _case_malformed() -> OcspFailure:
    return _reason(b"not an OCSP response")


def _case_unsuccessful() -> OcspFailure:
    return _reason(build_error_response(ocsp.OCSPResponseStatus.TRY_LATER))


def _case_responder_without_ocsp_signing() -> OcspFailure:
    # An auth certificate of the same CA: valid, issued by the CA, but not delegated.
    p = _pki()
    key = generate_key()
    auth = issue_certificate(make_csr(key, CertKind.AUTH, NODE), CertKind.AUTH, p.ca_key, p.ca, NOW)
    return _reason(_forged(auth, key))


def _case_responder_from_another_ca() -> OcspFailure:
    # Same CA name, different key: only the signature on the responder cert tells them apart.
    impostor_key = generate_key()
    impostor_ca = create_root_ca("Development CA DE-NRW", impostor_key, NOW)
    key, responder = _responder(impostor_key, impostor_ca)
    return _reason(_forged(responder, key, encoding=ocsp.OCSPResponderEncoding.NAME))


def _case_bad_signature() -> OcspFailure:
    der = _good()
    signature = ocsp.load_der_ocsp_response(der).signature
    end = der.index(signature) + len(signature)
    return _reason(_flip(der, end - 1))


def _case_wrong_certificate() -> OcspFailure:
    p = _pki()
    return _reason(_forged(p.responder, p.responder_key, about=p.other_leaf))


def _case_revoked() -> OcspFailure:
    p = _pki()
    status = Revoked(NOW, x509.ReasonFlags.superseded)
    der = build_ocsp_response(
        cert_id_for(p.leaf, p.ca), status, NOW, None, p.responder, p.responder_key, p.ca
    )
    return _reason(der)


def _case_unknown() -> OcspFailure:
    p = _pki()
    der = build_ocsp_response(
        cert_id_for(p.leaf, p.ca), UNKNOWN, NOW, None, p.responder, p.responder_key, p.ca
    )
    return _reason(der)


def _case_stale() -> OcspFailure:
    return _reason(_good(next_update=None), NOW + F + timedelta(seconds=1))


def _case_expired() -> OcspFailure:
    return _reason(_good(next_update=NOW + timedelta(minutes=10)), NOW + timedelta(minutes=11))


def _case_not_yet_valid() -> OcspFailure:
    return _reason(_good(NOW + DEFAULT_SKEW + timedelta(seconds=1)))


CASES: dict[OcspFailure, Callable[[], OcspFailure]] = {
    OcspFailure.MALFORMED: _case_malformed,
    OcspFailure.UNSUCCESSFUL: _case_unsuccessful,
    OcspFailure.UNAUTHORISED_RESPONDER: _case_responder_without_ocsp_signing,
    OcspFailure.BAD_SIGNATURE: _case_bad_signature,
    OcspFailure.WRONG_CERTIFICATE: _case_wrong_certificate,
    OcspFailure.REVOKED: _case_revoked,
    OcspFailure.UNKNOWN: _case_unknown,
    OcspFailure.STALE: _case_stale,
    OcspFailure.EXPIRED: _case_expired,
    OcspFailure.NOT_YET_VALID: _case_not_yet_valid,
}


def test_every_failure_reason_has_a_case() -> None:
    assert set(CASES) == set(OcspFailure)


@pytest.mark.parametrize("expected", list(CASES), ids=[r.value for r in CASES])
def test_failure_reason_is_produced(expected: OcspFailure) -> None:
    assert CASES[expected]() is expected


def test_responder_from_another_ca_is_refused_by_hash_too() -> None:
    assert _case_responder_from_another_ca() is OcspFailure.UNAUTHORISED_RESPONDER
    other_key = generate_key()
    other_ca = create_root_ca("Some Other CA", other_key, NOW)
    key, responder = _responder(other_key, other_ca)
    assert _reason(_forged(responder, key)) is OcspFailure.UNAUTHORISED_RESPONDER


def test_impostor_of_the_ca_itself_is_refused() -> None:
    """A self-signed certificate copying the CA's name is not the CA: keys decide."""
    key = generate_key()
    fake_ca = create_root_ca("Development CA DE-NRW", key, NOW)
    der = _forged(fake_ca, key, encoding=ocsp.OCSPResponderEncoding.NAME)
    # By name the real CA matches first, and the signature is not the real CA's.
    assert _reason(der) is OcspFailure.BAD_SIGNATURE
    assert _reason(_forged(fake_ca, key)) is OcspFailure.UNAUTHORISED_RESPONDER


def test_responder_certificate_not_embedded_or_expired_is_refused() -> None:
    p = _pki()
    assert _reason(_forged(p.responder, p.responder_key, certs=[])) is (
        OcspFailure.UNAUTHORISED_RESPONDER
    )
    key, short = _responder(p.ca_key, p.ca, days=1)
    der = _forged(short, key)
    verify_ocsp_response(der, p.leaf, p.ca, NOW)
    with pytest.raises(OcspError) as info:
        verify_ocsp_response(der, p.leaf, p.ca, NOW + timedelta(days=1, seconds=1))
    assert info.value.reason is OcspFailure.UNAUTHORISED_RESPONDER
    assert "not valid now" in info.value.detail


def test_flipped_byte_in_the_signed_part_is_a_bad_signature() -> None:
    p = _pki()
    der = _good()
    serial = p.leaf.serial_number.to_bytes(20, "big").lstrip(b"\x00")
    assert _reason(_flip(der, der.index(serial) + 3)) in (
        OcspFailure.BAD_SIGNATURE,
        OcspFailure.WRONG_CERTIFICATE,
    )
    # The signature is checked before the content is believed.
    assert _reason(_flip(der, der.index(serial) + 3)) is OcspFailure.BAD_SIGNATURE


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(0, 255)),
        min_size=1,
        max_size=3,
    ),
    truncate=st.integers(min_value=0, max_value=3),
)
def test_a_damaged_response_verifies_unchanged_or_is_refused(
    edits: list[tuple[int, int]], truncate: int
) -> None:
    """Regression: a damaged embedded responder certificate once escaped as ValueError or
    UnsupportedAlgorithm, which a node would have turned into a 500 for its peer."""
    p = _pki()
    der = bytearray(_good())
    for position, value in edits:
        der[position % len(der)] = value
    damaged = bytes(der[: len(der) - truncate])
    try:
        status = verify_ocsp_response(damaged, p.leaf, p.ca, NOW)
    except OcspError:
        return
    assert status == verify_ocsp_response(_good(), p.leaf, p.ca, NOW)


def test_an_unreadable_embedded_certificate_is_a_refused_candidate() -> None:
    p = _pki()
    der = _good()
    responder = p.responder.public_bytes(serialization.Encoding.DER)
    # Damage the responder's public key algorithm OID (id-ecPublicKey 1.2.840.10045.2.1).
    oid = bytes.fromhex("2a8648ce3d0201")
    at = der.index(responder) + responder.index(oid)
    damaged = der[:at] + bytes.fromhex("2a86487c3d0201") + der[at + len(oid) :]
    with pytest.raises(OcspError) as info:
        verify_ocsp_response(damaged, p.leaf, p.ca, NOW)
    assert info.value.reason is OcspFailure.UNAUTHORISED_RESPONDER
    assert "cannot be read" in info.value.detail


def test_certificate_of_another_issuer_is_the_wrong_certificate() -> None:
    p = _pki()
    other_key = generate_key()
    other_ca = create_root_ca("Some Other CA", other_key, NOW)
    with pytest.raises(OcspError) as info:
        verify_ocsp_response(_good(), _leaf(other_key, other_ca), p.ca, NOW)
    assert info.value.reason is OcspFailure.WRONG_CERTIFICATE


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (F - timedelta(seconds=1), True),
        (F, True),
        (F + timedelta(seconds=1), False),
    ],
)
def test_freshness_boundary(offset: timedelta, accepted: bool) -> None:
    p = _pki()
    der = _good(next_update=None)
    if accepted:
        verify_ocsp_response(der, p.leaf, p.ca, NOW + offset, F)
    else:
        assert _reason(der, NOW + offset, freshness=F) is OcspFailure.STALE


def test_freshness_is_a_parameter() -> None:
    p = _pki()
    der = _good(next_update=None)
    short = timedelta(seconds=60)
    verify_ocsp_response(der, p.leaf, p.ca, NOW + short, short)
    assert _reason(der, NOW + short + timedelta(seconds=1), freshness=short) is OcspFailure.STALE


def test_next_update_boundary() -> None:
    p = _pki()
    der = _good(next_update=NOW + timedelta(minutes=10))
    verify_ocsp_response(der, p.leaf, p.ca, NOW + timedelta(minutes=10))
    assert _reason(der, NOW + timedelta(minutes=10, seconds=1)) is OcspFailure.EXPIRED


def test_skew_boundary_for_future_this_update() -> None:
    p = _pki()
    verify_ocsp_response(_good(NOW + DEFAULT_SKEW, NOW + F), p.leaf, p.ca, NOW)
    ahead = _good(NOW + timedelta(seconds=10), NOW + F)
    assert _reason(ahead, skew=timedelta(seconds=9)) is OcspFailure.NOT_YET_VALID
    verify_ocsp_response(ahead, p.leaf, p.ca, NOW, skew=timedelta(seconds=10))


def test_naive_now_is_a_programming_error() -> None:
    p = _pki()
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_ocsp_response(_good(), p.leaf, p.ca, NOW.replace(tzinfo=None))


# --- service certificate profile -------------------------------------------------------------


def test_ocsp_responder_certificate_profile() -> None:
    p = _pki()
    ext = p.responder.extensions
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert ext.get_extension_for_class(x509.OCSPNoCheck)
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    assert p.responder.subject.rfc4514_string() == "CN=DE-NRW OCSP responder"
    p.responder.verify_directly_issued_by(p.ca)
    check_ocsp_responder_profile(p.responder)
    # A responder certificate is no node's certificate.
    with pytest.raises(CertificateError):
        node_id_of(p.responder)
    with pytest.raises(CertificateError, match="OCSPSigning"):
        check_ocsp_responder_profile(p.leaf)
    with pytest.raises(CertificateError, match="CA"):
        check_ocsp_responder_profile(p.ca)


def test_service_csr_needs_one_common_name() -> None:
    p = _pki()
    with pytest.raises(CertificateError):
        make_service_csr(generate_key(), "")
    with pytest.raises(CertificateError):
        make_service_csr(generate_key(), "x" * 65)
    no_cn = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil")]))
        .sign(generate_key(), hashes.SHA256())
    )
    with pytest.raises(CertificateError, match="CN"):
        issue_service_certificate(no_cn, ServiceKind.OCSP, p.ca_key, p.ca, NOW)
    csr = make_service_csr(generate_key(), "ok")
    with pytest.raises(CertificateError, match="outlive"):
        issue_service_certificate(csr, ServiceKind.OCSP, p.ca_key, p.ca, NOW, days=5000)


# --- revocation database --------------------------------------------------------------------


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ca"
    init_ca(directory, "Development CA DE-NRW", NOW)
    return directory


def _issue(ca_dir: Path, name: str) -> x509.Certificate:
    key, csr = ca_dir.parent / f"{name}.key", ca_dir.parent / f"{name}.csr"
    new_key_and_csr(CertKind.AUTH, NODE, key, csr)
    return issue_from_csr(ca_dir, csr, CertKind.AUTH, ca_dir.parent / f"{name}.pem", NOW)


def test_status_of_good_revoked_unknown(ca_dir: Path) -> None:
    cert = _issue(ca_dir, "leaf")
    assert status_of(ca_dir, cert.serial_number) == GOOD
    assert status_of(ca_dir, cert.serial_number + 1) == UNKNOWN
    assert status_of(ca_dir, 0) == UNKNOWN
    entry = revoke(ca_dir, cert.serial_number, x509.ReasonFlags.key_compromise, NOW)
    assert entry == Revoked(NOW, x509.ReasonFlags.key_compromise)
    assert status_of(ca_dir, cert.serial_number) == entry
    doc = json.loads((ca_dir / REVOKED_DB_NAME).read_text())
    assert doc["revoked"] == [
        {"serial": f"{cert.serial_number:x}", "time": NOW.isoformat(), "reason": "keyCompromise"}
    ]
    assert not [p for p in ca_dir.iterdir() if p.name.endswith(".tmp")]


def test_revoke_by_certificate_and_the_service_certificates_are_known(ca_dir: Path) -> None:
    cert = _issue(ca_dir, "leaf")
    later = NOW + timedelta(minutes=5, microseconds=123)
    entry = revoke(ca_dir, cert, x509.ReasonFlags.superseded, later)
    assert entry.time == later.replace(microsecond=0)
    issued = issue_service(ca_dir, ServiceKind.OCSP, ca_dir.parent / "svc", NOW)
    assert status_of(ca_dir, issued.certificate.serial_number) == GOOD
    assert load_certificate(issued.cert) == issued.certificate


def test_revoke_refuses_what_this_ca_did_not_issue(ca_dir: Path) -> None:
    cert = _issue(ca_dir, "leaf")
    with pytest.raises(RevocationError, match="not issued"):
        revoke(ca_dir, cert.serial_number + 1, x509.ReasonFlags.key_compromise, NOW)
    # Another CA's certificate that shares the serial must not revoke ours.
    other_key = generate_key()
    other_ca = create_root_ca("Development CA DE-NRW", other_key, NOW)
    twin = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(other_ca.subject)
        .public_key(generate_key().public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(other_key, hashes.SHA256())
    )
    with pytest.raises(RevocationError, match="not issued"):
        revoke(ca_dir, twin, x509.ReasonFlags.key_compromise, NOW)
    assert status_of(ca_dir, cert.serial_number) == GOOD


def test_revoke_twice_or_for_no_reason_is_refused(ca_dir: Path) -> None:
    cert = _issue(ca_dir, "leaf")
    with pytest.raises(RevocationError, match="not a reason"):
        revoke(ca_dir, cert.serial_number, x509.ReasonFlags.remove_from_crl, NOW)
    revoke(ca_dir, cert.serial_number, x509.ReasonFlags.key_compromise, NOW)
    with pytest.raises(RevocationError, match="already revoked"):
        revoke(ca_dir, cert.serial_number, x509.ReasonFlags.superseded, NOW + timedelta(1))
    assert status_of(ca_dir, cert.serial_number) == Revoked(NOW, x509.ReasonFlags.key_compromise)
    with pytest.raises(FileNotFoundError):
        revoke(ca_dir.parent, cert.serial_number, x509.ReasonFlags.superseded, NOW)


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b'{"format": 2, "revoked": []}',
        b'{"format": 1, "revoked": [{"serial": "zz", "time": "2025-01-01T00:00:00+00:00"}]}',
        b'{"format": 1, "revoked": [{"serial": "1a", "time": "2025-01-01T00:00:00", '
        b'"reason": "keyCompromise"}]}',
        b'{"format": 1, "revoked": [{"serial": "1a", "time": "2025-01-01T00:00:00+00:00", '
        b'"reason": "bored"}]}',
    ],
)
def test_damaged_database_fails_closed(ca_dir: Path, content: bytes) -> None:
    cert = _issue(ca_dir, "leaf")
    (ca_dir / REVOKED_DB_NAME).write_bytes(content)
    with pytest.raises(RevocationError, match="damaged"):
        status_of(ca_dir, cert.serial_number)


def test_concurrent_revocations_are_all_kept(ca_dir: Path) -> None:
    certs = [_issue(ca_dir, f"leaf{i}") for i in range(8)]
    barrier = threading.Barrier(len(certs))
    errors: list[BaseException] = []

    def work(cert: x509.Certificate) -> None:
        barrier.wait()
        try:
            revoke(ca_dir, cert.serial_number, x509.ReasonFlags.cessation_of_operation, NOW)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in certs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(load_revocations(ca_dir)) == {c.serial_number for c in certs}


def test_parse_serial_and_reason() -> None:
    assert parse_serial("0x1A") == 26
    assert parse_serial("1a:2b") == 0x1A2B
    for bad in ("", "xyz", "0", "-1"):
        with pytest.raises(RevocationError):
            parse_serial(bad)
    assert parse_reason("keyCompromise") is x509.ReasonFlags.key_compromise
    assert parse_reason("key_compromise") is x509.ReasonFlags.key_compromise
    for bad in ("removeFromCRL", "bored"):
        with pytest.raises(RevocationError):
            parse_reason(bad)
