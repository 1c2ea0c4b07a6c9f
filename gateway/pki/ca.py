"""A minimal certificate authority for development and tests.

Everything here is pure: keys and certificates in, certificates out, with ``now`` passed
in. Issuance builds every extension itself from the profile and copies only the owner's
URI from the CSR, so a requester cannot smuggle in ``CA:TRUE``, extra names or usages.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.core.ids import MemberId, NodeId
from gateway.pki.keys import public_key_der, signature_hash
from gateway.pki.profiles import (
    MAX_COMMON_NAME_LENGTH,
    CertificateError,
    CertKind,
    ServiceKind,
    check_owner_kind,
    check_public_key,
    check_service_profile,
    owner_uri,
    parse_owner_uri,
    service_eku,
    service_key_usage,
    subject_for,
)

# Tolerates small clock differences between the CA and the first verifier.
BACKDATE = timedelta(minutes=5)
# Leaves are issued directly by the root: no intermediates in the development PKI.
ROOT_PATH_LENGTH = 0

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def create_root_ca(
    name: str, key: ec.EllipticCurvePrivateKey, now: datetime, days: int = 3650
) -> x509.Certificate:
    """A self-signed root that may sign leaves only (path length 0)."""
    _require_aware(now)
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=ROOT_PATH_LENGTH), critical=True)
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
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, signature_hash(key))
    )


def make_csr(
    key: ec.EllipticCurvePrivateKey,
    kind: CertKind,
    owner: NodeId | MemberId,
    organisation: str | None = None,
    *,
    country: str | None = None,
) -> x509.CertificateSigningRequest:
    """A CSR naming ``owner`` the way the profile wants, so the CA has nothing to invent."""
    check_owner_kind(kind, owner)
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject_for(owner, organisation, country))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(owner_uri(owner))]),
            critical=False,
        )
        .sign(key, signature_hash(key))
    )


def _csr_owner(csr: x509.CertificateSigningRequest, kind: CertKind) -> NodeId | MemberId:
    try:
        extensions = csr.extensions
    except (x509.DuplicateExtension, ValueError) as exc:
        raise CertificateError(f"CSR has malformed extensions: {exc}") from None
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateError("CSR has no SAN; the owner must be named in a SAN URI") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise CertificateError(
            f"CSR must have exactly one SAN URI naming its owner, found {len(uris)}"
        )
    owner = parse_owner_uri(kind, uris[0])
    for attr in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        if attr.value != str(owner):
            raise CertificateError(
                f"CSR subject CN {attr.value!r} does not match its SAN owner {str(owner)!r}"
            )
    return owner


def _single_subject_value(
    csr: x509.CertificateSigningRequest, oid: x509.ObjectIdentifier, label: str
) -> str | None:
    """At most one value: a multi-valued O or C would be ambiguous in the issued subject."""
    values = csr.subject.get_attributes_for_oid(oid)
    if not values:
        return None
    if len(values) > 1:
        raise CertificateError(f"CSR subject has {len(values)} {label} attributes; at most one")
    value = values[0].value
    if not isinstance(value, str):
        raise CertificateError(f"CSR subject {label} is not a string")
    return value


def _check_issuer(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, now: datetime
) -> None:
    if public_key_der(ca_key) != public_key_der(ca_cert):
        raise CertificateError("the CA key does not belong to the CA certificate")
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        raise CertificateError("the CA certificate lacks BasicConstraints or KeyUsage") from None
    if not constraints.ca or not usage.key_cert_sign:
        raise CertificateError("the CA certificate is not allowed to sign certificates")
    if now < ca_cert.not_valid_before_utc or now > ca_cert.not_valid_after_utc:
        raise CertificateError(
            f"the CA certificate is not valid now ({ca_cert.not_valid_before_utc:%Y-%m-%d} "
            f"to {ca_cert.not_valid_after_utc:%Y-%m-%d})"
        )


def _key_usage(kind: CertKind) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=kind is CertKind.SIGN,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def issue_certificate(
    csr: x509.CertificateSigningRequest,
    kind: CertKind,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    now: datetime,
    days: int = 365,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str | IpAddress] = (),
) -> x509.Certificate:
    """Issue an AUTH or SIGN certificate for the owner named in ``csr``.

    The subject is rebuilt from the owner id (plus the CSR's O and C, if any), and every
    extension comes from the profile; DNS and IP names come from the operator, never from
    the CSR. A leaf that would outlive its CA is refused rather than silently shortened.
    """
    _require_aware(now)
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    if not csr.is_signature_valid:
        raise CertificateError("CSR signature does not verify; it was altered or is corrupt")
    public_key = csr.public_key()
    check_public_key(public_key)
    owner = _csr_owner(csr, kind)
    if kind is CertKind.SIGN and (dns_names or ip_addresses):
        raise CertificateError("signing certificates carry no DNS names or IP addresses")
    _check_issuer(ca_key, ca_cert, now)
    not_after = now + timedelta(days=days)
    if not_after > ca_cert.not_valid_after_utc:
        raise CertificateError(
            f"a {days}-day certificate would outlive the CA (valid until "
            f"{ca_cert.not_valid_after_utc:%Y-%m-%d}); ask for fewer days"
        )

    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(owner_uri(owner))]
    for dns in dns_names:
        if not dns or not dns.isascii():
            raise CertificateError(f"DNS name {dns!r} must be non-empty ASCII (use the A-label)")
        names.append(x509.DNSName(dns))
    for ip in ip_addresses:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise CertificateError(f"{ip!r} is not an IP address") from None

    subject = subject_for(
        owner,
        _single_subject_value(csr, NameOID.ORGANIZATION_NAME, "organisation (O)"),
        _single_subject_value(csr, NameOID.COUNTRY_NAME, "country (C)"),
    )
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(kind), critical=True)
        # RFC 5280: the SAN must be critical when it is the only name in the certificate.
        .add_extension(x509.SubjectAlternativeName(names), critical=len(subject) == 0)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(aki, critical=False)
    )
    if kind is CertKind.AUTH:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    return builder.sign(ca_key, signature_hash(ca_key))


def default_service_name(kind: ServiceKind, ca_cert: x509.Certificate) -> str:
    """ "<CA name> OCSP responder": an operator reading a chain sees at once whose service it is."""
    label = "OCSP responder" if kind is ServiceKind.OCSP else "time-stamping authority"
    names = ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ca_name = str(names[0].value) if names else ""
    room = MAX_COMMON_NAME_LENGTH - len(label) - 1
    return f"{ca_name[:room]} {label}".strip()


def make_service_csr(
    key: ec.EllipticCurvePrivateKey, common_name: str
) -> x509.CertificateSigningRequest:
    """A CSR for a trust service: only a CN, since a service is not a member and has no id."""
    if not common_name or len(common_name) > MAX_COMMON_NAME_LENGTH:
        raise CertificateError(
            f"service common name must be 1 to {MAX_COMMON_NAME_LENGTH} characters"
        )
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, signature_hash(key))
    )


def issue_service_certificate(
    csr: x509.CertificateSigningRequest,
    kind: ServiceKind,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    now: datetime,
    days: int = 90,
) -> x509.Certificate:
    """Issue an OCSP responder or TSA certificate, with every extension from the profile.

    Only the CSR's CN is copied. An OCSP responder certificate carries id-pkix-ocsp-nocheck
    (RFC 6960 section 4.2.2.2.1): asking the responder whether its own key is revoked
    would be circular, so relying parties trust it for its lifetime instead. That is why
    the default lifetime is short (90 days); renew it rather than revoke it.
    """
    _require_aware(now)
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    if not csr.is_signature_valid:
        raise CertificateError("CSR signature does not verify; it was altered or is corrupt")
    public_key = csr.public_key()
    check_public_key(public_key)
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str) or not names[0].value:
        raise CertificateError("a service CSR must have exactly one non-empty subject CN")
    _check_issuer(ca_key, ca_cert, now)
    not_after = now + timedelta(days=days)
    if not_after > ca_cert.not_valid_after_utc:
        raise CertificateError(
            f"a {days}-day certificate would outlive the CA (valid until "
            f"{ca_cert.not_valid_after_utc:%Y-%m-%d}); ask for fewer days"
        )
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    eku, eku_critical = service_eku(kind)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0].value)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(service_key_usage(kind), critical=True)
        .add_extension(eku, critical=eku_critical)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(aki, critical=False)
    )
    if kind is ServiceKind.OCSP:
        builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    cert = builder.sign(ca_key, signature_hash(ca_key))
    check_service_profile(kind, cert)
    return cert
