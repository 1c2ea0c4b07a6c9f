"""The CA directory behind ``gateway pki ...``: the CA's key, its certificate, what it issued.

A CA directory holds ``ca.pem``, ``ca.key`` (0600) and ``issued/``, where every issued
certificate is kept by serial so an operator can see what the CA has ever signed; the
revocation database (``gateway.trust.revocation``) sits beside them. The issuing logic
itself is ``gateway.pki.ca`` and works on objects; this module is its file side, run by
the party that operates the CA and its trust services (docs/adr/0016).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from gateway.keys.files import (
    load_certificate,
    load_csr,
    load_private_key,
    write_certificate,
    write_private_key,
)
from gateway.pki.ca import (
    IpAddress,
    create_root_ca,
    default_service_name,
    issue_certificate,
    issue_service_certificate,
    make_service_csr,
)
from gateway.pki.keys import generate_key
from gateway.pki.profiles import CertKind, ServiceKind

CA_CERT_NAME = "ca.pem"
CA_KEY_NAME = "ca.key"
ISSUED_DIR_NAME = "issued"


def init_ca(directory: Path, name: str, now: datetime, days: int = 3650) -> x509.Certificate:
    """Create a new CA in ``directory``; an existing CA is never replaced."""
    key_path = directory / CA_KEY_NAME
    cert_path = directory / CA_CERT_NAME
    for existing in (key_path, cert_path):
        if existing.exists():
            raise FileExistsError(
                f"{existing} already exists; refusing to replace an existing CA "
                "(every certificate it issued would stop verifying)"
            )
    key = generate_key()
    cert = create_root_ca(name, key, now, days)
    write_private_key(key_path, key)
    write_certificate(cert_path, cert)
    (directory / ISSUED_DIR_NAME).mkdir(exist_ok=True)
    return cert


def issue_from_csr(
    ca_dir: Path,
    csr_path: Path,
    kind: CertKind,
    out: Path,
    now: datetime,
    days: int = 365,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str | IpAddress] = (),
) -> x509.Certificate:
    """Issue from a CSR file with the CA in ``ca_dir``; write ``out`` and a copy by serial."""
    ca_key = load_private_key(ca_dir / CA_KEY_NAME)
    ca_cert = load_certificate(ca_dir / CA_CERT_NAME)
    csr = load_csr(csr_path)
    cert = issue_certificate(
        csr, kind, ca_key, ca_cert, now, days, dns_names=dns_names, ip_addresses=ip_addresses
    )
    write_certificate(ca_dir / ISSUED_DIR_NAME / f"{cert.serial_number:x}.pem", cert)
    write_certificate(out, cert)
    return cert


@dataclass(frozen=True)
class ServiceFiles:
    """Where ``issue_service`` put a trust service's key and certificate."""

    key: Path
    cert: Path
    certificate: x509.Certificate


def issue_service(
    ca_dir: Path,
    kind: ServiceKind,
    out_dir: Path,
    now: datetime,
    days: int = 90,
    common_name: str | None = None,
) -> ServiceFiles:
    """Generate a key and issue an OCSP responder or TSA certificate in one step.

    The CA operator runs its own services, so the key is made right here instead of
    travelling as a CSR. Files are ``<kind>.key`` (0600, never overwritten) and
    ``<kind>.pem`` in ``out_dir``, plus the usual copy under ``issued/`` so the
    service's own serial reads as *good*, not *unknown*, to an OCSP client.
    """
    ca_key = load_private_key(ca_dir / CA_KEY_NAME)
    ca_cert = load_certificate(ca_dir / CA_CERT_NAME)
    key_path = out_dir / f"{kind.value}.key"
    cert_path = out_dir / f"{kind.value}.pem"
    if key_path.exists():
        raise FileExistsError(f"{key_path} already exists; refusing to replace a service key")
    key = generate_key()
    csr = make_service_csr(key, common_name or default_service_name(kind, ca_cert))
    cert = issue_service_certificate(csr, kind, ca_key, ca_cert, now, days)
    write_private_key(key_path, key)
    write_certificate(ca_dir / ISSUED_DIR_NAME / f"{cert.serial_number:x}.pem", cert)
    write_certificate(cert_path, cert)
    return ServiceFiles(key_path, cert_path, cert)
