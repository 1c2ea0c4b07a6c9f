"""Tests for the development PKI: key files, issuance profile, chain checks, OpenSSL interop."""

from __future__ import annotations

import functools
import os
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.ids import MemberId, NodeId
from gateway.keys.files import (
    load_certificate,
    load_certificates,
    load_private_key,
    new_key_and_csr,
    write_certificate,
    write_private_key,
)
from gateway.pki.ca import create_root_ca, issue_certificate, make_csr
from gateway.pki.keys import fingerprint_sha256, generate_key
from gateway.pki.profiles import (
    MEMBER_URI_PREFIX,
    NODE_URI_PREFIX,
    CertificateError,
    CertKind,
    member_id_of,
    node_id_of,
)
from gateway.pki.validation import (
    verify_auth_certificate,
    verify_chain,
    verify_signing_certificate,
)
from gateway.trust.ca_store import init_ca, issue_from_csr

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NODE = NodeId("EE", "GOV", "70000001", "ss1")
MEMBER = MemberId("EE", "GOV", "70000001")
OPENSSL = "/usr/bin/openssl"


@functools.cache
def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = generate_key()
    return key, create_root_ca("Test Root", key, NOW)


def _auth_cert(
    owner: NodeId = NODE, now: datetime = NOW, days: int = 365
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key, ca_cert = _ca()
    key = generate_key()
    csr = make_csr(key, CertKind.AUTH, owner, "Test Org")
    return key, issue_certificate(csr, CertKind.AUTH, ca_key, ca_cert, now, days)


def _sign_cert(owner: MemberId = MEMBER) -> x509.Certificate:
    ca_key, ca_cert = _ca()
    csr = make_csr(generate_key(), CertKind.SIGN, owner)
    return issue_certificate(csr, CertKind.SIGN, ca_key, ca_cert, NOW)


def _ca_cert(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name | None,
    path_length: int | None,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=30),
) -> x509.Certificate:
    """A CA certificate built by hand, for shapes ``create_root_ca`` deliberately never makes."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def _raw_leaf(
    issuer_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    issuer_name: x509.Name,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=1),
    extra: x509.ExtensionType | None = None,
) -> x509.Certificate:
    """A leaf signed by any key under any claimed issuer name, as a forger would build it."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(NODE))]))
        .issuer_name(issuer_name)
        .public_key(generate_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if extra is not None:
        builder = builder.add_extension(extra, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


# --- key files ---------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_private_key_file_mode_is_exactly_0600_whatever_the_umask(
    tmp_path: Path, umask: int
) -> None:
    path = tmp_path / "sub" / "dir" / "node.key"
    old = os.umask(umask)
    try:
        write_private_key(path, generate_key())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_write_private_key_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    first = generate_key()
    write_private_key(path, first)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_private_key(path, generate_key())
    assert path.read_bytes() == before
    assert load_private_key(path).private_numbers() == first.private_numbers()


def test_load_private_key_refuses_non_ec_key(tmp_path: Path) -> None:
    path = tmp_path / "ed.key"
    path.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="EC"):
        load_private_key(path)


