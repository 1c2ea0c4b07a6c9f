"""Key rotation and certificate revocation under load, as an operator and a CA do them.

A rotation goes through the running node's management API, as an operator's does
(docs/node-admin.md): ``gateway node admin csr MEMBER --new-key`` makes a new signing
key beside the one in use, the federation's CA issues its certificate (and records it,
so the OCSP responder answers *good*), and ``gateway node admin import-cert`` puts it in
use at once; the old key signs until then. A revocation is the CA's alone: the serial of
the certificate the node uses goes into the CA's revocation database, and the node learns
it at its next OCSP refresh.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.keys.files import load_certificate, load_private_key, write_certificate
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
    config = str(files.config)
    with tempfile.TemporaryDirectory(prefix="gw-rotate-") as tmp:
        csr = Path(tmp) / "sign.csr"
        pem = Path(tmp) / "sign.pem"
        member = str(files.city.member)
        _admin("--config", config, "csr", member, "--new-key", "--out", str(csr))
        pem.write_bytes(issue_signing_certificate(net, csr.read_bytes(), datetime.now(UTC)))
        _admin("--config", config, "import-cert", str(pem))
        return x509.load_pem_x509_certificate(pem.read_bytes()).serial_number


def signing_serial(net: LocalNet, key: str) -> int:
    """The serial of the signing certificate node ``key`` has in use (on disk)."""
    return load_certificate(net.nodes[key].sign_cert).serial_number


def revoke_signing_cert(net: LocalNet, key: str) -> int:
    """The CA revokes the signing certificate node ``key`` uses (key compromise); the
    revoked serial."""
    serial = signing_serial(net, key)
    revoke(net.trust.ca_dir, serial, x509.ReasonFlags.key_compromise, datetime.now(UTC))
    return serial


def _admin(*args: str) -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "gateway", "node", "admin", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gateway node admin {args[2]}: {done.stdout}{done.stderr}".strip())
