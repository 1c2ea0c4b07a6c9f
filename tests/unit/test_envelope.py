"""The signed envelope: header encoding, JWS signing and verification, binding checks."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm

from gateway.core.canonical import canonical_json
from gateway.core.encoding import b64url, b64url_decode, format_time
from gateway.core.envelope import (
    MAX_ENVELOPE,
    MAX_HEADER_NAME,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MAX_PATH,
    MAX_QUERY,
    EnvelopeError,
    RequestHeader,
    ResponseHeader,
    body_sha256,
    check_body,
    check_created,
    check_headers,
    decode_segment,
    parse_time,
    request_hash,
)
from gateway.core.ids import MemberId, NodeId, SubsystemId
from gateway.core.jws import SignatureVerifier, Signer, cert_ref, parse_jws_chain
from gateway.pki.ca import create_root_ca, issue_certificate, make_csr
from gateway.pki.keys import generate_key
from gateway.pki.profiles import CertKind

ISSUED = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LEAF_DAYS = 365
WINDOW = timedelta(seconds=300)
CONSUMER = MemberId("EE", "GOV", "70000001")
PROVIDER = MemberId("EE", "GOV", "70000002")
CLIENT = CONSUMER.subsystem("population-app")
SERVICE = PROVIDER.subsystem("melderegister").service("persons")
BODY = '{"name":"Tõnis"}'.encode()
ROOT = "Test Root"


def _ca(name: str = ROOT) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return _ca_named(name)


@functools.cache
def _ca_named(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    # Cached per name, so every helper agrees on which key "Test Root" has.
    key = generate_key()
    return key, create_root_ca(name, key, ISSUED, days=3650)


def _member(
    member: MemberId = CONSUMER, ca_name: str = ROOT
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return _member_cached(member, ca_name)


@functools.cache
def _member_cached(
    member: MemberId, ca_name: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key, ca = _ca(ca_name)
    key = generate_key()
    csr = make_csr(key, CertKind.SIGN, member)
    return key, issue_certificate(csr, CertKind.SIGN, ca_key, ca, ISSUED, days=LEAF_DAYS)


def _signer(member: MemberId = CONSUMER, ca_name: str = ROOT) -> Signer:
    key, cert = _member(member, ca_name)
    return Signer(member, key, [cert])


def _verifier() -> SignatureVerifier:
    return SignatureVerifier([_ca()[1]])


def _request(**changes: Any) -> RequestHeader:
    header = RequestHeader(
        message_id="5b1d7e2c-3a4f-4e6b-8c9d-0e1f2a3b4c5d",
        xroad_id="EE-5b1d7e2c-3a4f-4e6b-8c9d-0e1f2a3b4c5d",
        client=CLIENT,
        service=SERVICE,
        method="POST",
        path="/persons/search",
        query="fields=name&lang=et",
        headers=(("accept", "application/json"), ("x-trace", "café\tx")),
        user_id="EE38001010001",
        issue="ticket-42",
        created=format_time(NOW),
        body_sha256=body_sha256(BODY),
        body_length=len(BODY),
    )
    return replace(header, **changes)


def _response(**changes: Any) -> ResponseHeader:
    header = ResponseHeader(
        message_id="5b1d7e2c-3a4f-4e6b-8c9d-0e1f2a3b4c5d",
        xroad_id="EE-5b1d7e2c-3a4f-4e6b-8c9d-0e1f2a3b4c5d",
        client=CLIENT,
        service=SERVICE,
        request_hash=request_hash(_request().to_bytes()),
        status=200,
        headers=(("content-type", "application/json"),),
        created=format_time(NOW),
        body_sha256=body_sha256(b"{}"),
        body_length=2,
    )
    return replace(header, **changes)


def _fields(data: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(data)
    return obj


def _with(data: bytes, **changes: Any) -> bytes:
    fields = _fields(data)
    for key, value in changes.items():
        if value is None and key.startswith("drop_"):
            del fields[key.removeprefix("drop_")]
        else:
            fields[key] = value
    # Serialised directly: some cases are values canonical_json itself refuses.
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------- headers


def test_request_round_trip() -> None:
    header = _request()
    data = header.to_bytes()
    assert RequestHeader.from_bytes(data) == header
    assert RequestHeader.from_bytes(data).to_bytes() == data
    fields = _fields(data)
    assert fields["v"] == 1
    assert fields["type"] == "request"
    assert fields["client"] == "EE/GOV/70000001/population-app"
    assert fields["headers"] == [["accept", "application/json"], ["x-trace", "café\tx"]]
    assert list(fields) == sorted(fields)
    assert data == canonical_json(fields)


@pytest.mark.parametrize(
    "changes",
    [
        {"user_id": None, "issue": None},
        {"path": "", "query": "", "headers": ()},
        {"client": CONSUMER},
        {"method": "DELETE", "body_sha256": body_sha256(b""), "body_length": 0},
        {"service": SubsystemId("EE", "GOV", "1", "a?").service("b'()+,=")},
    ],
)
def test_request_round_trip_variants(changes: dict[str, Any]) -> None:
    header = _request(**changes)
    assert RequestHeader.from_bytes(header.to_bytes()) == header


def test_response_round_trip() -> None:
    header = _response()
    data = header.to_bytes()
    assert ResponseHeader.from_bytes(data) == header
    fields = _fields(data)
    assert fields["type"] == "response"
    assert fields["request_hash"] == request_hash(_request().to_bytes())
    assert set(fields) == ResponseHeader.FIELDS


def test_request_and_response_are_not_interchangeable() -> None:
    with pytest.raises(EnvelopeError) as caught:
        ResponseHeader.from_bytes(_request().to_bytes())
    assert caught.value.reason == "malformed"
    with pytest.raises(EnvelopeError):
        RequestHeader.from_bytes(_response().to_bytes())


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"extra": 1}, id="unknown-field"),
        pytest.param({"drop_issue": None}, id="missing-issue"),
        pytest.param({"drop_headers": None}, id="missing-headers"),
        pytest.param({"v": 2}, id="version"),
        pytest.param({"v": "1"}, id="version-string"),
        pytest.param({"id": "5B1D7E2C-3A4F-4E6B-8C9D-0E1F2A3B4C5D"}, id="uuid-upper"),
        pytest.param({"id": "5b1d7e2c3a4f4e6b8c9d0e1f2a3b4c5d"}, id="uuid-no-hyphens"),
        pytest.param({"id": "{5b1d7e2c-3a4f-4e6b-8c9d-0e1f2a3b4c5d}"}, id="uuid-braces"),
        pytest.param({"id": "urn:uuid:5b1d7e2c-3a4f-4e6b-8c9d-0e1f2a3b4c5d"}, id="uuid-urn"),
        pytest.param({"id": "not-a-uuid"}, id="uuid-garbage"),
        pytest.param({"id": 1}, id="uuid-int"),
        pytest.param({"headers": [["Accept", "x"]]}, id="header-name-upper"),
        pytest.param({"headers": [["x y", "1"]]}, id="header-name-space"),
        pytest.param({"headers": [["", "1"]]}, id="header-name-empty"),
        pytest.param({"headers": [["a", "x\r\ny: 1"]]}, id="header-value-crlf"),
        pytest.param({"headers": [["a", "x\ny"]]}, id="header-value-lf"),
        pytest.param({"headers": [["a", "x\x00"]]}, id="header-value-nul"),
        pytest.param({"headers": [["a", "x\x7f"]]}, id="header-value-del"),
        pytest.param({"headers": [["a", "€"]]}, id="header-value-beyond-latin1"),
        pytest.param({"headers": [["a"]]}, id="header-not-pair"),
        pytest.param({"headers": [["a", 1]]}, id="header-value-int"),
        pytest.param({"headers": {"a": "b"}}, id="headers-object"),
        pytest.param({"headers": [["a", "b"]] * 101}, id="headers-too-many"),
        pytest.param({"created": "2025-06-01T12:00:00Z"}, id="time-no-ms"),
        pytest.param({"created": "2025-06-01T12:00:00.000000Z"}, id="time-us"),
        pytest.param({"created": "2025-06-01T12:00:00.000+00:00"}, id="time-offset"),
        pytest.param({"created": "2025-06-01 12:00:00.000Z"}, id="time-space"),
        pytest.param({"created": "2025-06-01T12:00:00.000z"}, id="time-lower-z"),
        pytest.param({"created": "2025-13-01T12:00:00.000Z"}, id="time-month-13"),
        pytest.param({"created": "2025-02-30T12:00:00.000Z"}, id="time-feb-30"),
        pytest.param({"created": "2025-06-01T24:00:00.000Z"}, id="time-hour-24"),
        pytest.param({"created": 1748779200000}, id="time-int"),
        pytest.param({"method": "get"}, id="method-lower"),
        pytest.param({"method": ""}, id="method-empty"),
        pytest.param({"method": "GET /"}, id="method-space"),
        pytest.param({"path": "persons"}, id="path-relative"),
        pytest.param({"path": "/a\nb"}, id="path-lf"),
        pytest.param({"path": "/ä"}, id="path-non-ascii"),
        pytest.param({"query": "a=\r\n"}, id="query-crlf"),
        pytest.param({"client": "EE/GOV"}, id="client-two-parts"),
        pytest.param({"client": "EE/GOV/1/a%2Fb"}, id="client-slash"),
        pytest.param({"service": "EE/GOV/1/sub"}, id="service-four-parts"),
        pytest.param({"user_id": "x" * 256}, id="user-id-long"),
        pytest.param({"user_id": 5}, id="user-id-int"),
        pytest.param({"issue": "x\n"}, id="issue-lf"),
        pytest.param({"xroad_id": None}, id="xroad-id-null"),
        pytest.param({"body_length": -1}, id="length-negative"),
        pytest.param({"body_length": 2**53 + 1}, id="length-huge"),
        pytest.param({"body_length": True}, id="length-bool"),
        pytest.param({"body_sha256": "x" * 65}, id="digest-long"),
    ],
)
def test_request_from_bytes_rejects(changes: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeError) as caught:
        RequestHeader.from_bytes(_with(_request().to_bytes(), **changes))
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    "changes",
    [
        {"status": 99},
        {"status": 600},
        {"status": "200"},
        {"request_hash": "x" * 129},
        {"drop_request_hash": None},
        {"method": "GET"},
        {"created": "yesterday"},
    ],
)
def test_response_from_bytes_rejects(changes: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeError) as caught:
        ResponseHeader.from_bytes(_with(_response().to_bytes(), **changes))
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(lambda d: d + b" ", id="trailing-space"),
        pytest.param(lambda d: d.replace(b",", b", ", 1), id="whitespace"),
        pytest.param(lambda d: d.replace(b'{"body_length":', b'{"v":1,"body_length":'), id="dup"),
        pytest.param(lambda d: json.dumps(_fields(d)).encode(), id="unsorted"),
        pytest.param(lambda d: d[:-1], id="truncated"),
        pytest.param(lambda d: b"\xff" + d, id="not-utf8"),
    ],
)
def test_from_bytes_needs_canonical_json(data: Any) -> None:
    with pytest.raises(EnvelopeError) as caught:
        RequestHeader.from_bytes(data(_request().to_bytes()))
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize("path", ["/persons/../admin", "/persons/./x", "/p/%2e%2e/a", "/p/.%2E"])
def test_request_path_with_dot_segments_is_refused(path: str) -> None:
    with pytest.raises(EnvelopeError):
        RequestHeader.from_bytes(_with(_request().to_bytes(), path=path))


LONG_SERVICE = MemberId("EE", "C" * 255, "1" * 255).subsystem("a" * 255).service("b" * 255)


@pytest.mark.parametrize(
    ("changes", "limit"),
    [
        pytest.param({"path": "/" + "a" * MAX_PATH}, MAX_PATH, id="path"),
        pytest.param({"query": "a" * (MAX_QUERY + 1)}, MAX_QUERY, id="query"),
        pytest.param({"headers": (("a", "b"),) * (MAX_HEADERS + 1)}, MAX_HEADERS, id="headers"),
        pytest.param({"headers": (("a", "x" * 8193),)}, MAX_HEADER_VALUE, id="header-value"),
        pytest.param({"headers": (("a" * 257, "x"),)}, 256, id="header-name"),
        pytest.param({"xroad_id": "x" * 256}, 255, id="xroad-id"),
        pytest.param({"user_id": "x" * 256}, 255, id="user-id"),
        pytest.param({"issue": "x" * 1025}, 1024, id="issue"),
        pytest.param({"service": LONG_SERVICE}, 1024, id="service-id"),
    ],
)
def test_the_sender_refuses_what_the_receiver_would_and_names_the_limit(
    changes: dict[str, Any], limit: int
) -> None:
    """One set of limits: the sender checks them before it signs, and says which."""
    header = _request(**changes)
    with pytest.raises(EnvelopeError) as sent:
        header.checked_bytes()
    assert sent.value.reason == "malformed"
    assert f"over the limit of {limit}" in sent.value.message
    assert "forbidden character" not in sent.value.message
    with pytest.raises(EnvelopeError) as received:
        RequestHeader.from_bytes(header.to_bytes())
    assert received.value.reason == "malformed"
    assert f"over the limit of {limit}" in received.value.message


def test_the_sender_refuses_an_envelope_over_one_header_field() -> None:
    """16 headers of 4 KiB are each within limits, but their envelope is not: the
    receiving node's HTTP parser would refuse it before the node could answer."""
    header = _request(headers=(("x-big", "a" * 4096),) * 16)
    assert len(b64url(header.to_bytes())) > MAX_ENVELOPE
    with pytest.raises(EnvelopeError) as sent:
        header.checked_bytes()
    assert sent.value.reason == "malformed"
    assert f"over the limit of {MAX_ENVELOPE}" in sent.value.message


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"path": "/" + "a" * (MAX_PATH - 1)}, id="path"),
        pytest.param({"query": "a" * MAX_QUERY}, id="query"),
        pytest.param({"headers": (("a", "b"),) * MAX_HEADERS}, id="headers"),
        pytest.param({"headers": (("a", "x" * MAX_HEADER_VALUE),)}, id="header-value"),
        pytest.param({"xroad_id": "x" * 255, "user_id": "y" * 255, "issue": "z" * 1024}, id="ids"),
    ],
)
def test_a_header_at_every_limit_is_sent_and_received(changes: dict[str, Any]) -> None:
    header = _request(**changes)
    data = header.checked_bytes()
    assert data == header.to_bytes()
    assert RequestHeader.from_bytes(data) == header


