"""The certificate profile: how a certificate names its owner and what it may be used for.

The owner is carried as exactly one SAN URI whose prefix says which kind of id follows,
so a verifier never has to guess from a free-text subject. The two kinds are disjoint by
construction: an AUTH certificate must have the TLS EKUs that a SIGN certificate must not
have, so no single certificate can pass both checks.
"""

from __future__ import annotations

from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.core.errors import GatewayError
from gateway.core.ids import MemberId, NodeId

NODE_URI_PREFIX = "urn:x-road:node:"
MEMBER_URI_PREFIX = "urn:x-road:member:"

# X.509's upper bound for a common name; longer ids are carried in the SAN only.
MAX_COMMON_NAME_LENGTH = 64
MIN_RSA_KEY_SIZE = 2048
ACCEPTED_CURVES: tuple[type[ec.EllipticCurve], ...] = (
    ec.SECP256R1,
    ec.SECP384R1,
    ec.SECP521R1,
)


class CertKind(StrEnum):
    """Which profile a certificate follows."""

    AUTH = "auth"
    """A node's authentication certificate, used as TLS client and server certificate."""

    SIGN = "sign"
    """A member's signing certificate, used for non-repudiable message signatures."""


class CertificateError(Exception):
    """A certificate or CSR that does not fit the profile or does not chain to a trust root.

    The message is meant for an operator's log; the node maps the exception to its own
    error code depending on which side of the exchange it is on.
    """


def uri_prefix(kind: CertKind) -> str:
    return NODE_URI_PREFIX if kind is CertKind.AUTH else MEMBER_URI_PREFIX


def owner_uri(owner: NodeId | MemberId) -> str:
    """The SAN URI that names ``owner``; str() of an id is already percent-encoded ASCII."""
    if isinstance(owner, NodeId):
        return NODE_URI_PREFIX + str(owner)
    return MEMBER_URI_PREFIX + str(owner)


def kind_for_owner(owner: NodeId | MemberId) -> CertKind:
    return CertKind.AUTH if isinstance(owner, NodeId) else CertKind.SIGN


def check_owner_kind(kind: CertKind, owner: NodeId | MemberId) -> None:
    """Refuse a node id in a signing certificate and a member id in an auth certificate."""
    if kind_for_owner(owner) is not kind:
        wanted = "a NodeId" if kind is CertKind.AUTH else "a MemberId"
        raise CertificateError(
            f"a {kind.value} certificate names {wanted}, got {type(owner).__name__} {owner}"
        )


def subject_for(
    owner: NodeId | MemberId, organisation: str | None = None, country: str | None = None
) -> x509.Name:
    """CN = the id (when it fits X.509's 64-character limit), then optional O and C."""
    attributes: list[x509.NameAttribute[str]] = []
    if country is not None:
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    if organisation is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    common_name = str(owner)
    if len(common_name) <= MAX_COMMON_NAME_LENGTH:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def check_public_key(key: CertificatePublicKeyTypes) -> None:
    """Accept EC keys on P-256 or larger NIST curves and RSA keys of 2048 bits or more."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ACCEPTED_CURVES):
            raise CertificateError(
                f"EC curve {key.curve.name} is not accepted; use P-256, P-384 or P-521"
            )
        return
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_KEY_SIZE:
            raise CertificateError(
                f"RSA key of {key.key_size} bits is too small; at least {MIN_RSA_KEY_SIZE}"
            )
        return
    raise CertificateError(f"{type(key).__name__} keys are not accepted; use EC P-256")


def _id_text(kind: CertKind, uri: str) -> str:
    prefix = uri_prefix(kind)
    if not uri.startswith(prefix):
        raise CertificateError(
            f"SAN URI {uri!r} does not name a {'node' if kind is CertKind.AUTH else 'member'} "
            f"(expected the prefix {prefix!r})"
        )
    return uri[len(prefix) :]


def parse_node_uri(uri: str) -> NodeId:
    try:
        return NodeId.parse(_id_text(CertKind.AUTH, uri))
    except GatewayError as exc:
        raise CertificateError(f"SAN URI {uri!r} holds an invalid id: {exc.message}") from None


def parse_member_uri(uri: str) -> MemberId:
    try:
        return MemberId.parse(_id_text(CertKind.SIGN, uri))
    except GatewayError as exc:
        raise CertificateError(f"SAN URI {uri!r} holds an invalid id: {exc.message}") from None


def parse_owner_uri(kind: CertKind, uri: str) -> NodeId | MemberId:
    """Turn a SAN URI back into the id it names, refusing the other kind's prefix."""
    return parse_node_uri(uri) if kind is CertKind.AUTH else parse_member_uri(uri)


