"""TLS contexts for node-to-node traffic: TLS 1.3 only, mutual, authentication certificates.

Peers are pinned by certificate fingerprint from the directory rather than by host name:
a node's identity is its registered authentication certificate, not a DNS name.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


def _roots_pem(roots: Sequence[x509.Certificate]) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in roots)


def server_context(cert: Path, key: Path, roots: Sequence[x509.Certificate]) -> ssl.SSLContext:
    """Require a client certificate that chains to a trusted CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=_roots_pem(roots))
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(cert: Path, key: Path, roots: Sequence[x509.Certificate]) -> ssl.SSLContext:
    """Present our authentication certificate; the server's is verified by CA and pin."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # identity is the pinned fingerprint, see PinnedConnector
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=_roots_pem(roots))
    ctx.load_cert_chain(cert, key)
    return ctx


def peer_fingerprint(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """Lower-case hex SHA-256 of the peer's DER certificate, if the handshake gave one."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None
