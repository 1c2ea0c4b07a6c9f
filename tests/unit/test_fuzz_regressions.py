"""Inputs the fuzzers found that escaped a parser as an undocumented exception; each is
now refused with the parser's own error (docs/reliability.md, "Fuzzing")."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from gateway.audit.bundle import BundleFormatError
from gateway.audit.bundle_read import parse_entry_line, read_bundle
from gateway.central.errors import CentralCode, CentralError
from gateway.central.registration import (
    auth_cert_document,
    verify_auth_cert_request,
    verify_client_request,
)
from gateway.conf.anchor import ConfigurationAnchorError, load_anchor, parse_anchor
from gateway.conf.globalconf import GlobalConf, GlobalConfError
from gateway.core.canonical import canonical_json
from gateway.core.encoding import b64url
from gateway.core.envelope import EnvelopeError
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import NodeId
from gateway.core.openapi import parse_openapi
from gateway.pki.ocsp import OcspError, OcspFailure, verify_ocsp_response
from tests.fuzz import targets

NODE = NodeId("DE-NRW", "GOV", "05974040", "ss1")
DEEP_ARRAY = b"[" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000


@pytest.mark.parametrize(
    "damage",
    [
        # a UTF8String that is not UTF-8: ValueError
        (b"\x0c\x0eFuzz CA DE-NRW", b"\x0c\x0eFuz" + b"\xff" * 8 + b"NRW"),
        # the common name as a BIT STRING: TypeError
        (b"\x0c\x0eFuzz CA DE-NRW", b"\x03\x0e\x00uzz CA DE-NRW"),
    ],
    ids=["not-utf8", "bit-string"],
)
def test_an_unreadable_responder_name_is_a_malformed_ocsp_response(
    damage: tuple[bytes, bytes],
) -> None:
    """Found by atheris: a ResponderID byName that cryptography cannot decode escaped
    from its lazy decoding as ValueError or TypeError, which a node would answer with a
    500 instead of refusing the peer's evidence."""
    pki = targets._pki()
    by_name = pki.responses[1]
    assert ocsp.load_der_ocsp_response(by_name).responder_name is not None
    name, replacement = damage
    assert by_name.count(name) >= 1
    damaged = by_name.replace(name, replacement, 1)
    with pytest.raises(OcspError) as info:
        verify_ocsp_response(damaged, pki.leaf, pki.ca, targets.NOW)
    assert info.value.reason is OcspFailure.MALFORMED
    assert "responder id" in info.value.detail


@pytest.mark.parametrize("document", [DEEP_ARRAY, DEEP_OBJECT])
def test_a_deeply_nested_anchor_is_refused(document: bytes, tmp_path: Path) -> None:
    """Found by the suite's nesting edit: json.loads raises RecursionError, no ValueError."""
    with pytest.raises(ConfigurationAnchorError, match="not JSON"):
        parse_anchor(document)
    path = tmp_path / "anchor.json"
    path.write_bytes(document)
    with pytest.raises(ConfigurationAnchorError, match=str(path)):
        load_anchor(path)


@pytest.mark.parametrize("document", [DEEP_ARRAY, DEEP_OBJECT])
def test_a_deeply_nested_service_description_is_not_json(document: bytes) -> None:
    with pytest.raises(GatewayError) as info:
        parse_openapi(document)
    assert info.value.code is Code.DESCRIPTION_NOT_JSON


def _manifest() -> bytes:
    return targets._bundle().splitlines(keepends=True)[0]


def test_a_deeply_nested_bundle_line_names_its_line() -> None:
    with pytest.raises(BundleFormatError) as info:
        read_bundle([_manifest(), DEEP_ARRAY + b"\n"])
    assert info.value.line == 2
    with pytest.raises(BundleFormatError) as info:
        read_bundle([DEEP_OBJECT])
    assert info.value.line == 1
    with pytest.raises(BundleFormatError):
        parse_entry_line(DEEP_ARRAY, 7)


def test_an_entry_id_of_thousands_of_digits_is_a_format_error() -> None:
    """Found by the suite: the id of a line that is not JSON is looked up for the error
    message, and int() of over 4300 digits raised ValueError from the error handler."""
    line = b'{"type":"entry","id":' + b"7" * 5000 + b"}\n"
    with pytest.raises(BundleFormatError) as info:
        read_bundle([_manifest(), line])
    assert (info.value.line, info.value.entry_id) == (2, None)
    with pytest.raises(BundleFormatError) as info:
        parse_entry_line(line, 9)
    assert (info.value.line, info.value.entry_id) == (9, None)
    # A readable id is still named.
    with pytest.raises(BundleFormatError) as info:
        read_bundle([_manifest(), b'{"type":"entry","id":42,"oops"\n'])
    assert info.value.entry_id == 42