def test_certificate_files_and_fingerprint_match_openssl(tmp_path: Path) -> None:
    _, auth = _auth_cert()
    sign = _sign_cert()
    write_certificate(tmp_path / "auth.pem", auth)
    assert load_certificate(tmp_path / "auth.pem") == auth
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(
        auth.public_bytes(serialization.Encoding.PEM)
        + sign.public_bytes(serialization.Encoding.PEM)
    )
    assert load_certificates(bundle) == [auth, sign]
    with pytest.raises(ValueError, match="2 certificates"):
        load_certificate(bundle)
    out = subprocess.run(
        [OPENSSL, "x509", "-noout", "-fingerprint", "-sha256", "-in", str(tmp_path / "auth.pem")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    expected = out.strip().split("=", 1)[1].replace(":", "").lower()
    assert fingerprint_sha256(auth) == expected
    assert len(expected) == 64


# --- issuance profile --------------------------------------------------------------------


def test_auth_certificate_profile_and_node_id_round_trip() -> None:
    ca_key, ca_cert = _ca()
    key = generate_key()
    csr = make_csr(key, CertKind.AUTH, NODE, "Test Org")
    cert = issue_certificate(
        csr,
        CertKind.AUTH,
        ca_key,
        ca_cert,
        NOW,
        days=30,
        dns_names=["ss1.example"],
        ip_addresses=["127.0.0.1"],
    )
    ext = cert.extensions
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert not ku.value.content_commitment
    assert not ku.value.key_cert_sign
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert not bc.value.ca
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:x-road:node:EE/GOV/70000001/ss1"
    ]
    assert san.get_values_for_type(x509.DNSName) == ["ss1.example"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == str(NODE)
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Test Org"
    assert cert.issuer == ca_cert.subject
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + timedelta(days=30)
    assert cert.public_key() == key.public_key()
    assert node_id_of(cert) == NODE


def test_sign_certificate_profile_and_member_id_round_trip() -> None:
    cert = _sign_cert()
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.content_commitment
    assert ku.digital_signature
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        MEMBER_URI_PREFIX + "EE/GOV/70000001"
    ]
    assert member_id_of(cert) == MEMBER


def test_ids_with_reserved_characters_survive_the_san_uri() -> None:
    odd = NodeId("EE", "GOV", "a?b", "x'(y)+,=.-")
    _, cert = _auth_cert(odd)
    uri = cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.UniformResourceIdentifier)[0]
    assert "?" not in uri
    assert node_id_of(cert) == odd


def test_id_too_long_for_common_name_is_carried_by_critical_san_only() -> None:
    long_node = NodeId("EE", "GOV", "7" * 40, "s" * 40)
    _, cert = _auth_cert(long_node)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []
    assert node_id_of(cert) == long_node
    bare = make_csr(generate_key(), CertKind.AUTH, long_node)
    ca_key, ca_cert = _ca()
    issued = issue_certificate(bare, CertKind.AUTH, ca_key, ca_cert, NOW)
    assert len(issued.subject) == 0
    assert issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_profiles_do_not_cross() -> None:
    _, auth = _auth_cert()
    sign = _sign_cert()
    with pytest.raises(CertificateError, match="signing certificate"):
        member_id_of(auth)
    with pytest.raises(CertificateError, match="auth certificate"):
        node_id_of(sign)


def _shaped_leaf(
    *,
    sign_usage: bool,
    ekus: list[x509.ObjectIdentifier],
    uris: list[str],
    common_name: str,
) -> x509.Certificate:
    """A CA-signed leaf with a hand-picked profile, for shapes our issuer never produces."""
    ca_key, ca_cert = _ca()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(generate_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=sign_usage,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    )
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def test_signing_certificate_with_tls_usage_is_refused() -> None:
    member_uri = MEMBER_URI_PREFIX + str(MEMBER)
    good = _shaped_leaf(sign_usage=True, ekus=[], uris=[member_uri], common_name=str(MEMBER))
    assert member_id_of(good) == MEMBER
    for eku in (ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH):
        dual = _shaped_leaf(sign_usage=True, ekus=[eku], uris=[member_uri], common_name=str(MEMBER))
        with pytest.raises(CertificateError, match="must not have the serverAuth or clientAuth"):
            member_id_of(dual)


def test_auth_certificate_needs_both_tls_usages() -> None:
    node_uri = NODE_URI_PREFIX + str(NODE)
    server_only = _shaped_leaf(
        sign_usage=False,
        ekus=[ExtendedKeyUsageOID.SERVER_AUTH],
        uris=[node_uri],
        common_name=str(NODE),
    )
    with pytest.raises(CertificateError, match="serverAuth and clientAuth"):
        node_id_of(server_only)


def test_certificate_owner_must_be_unambiguous() -> None:
    tls = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    node_uri = NODE_URI_PREFIX + str(NODE)
    other = NODE_URI_PREFIX + "EE/GOV/70000001/ss2"
    assert (
        node_id_of(_shaped_leaf(sign_usage=False, ekus=tls, uris=[node_uri], common_name=str(NODE)))
        == NODE
    )
    two = _shaped_leaf(sign_usage=False, ekus=tls, uris=[node_uri, other], common_name=str(NODE))
    with pytest.raises(CertificateError, match="exactly one SAN URI"):
        node_id_of(two)
    wrong_cn = _shaped_leaf(
        sign_usage=False, ekus=tls, uris=[node_uri], common_name="EE/GOV/70000001/ss2"
    )
    with pytest.raises(CertificateError, match="does not match the SAN owner"):
        node_id_of(wrong_cn)
    member_uri = _shaped_leaf(
        sign_usage=False, ekus=tls, uris=[MEMBER_URI_PREFIX + str(MEMBER)], common_name="x"
    )
    with pytest.raises(CertificateError, match="does not name a node"):
        node_id_of(member_uri)


