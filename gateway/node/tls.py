"""TLS contexts for node-to-node traffic: TLS 1.3 only, mutual, authentication certificates.

Peers are pinned by certificate fingerprint from the directory rather than by host name:
a node's identity is its registered authentication certificate, not a DNS name.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


def key_password(passphrase: bytes | None) -> bytes | Callable[[], bytes]:
    """What ``load_cert_chain`` gets as ``password``: the passphrase, or, without one, a
    callable that refuses, so OpenSSL never falls back to asking on the terminal."""
    if passphrase is not None:
        return passphrase

    def refuse() -> bytes:
        raise ValueError("the key file is encrypted and no passphrase was given")

    return refuse


def _roots_pem(roots: Sequence[x509.Certificate]) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in roots)


def server_context(
    cert: Path, key: Path, roots: Sequence[x509.Certificate], passphrase: bytes | None = None
) -> ssl.SSLContext:
    """Require a client certificate that chains to a trusted CA; ``passphrase`` opens an
    encrypted key (OpenSSL reads the encrypted PKCS#8 PEM itself)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=_roots_pem(roots))
    ctx.load_cert_chain(cert, key, password=key_password(passphrase))
    return ctx


def client_context(
    cert: Path, key: Path, roots: Sequence[x509.Certificate], passphrase: bytes | None = None
) -> ssl.SSLContext:
    """Present our authentication certificate; the server's is verified by CA and pin."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # identity is the pinned fingerprint, see PinnedConnector
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=_roots_pem(roots))
    ctx.load_cert_chain(cert, key, password=key_password(passphrase))
    return ctx


def peer_fingerprint(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """Lower-case hex SHA-256 of the peer's DER certificate, if the handshake gave one."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None


class RegistryContext(ssl.SSLContext):
    """A TLS client context for one service's registry (an ``https://`` service URL).

    ``pins`` are the SHA-256 digests of the certificates the registry may present;
    :class:`gateway.node.transport.RegistryClient` checks them after the handshake and
    before a byte of the request is written. Empty when only a CA is configured.
    """

    pins: frozenset[bytes] = frozenset()


def registry_context(
    *,
    ca: Path | None,
    pins: Sequence[str],
    client_cert: Path | None,
    client_key: Path | None,
    passphrase: bytes | None = None,
) -> RegistryContext:
    """The context a node calls one registry with; raises ``OSError``/``ssl.SSLError``
    for unreadable files, so a node does not start with a service it cannot call.

    With ``ca``, the registry's chain and host name are verified against it (the
    system's roots are never used: a registry's trust is configured, not assumed).
    With pins alone, the chain is not verified and the pin is the whole check, as for a
    self-signed registry certificate. TLS 1.2 is the floor: registries are existing
    systems, not nodes.
    """
    if ca is None and not pins:
        raise ValueError("an https:// registry needs a CA or a pinned certificate")
    ctx = RegistryContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(ca))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if client_cert is not None and client_key is not None:
        ctx.load_cert_chain(client_cert, client_key, password=key_password(passphrase))
    ctx.pins = frozenset(bytes.fromhex(pin) for pin in pins)
    return ctx