def test_the_largest_envelope_the_sender_accepts_fits_one_header_field() -> None:
    """Grow the headers a byte at a time: the last header the sender accepts encodes to
    at most ``MAX_ENVELOPE`` characters (within one base64 quantum), the next is over."""
    base = len(b64url(_request(headers=()).to_bytes()))
    room = (MAX_ENVELOPE - base) * 3 // 4 - 200  # bytes left, less the JSON around values
    full = (("a", "x" * MAX_HEADER_VALUE),) * (room // MAX_HEADER_VALUE)
    rest = room - len(full) * MAX_HEADER_VALUE
    accepted = b""
    while True:
        header = _request(headers=(*full, ("b", "y" * rest)))
        try:
            accepted = header.checked_bytes()
        except EnvelopeError:
            break
        rest += 1
    assert accepted, "the first guess must fit"
    assert MAX_ENVELOPE - 2 <= len(b64url(accepted)) <= MAX_ENVELOPE
    assert len(b64url(header.to_bytes())) > MAX_ENVELOPE
    assert RequestHeader.from_bytes(accepted).headers[-1] == ("b", "y" * (rest - 1))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param(
            {"headers": (("a", "b"),) * (MAX_HEADERS + 1)},
            f"over the limit of {MAX_HEADERS}",
            id="headers",
        ),
        pytest.param(
            {"headers": (("a" * 257, "x"),)}, f"over the limit of {MAX_HEADER_NAME}", id="name"
        ),
        pytest.param(
            {"headers": (("a", "x" * (MAX_HEADER_VALUE + 1)),)},
            f"over the limit of {MAX_HEADER_VALUE}",
            id="value",
        ),
        pytest.param(
            {"headers": (("x-euro", "\u20ac"),)}, "has a forbidden character", id="character"
        ),
        pytest.param({"status": 600}, "status must be an integer in [100, 599]", id="status"),
    ],
)
def test_the_provider_refuses_to_sign_what_the_consumer_would_refuse(
    changes: dict[str, Any], reason: str
) -> None:
    """The response side of the same limits: the provider checks them before it signs,
    and the consumer's ``from_bytes`` refuses the same header for the same reason."""
    header = _response(**changes)
    with pytest.raises(EnvelopeError) as sent:
        header.checked_bytes()
    assert sent.value.reason == "malformed"
    assert reason in sent.value.message
    with pytest.raises(EnvelopeError) as received:
        ResponseHeader.from_bytes(header.to_bytes())
    assert reason in received.value.message


