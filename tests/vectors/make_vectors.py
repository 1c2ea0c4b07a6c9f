"""Generate ``tests/vectors/envelope.json``: test vectors for the node-to-node envelope.

Run by hand after a deliberate protocol change, then commit the output::

    .venv/bin/python tests/vectors/make_vectors.py

Every key this script creates is a THROWAWAY TEST FIXTURE derived from a fixed label, so
it is public by construction: it exists only to make these vectors and must never be
used anywhere else. Certificates are valid for a century from a fixed date, and
``now`` is fixed, so the vectors never expire. Everything is deterministic except the
serial numbers and the ECDSA signatures (in the certificates and the JWSs): consumers
of the file verify signatures, they never compare signature bytes.

See tests/vectors/README.md for the file layout and docs/protocol.md for the protocol.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.core.canonical import canonical_json
from gateway.core.encoding import b64url, format_time
from gateway.core.envelope import PROTOCOL_VERSION, body_sha256, request_hash
from gateway.core.ids import MemberId, NodeId
from gateway.core.jws import JWS_ALGORITHM
from gateway.pki.ca import create_root_ca, issue_certificate, make_csr
from gateway.pki.profiles import CertKind

OUT = Path(__file__).with_name("envelope.json")
KEY_LABEL = "throwaway-test-key"
WARNING = (
    "THROWAWAY TEST FIXTURES. Every private key in this file is public and exists only to "
    "produce these test vectors. Never use any of them anywhere else."
)

ISSUED = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CA_DAYS = 36600  # a little over 100 years, so the leaves fit inside the CA
LEAF_DAYS = 36525  # 100 years
WINDOW_SECONDS = 300

CONSUMER = MemberId("DE-NRW", "GOV", "05974040")
PROVIDER = MemberId("DE-NRW", "GOV", "05974028")
CONSUMER_NODE = NodeId("DE-NRW", "GOV", "05974040", "ss1")
CA_NAME = "Throwaway Test Root"

# Order of the P-256 group, to map a hash onto a valid private scalar.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def throwaway_key(label: str, curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """A deterministic, public, throwaway EC key: the scalar is a hash of ``label``.

    The scalar is reduced below the P-256 group order, which is also below P-384's.
    """
    digest = hashlib.sha512(f"{KEY_LABEL}:{label}".encode()).digest()
    scalar = int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, curve or ec.SECP256R1())


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def b64std(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def es256(signing_input: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """Raw R||S as JWS wants it (RFC 7518 section 3.4), zero-padded to the curve size."""
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def protected(chain: Sequence[x509.Certificate], alg: str = JWS_ALGORITHM) -> dict[str, Any]:
    return {"alg": alg, "x5c": [b64std(c.public_bytes(Encoding.DER)) for c in chain]}


def sign_with(header_segment: str, payload: bytes, key: ec.EllipticCurvePrivateKey) -> str:
    """Compact JWS, detached payload (RFC 7515 appendix F), any protected header segment."""
    signing_input = f"{header_segment}.{b64url(payload)}".encode("ascii")
    return f"{header_segment}..{b64url(es256(signing_input, key))}"


def jws(header: dict[str, Any] | bytes, payload: bytes, key: ec.EllipticCurvePrivateKey) -> str:
    raw = header if isinstance(header, bytes) else canonical_json(header)
    return sign_with(b64url(raw), payload, key)


@dataclass(frozen=True)
class Pki:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    consumer_key: ec.EllipticCurvePrivateKey
    consumer_cert: x509.Certificate
    provider_key: ec.EllipticCurvePrivateKey
    provider_cert: x509.Certificate
    rogue_ca: x509.Certificate
    rogue_key: ec.EllipticCurvePrivateKey
    rogue_cert: x509.Certificate
    auth_key: ec.EllipticCurvePrivateKey
    auth_cert: x509.Certificate
    p384_key: ec.EllipticCurvePrivateKey
    p384_cert: x509.Certificate


def _sign_cert(
    key: ec.EllipticCurvePrivateKey,
    member: MemberId,
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
) -> x509.Certificate:
    csr = make_csr(key, CertKind.SIGN, member, "Throwaway Test Member", country="DE")
    return issue_certificate(csr, CertKind.SIGN, ca_key, ca, ISSUED, days=LEAF_DAYS)


def make_pki() -> Pki:
    ca_key = throwaway_key("ca")
    ca = create_root_ca(CA_NAME, ca_key, ISSUED, days=CA_DAYS)
    consumer_key = throwaway_key("member-05974040-sign")
    provider_key = throwaway_key("member-05974028-sign")
    # Another CA with the very same name: only the signature on the leaf tells them apart.
    rogue_ca_key = throwaway_key("rogue-ca")
    rogue_ca = create_root_ca(CA_NAME, rogue_ca_key, ISSUED, days=CA_DAYS)
    rogue_key = throwaway_key("rogue-member-05974040-sign")
    auth_key = throwaway_key("node-ss1-auth")
    auth_csr = make_csr(auth_key, CertKind.AUTH, CONSUMER_NODE)
    p384_key = throwaway_key("member-05974040-sign-p384", ec.SECP384R1())
    return Pki(
        ca_key=ca_key,
        ca=ca,
        consumer_key=consumer_key,
        consumer_cert=_sign_cert(consumer_key, CONSUMER, ca_key, ca),
        provider_key=provider_key,
        provider_cert=_sign_cert(provider_key, PROVIDER, ca_key, ca),
        rogue_ca=rogue_ca,
        rogue_key=rogue_key,
        rogue_cert=_sign_cert(rogue_key, CONSUMER, rogue_ca_key, rogue_ca),
        auth_key=auth_key,
        auth_cert=issue_certificate(auth_csr, CertKind.AUTH, ca_key, ca, ISSUED, days=LEAF_DAYS),
        p384_key=p384_key,
        p384_cert=_sign_cert(p384_key, CONSUMER, ca_key, ca),
    )


# --------------------------------------------------------------------------- canonical JSON


def _bytes_case(name: str, data: bytes, why: str) -> dict[str, Any]:
    case: dict[str, Any] = {"name": name, "description": why, "bytes_hex": data.hex()}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return case
    if len(text) <= 200:
        case["bytes_utf8"] = text
    return case


def _changed(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data`` with ``old`` replaced; refuses to build a vector that changes nothing."""
    if old not in data:
        raise ValueError(f"{old!r} does not occur in {data!r}")
    return data.replace(old, new)