def test_ca_certificate_is_neither_auth_nor_sign() -> None:
    _, ca_cert = _ca()
    with pytest.raises(CertificateError, match="must not be a CA"):
        node_id_of(ca_cert)
    with pytest.raises(CertificateError, match="must not be a CA"):
        member_id_of(ca_cert)


def test_make_csr_refuses_owner_of_the_wrong_kind() -> None:
    with pytest.raises(CertificateError, match="NodeId"):
        make_csr(generate_key(), CertKind.AUTH, MEMBER)
    with pytest.raises(CertificateError, match="MemberId"):
        make_csr(generate_key(), CertKind.SIGN, NODE)


def test_node_csr_is_refused_for_a_signing_certificate() -> None:
    ca_key, ca_cert = _ca()
    csr = make_csr(generate_key(), CertKind.AUTH, NODE)
    with pytest.raises(CertificateError, match="does not name a member"):
        issue_certificate(csr, CertKind.SIGN, ca_key, ca_cert, NOW)
    member_csr = make_csr(generate_key(), CertKind.SIGN, MEMBER)
    with pytest.raises(CertificateError, match="does not name a node"):
        issue_certificate(member_csr, CertKind.AUTH, ca_key, ca_cert, NOW)


def test_tampered_csr_is_refused() -> None:
    ca_key, ca_cert = _ca()
    csr = make_csr(generate_key(), CertKind.AUTH, NODE)
    der = csr.public_bytes(serialization.Encoding.DER)
    forged_der = der.replace(b"70000001/ss1", b"70000002/ss1")
    assert forged_der != der
    forged = x509.load_der_x509_csr(forged_der)
    with pytest.raises(CertificateError, match="signature"):
        issue_certificate(forged, CertKind.AUTH, ca_key, ca_cert, NOW)


def _csr_with(
    key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
    subject: x509.Name | None = None,
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(NODE))])
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(key, hashes.SHA256())


def test_csr_extensions_are_not_copied() -> None:
    ca_key, ca_cert = _ca()
    csr = _csr_with(
        generate_key(),
        [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=True,
                    data_encipherment=True,
                    key_agreement=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            ),
            (
                x509.SubjectAlternativeName(
                    [
                        x509.UniformResourceIdentifier(NODE_URI_PREFIX + str(NODE)),
                        x509.DNSName("evil.example"),
                    ]
                ),
                False,
            ),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False),
            (x509.OCSPNoCheck(), False),
        ],
        subject=x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, str(NODE)),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Injected OU"),
            ]
        ),
    )
    cert = issue_certificate(csr, CertKind.AUTH, ca_key, ca_cert, NOW)
    ext = cert.extensions
    assert {e.oid for e in ext} == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    ku = ext.get_extension_for_class(x509.KeyUsage).value
    assert not ku.key_cert_sign
    assert not ku.key_encipherment
    assert set(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    }
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.UniformResourceIdentifier(NODE_URI_PREFIX + str(NODE))]
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME) == []
    assert node_id_of(cert) == NODE


def test_csr_must_name_exactly_one_owner_consistently() -> None:
    ca_key, ca_cert = _ca()
    key = generate_key()
    no_san = _csr_with(key, [])
    with pytest.raises(CertificateError, match="no SAN"):
        issue_certificate(no_san, CertKind.AUTH, ca_key, ca_cert, NOW)
    other = NodeId("EE", "GOV", "70000001", "ss2")
    two = _csr_with(
        key,
        [
            (
                x509.SubjectAlternativeName(
                    [
                        x509.UniformResourceIdentifier(NODE_URI_PREFIX + str(NODE)),
                        x509.UniformResourceIdentifier(NODE_URI_PREFIX + str(other)),
                    ]
                ),
                False,
            )
        ],
    )
    with pytest.raises(CertificateError, match="exactly one SAN URI"):
        issue_certificate(two, CertKind.AUTH, ca_key, ca_cert, NOW)
    mismatched_cn = _csr_with(
        key,
        [
            (
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(NODE_URI_PREFIX + str(other))]
                ),
                False,
            )
        ],
    )
    with pytest.raises(CertificateError, match="does not match"):
        issue_certificate(mismatched_cn, CertKind.AUTH, ca_key, ca_cert, NOW)
    bad_id = _csr_with(
        key,
        [
            (
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(NODE_URI_PREFIX + "EE/GOV")]
                ),
                False,
            )
        ],
    )
    with pytest.raises(CertificateError, match="invalid id"):
        issue_certificate(bad_id, CertKind.AUTH, ca_key, ca_cert, NOW)