def _extensions(cert: x509.Certificate) -> x509.Extensions:
    try:
        return cert.extensions
    except (x509.DuplicateExtension, ValueError) as exc:
        raise CertificateError(f"certificate has malformed extensions: {exc}") from None


def is_ca(extensions: x509.Extensions) -> bool:
    """True if BasicConstraints says CA, or KeyUsage allows signing certificates."""
    try:
        if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        return extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    except x509.ExtensionNotFound:
        return False


def _owner_uri_from_cert(kind: CertKind, ext: x509.Extensions) -> str:
    what = "an auth" if kind is CertKind.AUTH else "a signing"
    try:
        san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateError(
            f"{what} certificate must name its owner in a SAN URI, but it has no SAN"
        ) from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise CertificateError(
            f"{what} certificate must have exactly one SAN URI, found {len(uris)}"
        )
    allowed: tuple[type[x509.GeneralName], ...] = (x509.UniformResourceIdentifier,)
    if kind is CertKind.AUTH:
        allowed = (x509.UniformResourceIdentifier, x509.DNSName, x509.IPAddress)
    for name in san:
        if not isinstance(name, allowed):
            raise CertificateError(f"{what} certificate may not carry a {type(name).__name__} SAN")
    return uris[0]


def _check_common_name(cert: x509.Certificate, owner: NodeId | MemberId) -> None:
    """A CN that disagrees with the SAN would mislead whoever reads the subject in a log."""
    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        if attr.value != str(owner):
            raise CertificateError(
                f"subject CN {attr.value!r} does not match the SAN owner {str(owner)!r}"
            )


def _check_profile(kind: CertKind, cert: x509.Certificate) -> str:
    """Check usage, key and SAN shape; return the single owner URI for the caller to parse."""
    ext = _extensions(cert)
    what = "an auth" if kind is CertKind.AUTH else "a signing"
    if is_ca(ext):
        raise CertificateError(f"{what} certificate must not be a CA certificate")
    try:
        ku = ext.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateError(f"{what} certificate has no KeyUsage extension") from None
    try:
        ekus: set[x509.ObjectIdentifier] = set(
            ext.get_extension_for_class(x509.ExtendedKeyUsage).value
        )
    except x509.ExtensionNotFound:
        ekus = set()
    tls = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    if kind is CertKind.AUTH:
        if not ku.digital_signature:
            raise CertificateError("an auth certificate must allow digitalSignature")
        if not tls <= ekus:
            raise CertificateError(
                "an auth certificate must have the serverAuth and clientAuth extended key usages"
            )
    else:
        if not (ku.content_commitment and ku.digital_signature):
            raise CertificateError(
                "a signing certificate must allow contentCommitment (non-repudiation) "
                "and digitalSignature"
            )
        if tls & ekus:
            raise CertificateError(
                "a signing certificate must not have the serverAuth or clientAuth "
                "extended key usage (is this an auth certificate?)"
            )
    check_public_key(cert.public_key())
    return _owner_uri_from_cert(kind, ext)