def test_an_oversize_response_envelope_blames_the_registry() -> None:
    """Within every per-header limit but over one header field together (the consumer's
    HTTP parser would refuse it): the advice is for the registry, not the caller."""
    header = _response(headers=(("x-big", "a" * 4096),) * 16)
    assert len(b64url(header.to_bytes())) > MAX_ENVELOPE
    with pytest.raises(EnvelopeError) as sent:
        header.checked_bytes()
    assert f"over the limit of {MAX_ENVELOPE}" in sent.value.message
    assert sent.value.message.endswith("the registry must send fewer or shorter headers")


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"headers": (("a", "b"),) * MAX_HEADERS}, id="headers"),
        pytest.param({"headers": (("a" * MAX_HEADER_NAME, "x"),)}, id="name"),
        pytest.param({"headers": (("a", "x" * MAX_HEADER_VALUE),)}, id="value"),
        pytest.param({"headers": (("x-big", "a" * 4096),) * 11}, id="envelope"),
        pytest.param({"status": 599}, id="status"),
    ],
)
def test_a_response_at_every_limit_is_signed_and_received(changes: dict[str, Any]) -> None:
    header = _response(**changes)
    data = header.checked_bytes()
    assert data == header.to_bytes()
    assert ResponseHeader.from_bytes(data) == header


