"""The OCSP verification cache: each response is parsed and verified once, time is checked
on every use, refusals are exact, and the cache stays bounded. All with an injected clock.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from gateway.core.encoding import b64url
from gateway.core.ids import MemberId, NodeId
from gateway.core.jws import cert_ref
from gateway.pki.ca import (
    create_root_ca,
    issue_certificate,
    issue_service_certificate,
    make_csr,
    make_service_csr,
)
from gateway.pki.keys import generate_key
from gateway.pki.ocsp import (
    DEFAULT_SKEW,
    OcspError,
    OcspFailure,
    VerifiedStatus,
    build_ocsp_response,
    cert_id_for,
    verify_ocsp_response,
)
from gateway.pki.ocsp_cache import OcspCache, OcspEvidence, find_issuer
from gateway.pki.profiles import CertKind, ServiceKind
from gateway.pki.status import GOOD, UNKNOWN, CertStatus, Revoked

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
F = timedelta(seconds=3600)


@dataclass(frozen=True)
class Pki:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    responder_key: ec.EllipticCurvePrivateKey
    responder: x509.Certificate
    leaf: x509.Certificate
    other: x509.Certificate


@functools.cache
def pki() -> Pki:
    ca_key = generate_key()
    ca = create_root_ca("Development CA DE-NRW", ca_key, NOW - timedelta(days=1))
    responder_key = generate_key()
    responder = issue_service_certificate(
        make_service_csr(responder_key, "DE-NRW OCSP responder"),
        ServiceKind.OCSP,
        ca_key,
        ca,
        NOW - timedelta(days=1),
        30,
    )
    leaf = issue_certificate(
        make_csr(generate_key(), CertKind.SIGN, MemberId("DE-NRW", "GOV", "05974040")),
        CertKind.SIGN,
        ca_key,
        ca,
        NOW - timedelta(days=1),
    )
    other = issue_certificate(
        make_csr(generate_key(), CertKind.AUTH, NodeId("DE-NRW", "GOV", "05974040", "ss1")),
        CertKind.AUTH,
        ca_key,
        ca,
        NOW - timedelta(days=1),
    )
    return Pki(ca_key, ca, responder_key, responder, leaf, other)


def response(
    status: CertStatus = GOOD,
    this_update: datetime = NOW,
    next_update: datetime | None = None,
    about: x509.Certificate | None = None,
) -> bytes:
    p = pki()
    return build_ocsp_response(
        cert_id_for(about or p.leaf, p.ca),
        status,
        this_update,
        next_update if next_update is not None else this_update + F,
        p.responder,
        p.responder_key,
        p.ca,
    )


def forged() -> bytes:
    """A good status for the leaf, signed by a responder certificate of another CA that
    copies the real CA's name: what an attacker without the CA's key can produce."""
    p = pki()
    rogue_ca_key = generate_key()
    rogue_ca = create_root_ca("Development CA DE-NRW", rogue_ca_key, NOW - timedelta(days=1))
    key = generate_key()
    cert = issue_service_certificate(
        make_service_csr(key, "DE-NRW OCSP responder"),
        ServiceKind.OCSP,
        rogue_ca_key,
        rogue_ca,
        NOW - timedelta(days=1),
        30,
    )
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            p.leaf, p.ca, hashes.SHA256(), ocsp.OCSPCertStatus.GOOD, NOW, NOW + F, None, None
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, cert)
        .certificates([cert])
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


class Counting:
    """``verify_ocsp_response`` that counts its calls: the expensive path."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(
        self,
        der: bytes,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        now: datetime,
        freshness: timedelta,
    ) -> VerifiedStatus:
        self.calls += 1
        return verify_ocsp_response(der, cert, issuer, now, freshness)


def check(
    cache: OcspCache, der: bytes | str, now: datetime, cert: x509.Certificate | None = None
) -> OcspEvidence:
    subject = cert or pki().leaf
    encoded = der if isinstance(der, str) else b64url(der)
    return cache.check(cert_ref(subject), encoded, now, lambda: (subject, pki().ca))


def reason(cache: OcspCache, der: bytes | str, now: datetime, **kw: x509.Certificate) -> str:
    with pytest.raises(OcspError) as info:
        check(cache, der, now, **kw)
    return info.value.reason.value


# ---------------------------------------------------------------- verified once


def test_a_response_is_verified_once_then_only_time_checked() -> None:
    counting = Counting()
    cache = OcspCache(F, verify=counting)
    der = response()
    first = check(cache, der, NOW)
    assert first.der == der
    assert first.encoded == b64url(der)
    assert first.ref == hashlib.sha256(der).hexdigest()
    assert first.serial_number == pki().leaf.serial_number
    for seconds in range(1, 1000, 7):
        assert check(cache, der, NOW + timedelta(seconds=seconds)) is first
    assert counting.calls == 1
    assert cache.verifications == 1


def test_a_new_response_for_the_same_certificate_is_verified_anew() -> None:
    counting = Counting()
    cache = OcspCache(F, verify=counting)
    check(cache, response(), NOW)
    refreshed = check(cache, response(this_update=NOW + timedelta(seconds=1200)), NOW + F / 2)
    assert refreshed.this_update == NOW + timedelta(seconds=1200)
    assert counting.calls == 2