def _nested(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    result: dict[str, Any] = value
    return result


def canonical_cases() -> dict[str, list[dict[str, Any]]]:
    valid_values: list[tuple[str, dict[str, Any], str]] = [
        ("empty-object", {}, "The smallest header."),
        (
            "sorted-keys",
            {"b": 1, "a": [True, False, None], "c": {"z": "", "y": -5}},
            "Keys sorted at every level; arrays keep their order.",
        ),
        (
            "key-order-is-code-unit-order",
            {"a": 1, "B": 2, "_": 3, "aa": 4, "": 5, "A": 6},
            "Keys compare by code unit: '' < 'A' < 'B' < '_' < 'a' < 'aa'.",
        ),
        (
            "unicode-as-raw-utf8",
            {
                "name": "Jürgen Müller",
                "street": "Lange Straße ☃",
                "emoji": "😀",
                "nbsp": "a\u00a0b",
            },
            "Non-ASCII is written as raw UTF-8, never as \\u escapes.",
        ),
        (
            "escapes",
            {"s": 'quote" backslash\\ slash/ \b\f\n\r\t nul\x00 us\x1f del\x7f ls\u2028'},
            "Only '\"', '\\\\' and U+0000..U+001F are escaped; \\b \\f \\n \\r \\t use the "
            "short form, other controls \\u00xx in lower-case hex; '/', DEL and U+2028 "
            "are written as they are.",
        ),
        (
            "integers",
            {"zero": 0, "neg": -1, "max": 9007199254740991, "min": -9007199254740991},
            "Integers in plain decimal, no sign for positives, no leading zeros.",
        ),
        ("nested-8-levels", _nested(8), "Eight levels of nesting is the maximum."),
    ]
    valid = [
        {
            "name": name,
            "description": why,
            "value": value,
            "canonical_utf8": canonical_json(value).decode("utf-8"),
            "canonical_hex": canonical_json(value).hex(),
        }
        for name, value, why in valid_values
    ]
    invalid_bytes: list[tuple[str, bytes, str]] = [
        ("empty", b"", "No JSON at all."),
        ("space-after-colon", b'{"a": 1}', "Insignificant white space."),
        ("leading-space", b' {"a":1}', "Insignificant white space."),
        ("trailing-newline", b'{"a":1}\n', "Trailing bytes."),
        ("trailing-garbage", b'{"a":1}x', "Trailing bytes."),
        ("two-objects", b'{"a":1}{"b":2}', "Trailing bytes."),
        ("unsorted-keys", b'{"b":1,"a":2}', "Keys out of order."),
        ("duplicate-keys", b'{"a":1,"a":2}', "Duplicate keys, different values."),
        ("duplicate-keys-same-value", b'{"a":1,"a":1}', "Duplicate keys, same value."),
        ("nested-duplicate-keys", b'{"a":{"b":1,"b":1}}', "Duplicate keys below the top."),
        ("float", b'{"a":1.0}', "Floats are not allowed, even integral ones."),
        ("exponent", b'{"a":1e2}', "Floats are not allowed."),
        ("nan", b'{"a":NaN}', "Not JSON (a Python extension)."),
        ("infinity", b'{"a":-Infinity}', "Not JSON (a Python extension)."),
        ("negative-zero", b'{"a":-0}', "-0 is not the canonical spelling of 0."),
        ("leading-zero", b'{"a":01}', "Not JSON."),
        ("plus-sign", b'{"a":+1}', "Not JSON."),
        ("needless-escape", b'{"a":"\\u0041"}', "'A' must not be escaped."),
        ("escaped-solidus", b'{"a":"\\/"}', "'/' must not be escaped."),
        ("upper-case-hex-escape", b'{"a":"\\u001F"}', "Escapes use lower-case hex."),
        ("long-form-newline", b'{"a":"\\u000a"}', "Newline must be written \\n."),
        ("escaped-non-ascii", b'{"a":"\\u00e9"}', "Non-ASCII must be raw UTF-8."),
        ("raw-control-character", b'{"a":"\x01"}', "Controls must be escaped (not JSON)."),
        ("array", b"[1]", "The top level must be an object."),
        ("string", b'"a"', "The top level must be an object."),
        ("null", b"null", "The top level must be an object."),
        ("utf8-bom", b'\xef\xbb\xbf{"a":1}', "No byte order mark."),
        ("invalid-utf8", b'{"a":"\xff"}', "Not UTF-8."),
        ("overlong-utf8", b'{"a":"\xc0\xaf"}', "Overlong UTF-8 for '/'."),
        (
            "too-deep",
            json.dumps(_nested(9), separators=(",", ":")).encode(),
            "Nine levels of nesting.",
        ),
        ("lone-surrogate", b'{"a":"\\ud800"}', "A lone surrogate has no UTF-8 form."),
        (
            "huge-integer",
            b'{"a":' + b"1" * 5000 + b"}",
            "An integer far outside the interoperable range (and Python's digit limit).",
        ),
    ]
    return {
        "valid": valid,
        "invalid": [_bytes_case(name, data, why) for name, data, why in invalid_bytes],
    }


# --------------------------------------------------------------------------- headers

_DROP = object()  # marks a field to delete in header_cases
BODY_EMPTY = b""
BODY_POST = '{"familienname":"Müller","vornamen":"Jürgen"}'.encode()
BODY_REPLY = '{"anschrift":"Lange Straße 1, 59555 Lippstadt","name":"Anna Schmidt"}'.encode()


def request_fields(
    message_id: str,
    client: str,
    service: str,
    method: str,
    path: str,
    query: str,
    headers: list[list[str]],
    user_id: str | None,
    issue: str | None,
    created: str,
    body: bytes,
    represented_party: str | None = None,
) -> dict[str, Any]:
    optional = {} if represented_party is None else {"represented_party": represented_party}
    return {
        **optional,
        "v": PROTOCOL_VERSION,
        "type": "request",
        "id": message_id,
        "xroad_id": f"DE-NRW-{message_id}",
        "client": client,
        "service": service,
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "user_id": user_id,
        "issue": issue,
        "created": created,
        "body_sha256": body_sha256(body),
        "body_length": len(body),
    }


def request_cases() -> dict[str, tuple[dict[str, Any], bytes, str]]:
    return {
        "get-simple": (
            request_fields(
                "0c9c5c8e-8f3e-4c4b-9a0e-3f6b2f7f1a01",
                "DE-NRW/GOV/05974040/gewerbeamt",
                "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
                "GET",
                "/auskunft",
                "familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14",
                [["accept", "application/json"]],
                None,
                None,
                "2025-06-01T11:59:58.250Z",
                BODY_EMPTY,
            ),
            BODY_EMPTY,
            "A GET from a subsystem, no body, no optional X-Road headers.",
        ),
        "post-with-body": (
            request_fields(
                "5b1d7e2c-3a4f-4e6b-8c9d-0e1f2a3b4c5d",
                "DE-NRW/GOV/05974040/gewerbeamt",
                "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
                "POST",
                "/suche",
                "felder=anschrift",
                [
                    ["accept", "application/json"],
                    ["content-type", "application/json; charset=utf-8"],
                    ["x-trace", "café"],
                ],
                "sachbearbeiter-17",
                "GA-2025-0042",
                "2025-06-01T11:59:59.000Z",
                BODY_POST,
            ),
            BODY_POST,
            "A POST with a UTF-8 body, a query, a Latin-1 header value, user id and issue.",
        ),
        "member-client-encoded-ids": (
            request_fields(
                "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
                "DE-NRW/GOV/05974040",
                "DE-NRW/GOV/05974028/reg'(1)+,=%3F/svc.v1-x",
                "DELETE",
                "",
                "",
                [],
                None,
                None,
                "2025-06-01T12:00:00.000Z",
                BODY_EMPTY,
            ),
            BODY_EMPTY,
            "A member (three-part) client, an empty path, and id parts with every "
            "punctuation character X-Road allows ('?' percent-encoded as %3F).",
        ),
        "represented-party": (
            request_fields(
                "3e2d1c0b-9a8f-4e7d-8c6b-5a4f3e2d1c0b",
                "DE-NRW/GOV/05974040/gewerbeamt",
                "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
                "GET",
                "/auskunft",
                "familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14",
                [["accept", "application/json"]],
                "sachbearbeiter-17",
                "GA-2025-0042",
                "2025-06-01T11:59:58.500Z",
                BODY_EMPTY,
                represented_party="COM/HRB4711",
            ),
            BODY_EMPTY,
            "A request made on behalf of a third party (X-Road-Represented-Party, "
            "[CLASS/]CODE): the optional field is present only when set.",
        ),
    }


def response_cases(
    requests: dict[str, tuple[dict[str, Any], bytes, str]],
) -> dict[str, tuple[dict[str, Any], bytes, str, str]]:
    def reply(
        to: str, status: int, headers: list[list[str]], created: str, body: bytes
    ) -> dict[str, Any]:
        req = requests[to][0]
        return {
            "v": PROTOCOL_VERSION,
            "type": "response",
            "id": req["id"],
            "xroad_id": req["xroad_id"],
            "client": req["client"],
            "service": req["service"],
            "request_hash": request_hash(canonical_json(req)),
            "status": status,
            "headers": headers,
            "created": created,
            "body_sha256": body_sha256(body),
            "body_length": len(body),
        }

    return {
        "ok-json": (
            reply(
                "get-simple",
                200,
                [["content-type", "application/json"]],
                "2025-06-01T11:59:58.612Z",
                BODY_REPLY,
            ),
            BODY_REPLY,
            "get-simple",
            "A 200 answer with a JSON body.",
        ),
        "not-found-empty": (
            reply("member-client-encoded-ids", 404, [], "2025-06-01T12:00:00.100Z", BODY_EMPTY),
            BODY_EMPTY,
            "member-client-encoded-ids",
            "A registry's 404 is relayed signed, like any other status.",
        ),
    }


def header_cases(
    requests: dict[str, tuple[dict[str, Any], bytes, str]],
    responses: dict[str, tuple[dict[str, Any], bytes, str, str]],
) -> dict[str, list[dict[str, Any]]]:
    req_out = []
    for name, (fields, body, why) in requests.items():
        data = canonical_json(fields)
        req_out.append(
            {
                "name": name,
                "description": why,
                "fields": fields,
                "body_hex": body.hex(),
                "header_utf8": data.decode("utf-8"),
                "header_b64url": b64url(data),
                "request_hash": request_hash(data),
            }
        )
    resp_out = []
    for name, (fields, body, to, why) in responses.items():
        data = canonical_json(fields)
        resp_out.append(
            {
                "name": name,
                "description": why,
                "in_reply_to": to,
                "fields": fields,
                "body_hex": body.hex(),
                "header_utf8": data.decode("utf-8"),
                "header_b64url": b64url(data),
            }
        )

    base_req = requests["get-simple"][0]
    base_resp = responses["ok-json"][0]

    def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
        out = dict(base)
        for key, value in changes.items():
            if value is _DROP:
                del out[key]
            else:
                out[key] = value
        return out

    bad: list[tuple[str, str, dict[str, Any], str]] = [
        ("unknown-field", "request", changed(base_req, extra=1), "An extra field."),
        ("missing-field", "request", changed(base_req, issue=_DROP), "'issue' is absent."),
        (
            "represented-party-null",
            "request",
            changed(base_req, represented_party=None),
            "An optional field is absent when not set, never null.",
        ),
        (
            "represented-party-three-parts",
            "request",
            changed(base_req, represented_party="COM/HRB4711/extra"),
            "X-Road-Represented-Party is [CLASS/]CODE: at most two parts.",
        ),
        (
            "represented-party-space",
            "request",
            changed(base_req, represented_party="COM/HRB 4711"),
            "Only X-Road's identifier characters: letters, digits and '()+,-.=?.",
        ),
        ("wrong-version", "request", changed(base_req, v=2), "Only v=1 exists."),
        ("type-response-as-request", "request", changed(base_req, type="response"), ""),
        ("type-request-as-response", "response", changed(base_resp, type="request"), ""),
        (
            "upper-case-header-name",
            "request",
            changed(base_req, headers=[["Accept", "application/json"]]),
            "Header names are lower-case tokens.",
        ),
        (
            "header-name-not-token",
            "request",
            changed(base_req, headers=[["x y", "1"]]),
            "Header names are tokens.",
        ),
        (
            "crlf-in-header-value",
            "request",
            changed(base_req, headers=[["accept", "a\r\nx-injected: 1"]]),
            "CR/LF in a value would split headers.",
        ),
        (
            "nul-in-header-value",
            "request",
            changed(base_req, headers=[["accept", "a\x00b"]]),
            "NUL in a value.",
        ),
        (
            "header-not-a-pair",
            "request",
            changed(base_req, headers=[["accept"]]),
            "Each header is a [name, value] pair.",
        ),
        (
            "header-value-beyond-latin1",
            "request",
            changed(base_req, headers=[["x-price", "5 €"]]),
            "Header values are limited to U+0009, U+0020..U+007E and U+0080..U+00FF.",
        ),
        (
            "message-id-upper-case",
            "request",
            changed(base_req, id=base_req["id"].upper()),
            "The message id is a lower-case UUID.",
        ),
        (
            "message-id-without-hyphens",
            "request",
            changed(base_req, id=base_req["id"].replace("-", "")),
            "The message id is in the hyphenated form.",
        ),
        ("message-id-not-uuid", "request", changed(base_req, id="not-a-uuid"), ""),
        (
            "created-without-milliseconds",
            "request",
            changed(base_req, created="2025-06-01T11:59:58Z"),
            "Exactly three fraction digits.",
        ),
        (
            "created-with-offset",
            "request",
            changed(base_req, created="2025-06-01T13:59:58.250+02:00"),
            "UTC with 'Z' only.",
        ),
        (
            "created-microseconds",
            "request",
            changed(base_req, created="2025-06-01T11:59:58.250000Z"),
            "Exactly three fraction digits.",
        ),
        (
            "created-month-13",
            "request",
            changed(base_req, created="2025-13-01T11:59:58.250Z"),
            "Not a date.",
        ),
        ("method-lower-case", "request", changed(base_req, method="get"), ""),
        ("path-relative", "request", changed(base_req, path="auskunft"), ""),
        ("path-non-ascii", "request", changed(base_req, path="/auskunft/ä"), ""),
        (
            "path-dot-segment",
            "request",
            changed(base_req, path="/auskunft/../admin"),
            "Dot segments would be normalised away after the access check.",
        ),
        (
            "path-encoded-dot-segment",
            "request",
            changed(base_req, path="/auskunft/%2E%2e/admin"),
            "Percent-encoded dot segments are dot segments too.",
        ),
        ("client-two-parts", "request", changed(base_req, client="DE-NRW/GOV"), ""),
        (
            "client-not-canonical",
            "request",
            changed(base_req, client="DE-NRW/GOV/%305974040/gewerbeamt"),
            "An id must be spelled in its one printed form (here '0' is percent-encoded).",
        ),
        (
            "service-four-parts",
            "request",
            changed(base_req, service="DE-NRW/GOV/05974028/melderegister"),
            "",
        ),
        ("body-length-negative", "request", changed(base_req, body_length=-1), ""),
        ("body-length-boolean", "request", changed(base_req, body_length=True), ""),
        ("body-length-string", "request", changed(base_req, body_length="0"), ""),
        ("user-id-too-long", "request", changed(base_req, user_id="u" * 256), ""),
        ("status-out-of-range", "response", changed(base_resp, status=600), ""),
        ("request-hash-too-long", "response", changed(base_resp, request_hash="A" * 129), ""),
    ]
    invalid = [
        {
            "name": name,
            "description": why,
            "kind": kind,
            "header_hex": canonical_json(fields).hex(),
            "reason": "malformed",
        }
        for name, kind, fields, why in bad
    ]
    return {"request": req_out, "response": resp_out, "invalid": invalid}


# --------------------------------------------------------------------------- signed messages


def message_cases(
    pki: Pki,
    requests: dict[str, tuple[dict[str, Any], bytes, str]],
    responses: dict[str, tuple[dict[str, Any], bytes, str, str]],
) -> list[dict[str, Any]]:
    get_fields, get_body, _ = requests["get-simple"]
    post_fields, post_body, _ = requests["post-with-body"]
    get_bytes = canonical_json(get_fields)
    post_bytes = canonical_json(post_fields)
    consumer = protected([pki.consumer_cert])
    good = jws(consumer, get_bytes, pki.consumer_key)
    head, _, sig = good.split(".")
    sig_raw = base64.urlsafe_b64decode(sig + "==")

    out: list[dict[str, Any]] = []

    def add(
        name: str,
        why: str,
        payload: bytes,
        signature: str,
        body: bytes,
        expect: dict[str, Any],
        *,
        kind: str = "request",
        now: str | None = None,
        in_reply_to: str | None = None,
    ) -> None:
        case: dict[str, Any] = {
            "name": name,
            "description": why,
            "kind": kind,
            "envelope": b64url(payload),
            "signature": signature,
            "body_hex": body.hex(),
        }
        if now is not None:
            case["now"] = now
        if in_reply_to is not None:
            case["in_reply_to"] = in_reply_to
        case["expect"] = expect
        out.append(case)

    def ok(signer: MemberId, *, is_client_member: bool = True) -> dict[str, Any]:
        return {"valid": True, "signer": str(signer), "signer_is_client_member": is_client_member}

    def fail(stage: str, reason: str) -> dict[str, Any]:
        return {"valid": False, "stage": stage, "reason": reason}

    def get(signature: str, name: str, why: str, expect: dict[str, Any], **kw: Any) -> None:
        add(name, why, get_bytes, signature, get_body, expect, **kw)

    # ---- valid
    get(good, "request-get", "A GET request signed by the client's member.", ok(CONSUMER))
    add(
        "request-post",
        "A POST request with a body.",
        post_bytes,
        jws(consumer, post_bytes, pki.consumer_key),
        post_body,
        ok(CONSUMER),
    )
    party_fields, party_body, _ = requests["represented-party"]
    party_bytes = canonical_json(party_fields)
    add(
        "request-represented-party",
        "A request that names the party it is made for; the field is signed like any other.",
        party_bytes,
        jws(consumer, party_bytes, pki.consumer_key),
        party_body,
        ok(CONSUMER),
    )
    get(
        jws(protected([pki.consumer_cert, pki.ca]), get_bytes, pki.consumer_key),
        "x5c-includes-root",
        "x5c may carry the chain up to and including the trusted root.",
        ok(CONSUMER),
    )
    get(
        jws(protected([pki.provider_cert]), get_bytes, pki.provider_key),
        "signed-by-another-member",
        "The signature is valid, but by a member other than the client's; the provider "
        "refuses it with server.serverproxy.signer_mismatch.",
        ok(PROVIDER, is_client_member=False),
    )
    for name, (fields, body, to, _why) in responses.items():
        data = canonical_json(fields)
        add(
            f"response-{name}",
            "A response signed by the provider's member, bound to its request.",
            data,
            jws(protected([pki.provider_cert]), data, pki.provider_key),
            body,
            {**ok(PROVIDER), "bound_to_request": True},
            kind="response",
            in_reply_to=to,
        )
    resp_fields = dict(responses["ok-json"][0])
    resp_fields["request_hash"] = request_hash(post_bytes)
    resp_bytes = canonical_json(resp_fields)
    add(
        "response-bound-to-another-request",
        "A well-signed response whose request_hash is another request's: the consumer "
        "refuses it with server.clientproxy.inconsistent_response.",
        resp_bytes,
        jws(protected([pki.provider_cert]), resp_bytes, pki.provider_key),
        BODY_REPLY,
        {**ok(PROVIDER), "bound_to_request": False},
        kind="response",
        in_reply_to="get-simple",
    )
    window_start = NOW - timedelta(seconds=WINDOW_SECONDS)
    for name, created, expect, why in [
        (
            "created-exactly-window-ago",
            window_start,
            ok(CONSUMER),
            "Created exactly 300 s before now: still accepted.",
        ),
        (
            "created-window-plus-1ms-ago",
            window_start - timedelta(milliseconds=1),
            fail("created", "expired"),
            "Created 300.001 s before now.",
        ),
        (
            "created-window-plus-1ms-ahead",
            NOW + timedelta(seconds=WINDOW_SECONDS, milliseconds=1),
            fail("created", "expired"),
            "Created 300.001 s after now (the sender's clock is ahead).",
        ),
    ]:
        fields = dict(get_fields, created=format_time(created))
        data = canonical_json(fields)
        add(name, why, data, jws(consumer, data, pki.consumer_key), get_body, expect)

    # ---- the body
    add(
        "body-changed",
        "The body is not the one the header names.",
        post_bytes,
        jws(consumer, post_bytes, pki.consumer_key),
        _changed(post_body, b"M", b"m"),
        fail("body", "signature"),
    )
    add(
        "body-extended",
        "One byte more than body_length.",
        post_bytes,
        jws(consumer, post_bytes, pki.consumer_key),
        post_body + b" ",
        fail("body", "signature"),
    )

    # ---- the signature value
    flipped_payload = _changed(get_bytes, b"vornamen=Anna", b"vornamen=Anne")
    add(
        "payload-byte-flipped",
        "One byte of the signed header changed after signing (still a valid header).",
        flipped_payload,
        good,
        get_body,
        fail("signature", "signature"),
    )
    flipped_sig = bytearray(sig_raw)
    flipped_sig[10] ^= 0x01
    get(
        f"{head}..{b64url(bytes(flipped_sig))}",
        "signature-byte-flipped",
        "One bit of the signature value changed.",
        fail("signature", "signature"),
    )
    get(
        f"{head}..{b64url(sig_raw[:-2])}",
        "signature-truncated",
        "A 62-byte signature value.",
        fail("signature", "signature"),
    )
    get(
        f"{head}..",
        "signature-empty",
        "No signature value at all.",
        fail("signature", "signature"),
    )
    last = _B64URL_ALPHABET.index(sig[-1])
    get(
        f"{head}..{sig[:-1]}{_B64URL_ALPHABET[last ^ 1]}",
        "signature-noncanonical-base64url",
        "The last character differs only in bits that base64url leaves unused: a "
        "different string for the same bytes, which must be refused.",
        fail("signature", "signature"),
    )
    get(
        f"{head}..{sig}AAA",
        "signature-bad-base64url-length",
        "A base64url segment whose length is 1 more than a multiple of 4 decodes to nothing.",
        fail("signature", "signature"),
    )
    get(
        f"{head}..{sig[:-1]}+",
        "signature-not-base64url",
        "'+' is base64, not base64url.",
        fail("signature", "signature"),
    )
    get(
        jws(consumer, post_bytes, pki.consumer_key),
        "signature-over-another-payload",
        "A valid JWS for another header.",
        fail("signature", "signature"),
    )
    get(
        jws(consumer, get_bytes, pki.provider_key),
        "other-members-key-with-right-cert",
        "Signed with member 05974028's key while x5c names member 05974040's certificate.",
        fail("signature", "signature"),
    )

    # ---- the JWS structure and protected header
    get(
        f"{head}.{b64url(get_bytes)}.{sig}",
        "not-detached",
        "The payload is embedded; this protocol only accepts a detached payload.",
        fail("signature", "signature"),
    )
    get(f"{head}.{sig}", "two-segments", "Not a compact JWS.", fail("signature", "signature"))
    get(
        f"{head}...{sig}",
        "four-segments",
        "Not a compact JWS.",
        fail("signature", "signature"),
    )
    get(
        f"{b64url(canonical_json(protected([pki.consumer_cert], 'none')))}..",
        "alg-none",
        "An unsecured JWS.",
        fail("signature", "signature"),
    )
    hs_head = b64url(canonical_json(protected([pki.consumer_cert], "HS256")))
    hs_mac = hmac.new(
        pki.consumer_cert.public_bytes(Encoding.PEM),
        f"{hs_head}.{b64url(get_bytes)}".encode("ascii"),
        hashlib.sha256,
    ).digest()
    get(
        f"{hs_head}..{b64url(hs_mac)}",
        "alg-hs256-keyed-with-certificate",
        "The classic algorithm confusion: an HMAC keyed with the public certificate.",
        fail("signature", "signature"),
    )
    get(
        jws({**consumer, "kid": "1"}, get_bytes, pki.consumer_key),
        "extra-protected-parameter",
        "The protected header must be exactly alg and x5c.",
        fail("signature", "signature"),
    )
    get(
        jws({**consumer, "b64": False, "crit": ["b64"]}, get_bytes, pki.consumer_key),
        "b64-false",
        "RFC 7797 unencoded payloads are not part of this protocol.",
        fail("signature", "signature"),
    )
    x5c_json = json.dumps(consumer["x5c"])
    get(
        jws(
            f'{{"alg": "ES256", "x5c": {x5c_json}}}'.encode(),
            get_bytes,
            pki.consumer_key,
        ),
        "protected-header-not-canonical",
        "White space in the protected header.",
        fail("signature", "malformed"),
    )
    compact_x5c = json.dumps(consumer["x5c"], separators=(",", ":"))
    get(
        jws(
            f'{{"alg":"ES256","alg":"ES256","x5c":{compact_x5c}}}'.encode(),
            get_bytes,
            pki.consumer_key,
        ),
        "protected-header-duplicate-key",
        "A duplicate 'alg' in the protected header.",
        fail("signature", "malformed"),
    )
    get(
        f"{head[:-1]}+..{sig}",
        "protected-header-not-base64url",
        "'+' in the protected header segment.",
        fail("signature", "malformed"),
    )
    get(
        jws({"alg": "ES256", "x5c": []}, get_bytes, pki.consumer_key),
        "x5c-empty",
        "No certificate.",
        fail("signature", "malformed"),
    )
    get(
        jws({"alg": "ES256", "x5c": consumer["x5c"] * 5}, get_bytes, pki.consumer_key),
        "x5c-too-long",
        "At most four certificates.",
        fail("signature", "malformed"),
    )
    get(
        jws({"alg": "ES256", "x5c": consumer["x5c"][0]}, get_bytes, pki.consumer_key),
        "x5c-not-a-list",
        "x5c is a string instead of a list.",
        fail("signature", "malformed"),
    )
    get(
        jws({"alg": "ES256", "x5c": ["not base64!"]}, get_bytes, pki.consumer_key),
        "x5c-not-base64",
        "x5c entries are standard base64 of DER.",
        fail("signature", "malformed"),
    )
    get(
        jws(
            {"alg": "ES256", "x5c": [b64std(b"\x30\x03\x02\x01\x00")]}, get_bytes, pki.consumer_key
        ),
        "x5c-not-a-certificate",
        "Base64 of DER that is not a certificate.",
        fail("signature", "malformed"),
    )

    # ---- the certificate
    get(
        jws(protected([pki.rogue_cert]), get_bytes, pki.rogue_key),
        "x5c-from-another-ca",
        "A signing certificate for the right member from a CA with the trusted root's "
        "name but another key.",
        fail("signature", "certificate"),
    )
    get(
        jws(protected([pki.rogue_cert, pki.rogue_ca]), get_bytes, pki.rogue_key),
        "x5c-with-untrusted-root",
        "The rogue chain including its own root: a root in x5c is never a trust anchor.",
        fail("signature", "certificate"),
    )
    get(
        jws(protected([pki.auth_cert]), get_bytes, pki.auth_key),
        "x5c-auth-certificate",
        "A node's authentication (TLS) certificate from the trusted CA is not a signing "
        "certificate.",
        fail("signature", "certificate"),
    )
    get(
        jws(protected([pki.ca]), get_bytes, pki.ca_key),
        "x5c-ca-certificate",
        "The trusted root itself, signing with its own key.",
        fail("signature", "certificate"),
    )
    get(
        jws(protected([pki.p384_cert]), get_bytes, pki.p384_key),
        "x5c-p384-certificate",
        "A valid signing certificate with a P-384 key cannot make ES256 signatures.",
        fail("signature", "certificate"),
    )
    get(
        good,
        "certificate-not-yet-valid",
        "Verified at a time before the certificate's notBefore.",
        fail("signature", "certificate"),
        now=format_time(ISSUED - timedelta(days=1)),
    )
    get(
        good,
        "certificate-expired",
        "Verified at a time after the certificate's notAfter.",
        fail("signature", "certificate"),
        now=format_time(ISSUED + timedelta(days=LEAF_DAYS + 1)),
    )

    # ---- the signed header itself
    signed_bad_headers: list[tuple[str, bytes, str]] = [
        (
            "header-duplicate-key",
            _changed(get_bytes, b'"body_length":0,', b'"body_length":0,"body_length":0,'),
            "A duplicate key in the signed header.",
        ),
        ("header-trailing-bytes", get_bytes + b"\n", "A newline after the header."),
        (
            "header-not-canonical",
            json.dumps(get_fields, sort_keys=True).encode(),
            "The header with spaces after ':' and ','.",
        ),
        (
            "header-unsorted",
            json.dumps(get_fields, separators=(",", ":")).encode(),
            "Keys in insertion order, not sorted.",
        ),
    ]
    for name, data, why in signed_bad_headers:
        add(
            name,
            why,
            data,
            jws(consumer, data, pki.consumer_key),
            get_body,
            fail("header", "malformed"),
        )
    return out


# --------------------------------------------------------------------------- the file


def build() -> dict[str, Any]:
    pki = make_pki()
    requests = request_cases()
    responses = response_cases(requests)

    def member(name: MemberId, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Any:
        return {
            "member": str(name),
            "cert_pem": pem(cert),
            "key": {"label": KEY_LABEL, "warning": WARNING, "pkcs8_pem": key_pem(key)},
        }

    return {
        "WARNING": WARNING,
        "description": (
            "Test vectors for the node-to-node envelope (docs/protocol.md). Generated by "
            "tests/vectors/make_vectors.py; checked by tests/unit/test_vectors.py."
        ),
        "protocol_version": PROTOCOL_VERSION,
        "now": format_time(NOW),
        "window_seconds": WINDOW_SECONDS,
        "trust": {"ca_cert_pem": pem(pki.ca)},
        "signers": [
            member(CONSUMER, pki.consumer_cert, pki.consumer_key),
            member(PROVIDER, pki.provider_cert, pki.provider_key),
        ],
        "canonical": canonical_cases(),
        "headers": header_cases(requests, responses),
        "messages": message_cases(pki, requests, responses),
    }


def dump(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    OUT.write_text(dump(build()), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