def test_a_long_header_value_is_called_too_long() -> None:
    with pytest.raises(EnvelopeError) as caught:
        check_headers([["x-big", "a" * (MAX_HEADER_VALUE + 1)]])
    assert caught.value.message == (
        f"header 'x-big' is {MAX_HEADER_VALUE + 1} characters long, "
        f"over the limit of {MAX_HEADER_VALUE}"
    )
    with pytest.raises(EnvelopeError) as caught:
        check_headers([["x-bad", "a\x00"]])
    assert caught.value.message == "header 'x-bad' has a forbidden character"


@pytest.mark.parametrize("client", ["EE/GOV/%370000001", " EE/GOV/70000001", "EE/GOV/7000000%31"])
def test_ids_in_the_header_must_be_in_printed_form(client: str) -> None:
    with pytest.raises(EnvelopeError):
        RequestHeader.from_bytes(_with(_request().to_bytes(), client=client))


# --------------------------------------------------------------------------- time and body


def test_format_time_has_one_spelling() -> None:
    moment = datetime(2025, 6, 1, 14, 0, 0, 123999, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2025-06-01T12:00:00.123Z"
    assert parse_time("2025-06-01T12:00:00.123Z") == datetime(
        2025, 6, 1, 12, 0, 0, 123000, tzinfo=UTC
    )
    assert parse_time(format_time(NOW)) == NOW


@pytest.mark.parametrize(
    ("offset", "ok"),
    [
        (timedelta(0), True),
        (WINDOW, True),
        (-WINDOW, True),
        (WINDOW + timedelta(milliseconds=1), False),
        (-WINDOW - timedelta(milliseconds=1), False),
        (timedelta(days=1), False),
    ],
)
def test_check_created_window(offset: timedelta, ok: bool) -> None:
    created = format_time(NOW - offset)
    if ok:
        assert check_created(created, NOW, WINDOW) == NOW - offset
    else:
        with pytest.raises(EnvelopeError) as caught:
            check_created(created, NOW, WINDOW)
        assert caught.value.reason == "expired"


def test_check_created_refuses_bad_text() -> None:
    with pytest.raises(EnvelopeError) as caught:
        check_created("2025-06-01T12:00:00Z", NOW, WINDOW)
    assert caught.value.reason == "malformed"


def test_body_digest_is_unpadded_base64url_sha256() -> None:
    digest = hashlib.sha256(BODY).digest()
    assert body_sha256(BODY) == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert body_sha256(b"") == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    assert len(body_sha256(BODY)) == 43


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        (BODY, True),
        (BODY + b"x", False),
        (BODY[:-1], False),
        (BODY.replace(b"T", b"t"), False),
        (b"", False),
    ],
)
def test_check_body(body: bytes, ok: bool) -> None:
    if ok:
        check_body(body_sha256(BODY), len(BODY), body)
        return
    with pytest.raises(EnvelopeError) as caught:
        check_body(body_sha256(BODY), len(BODY), body)
    assert caught.value.reason == "signature"