def node_id_of(cert: x509.Certificate) -> NodeId:
    """The node an AUTH certificate belongs to; the profile is checked, the chain is not."""
    owner = parse_node_uri(_check_profile(CertKind.AUTH, cert))
    _check_common_name(cert, owner)
    return owner


def member_id_of(cert: x509.Certificate) -> MemberId:
    """The member a SIGN certificate belongs to; the profile is checked, the chain is not."""
    owner = parse_member_uri(_check_profile(CertKind.SIGN, cert))
    _check_common_name(cert, owner)
    return owner


# --- trust service certificates ------------------------------------------------------------


class ServiceKind(StrEnum):
    """A certificate the CA issues to one of its own trust services, not to a member."""

    OCSP = "ocsp"
    """A delegated OCSP responder (RFC 6960 section 4.2.2.2): signs status on the CA's behalf."""

    TSA = "tsa"
    """A time-stamping authority (RFC 3161): signs time-stamp tokens, nothing else."""


def service_key_usage(kind: ServiceKind) -> x509.KeyUsage:
    """digitalSignature for both; a TSA also gets nonRepudiation, as RFC 3161 section 2.3 allows.

    Neither may sign certificates or CRLs: a responder key that could issue would be a
    second CA key without a CA's protection.
    """
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=kind is ServiceKind.TSA,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def service_eku(kind: ServiceKind) -> tuple[x509.ExtendedKeyUsage, bool]:
    """The extended key usage of a service certificate and whether it is critical.

    RFC 3161 section 2.3 requires a TSA certificate to carry id-kp-timeStamping as its
    only purpose in a *critical* extension, so a TSA key can never pass as anything else.
    RFC 6960 asks only for id-kp-OCSPSigning; it is non-critical as is usual.
    """
    if kind is ServiceKind.TSA:
        return x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True
    return x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False


def _service_extensions(
    cert: x509.Certificate, what: str
) -> tuple[x509.Extensions, x509.Extension[x509.ExtendedKeyUsage]]:
    ext = _extensions(cert)
    if is_ca(ext):
        raise CertificateError(f"{what} certificate must not be a CA certificate")
    try:
        eku = ext.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise CertificateError(f"{what} certificate has no ExtendedKeyUsage extension") from None
    return ext, eku


def check_ocsp_responder_profile(cert: x509.Certificate) -> None:
    """Refuse a certificate that may not sign OCSP responses on its issuer's behalf.

    Whether it was issued by the right CA is the caller's check (it knows the issuer).
    """
    what = "an OCSP responder"
    ext, eku = _service_extensions(cert, what)
    if ExtendedKeyUsageOID.OCSP_SIGNING not in eku.value:
        raise CertificateError(f"{what} certificate must have the id-kp-OCSPSigning usage")
    try:
        ku = ext.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    if ku is not None and not ku.digital_signature:
        raise CertificateError(f"{what} certificate must allow digitalSignature")
    check_public_key(cert.public_key())


def check_tsa_profile(cert: x509.Certificate) -> None:
    """Refuse a certificate that RFC 3161 section 2.3 does not allow to sign time stamps.

    The EKU must be critical and hold id-kp-timeStamping alone; a TSA certificate that
    could also act as, say, a TLS server would let a compromised web key forge times.
    """
    what = "a TSA"
    ext, eku = _service_extensions(cert, what)
    if list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise CertificateError(
            f"{what} certificate must have id-kp-timeStamping as its only extended key usage"
        )
    if not eku.critical:
        raise CertificateError(
            f"{what} certificate's id-kp-timeStamping extended key usage must be critical"
        )
    try:
        ku = ext.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    if ku is not None and not (ku.digital_signature or ku.content_commitment):
        raise CertificateError(f"{what} certificate must allow digitalSignature or nonRepudiation")
    check_public_key(cert.public_key())


def check_service_profile(kind: ServiceKind, cert: x509.Certificate) -> None:
    if kind is ServiceKind.OCSP:
        check_ocsp_responder_profile(cert)
    else:
        check_tsa_profile(cert)
