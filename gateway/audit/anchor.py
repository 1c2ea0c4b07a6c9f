"""The auditor's trust anchor file, until the global configuration anchor replaces it.

Either JSON::

    {"type": "gateway-audit-anchor/v1",
     "ca_certificates": ["-----BEGIN CERTIFICATE-----\\n…"],
     "tsa_certificates": ["-----BEGIN CERTIFICATE-----\\n…"],
     "ocsp_freshness_seconds": 3600}

or a PEM file of certificates, each sorted by its profile: a CA certificate
(BasicConstraints CA:TRUE) or a TSA certificate (extended key usage timeStamping).
The bundle's own certificates are never trusted; only these are.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.audit.verify import AuditTrustAnchor
from gateway.pki.ocsp import DEFAULT_FRESHNESS

__all__ = ["ANCHOR_TYPE", "AuditAnchorError", "anchor_json", "load_anchor"]

ANCHOR_TYPE = "gateway-audit-anchor/v1"


class AuditAnchorError(ValueError):
    """The anchor file cannot be used; the message says why."""


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _is_tsa(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.TIME_STAMPING in usage


def _pems(values: object, what: str) -> tuple[x509.Certificate, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise AuditAnchorError(f"{what} must be a list of PEM strings")
    certs: list[x509.Certificate] = []
    for value in values:
        certs.extend(x509.load_pem_x509_certificates(value.encode("ascii")))
    return tuple(certs)


def load_anchor(path: Path) -> AuditTrustAnchor:
    data = path.read_bytes()
    try:
        if data.lstrip().startswith(b"{"):
            obj = json.loads(data)
            if not isinstance(obj, dict) or obj.get("type") != ANCHOR_TYPE:
                raise AuditAnchorError(f"{path} is not a {ANCHOR_TYPE} document")
            freshness = obj.get("ocsp_freshness_seconds", int(DEFAULT_FRESHNESS.total_seconds()))
            if not isinstance(freshness, int) or isinstance(freshness, bool) or freshness <= 0:
                raise AuditAnchorError("ocsp_freshness_seconds must be a positive integer")
            anchor = AuditTrustAnchor(
                _pems(obj.get("ca_certificates", []), "ca_certificates"),
                _pems(obj.get("tsa_certificates", []), "tsa_certificates"),
                timedelta(seconds=freshness),
            )
        else:
            certs = x509.load_pem_x509_certificates(data)
            others = [c for c in certs if not _is_ca(c) and not _is_tsa(c)]
            if others:
                raise AuditAnchorError(
                    f"{others[0].subject.rfc4514_string()} is neither a CA nor a TSA certificate"
                )
            anchor = AuditTrustAnchor(
                tuple(c for c in certs if _is_ca(c)), tuple(c for c in certs if _is_tsa(c))
            )
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, AuditAnchorError):
            raise
        raise AuditAnchorError(f"{path}: {exc}") from None
    if not anchor.cas or not anchor.tsas:
        raise AuditAnchorError(f"{path} must name at least one CA and one TSA certificate")
    return anchor


def anchor_json(
    cas: list[x509.Certificate],
    tsas: list[x509.Certificate],
    freshness: timedelta = DEFAULT_FRESHNESS,
) -> bytes:
    """An anchor document for these certificates (for ``gateway audit anchor``)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    def pem(cert: x509.Certificate) -> str:
        return cert.public_bytes(Encoding.PEM).decode("ascii")

    return (
        json.dumps(
            {
                "type": ANCHOR_TYPE,
                "ca_certificates": [pem(c) for c in cas],
                "tsa_certificates": [pem(c) for c in tsas],
                "ocsp_freshness_seconds": int(freshness.total_seconds()),
            },
            indent=2,
        ).encode()
        + b"\n"
    )