def test_check_body_checks_the_length_too() -> None:
    with pytest.raises(EnvelopeError):
        check_body(body_sha256(BODY), len(BODY) + 1, BODY)


def test_request_hash_is_base64_sha512_of_the_header_bytes() -> None:
    data = _request().to_bytes()
    expected = base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    assert request_hash(data) == expected
    assert len(expected) == 88
    assert request_hash(data + b" ") != expected


# --------------------------------------------------------------------------- signatures


def test_sign_and_verify() -> None:
    signer = _signer()
    data = _request().to_bytes()
    jws = signer.sign(data)
    head, payload, sig = jws.split(".")
    assert payload == ""
    assert head == signer.jws_header
    verified = _verifier().verify(jws, data, NOW)
    assert verified.signer == CONSUMER
    assert verified.certificate == signer.certificate
    assert verified.cert_ref == cert_ref(signer.certificate) == signer.cert_ref
    assert verified.cert_ref == hashlib.sha256(signer.cert_der).hexdigest()
    assert verified.jws_header == head
    assert verified.jws == jws
    assert len(b64url_decode(sig)) == 64


def test_protected_header_is_exactly_alg_and_x5c_canonical() -> None:
    signer = _signer()
    raw = b64url_decode(signer.jws_header)
    der = signer.certificate.public_bytes(Encoding.DER)
    assert raw == canonical_json({"alg": "ES256", "x5c": [base64.b64encode(der).decode()]})
    assert raw.startswith(b'{"alg":"ES256","x5c":["')


def _public_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def test_the_jws_verifies_with_pyjwt() -> None:
    """An independent implementation accepts our JWS (RFC 7515 appendix F: reattach)."""
    signer = _signer()
    data = _request().to_bytes()
    head, _, sig = signer.sign(data).split(".")
    decoded = jwt.PyJWS().decode_complete(
        f"{head}.{b64url(data)}.{sig}",
        key=_public_key(signer.certificate),
        algorithms=["ES256"],
    )
    assert decoded["payload"] == data
    assert decoded["header"]["alg"] == "ES256"
    der = base64.b64decode(decoded["header"]["x5c"][0])
    assert x509.load_der_x509_certificate(der) == signer.certificate
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.PyJWS().decode_complete(
            f"{head}.{b64url(data + b' ')}.{sig}",
            key=_public_key(signer.certificate),
            algorithms=["ES256"],
        )


