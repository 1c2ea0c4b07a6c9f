"""Key rotation and certificate revocation under load, as an operator and a CA do them.

A rotation goes through the running node's management API, as an operator's does
(docs/node-admin.md), with the node's ``admin.key`` and the client ``gateway node
admin`` uses: ``POST /api/v1/certificates/csr`` with ``new_key`` makes a new signing key
beside the one in use, the federation's CA issues its certificate (and records it, so
the OCSP responder answers *good*), and ``POST /api/v1/certificates`` puts it in use at
once; the old key signs until then. Calls over HTTP rather than two ``gateway node
admin`` processes: on a loaded machine their start-up alone took longer than the node's
whole part. A revocation is the CA's alone: the serial of
the certificate the node uses goes into the CA's revocation database, and the node learns
it at its next OCSP refresh.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.keys.files import load_certificate, load_private_key, write_certificate
from gateway.node.admincli import API, AdminClient
from gateway.pki.ca import issue_certificate
from gateway.pki.profiles import CertKind
from gateway.sandbox.localnet import LocalNet
from gateway.trust.ca_store import CA_CERT_NAME, CA_KEY_NAME, ISSUED_DIR_NAME
from gateway.trust.revocation import revoke

CERT_DAYS = 30


def issue_signing_certificate(net: LocalNet, csr_pem: bytes, now: datetime) -> bytes:
    """The federation's CA signs ``csr_pem`` as a signing certificate and records it
    among its issued ones, which is what makes its OCSP responder answer *good*."""
    ca_dir = net.trust.ca_dir
    cert = issue_certificate(
        x509.load_pem_x509_csr(csr_pem),
        CertKind.SIGN,
        load_private_key(ca_dir / CA_KEY_NAME),
        load_certificate(ca_dir / CA_CERT_NAME),
        now,
        CERT_DAYS,
    )
    write_certificate(ca_dir / ISSUED_DIR_NAME / f"{cert.serial_number:x}.pem", cert)
    return cert.public_bytes(serialization.Encoding.PEM)


def rotate_signing_key(net: LocalNet, key: str) -> int:
    """A new signing key for the member of node ``key``, its certificate issued and
    imported through the node's management API while it runs; the new serial."""
    files = net.nodes[key]
    admin = AdminClient(files.metrics_url, (files.directory / "admin.key").read_text().strip())
    body = {"owner": str(files.city.member), "new_key": True}
    csr = admin.call("POST", f"{API}/certificates/csr", body=body)
    pem = issue_signing_certificate(net, csr["csr"].encode("ascii"), datetime.now(UTC))
    admin.call("POST", f"{API}/certificates", body={"pem": pem.decode("ascii")})
    return x509.load_pem_x509_certificate(pem).serial_number


def signing_serial(net: LocalNet, key: str) -> int:
    """The serial of the signing certificate node ``key`` has in use (on disk)."""
    return load_certificate(net.nodes[key].sign_cert).serial_number


def revoke_signing_cert(net: LocalNet, key: str) -> int:
    """The CA revokes the signing certificate node ``key`` uses (key compromise); the
    revoked serial."""
    serial = signing_serial(net, key)
    revoke(net.trust.ca_dir, serial, x509.ReasonFlags.key_compromise, datetime.now(UTC))
    return serial