def test_an_issuer_key_on_an_unknown_curve_is_an_untrusted_chain() -> None:
    """Found by atheris: an ``x5c`` intermediate named like the root but with its key on
    a curve cryptography does not support raised UnsupportedAlgorithm out of the chain
    check, past the node's refusal of the message."""
    pem = targets.vectors()["trust"]["ca_cert_pem"].encode()
    root = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    prime256v1 = bytes.fromhex("06082a8648ce3d030107")
    assert root.count(prime256v1) == 1
    odd_curve = root.replace(prime256v1, prime256v1[:-1] + b"\x7f")
    signer = targets.vectors()["signers"][0]
    leaf = bytearray(
        x509.load_pem_x509_certificate(signer["cert_pem"].encode()).public_bytes(Encoding.DER)
    )
    leaf[-1] ^= 1  # the real root no longer verifies it, so the odd one is tried
    header = b64url(
        canonical_json(
            {"alg": "ES256", "x5c": [base64.b64encode(d).decode() for d in (leaf, odd_curve)]}
        )
    )
    with pytest.raises(EnvelopeError) as info:
        targets._verifier().verify(f"{header}..{'A' * 86}", b"{}", targets.NOW)
    assert info.value.reason == "certificate"
    assert "not supported" in info.value.message


def test_a_certificate_of_an_unknown_version_is_an_invalid_configuration() -> None:
    """Found by atheris: a CA certificate in the global configuration with a version
    other than v1 or v3 raised cryptography's InvalidVersion, which is no ValueError, so
    the node's configuration client did not count it as a refused document."""
    doc = json.loads(targets._globalconf())
    der = base64.b64decode("".join(doc["cas"][0]["cert"].splitlines()[1:-1]))
    body = base64.encodebytes(_version_18(der)).decode("ascii")
    doc["cas"][0]["cert"] = f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"
    with pytest.raises(GlobalConfError, match=r"cas\[0\]\.cert: not a PEM certificate"):
        GlobalConf.from_bytes(canonical_json(doc))


def _version_18(der: bytes) -> bytes:
    v3 = bytes.fromhex("a003020102")
    at = der.index(v3)
    return der[: at + 4] + b"\x12" + der[at + 5 :]


def test_a_registration_signed_with_a_certificate_of_an_unknown_version_is_malformed() -> None:
    """Found by the registration target: the central authority's check of a member's
    signature let cryptography's InvalidVersion out of an ``x5c`` certificate."""
    header_segment, _, signature = targets._pki().member_signature.partition("..")
    header = json.loads(base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4)))
    leaf = _version_18(base64.b64decode(header["x5c"][0]))
    header["x5c"][0] = base64.b64encode(leaf).decode("ascii")
    damaged = f"{b64url(canonical_json(header))}..{signature}"
    with pytest.raises(CentralError) as info:
        verify_client_request(
            targets.CLIENT_REQUEST, damaged, "DE-NRW", [targets._pki().ca], targets.NOW
        )
    assert info.value.code is CentralCode.REG_MALFORMED
    assert "x5c does not parse" in info.value.message


def test_an_auth_cert_of_an_unknown_version_is_malformed() -> None:
    """The same load of the registration's ``auth_cert`` PEM, refused before any
    signature is looked at."""
    pki = targets._pki()
    doc = auth_cert_document("DE-NRW", NODE, "https://127.0.0.1:8443", pki.leaf, targets.NOW)
    body = base64.encodebytes(_version_18(pki.leaf.public_bytes(Encoding.DER))).decode()
    doc["auth_cert"] = f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"
    with pytest.raises(CentralError) as info:
        verify_auth_cert_request(doc, "", "", "DE-NRW", [pki.ca], targets.NOW)
    assert info.value.code is CentralCode.REG_MALFORMED
    assert "auth_cert is not PEM" in info.value.message


def test_an_unreadable_issuer_in_x5c_is_a_malformed_message() -> None:
    """Found by atheris: an ``x5c`` that validates through its leaf but ends in a
    certificate whose issuer name cannot be decoded raised ValueError when the verifier
    computed how long to cache the chain."""
    pem = targets.vectors()["trust"]["ca_cert_pem"].encode()
    root = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    name = b"\x0c\x13Throwaway Test Root"
    assert root.count(name) == 2  # issuer, then subject
    unreadable_issuer = root.replace(name, b"\x0c\x13" + b"\xff" * 19, 1)
    signer = targets.vectors()["signers"][0]
    leaf = x509.load_pem_x509_certificate(signer["cert_pem"].encode()).public_bytes(Encoding.DER)
    x5c = [base64.b64encode(d).decode() for d in (leaf, unreadable_issuer)]
    header = b64url(canonical_json({"alg": "ES256", "x5c": x5c}))
    with pytest.raises(EnvelopeError) as info:
        targets._verifier().verify(f"{header}..{'A' * 86}", b"{}", targets.NOW)
    assert info.value.reason == "malformed"


def test_a_registration_certificate_with_an_unreadable_issuer_is_not_approved() -> None:
    """Found by atheris: the chain check read the issuer name of a leaf the central
    authority was given, and a name that cannot be decoded escaped as ValueError."""
    header_segment, _, signature = targets._pki().member_signature.partition("..")
    header = json.loads(base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4)))
    leaf = base64.b64decode(header["x5c"][0])
    name = b"\x0c\x0eFuzz CA DE-NRW"
    assert leaf.count(name) == 1  # the issuer: the subject is the member
    header["x5c"][0] = base64.b64encode(leaf.replace(name, b"\x0c\x0e" + b"\xff" * 14)).decode()
    damaged = f"{b64url(canonical_json(header))}..{signature}"
    with pytest.raises(CentralError) as info:
        verify_client_request(
            targets.CLIENT_REQUEST, damaged, "DE-NRW", [targets._pki().ca], targets.NOW
        )
    assert info.value.code is CentralCode.REG_CERTIFICATE
    assert "cannot be read" in info.value.message