def test_a_pyjwt_signature_verifies_with_us() -> None:
    key, cert = _member()
    signer = _signer()
    data = _request().to_bytes()
    token = jwt.PyJWS().encode(
        data,
        key,
        algorithm="ES256",
        headers={"typ": None, "x5c": _x5c(cert)},
    )
    head, payload, sig = token.split(".")
    # PyJWT writes compact, sorted JSON: the very protected header we produce.
    assert head == signer.jws_header
    assert b64url_decode(payload) == data
    assert _verifier().verify(f"{head}..{sig}", data, NOW).signer == CONSUMER


def test_wrong_payload_is_refused() -> None:
    jws = _signer().sign(b'{"a":1}')
    with pytest.raises(EnvelopeError) as caught:
        _verifier().verify(jws, b'{"a":2}', NOW)
    assert caught.value.reason == "signature"


def test_verifier_never_returns_false() -> None:
    # Every refusal is an exception: there is no boolean to forget to check.
    with pytest.raises(EnvelopeError):
        _verifier().verify("", b"", NOW)


def _good() -> tuple[bytes, str]:
    data = _request().to_bytes()
    return data, _signer().sign(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_flipped_bit_in_the_header_is_refused(data: st.DataObject) -> None:
    payload, jws = _good()
    position = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    altered = bytearray(payload)
    altered[position] ^= 1 << bit
    with pytest.raises(EnvelopeError) as caught:
        _VERIFIER.verify(jws, bytes(altered), NOW)
    assert caught.value.reason == "signature"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_flipped_bit_in_the_signature_segment_is_refused(data: st.DataObject) -> None:
    payload, jws = _good()
    start = jws.rindex(".") + 1
    # The last character is covered by the exhaustive test below.
    position = data.draw(st.integers(min_value=start, max_value=len(jws) - 2))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    altered = jws[:position] + chr(ord(jws[position]) ^ (1 << bit)) + jws[position + 1 :]
    with pytest.raises(EnvelopeError):
        _VERIFIER.verify(altered, payload, NOW)


def test_any_flipped_bit_in_the_last_signature_character_is_refused() -> None:
    payload, jws = _good()
    accepted = []
    for bit in range(8):
        altered = jws[:-1] + chr(ord(jws[-1]) ^ (1 << bit))
        try:
            _VERIFIER.verify(altered, payload, NOW)
        except EnvelopeError:
            continue
        accepted.append(altered[-1])
    assert accepted == []


def _protected_header_flips() -> dict[str, list[str]]:
    """Flip every bit of every protected-header character; group outcomes by kind."""
    payload, jws = _good()
    outcomes: dict[str, list[str]] = {}
    for position in range(jws.index(".")):
        for bit in range(8):
            altered = jws[:position] + chr(ord(jws[position]) ^ (1 << bit)) + jws[position + 1 :]
            try:
                _VERIFIER.verify(altered, payload, NOW)
                outcome = "accepted"
            except EnvelopeError as exc:
                outcome = f"refused:{exc.reason}"
            except Exception as exc:
                outcome = f"escaped:{type(exc).__name__}"
            outcomes.setdefault(outcome, []).append(f"{position}/{bit}")
    return outcomes


def test_no_flipped_bit_in_the_protected_header_is_accepted() -> None:
    outcomes = _protected_header_flips()
    assert "accepted" not in outcomes, outcomes["accepted"][:5]
    assert "refused:signature" in outcomes
    assert "refused:malformed" in outcomes
    assert "refused:certificate" in outcomes


def test_every_flipped_bit_in_the_protected_header_raises_envelope_error() -> None:
    outcomes = _protected_header_flips()
    assert [k for k in outcomes if not k.startswith("refused:")] == []


@pytest.mark.parametrize("segment", ["A", "AAAAA", "x" * 87])
def test_base64url_of_impossible_length_is_malformed(segment: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode_segment(segment)
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize("segment", ["a+b", "a/b", "ab==", "a b", "é"])
def test_base64url_alphabet_only(segment: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode_segment(segment)
    assert caught.value.reason == "malformed"


def _jws_with(
    header: dict[str, Any] | bytes, payload: bytes, key: ec.EllipticCurvePrivateKey
) -> str:
    raw = header if isinstance(header, bytes) else canonical_json(header)
    head = b64url(raw)
    signing_input = f"{head}.{b64url(payload)}".encode("ascii")
    return f"{head}..{b64url(ECAlgorithm(ECAlgorithm.SHA256).sign(signing_input, key))}"


def _x5c(*certs: x509.Certificate) -> list[str]:
    return [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in certs]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"alg": "none"}, "signature"),
        ({"alg": "HS256"}, "signature"),
        ({"alg": "ES384"}, "signature"),
        ({"alg": "es256"}, "signature"),
        ({"alg": "ES256", "kid": "1"}, "signature"),
        ({"alg": "ES256", "typ": "JWT"}, "signature"),
        ({"alg": "ES256", "b64": False, "crit": ["b64"]}, "signature"),
        ({"alg": "ES256", "x5c": []}, "malformed"),
        ({"alg": "ES256", "x5c": "MIIB"}, "malformed"),
        ({"alg": "ES256", "x5c": ["not base64!"]}, "malformed"),
        ({"alg": "ES256", "x5c": ["AAAA"]}, "malformed"),
    ],
)
def test_protected_header_is_checked(header: dict[str, Any], reason: str) -> None:
    key, cert = _member()
    full = {"x5c": _x5c(cert), **header}
    payload, _ = _good()
    with pytest.raises(EnvelopeError) as caught:
        _verifier().verify(_jws_with(full, payload, key), payload, NOW)
    assert caught.value.reason == reason