def _csr_for_key(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
) -> x509.CertificateSigningRequest:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(NODE))]))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(NODE_URI_PREFIX + str(NODE))]
            ),
            critical=False,
        )
        .sign(key, algorithm)
    )


def test_csr_key_policy() -> None:
    ca_key, ca_cert = _ca()
    for weak in (
        ec.generate_private_key(ec.SECP256K1()),
        rsa.generate_private_key(65537, 1024),  # noqa: S505 -- must be refused
        ed25519.Ed25519PrivateKey.generate(),
    ):
        with pytest.raises(CertificateError, match=r"not accepted|too small"):
            issue_certificate(_csr_for_key(weak), CertKind.AUTH, ca_key, ca_cert, NOW)
    for strong in (ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(65537, 2048)):
        cert = issue_certificate(_csr_for_key(strong), CertKind.AUTH, ca_key, ca_cert, NOW)
        assert node_id_of(cert) == NODE


def test_issuance_refuses_to_outlive_the_ca_and_foreign_ca_key() -> None:
    ca_key, ca_cert = _ca()
    csr = make_csr(generate_key(), CertKind.AUTH, NODE)
    with pytest.raises(CertificateError, match="outlive the CA"):
        issue_certificate(csr, CertKind.AUTH, ca_key, ca_cert, NOW, days=3651)
    with pytest.raises(CertificateError, match="does not belong"):
        issue_certificate(csr, CertKind.AUTH, generate_key(), ca_cert, NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        issue_certificate(csr, CertKind.AUTH, ca_key, ca_cert, NOW.replace(tzinfo=None))


# --- chain validation --------------------------------------------------------------------


def test_verify_chain_accepts_good_chain_and_returns_owners() -> None:
    _, ca_cert = _ca()
    _, auth = _auth_cert()
    sign = _sign_cert()
    verify_chain(auth, [], [ca_cert], NOW)
    assert verify_auth_certificate(auth, [], [ca_cert], NOW + timedelta(days=364)) == NODE
    assert verify_signing_certificate(sign, [], [ca_cert], NOW) == MEMBER
    with pytest.raises(CertificateError, match="signing certificate"):
        verify_signing_certificate(auth, [], [ca_cert], NOW)
    with pytest.raises(CertificateError, match="auth certificate"):
        verify_auth_certificate(sign, [], [ca_cert], NOW)


def test_verify_chain_refuses_expired_and_not_yet_valid() -> None:
    _, ca_cert = _ca()
    _, auth = _auth_cert(days=30)
    with pytest.raises(CertificateError, match="expired"):
        verify_chain(auth, [], [ca_cert], NOW + timedelta(days=30, seconds=1))
    with pytest.raises(CertificateError, match="not yet valid"):
        verify_chain(auth, [], [ca_cert], NOW - timedelta(minutes=6))
    verify_chain(auth, [], [ca_cert], NOW - timedelta(minutes=4))


def test_verify_chain_refuses_expired_root() -> None:
    root_key = generate_key()
    root = _ca_cert(
        "Old Root",
        root_key,
        root_key,
        None,
        0,
        not_before=NOW - timedelta(days=20),
        not_after=NOW - timedelta(days=10),
    )
    leaf = _raw_leaf(root_key, root.subject)
    with pytest.raises(CertificateError, match=r"root .*expired"):
        verify_chain(leaf, [], [root], NOW)


def test_verify_chain_refuses_certificate_from_another_ca() -> None:
    _, ca_cert = _ca()
    rogue_key = generate_key()
    rogue = create_root_ca("Rogue Root", rogue_key, NOW)
    csr = make_csr(generate_key(), CertKind.AUTH, NODE)
    leaf = issue_certificate(csr, CertKind.AUTH, rogue_key, rogue, NOW)
    with pytest.raises(CertificateError, match="not a trusted root"):
        verify_chain(leaf, [], [ca_cert], NOW)
    verify_chain(leaf, [], [rogue], NOW)


def test_verify_chain_refuses_rogue_root_with_the_same_name() -> None:
    _, ca_cert = _ca()
    rogue_key = generate_key()
    rogue = create_root_ca("Test Root", rogue_key, NOW)
    assert rogue.subject == ca_cert.subject
    csr = make_csr(generate_key(), CertKind.SIGN, MEMBER)
    leaf = issue_certificate(csr, CertKind.SIGN, rogue_key, rogue, NOW)
    with pytest.raises(CertificateError, match="does not verify"):
        verify_signing_certificate(leaf, [], [ca_cert], NOW)


def test_verify_chain_refuses_forged_issuer_name() -> None:
    _, ca_cert = _ca()
    forged = _raw_leaf(generate_key(), ca_cert.subject)
    assert forged.issuer == ca_cert.subject
    with pytest.raises(CertificateError, match="does not verify"):
        verify_chain(forged, [], [ca_cert], NOW)


def test_verify_chain_tries_every_root_with_the_issuer_name() -> None:
    _, ca_cert = _ca()
    rollover_key = generate_key()
    rollover = create_root_ca("Test Root", rollover_key, NOW)
    csr = make_csr(generate_key(), CertKind.AUTH, NODE)
    leaf = issue_certificate(csr, CertKind.AUTH, rollover_key, rollover, NOW)
    verify_chain(leaf, [], [ca_cert, rollover], NOW)


def test_verify_chain_refuses_leaf_as_issuer() -> None:
    _, ca_cert = _ca()
    leaf_key, auth = _auth_cert()
    child = _raw_leaf(leaf_key, auth.subject)
    with pytest.raises(CertificateError, match="not a CA"):
        verify_chain(child, [auth], [ca_cert], NOW)


def test_verify_chain_with_intermediate_and_path_length() -> None:
    root_key, inter_key = generate_key(), generate_key()
    root = _ca_cert("Root 1", root_key, root_key, None, 1)
    inter = _ca_cert("Inter", inter_key, root_key, root.subject, 0)
    csr = make_csr(generate_key(), CertKind.AUTH, NODE)
    leaf = issue_certificate(csr, CertKind.AUTH, inter_key, inter, NOW, days=10)
    assert verify_auth_certificate(leaf, [inter], [root], NOW) == NODE
    with pytest.raises(CertificateError, match="not a trusted root"):
        verify_chain(leaf, [], [root], NOW)

    # Our own roots have path length 0: an intermediate below them is refused.
    dev_key, dev_root = _ca()
    inter0 = _ca_cert("Inter", inter_key, dev_key, dev_root.subject, 0)
    with pytest.raises(CertificateError, match="allows 0 intermediate"):
        verify_chain(leaf, [inter0], [dev_root], NOW)


def test_verify_chain_refuses_paths_longer_than_four() -> None:
    keys = [generate_key() for _ in range(4)]
    root = _ca_cert("CA0", keys[0], keys[0], None, None)
    chain = [root]
    for i in range(1, 4):
        chain.append(_ca_cert(f"CA{i}", keys[i], keys[i - 1], chain[-1].subject, None))
    leaf = _raw_leaf(keys[3], chain[-1].subject)
    with pytest.raises(CertificateError, match="longer than 4"):
        verify_chain(leaf, chain[1:], [root], NOW)
    short_leaf = _raw_leaf(keys[2], chain[2].subject)
    verify_chain(short_leaf, chain[1:3], [root], NOW)


def test_verify_chain_refuses_unknown_critical_extension() -> None:
    ca_key, ca_cert = _ca()
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    leaf = _raw_leaf(ca_key, ca_cert.subject, extra=odd)
    with pytest.raises(CertificateError, match="unsupported critical extension"):
        verify_chain(leaf, [], [ca_cert], NOW)


# --- files -------------------------------------------------------------------------------


def test_ca_directory_round_trip(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    ca_cert = init_ca(ca_dir, "Dev Root", NOW)
    assert stat.S_IMODE((ca_dir / "ca.key").stat().st_mode) == 0o600
    assert load_certificate(ca_dir / "ca.pem") == ca_cert
    assert (ca_dir / "issued").is_dir()
    key_before = (ca_dir / "ca.key").read_bytes()
    with pytest.raises(FileExistsError, match="refusing to replace"):
        init_ca(ca_dir, "Dev Root", NOW)
    assert (ca_dir / "ca.key").read_bytes() == key_before

    node_dir = tmp_path / "node"
    new_key_and_csr(CertKind.AUTH, NODE, node_dir / "auth.key", node_dir / "auth.csr", "Org")
    assert stat.S_IMODE((node_dir / "auth.key").stat().st_mode) == 0o600
    cert = issue_from_csr(
        ca_dir, node_dir / "auth.csr", CertKind.AUTH, node_dir / "auth.pem", NOW, days=90
    )
    assert load_certificate(node_dir / "auth.pem") == cert
    kept = ca_dir / "issued" / f"{cert.serial_number:x}.pem"
    assert kept.read_bytes() == (node_dir / "auth.pem").read_bytes()
    key = load_private_key(node_dir / "auth.key")
    assert cert.public_key() == key.public_key()
    assert verify_auth_certificate(cert, [], load_certificates(ca_dir / "ca.pem"), NOW) == NODE
    with pytest.raises(FileExistsError):
        new_key_and_csr(CertKind.AUTH, NODE, node_dir / "auth.key", node_dir / "other.csr")


# --- OpenSSL interop ---------------------------------------------------------------------


def _openssl_verify(
    tmp_path: Path, ca_cert: x509.Certificate, leaf: x509.Certificate, *extra: str
) -> subprocess.CompletedProcess[str]:
    write_certificate(tmp_path / "ca.pem", ca_cert)
    write_certificate(tmp_path / "leaf.pem", leaf)
    return subprocess.run(
        [
            OPENSSL,
            "verify",
            "-attime",
            str(int(NOW.timestamp())),
            *extra,
            "-CAfile",
            str(tmp_path / "ca.pem"),
            str(tmp_path / "leaf.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_openssl_accepts_issued_certificates(tmp_path: Path) -> None:
    _, ca_cert = _ca()
    _, auth = _auth_cert()
    sign = _sign_cert()
    _, long_auth = _auth_cert(NodeId("EE", "GOV", "7" * 40, "s" * 40))
    for leaf, extra in (
        (auth, ()),
        (auth, ("-purpose", "sslclient")),
        (auth, ("-purpose", "sslserver")),
        (long_auth, ("-purpose", "sslserver")),
        (sign, ()),
    ):
        result = _openssl_verify(tmp_path, ca_cert, leaf, *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith(": OK")


def test_openssl_rejects_certificate_from_rogue_root(tmp_path: Path) -> None:
    _, ca_cert = _ca()
    rogue_key = generate_key()
    rogue = create_root_ca("Test Root", rogue_key, NOW)
    csr = make_csr(generate_key(), CertKind.AUTH, NODE)
    leaf = issue_certificate(csr, CertKind.AUTH, rogue_key, rogue, NOW)
    assert _openssl_verify(tmp_path, ca_cert, leaf).returncode != 0


# --- properties --------------------------------------------------------------------------

_PART = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'()+,-.=?",
    min_size=1,
    max_size=30,
).filter(lambda part: part not in (".", ".."))  # dot segments are refused by the id types


@settings(max_examples=40, deadline=None)
@given(_PART, _PART, _PART, _PART)
def test_owner_round_trips_through_issuance(
    instance: str, member_class: str, member_code: str, server_code: str
) -> None:
    ca_key, ca_cert = _ca()
    node = NodeId(instance, member_class, member_code, server_code)
    member = node.owner
    auth_csr = make_csr(generate_key(), CertKind.AUTH, node)
    auth = issue_certificate(auth_csr, CertKind.AUTH, ca_key, ca_cert, NOW)
    sign_csr = make_csr(generate_key(), CertKind.SIGN, member)
    sign = issue_certificate(sign_csr, CertKind.SIGN, ca_key, ca_cert, NOW)
    assert verify_auth_certificate(auth, [], [ca_cert], NOW) == node
    assert verify_signing_certificate(sign, [], [ca_cert], NOW) == member
