"""Chain and profile checks for certificates presented by peers.

Pure and time-parametrised: the caller passes ``now`` and caches results. Path building
is a small depth-first search over the given intermediates and roots, so a root rollover
(two roots with the same name) or an unused extra intermediate does not break it, and
every refusal names what was wrong so an operator can fix it without a debugger.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from gateway.core.ids import MemberId, NodeId
from gateway.pki.profiles import CertificateError, member_id_of, node_id_of

# Certificates in a path, leaf and root included.
MAX_PATH_LENGTH = 4

# Critical extensions this module understands; RFC 5280 requires refusing any other.
_UNDERSTOOD_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)


def _describe(cert: x509.Certificate) -> str:
    return f"{cert.subject.rfc4514_string() or '<empty subject>'} (serial {cert.serial_number:x})"


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _extensions(cert: x509.Certificate) -> x509.Extensions:
    try:
        return cert.extensions
    except (x509.DuplicateExtension, ValueError) as exc:
        raise CertificateError(f"{_describe(cert)} has malformed extensions: {exc}") from None


def _check_time(cert: x509.Certificate, now: datetime, role: str) -> None:
    if now > cert.not_valid_after_utc:
        raise CertificateError(
            f"{role} {_describe(cert)} expired at {cert.not_valid_after_utc.isoformat()}"
        )
    if now < cert.not_valid_before_utc:
        raise CertificateError(
            f"{role} {_describe(cert)} is not yet valid; "
            f"valid from {cert.not_valid_before_utc.isoformat()}"
        )


def _check_critical(cert: x509.Certificate, role: str) -> None:
    for ext in _extensions(cert):
        if ext.critical and ext.oid not in _UNDERSTOOD_CRITICAL:
            raise CertificateError(
                f"{role} {_describe(cert)} has an unsupported critical extension "
                f"{ext.oid.dotted_string}"
            )


def _check_ca(cert: x509.Certificate, below: int) -> None:
    """``cert`` may issue, and its path length allows ``below`` intermediates under it."""
    ext = _extensions(cert)
    try:
        constraints = ext.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise CertificateError(
            f"issuer {_describe(cert)} is not a CA (no BasicConstraints)"
        ) from None
    if not constraints.ca:
        raise CertificateError(f"issuer {_describe(cert)} is not a CA (BasicConstraints CA:FALSE)")
    try:
        usage = ext.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateError(f"issuer {_describe(cert)} has no KeyUsage extension") from None
    if not usage.key_cert_sign:
        raise CertificateError(f"issuer {_describe(cert)} may not sign certificates (keyCertSign)")
    if constraints.path_length is not None and below > constraints.path_length:
        raise CertificateError(
            f"issuer {_describe(cert)} allows {constraints.path_length} intermediate CA(s) "
            f"below it, the path has {below}"
        )


def _check_readable(cert: x509.Certificate) -> None:
    """Decode the names and validity the path search reads: cryptography decodes them
    lazily, so a damaged one given as a leaf or intermediate is refused here."""
    try:
        cert.issuer  # noqa: B018
        cert.subject  # noqa: B018
        cert.not_valid_before_utc  # noqa: B018
        cert.not_valid_after_utc  # noqa: B018
    except ValueError as exc:
        raise CertificateError(f"a certificate of the chain cannot be read: {exc}") from None


def _check_link(child: x509.Certificate, issuer: x509.Certificate) -> None:
    try:
        child.verify_directly_issued_by(issuer)
    except InvalidSignature:
        raise CertificateError(
            f"signature on {_describe(child)} does not verify with the key of "
            f"{_describe(issuer)}: forged, or issued by another CA with the same name"
        ) from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # UnsupportedAlgorithm: an issuer key on a curve cryptography does not know.
        raise CertificateError(
            f"{_describe(child)} is not issued by {_describe(issuer)}: {exc}"
        ) from None


def _extend(
    path: list[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    root_ders: frozenset[bytes],
    now: datetime,
    failures: list[str],
) -> bool:
    """Depth-first: try to finish ``path`` at a root; record why each branch failed."""
    child = path[-1]
    used = {_der(c) for c in path}
    candidates = [
        c for c in (*roots, *intermediates) if c.subject == child.issuer and _der(c) not in used
    ]
    if not candidates:
        failures.append(
            f"{_describe(child)} is issued by {child.issuer.rfc4514_string()!r}, "
            "which is not a trusted root or a given intermediate"
        )
        return False
    for issuer in candidates:
        is_root = _der(issuer) in root_ders
        if not is_root and len(path) + 2 > MAX_PATH_LENGTH:
            failures.append(f"path would be longer than {MAX_PATH_LENGTH} certificates")
            continue
        role = "root" if is_root else "intermediate"
        try:
            _check_link(child, issuer)
            _check_ca(issuer, below=len(path) - 1)
            _check_time(issuer, now, role)
            _check_critical(issuer, role)
        except CertificateError as exc:
            failures.append(str(exc))
            continue
        if is_root:
            return True
        if _extend([*path, issuer], intermediates, roots, root_ders, now, failures):
            return True
    return False


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: datetime,
) -> None:
    """Refuse ``leaf`` unless it chains to one of ``roots`` and every link is valid at ``now``.

    Checks each signature, that every issuer is a CA allowed to sign with a path length
    that permits the path, and the validity window of every certificate on the path,
    the root included. Revocation is out of scope for the development PKI.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if not roots:
        raise CertificateError("no trusted roots are configured")
    for cert in (leaf, *intermediates):
        _check_readable(cert)
    _check_time(leaf, now, "certificate")
    _check_critical(leaf, "certificate")
    failures: list[str] = []
    root_ders = frozenset(_der(r) for r in roots)
    if _extend([leaf], intermediates, roots, root_ders, now, failures):
        return
    unique = list(dict.fromkeys(failures))
    raise CertificateError("; ".join(unique))


def verify_signing_certificate(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: datetime,
) -> MemberId:
    """The member a trusted SIGN certificate belongs to."""
    verify_chain(leaf, intermediates, roots, now)
    return member_id_of(leaf)


def verify_auth_certificate(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: datetime,
) -> NodeId:
    """The node a trusted AUTH certificate belongs to."""
    verify_chain(leaf, intermediates, roots, now)
    return node_id_of(leaf)