def test_protected_header_must_be_canonical() -> None:
    key, cert = _member()
    payload, _ = _good()
    spaced = json.dumps({"alg": "ES256", "x5c": _x5c(cert)}).encode()
    dup = b'{"alg":"ES256","alg":"ES256","x5c":' + json.dumps(_x5c(cert)).encode() + b"}"
    for raw in (spaced, dup):
        with pytest.raises(EnvelopeError) as caught:
            _verifier().verify(_jws_with(raw, payload, key), payload, NOW)
        assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda h, p, s: f"{h}.{p}.{s}", id="not-detached"),
        pytest.param(lambda h, p, s: f"{h}.{s}", id="two-parts"),
        pytest.param(lambda h, p, s: f"{h}...{s}", id="four-parts"),
        pytest.param(lambda h, p, s: f"{h}..", id="no-signature"),
        pytest.param(lambda h, p, s: f"{h}..{s[:-4]}", id="short-signature"),
    ],
)
def test_jws_shape(shape: Any) -> None:
    payload, jws = _good()
    head, _, sig = jws.split(".")
    with pytest.raises(EnvelopeError) as caught:
        _verifier().verify(shape(head, b64url(payload), sig), payload, NOW)
    assert caught.value.reason == "signature"


def test_signature_by_another_members_key_with_the_right_certificate() -> None:
    _, cert = _member(CONSUMER)
    other_key, _ = _member(PROVIDER)
    payload, _ = _good()
    jws = _jws_with({"alg": "ES256", "x5c": _x5c(cert)}, payload, other_key)
    with pytest.raises(EnvelopeError) as caught:
        _verifier().verify(jws, payload, NOW)
    assert caught.value.reason == "signature"


def test_another_members_signature_names_that_member() -> None:
    payload, _ = _good()
    verified = _verifier().verify(_signer(PROVIDER).sign(payload), payload, NOW)
    assert verified.signer == PROVIDER


def test_signer_from_another_ca_is_refused() -> None:
    rogue = _signer(CONSUMER, "Other Root")
    payload = _request().to_bytes()
    with pytest.raises(EnvelopeError) as caught:
        _verifier().verify(rogue.sign(payload), payload, NOW)
    assert caught.value.reason == "certificate"


def test_signer_from_a_same_named_ca_is_refused() -> None:
    ca_key = generate_key()
    rogue_ca = create_root_ca(ROOT, ca_key, ISSUED)
    key = generate_key()
    csr = make_csr(key, CertKind.SIGN, CONSUMER)
    cert = issue_certificate(csr, CertKind.SIGN, ca_key, rogue_ca, ISSUED, days=LEAF_DAYS)
    payload = _request().to_bytes()
    for chain in ([cert], [cert, rogue_ca]):
        jws = Signer(CONSUMER, key, chain).sign(payload)
        with pytest.raises(EnvelopeError) as caught:
            _verifier().verify(jws, payload, NOW)
        assert caught.value.reason == "certificate"


def test_auth_certificate_cannot_sign_messages() -> None:
    ca_key, ca = _ca()
    key = generate_key()
    csr = make_csr(key, CertKind.AUTH, NodeId("EE", "GOV", "70000001", "ss1"))
    cert = issue_certificate(csr, CertKind.AUTH, ca_key, ca, ISSUED, days=LEAF_DAYS)
    payload = _request().to_bytes()
    jws = _jws_with({"alg": "ES256", "x5c": _x5c(cert)}, payload, key)
    with pytest.raises(EnvelopeError) as caught:
        _verifier().verify(jws, payload, NOW)
    assert caught.value.reason == "certificate"


