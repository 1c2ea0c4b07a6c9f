"""Who may speak for a hosted client at the consumer edge (X-Road's IS authentication).

Each subsystem a node hosts has a *connection type* (``[[clients]]`` in the node's
configuration, default ``https``):

* ``http``: any connection, plain or TLS, may name the client;
* ``https-no-auth``: a TLS connection to the consumer TLS port, no client certificate;
* ``https``: a TLS connection whose client certificate is registered for that
  subsystem and valid now.

The registered information-system certificates live in a small JSON file (``[node]
client_certs``) kept by :class:`ClientCertStore`: several per subsystem, stored by their
SHA-256 fingerprint, added and removed with ``gateway node client-cert`` and by the
management API (:mod:`gateway.node.adminclientcerts`). The node rereads the file when
it changes, so a new certificate works from the next TLS handshake on, without a restart.

The certificate comes from the TLS connection (the transport's ``ssl_object``), never
from a header. Python's ``ssl`` module cannot accept an arbitrary client certificate
and judge it afterwards (it has no verify callback), so the consumer TLS port trusts
exactly the registered certificates as anchors (:class:`ConsumerTls`): an unregistered
certificate fails the TLS handshake itself. Expiry is not judged by the handshake but
here, so an expired registered certificate gets the documented refusal.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ClientId, parse_client
from gateway.fsutil import replace_atomically
from gateway.node.tls import key_password

__all__ = [
    "ClientCertStore",
    "ConnectionType",
    "ConsumerTls",
    "RegisteredCert",
    "authenticate_client",
    "tls_peer",
]

_NO_CHECK_TIME: Final = 0x200000
"""OpenSSL's ``X509_V_FLAG_NO_CHECK_TIME``: the handshake does not judge validity
dates; :func:`authenticate_client` does, with the documented code."""


class ConnectionType(StrEnum):
    """How a hosted subsystem's information systems must connect (X-Road's names)."""

    HTTP = "http"
    HTTPS = "https"
    HTTPS_NO_AUTH = "https-no-auth"


class ClientCertError(ValueError):
    """A certificate cannot be registered or removed; the message says why."""


@dataclass(frozen=True, slots=True)
class RegisteredCert:
    """One information-system certificate registered for a subsystem."""

    client: str
    sha256: str
    certificate: x509.Certificate

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


class ClientCertStore:
    """The registered information-system certificates of one node, in one JSON file.

    The file maps each client id to its certificates (PEM) keyed by SHA-256; a missing
    file is an empty store. Writes replace the file atomically; readers call
    :meth:`refresh` (one ``stat``) to pick up a change made by another process.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._by_fp: dict[str, RegisteredCert] = {}
        self.version = 0
        """Counts the changes seen (read or written), for contexts built from the store."""
        self.refresh()

    # ------------------------------------------------------------------ reading

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def refresh(self) -> bool:
        """Reread the file if it changed since the last read; True if it did."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        self._by_fp = self._read() if stamp is not None else {}
        self._stamp = stamp
        self.version += 1
        return True

    def _read(self) -> dict[str, RegisteredCert]:
        try:
            doc = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ClientCertError(f"cannot read {self.path}: {exc}") from None
        clients = doc.get("clients") if isinstance(doc, dict) else None
        if not isinstance(clients, dict):
            raise ClientCertError(f"{self.path}: no 'clients' object")
        found: dict[str, RegisteredCert] = {}
        for client, entries in clients.items():
            if not isinstance(entries, dict):
                raise ClientCertError(f"{self.path}: {client}: not an object of certificates")
            for fp, pem in entries.items():
                try:
                    cert = x509.load_pem_x509_certificate(str(pem).encode("ascii"))
                except ValueError as exc:
                    raise ClientCertError(f"{self.path}: {client}: {fp}: {exc}") from None
                if _fingerprint(cert) != fp:
                    raise ClientCertError(f"{self.path}: {client}: {fp} is not its certificate")
                found[fp] = RegisteredCert(client, fp, cert)
        return found

    def owner(self, sha256: str) -> str | None:
        """The client a certificate (by fingerprint) is registered for, if any."""
        entry = self._by_fp.get(sha256)
        return None if entry is None else entry.client

    def get(self, sha256: str) -> RegisteredCert | None:
        return self._by_fp.get(sha256)

    def entries(self, client: ClientId | None = None) -> list[RegisteredCert]:
        """The registered certificates, of one client or of all, in a stable order."""
        wanted = None if client is None else str(client)
        chosen = [e for e in self._by_fp.values() if wanted is None or e.client == wanted]
        return sorted(chosen, key=lambda e: (e.client, e.sha256))

    def certificates(self) -> list[x509.Certificate]:
        return [e.certificate for e in self.entries()]

    # ------------------------------------------------------------------ writing

    def add(self, client: ClientId, cert: x509.Certificate) -> RegisteredCert:
        """Register ``cert`` for ``client``; a certificate belongs to one client only,
        so the TLS connection alone says whom it authenticates."""
        self.refresh()
        fp = _fingerprint(cert)
        existing = self._by_fp.get(fp)
        if existing is not None and existing.client != str(client):
            raise ClientCertError(f"certificate {fp} is already registered for {existing.client}")
        self._by_fp[fp] = RegisteredCert(str(client), fp, cert)
        self._write()
        return self._by_fp[fp]

    def remove(self, client: ClientId, sha256: str) -> RegisteredCert:
        """Unregister the certificate with fingerprint ``sha256`` from ``client``."""
        self.refresh()
        existing = self._by_fp.get(sha256.lower())
        if existing is None or existing.client != str(client):
            raise ClientCertError(f"no certificate {sha256} is registered for {client}")
        del self._by_fp[existing.sha256]
        self._write()
        return existing

    def _write(self) -> None:
        clients: dict[str, dict[str, str]] = {}
        for entry in self.entries():
            pem = entry.certificate.public_bytes(Encoding.PEM).decode("ascii")
            clients.setdefault(entry.client, {})[entry.sha256] = pem
        data = json.dumps({"version": 1, "clients": clients}, indent=2, sort_keys=True)
        replace_atomically(self.path, (data + "\n").encode("utf-8"))
        self._stamp = self._file_stamp()
        self.version += 1


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


class ConsumerTls:
    """The consumer TLS port's contexts: the node's internal TLS certificate, and the
    registered information-system certificates as the only client trust anchors.

    The listening socket is bound with one context; :meth:`select` (its SNI callback,
    which OpenSSL calls on every ClientHello) switches in a context rebuilt after the
    store changed, so a registration takes effect on the next handshake.
    """

    def __init__(
        self, cert: Path, key: Path, store: ClientCertStore, passphrase: bytes | None = None
    ) -> None:
        self._cert = cert
        self._key = key
        self._passphrase = passphrase
        self._store = store
        self._version = store.version
        self._context = self._build(store.certificates())
        self._context.sni_callback = self.select

    @property
    def context(self) -> ssl.SSLContext:
        return self._context

    def _build(self, anchors: Iterable[x509.Certificate]) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self._cert, self._key, password=key_password(self._passphrase))
        pems = "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in anchors)
        if pems:
            ctx.load_verify_locations(cadata=pems)
        # Ask for a certificate but do not insist: https-no-auth and http clients send
        # none. A registered certificate is its own anchor (partial chain); its dates
        # are judged by authenticate_client.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | _NO_CHECK_TIME
        return ctx

    def current(self) -> ssl.SSLContext:
        """The context for the next handshake, rebuilt if the store file changed."""
        self._store.refresh()
        if self._store.version != self._version:
            fresh = self._build(self._store.certificates())
            fresh.sni_callback = self.select
            self._context = fresh
            self._version = self._store.version
        return self._context

    def select(
        self, sslobj: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        try:
            current = self.current()
        except ClientCertError:
            return  # keep the last good set; authenticate_client refuses per request
        if current is not context:
            sslobj.context = current


def tls_peer(transport: Any) -> tuple[bool, bytes | None]:
    """Whether the connection is TLS, and the client certificate (DER) it presented."""
    sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
    if sslobj is None:
        return False, None
    der = sslobj.getpeercert(binary_form=True)
    return True, der or None


def authenticate_client(
    client: ClientId,
    connection: ConnectionType,
    *,
    tls: bool,
    peer_der: bytes | None,
    store: ClientCertStore,
    now: datetime,
) -> None:
    """Refuse, with ``client.ssl_authentication_failed``, a connection that does not
    satisfy ``client``'s connection type; nothing has been signed or sent yet."""
    if connection is ConnectionType.HTTP:
        return
    if not tls:
        raise GatewayError(
            Code.CLIENT_SSL_AUTHENTICATION_FAILED,
            f"client ({client}) specifies HTTPS but the request came over plain HTTP",
        )
    if connection is ConnectionType.HTTPS_NO_AUTH:
        return
    if peer_der is None:
        raise GatewayError(
            Code.CLIENT_SSL_AUTHENTICATION_FAILED,
            f"client ({client}) specifies HTTPS but did not supply a TLS certificate",
        )
    fp = hashlib.sha256(peer_der).hexdigest()
    try:
        store.refresh()
    except ClientCertError as exc:
        raise GatewayError(
            Code.CLIENT_SSL_AUTHENTICATION_FAILED, f"the certificate store is unreadable: {exc}"
        ) from None
    entry = store.get(fp)
    if entry is None or parse_client(entry.client) != client:
        raise GatewayError(
            Code.CLIENT_SSL_AUTHENTICATION_FAILED,
            f"the TLS certificate {fp} is not registered for client ({client})",
        )
    cert = entry.certificate
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise GatewayError(
            Code.CLIENT_SSL_AUTHENTICATION_FAILED,
            f"the TLS certificate {fp} of client ({client}) is not valid now "
            f"({cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()})",
        )