def test_a_response_is_bound_to_its_certificate() -> None:
    """The same bytes presented for another certificate are checked for that one."""
    cache = OcspCache(F)
    der = response()
    check(cache, der, NOW)
    assert reason(cache, der, NOW, cert=pki().other) == "wrong_certificate"


# ---------------------------------------------------------------- time, with the cached entry


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (F, None),  # exactly at the end of the window: still fresh
        (F + timedelta(seconds=1), "stale"),
        (-DEFAULT_SKEW, None),
        (-DEFAULT_SKEW - timedelta(seconds=1), "not_yet_valid"),
    ],
    ids=["window-end", "stale", "skew-edge", "future-dated"],
)
def test_time_rules_on_a_cached_response(offset: timedelta, expected: str | None) -> None:
    counting = Counting()
    cache = OcspCache(F, verify=counting)
    der = response()
    check(cache, der, NOW)
    if expected is None:
        check(cache, der, NOW + offset)
    else:
        assert reason(cache, der, NOW + offset) == expected
    assert counting.calls == 1


def test_next_update_passed_is_expired() -> None:
    cache = OcspCache(F)
    der = response(next_update=NOW + timedelta(seconds=600))
    check(cache, der, NOW + timedelta(seconds=600))
    assert reason(cache, der, NOW + timedelta(seconds=601)) == "expired"


def test_responder_certificate_expiring_ends_a_cached_response() -> None:
    cache = OcspCache(timedelta(days=400))
    der = response(next_update=NOW + timedelta(days=300))
    check(cache, der, NOW)
    after = pki().responder.not_valid_after_utc + timedelta(seconds=1)
    assert reason(cache, der, after) == "unauthorised_responder"


def test_stale_on_first_sight_is_refused_and_remembered() -> None:
    counting = Counting()
    cache = OcspCache(F, verify=counting)
    der = response(this_update=NOW - F - timedelta(seconds=1))
    assert reason(cache, der, NOW) == "stale"
    assert reason(cache, der, NOW) == "stale"
    assert counting.calls == 1


def test_future_dated_on_first_sight_is_not_remembered() -> None:
    """The one refusal that time cures: checked again, and accepted once it is due."""
    counting = Counting()
    cache = OcspCache(F, verify=counting)
    later = NOW + timedelta(minutes=10)
    der = response(this_update=later)
    assert reason(cache, der, NOW) == "not_yet_valid"
    assert counting.calls == 1
    assert len(cache) == 0
    check(cache, der, later)
    assert counting.calls == 2


# ---------------------------------------------------------------- refusals


def test_revoked_names_time_and_reason_and_is_remembered() -> None:
    counting = Counting()
    cache = OcspCache(F, verify=counting)
    revoked_at = NOW - timedelta(minutes=5)
    der = response(Revoked(revoked_at, x509.ReasonFlags.key_compromise))
    for _ in range(3):
        with pytest.raises(OcspError) as info:
            check(cache, der, NOW)
        assert info.value.reason is OcspFailure.REVOKED
        assert revoked_at.isoformat() in info.value.detail
        assert "keyCompromise" in info.value.detail
    assert counting.calls == 1


def test_forged_response_is_refused_and_remembered() -> None:
    counting = Counting()
    cache = OcspCache(F, verify=counting)
    der = forged()
    assert reason(cache, der, NOW) == "unauthorised_responder"
    assert reason(cache, der, NOW) == "unauthorised_responder"
    assert counting.calls == 1


def test_unknown_status() -> None:
    assert reason(OcspCache(F), response(UNKNOWN), NOW) == "unknown"


@pytest.mark.parametrize(
    "encoded",
    ["", "not base64!", b64url(b"\x30\x03\x02\x01\x00"), "AB=", "A"],
    ids=["empty", "not-base64", "not-ocsp", "padding", "bad-length"],
)
def test_malformed(encoded: str) -> None:
    assert reason(OcspCache(F), encoded, NOW) == "malformed"


def test_oversized_header_is_refused_without_being_stored() -> None:
    cache = OcspCache(F)
    assert reason(cache, "A" * (64 * 1024 + 4), NOW) == "malformed"
    assert len(cache) == 0


# ---------------------------------------------------------------- bounded


def test_cache_is_bounded_first_in_first_out() -> None:
    counting = Counting()
    cache = OcspCache(F, max_entries=3, verify=counting)
    responses = [response(this_update=NOW - timedelta(seconds=i)) for i in range(5)]
    for der in responses:
        check(cache, der, NOW)
    assert len(cache) == 3
    assert counting.calls == 5
    check(cache, responses[-1], NOW)  # still cached
    assert counting.calls == 5
    check(cache, responses[0], NOW)  # evicted: verified again
    assert counting.calls == 6
    assert len(cache) == 3


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        OcspCache(timedelta(0))
    with pytest.raises(ValueError):
        OcspCache(F, max_entries=0)


# ---------------------------------------------------------------- issuer lookup


def test_find_issuer_needs_the_key_not_just_the_name() -> None:
    p = pki()
    lookalike = create_root_ca("Development CA DE-NRW", generate_key(), NOW)
    assert lookalike.subject == p.ca.subject
    assert find_issuer(p.leaf, [lookalike, p.ca]) == p.ca
    assert find_issuer(p.leaf, [lookalike]) is None