def test_p384_signing_certificate_is_refused_for_es256() -> None:
    ca_key, ca = _ca()
    key = ec.generate_private_key(ec.SECP384R1())
    csr = make_csr(key, CertKind.SIGN, CONSUMER)
    cert = issue_certificate(csr, CertKind.SIGN, ca_key, ca, ISSUED, days=LEAF_DAYS)
    payload = _request().to_bytes()
    with pytest.raises(ValueError, match="P-256"):
        Signer(CONSUMER, key, [cert])
    jws = _jws_with({"alg": "ES256", "x5c": _x5c(cert)}, payload, key)
    with pytest.raises(EnvelopeError) as caught:
        _verifier().verify(jws, payload, NOW)
    assert caught.value.reason == "certificate"


@pytest.mark.parametrize(
    "when",
    [
        pytest.param(ISSUED + timedelta(days=LEAF_DAYS, seconds=1), id="expired"),
        pytest.param(ISSUED - timedelta(minutes=6), id="not-yet-valid"),
    ],
)
def test_certificate_outside_its_validity_is_refused(when: datetime) -> None:
    payload, jws = _good()
    with pytest.raises(EnvelopeError) as caught:
        _verifier().verify(jws, payload, when)
    assert caught.value.reason == "certificate"


def test_expiry_is_rechecked_on_the_cached_path() -> None:
    payload, jws = _good()
    verifier = _verifier()
    assert verifier.verify(jws, payload, NOW).signer == CONSUMER
    assert verifier.verify(jws, payload, NOW).signer == CONSUMER  # cached
    cert = _signer().certificate
    assert verifier.verify(jws, payload, cert.not_valid_after_utc).signer == CONSUMER
    with pytest.raises(EnvelopeError) as caught:
        verifier.verify(jws, payload, cert.not_valid_after_utc + timedelta(seconds=1))
    assert caught.value.reason == "certificate"
    with pytest.raises(EnvelopeError) as caught:
        verifier.verify(jws, payload, cert.not_valid_before_utc - timedelta(seconds=1))
    assert caught.value.reason == "certificate"
    # And a refusal is not cached as a success the other way round.
    assert verifier.verify(jws, payload, NOW).signer == CONSUMER


def test_a_refused_certificate_is_not_cached() -> None:
    payload, jws = _good()
    verifier = _verifier()
    late = ISSUED + timedelta(days=LEAF_DAYS + 1)
    for _ in range(2):
        with pytest.raises(EnvelopeError):
            verifier.verify(jws, payload, late)
    assert verifier.verify(jws, payload, NOW).signer == CONSUMER


def test_verifier_with_other_roots_refuses() -> None:
    payload, jws = _good()
    with pytest.raises(EnvelopeError) as caught:
        SignatureVerifier([_ca("Other Root")[1]]).verify(jws, payload, NOW)
    assert caught.value.reason == "certificate"


_VERIFIER = _verifier()


# --------------------------------------------------------------------------- the JWS chain


def _protected(header: dict[str, Any], *, canonical: bool = True) -> str:
    return b64url(json.dumps(header, separators=(",", ":"), sort_keys=canonical).encode())


def test_parse_jws_chain_gives_the_x5c_chain_leaf_first() -> None:
    leaf, root = _member()[1], _ca()[1]
    assert parse_jws_chain(_signer().jws_header) == [leaf]
    assert parse_jws_chain(_protected({"alg": "ES256", "x5c": _x5c(leaf, root)})) == [leaf, root]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"alg": "ES256", "x5c": "LEAF", "kid": "1"}, "signature"),
        ({"alg": "RS256", "x5c": "LEAF"}, "signature"),
        ({"alg": "ES256", "x5c": []}, "malformed"),
        ({"alg": "ES256", "x5c": "LEAF" * 5}, "malformed"),
        ({"alg": "ES256", "x5c": ["not base64!"]}, "malformed"),
        ({"alg": "ES256", "x5c": [base64.b64encode(b"not DER").decode()]}, "malformed"),
    ],
)
def test_parse_jws_chain_refuses(header: dict[str, Any], reason: str) -> None:
    """The node's verifier and the offline audit verifier parse a protected header with
    this one function, so they refuse the same headers for the same reason."""
    leaf = _x5c(_member()[1])[0]
    values = {
        k: [leaf] * (len(v) // 4) if isinstance(v, str) and "LEAF" in v else v
        for k, v in header.items()
    }
    segment = _protected(values)
    with pytest.raises(EnvelopeError) as caught:
        parse_jws_chain(segment)
    assert caught.value.reason == reason
    with pytest.raises(EnvelopeError) as verified:
        _verifier().verify(f"{segment}..{b64url(bytes(64))}", b"payload", NOW)
    assert verified.value.reason == reason


def test_parse_jws_chain_needs_canonical_json() -> None:
    segment = _protected({"x5c": _x5c(_member()[1]), "alg": "ES256"}, canonical=False)
    with pytest.raises(EnvelopeError) as caught:
        parse_jws_chain(segment)
    assert caught.value.reason == "malformed"
