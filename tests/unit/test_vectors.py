"""Check every case in tests/vectors/envelope.json against the current code.

The vectors are the protocol's executable examples (docs/protocol.md). Cases that the
current code gets wrong are listed in ``KNOWN_BUGS`` and run as strict xfails, so the
suite stays green today and fails loudly (XPASS) the day the bug is fixed and the entry
should be removed.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core.canonical import NotCanonicalError, canonical_json, parse_canonical
from gateway.core.encoding import b64url, b64url_decode
from gateway.core.envelope import (
    EnvelopeError,
    RequestHeader,
    ResponseHeader,
    body_sha256,
    check_body,
    check_created,
    parse_time,
    request_hash,
)
from gateway.core.ids import MemberId, ServiceId, parse_client
from gateway.core.jws import SignatureVerifier, Signer

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
VECTORS_FILE = VECTORS_DIR / "envelope.json"

KNOWN_BUGS: dict[str, str] = {}


@functools.cache
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return data


def _params(section: str, cases: list[dict[str, Any]]) -> list[Any]:
    params = []
    for case in cases:
        key = f"{section}:{case['name']}"
        marks = []
        if key in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=f"gateway bug: {KNOWN_BUGS[key]}"))
        params.append(pytest.param(case, id=case["name"], marks=marks))
    return params


def _now(case: dict[str, Any] | None = None) -> Any:
    text = (case or {}).get("now") or vectors()["now"]
    return parse_time(text)


@functools.cache
def _verifier() -> SignatureVerifier:
    # One verifier for all cases, as a node has: the certificate cache is exercised too.
    return SignatureVerifier([_load_cert(vectors()["trust"]["ca_cert_pem"])])


def _load_cert(text: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(text.encode("ascii"))


def _request_header(name: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [
        c for c in vectors()["headers"]["request"] if c["name"] == name
    ]
    assert len(matches) == 1, name
    return matches[0]


# --------------------------------------------------------------------------- file-level


def test_file_is_labelled_and_never_expires() -> None:
    data = vectors()
    assert "THROWAWAY" in data["WARNING"]
    assert data["protocol_version"] == 1
    now = _now()
    ca = _load_cert(data["trust"]["ca_cert_pem"])
    assert ca.not_valid_before_utc <= now
    assert ca.not_valid_after_utc - now > timedelta(days=365 * 99)
    for signer in data["signers"]:
        assert signer["key"]["label"] == "throwaway-test-key"
        assert "THROWAWAY" in signer["key"]["warning"]
        cert = _load_cert(signer["cert_pem"])
        assert cert.not_valid_before_utc <= now
        assert cert.not_valid_after_utc - now > timedelta(days=365 * 99)


@pytest.mark.parametrize("index", [0, 1])
def test_throwaway_keys_sign_for_their_members(index: int) -> None:
    entry = vectors()["signers"][index]
    key = serialization.load_pem_private_key(entry["key"]["pkcs8_pem"].encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    member = MemberId.parse(entry["member"])
    signer = Signer(member, key, [_load_cert(entry["cert_pem"])])
    payload = b'{"fresh":"message"}'
    assert _verifier().verify(signer.sign(payload), payload, _now()).signer == member


def test_every_case_name_is_unique() -> None:
    data = vectors()
    sections = {
        "canonical": data["canonical"]["valid"] + data["canonical"]["invalid"],
        "header": data["headers"]["request"]
        + data["headers"]["response"]
        + data["headers"]["invalid"],
        "message": data["messages"],
    }
    for cases in sections.values():
        names = [c["name"] for c in cases]
        assert len(names) == len(set(names))
    known = {f"{s}:{c['name']}" for s, cases in sections.items() for c in cases}
    assert set(KNOWN_BUGS) <= known, "a KNOWN_BUGS entry names no case"


def test_committed_file_matches_the_generator() -> None:
    """The committed vectors are what make_vectors.py produces today (minus signatures)."""
    spec = importlib.util.spec_from_file_location("make_vectors", VECTORS_DIR / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh: dict[str, Any] = json.loads(module.dump(module.build()))
    committed = vectors()
    for key in ("protocol_version", "now", "window_seconds", "canonical", "headers"):
        assert fresh[key] == committed[key], key

    def stable(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (m["name"], m["kind"], m["envelope"], m["body_hex"], m.get("now"), m["expect"])
            for m in messages
        ]

    assert stable(fresh["messages"]) == stable(committed["messages"])
    assert [s["member"] for s in fresh["signers"]] == [s["member"] for s in committed["signers"]]
    assert [s["key"] for s in fresh["signers"]] == [s["key"] for s in committed["signers"]]


# --------------------------------------------------------------------------- canonical JSON


@pytest.mark.parametrize("case", _params("canonical", vectors()["canonical"]["valid"]))
def test_canonical_valid(case: dict[str, Any]) -> None:
    expected = bytes.fromhex(case["canonical_hex"])
    assert expected == case["canonical_utf8"].encode("utf-8")
    assert canonical_json(case["value"]) == expected
    assert parse_canonical(expected) == case["value"]


@pytest.mark.parametrize("case", _params("canonical", vectors()["canonical"]["invalid"]))
def test_canonical_invalid(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["bytes_hex"])
    if "bytes_utf8" in case:
        assert data == case["bytes_utf8"].encode("utf-8")
    with pytest.raises(NotCanonicalError):
        parse_canonical(data)


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("case", _params("header", vectors()["headers"]["request"]))
def test_request_header(case: dict[str, Any]) -> None:
    data = case["header_utf8"].encode("utf-8")
    assert b64url_decode(case["header_b64url"]) == data
    assert b64url(data) == case["header_b64url"]
    body = bytes.fromhex(case["body_hex"])
    fields = case["fields"]
    assert canonical_json(fields) == data
    assert fields["body_sha256"] == body_sha256(body)
    assert fields["body_length"] == len(body)
    built = RequestHeader(
        message_id=fields["id"],
        xroad_id=fields["xroad_id"],
        client=parse_client(fields["client"]),
        service=ServiceId.parse(fields["service"]),
        method=fields["method"],
        path=fields["path"],
        query=fields["query"],
        headers=tuple((n, v) for n, v in fields["headers"]),
        user_id=fields["user_id"],
        issue=fields["issue"],
        created=fields["created"],
        body_sha256=body_sha256(body),
        body_length=len(body),
        represented_party=fields.get("represented_party"),
    )
    assert built.to_bytes() == data
    parsed = RequestHeader.from_bytes(data)
    assert parsed == built
    assert parsed.to_bytes() == data
    assert request_hash(data) == case["request_hash"]
    check_body(parsed.body_sha256, parsed.body_length, body)


@pytest.mark.parametrize("case", _params("header", vectors()["headers"]["response"]))
def test_response_header(case: dict[str, Any]) -> None:
    data = case["header_utf8"].encode("utf-8")
    assert b64url(data) == case["header_b64url"]
    body = bytes.fromhex(case["body_hex"])
    fields = case["fields"]
    request = _request_header(case["in_reply_to"])
    built = ResponseHeader(
        message_id=fields["id"],
        xroad_id=fields["xroad_id"],
        client=parse_client(fields["client"]),
        service=ServiceId.parse(fields["service"]),
        request_hash=request["request_hash"],
        status=fields["status"],
        headers=tuple((n, v) for n, v in fields["headers"]),
        created=fields["created"],
        body_sha256=body_sha256(body),
        body_length=len(body),
    )
    assert built.to_bytes() == data
    parsed = ResponseHeader.from_bytes(data)
    assert parsed == built
    # The binding: same ids, and the hash of the exact request header bytes.
    assert parsed.request_hash == request_hash(request["header_utf8"].encode("utf-8"))
    assert parsed.message_id == request["fields"]["id"]
    assert parsed.xroad_id == request["fields"]["xroad_id"]
    check_body(parsed.body_sha256, parsed.body_length, body)


@pytest.mark.parametrize("case", _params("header", vectors()["headers"]["invalid"]))
def test_invalid_header(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["header_hex"])
    parse = RequestHeader.from_bytes if case["kind"] == "request" else ResponseHeader.from_bytes
    with pytest.raises(EnvelopeError) as caught:
        parse(data)
    assert caught.value.reason == case["reason"]


# --------------------------------------------------------------------------- signed messages


def _parse_header(case: dict[str, Any], payload: bytes) -> RequestHeader | ResponseHeader:
    if case["kind"] == "request":
        return RequestHeader.from_bytes(payload)
    return ResponseHeader.from_bytes(payload)


@pytest.mark.parametrize("case", _params("message", vectors()["messages"]))
def test_message(case: dict[str, Any]) -> None:
    """Each stage on its own, so a case fails in exactly the stage it names."""
    payload = b64url_decode(case["envelope"])
    body = bytes.fromhex(case["body_hex"])
    now = _now(case)
    window = timedelta(seconds=vectors()["window_seconds"])
    expect = case["expect"]
    failing = None if expect["valid"] else expect["stage"]

    def stage(name: str, run: Any) -> Any:
        if failing == name:
            with pytest.raises(EnvelopeError) as caught:
                run()
            assert caught.value.reason == expect["reason"], caught.value.message
            return None
        return run()

    header = stage("header", lambda: _parse_header(case, payload))
    verified = stage("signature", lambda: _verifier().verify(case["signature"], payload, now))
    if failing in ("header", "signature"):
        return
    assert isinstance(header, RequestHeader | ResponseHeader)
    stage("created", lambda: check_created(header.created, now, window))
    stage("body", lambda: check_body(header.body_sha256, header.body_length, body))
    if failing is not None:
        return
    assert str(verified.signer) == expect["signer"]
    client_member = header.client.member
    signer_is_client = verified.signer == client_member
    if case["kind"] == "request":
        assert signer_is_client == expect["signer_is_client_member"]
    else:
        # A response is signed by the provider: the service's member.
        assert verified.signer == header.service.member
        assert isinstance(header, ResponseHeader)
        request = _request_header(case["in_reply_to"])
        bound = header.request_hash == request_hash(request["header_utf8"].encode("utf-8"))
        assert bound == expect["bound_to_request"]


def test_message_cases_cover_every_reason_and_stage() -> None:
    seen = {
        (m["expect"]["stage"], m["expect"]["reason"])
        for m in vectors()["messages"]
        if not m["expect"]["valid"]
    }
    assert {
        ("header", "malformed"),
        ("signature", "malformed"),
        ("signature", "signature"),
        ("signature", "certificate"),
        ("created", "expired"),
        ("body", "signature"),
    } <= seen
