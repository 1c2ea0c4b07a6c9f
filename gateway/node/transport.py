"""HTTP clients on the hot path: node to node over pooled mTLS, and node to registry.

Both sit on the lean HTTP/1.1 client of :mod:`gateway.net.http1client` (an
``asyncio.Protocol`` and httptools' parser, docs/adr/0064-lean-http-client-on-the-hot-path.md):
aiohttp's client was 300-400 µs of a node's CPU per exchange. They sit behind two small
classes so the rest of the node never touches a client directly. The node's other
clients (witness, timestamper, OCSP, service descriptions) stay on aiohttp and use
``PinnedConnector``, ``read_limited`` and ``describe_failure`` from here.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.client_reqrep import ClientRequest, Fingerprint
from cryptography import x509
from multidict import CIMultiDict

from gateway.core.envelope import MAX_HEADER_FIELD
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ServiceId
from gateway.net.http1client import (
    ClientError,
    HandshakeFailed,
    Http1Client,
    PeerCheck,
    PeerRejected,
    TimedOut,
    TooLarge,
    os_reason,
)
from gateway.node.tls import RegistryContext
from gateway.pki.ocsp_cache import find_issuer

_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def describe_failure(exc: BaseException, timeout: float) -> str:
    """What went wrong on a connection, in words an operator can act on.

    aiohttp's own texts name the SSL context by its ``repr`` (``ssl:<ssl.SSLContext
    object at 0x...>``) and a timeout of the whole call has no text at all; the errno
    of a failed connect (refused, unreachable, reset) is what tells a dead peer from a
    slow one. ``timeout`` is the limit that applied, for the timeout case.
    """
    if isinstance(exc, ClientError):  # the lean client's own words
        return str(exc)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {exc.host}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"the TLS handshake with {exc.host}:{exc.port} failed: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection was closed before a complete answer arrived"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"no connection within {timeout:g} s"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return f"the connection stalled (no data within {timeout:g} s)"
    if isinstance(exc, TimeoutError):
        return f"no complete answer within {timeout:g} s"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"connection failed: {_os_reason(exc)}"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer's body was cut off"
    text = _OBJECT_REPR.sub("", str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _os_reason(error: OSError) -> str:
    """The lean client's reading of an ``OSError``, without aiohttp's object reprs."""
    return _OBJECT_REPR.sub("", os_reason(error)).strip() or type(error).__name__


class _AnyOf(Fingerprint):
    """Accept a peer whose certificate matches any registered fingerprint (key rotation)."""

    def __init__(self, fingerprints: frozenset[str]) -> None:
        super().__init__(bytes.fromhex(next(iter(fingerprints))))
        self._accepted = frozenset(bytes.fromhex(fp) for fp in fingerprints)

    def check(self, transport: asyncio.Transport) -> None:
        sslobj = transport.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        got = hashlib.sha256(der).digest() if der else b""
        if got not in self._accepted:
            host, port, *_ = transport.get_extra_info("peername")
            raise aiohttp.ServerFingerprintMismatch(next(iter(self._accepted)), got, host, port)


class WrongInstanceCa(aiohttp.ServerFingerprintMismatch):
    """The peer presented its registered certificate, but no CA of the peer node's own
    instance issued it (a federated instance's CA certifies that instance only)."""

    def __init__(self, got: bytes, host: str, port: int, issuer: str) -> None:
        super().__init__(b"", got, host, port)
        self.issuer = issuer


class _ScopedPin(_AnyOf):
    """A peer node's pins and the CAs of its instance: the certificate must be one of
    the pins *and* issued by one of those CAs. TLS verified the chain against every
    instance's CAs (the handshake cannot know the peer's instance); this decides whether
    that CA may certify this node, before a byte of the request is written."""

    def __init__(self, fingerprints: frozenset[str], issuers: frozenset[x509.Certificate]) -> None:
        super().__init__(fingerprints)
        self.issuers = issuers

    def check(self, transport: asyncio.Transport) -> None:
        super().check(transport)
        der = transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        if find_issuer(cert, self.issuers) is None:
            host, port, *_ = transport.get_extra_info("peername")
            raise WrongInstanceCa(der, host, port, cert.issuer.rfc4514_string())


class PinnedConnector(aiohttp.TCPConnector):
    """A pool whose TLS connections are checked against the directory's pins.

    aiohttp checks the fingerprint right after the handshake and before the request is
    written, so a node with a valid certificate from our CA that is not the registered
    node for that address never sees the request. aiohttp's own ``Fingerprint`` option
    turns off CA verification and client certificates, hence this override.
    """

    def __init__(self, ssl_context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(ssl=ssl_context, **kwargs)
        self.pins: dict[tuple[str, int], _AnyOf] = {}

    def pin(
        self,
        address: str,
        fingerprints: frozenset[str],
        issuers: frozenset[x509.Certificate] | None = None,
    ) -> None:
        """Accept at ``address`` only ``fingerprints``; with ``issuers``, only a
        certificate one of those CAs issued (the peer node's instance's CAs)."""
        parts = urlsplit(address)
        key = (parts.hostname or "", parts.port or 443)
        current = self.pins.get(key)
        scope = current.issuers if isinstance(current, _ScopedPin) else None
        if (
            current is None
            or current._accepted != frozenset(bytes.fromhex(fp) for fp in fingerprints)
            or scope != issuers
        ):
            self.pins[key] = (
                _AnyOf(fingerprints) if issuers is None else _ScopedPin(fingerprints, issuers)
            )

    def _get_fingerprint(self, req: ClientRequest) -> Fingerprint | None:
        pin = self.pins.get((req.url.host or "", req.url.port or 443))
        if pin is None:
            # Unpinned peers are never contacted: fail the connection, not silently pass.
            return _AnyOf(frozenset({"00" * 32}))
        return pin


class PeerUnreachable(GatewayError):
    """No connection to a peer node could be made; not a byte of the request left this
    node, so the client proxy may send the message to another node of the provider."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: CIMultiDict[str]
    body: bytes
    peer_cert: bytes | None = None
    """The DER certificate the peer presented in TLS (node-to-node replies only): the
    consumer checks the OCSP status the provider sent for exactly this certificate."""


async def read_limited(content: aiohttp.StreamReader, limit: int) -> bytes | None:
    """Read a whole body, or return ``None`` once it grows past ``limit``.

    In pieces of at most 64 KiB. Taking whatever the stream has buffered instead
    (``readany``) copies each byte twice less, but a node's peak memory with 1 MiB
    bodies after a run at concurrency 64 grew by half (docs/performance.md, "A node's
    CPU per exchange"), against a bound the bench checks.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class _PeerPin:
    """The lean client's check of a peer node (``PeerCheck``): the certificate is one of
    the pins and, with ``issuers``, one of those CAs issued it (see :class:`_ScopedPin`).
    Raises what :class:`PinnedConnector` raises, so both clients word a refusal alike."""

    def __init__(
        self,
        host: str,
        port: int,
        fingerprints: frozenset[str],
        issuers: frozenset[x509.Certificate] | None,
    ) -> None:
        self.host, self.port = host, port
        self.fingerprints = fingerprints
        self.accepted = frozenset(bytes.fromhex(fp) for fp in fingerprints)
        self.issuers = issuers

    def __call__(self, der: bytes | None) -> None:
        got = hashlib.sha256(der).digest() if der else b""
        if got not in self.accepted:
            raise aiohttp.ServerFingerprintMismatch(
                next(iter(self.accepted), b""), got, self.host, self.port
            )
        if self.issuers is not None:
            assert der is not None
            cert = x509.load_der_x509_certificate(der)
            if find_issuer(cert, self.issuers) is None:
                raise WrongInstanceCa(der, self.host, self.port, cert.issuer.rfc4514_string())


class PeerClient:
    """Sends signed messages to other nodes over a persistent mTLS pool.

    On the lean client (:mod:`gateway.net.http1client`): the peer's pins and its
    instance's CAs are checked after the handshake and before a byte is written.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        connect_timeout: float,
        total_timeout: float,
        max_body: int,
    ) -> None:
        self._client = Http1Client(max_body=max_body, max_field=MAX_HEADER_FIELD)
        self._pins: dict[str, _PeerPin] = {}
        self._max_body = max_body
        self._timeout = total_timeout
        self._connect_timeout = connect_timeout

    def _pin(
        self, address: str, pins: frozenset[str], issuers: frozenset[x509.Certificate] | None
    ) -> _PeerPin:
        """The check for ``address``, the same object while its pins and CAs stay: the
        pool is kept per check, so a changed pin takes new connections."""
        current = self._pins.get(address)
        if current is None or current.fingerprints != pins or current.issuers != issuers:
            parts = urlsplit(address)
            current = self._pins[address] = _PeerPin(
                parts.hostname or "", parts.port or 443, pins, issuers
            )
        return current

    async def post(
        self,
        address: str,
        pins: frozenset[str],
        ssl_context: ssl.SSLContext,
        headers: dict[str, str],
        body: bytes,
        issuers: frozenset[x509.Certificate] | None = None,
    ) -> Reply:
        """POST one message; map transport failures to the client proxy's error codes.

        :class:`PeerUnreachable` when no connection could be made (refused, timed out,
        TLS handshake or pin failed, or ``issuers``, the CAs of the peer node's
        instance, issued none of its certificate): nothing of the message was sent.
        Every other failure is a plain :class:`GatewayError`: the message may have
        arrived.

        ``ssl_context`` carries the trust roots of the configuration applied now; pooled
        connections are keyed by it, so a changed set of roots takes new connections.
        """
        try:
            response = await self._client.request(
                "POST",
                f"{address}/gw/v1/exchange",
                headers.items(),
                body,
                timeout=self._timeout,
                connect_timeout=self._connect_timeout,
                ssl_context=ssl_context,
                check=self._pin(address, pins, issuers),
            )
        # Refused right after the handshake, before the request was written: the
        # provider's node saw nothing of the message.
        except PeerRejected as exc:
            if isinstance(exc.reason, WrongInstanceCa):
                raise PeerUnreachable(
                    Code.CP_WRONG_INSTANCE_CA,
                    f"{address} presented its registered certificate, but it was issued by "
                    f"{exc.reason.issuer}, which is not a CA of the provider node's instance",
                ) from None
            raise PeerUnreachable(
                Code.CP_SSL_AUTHENTICATION_FAILED,
                f"{address} presented a certificate not registered for the provider's node",
            ) from None
        except HandshakeFailed as exc:
            raise PeerUnreachable(
                Code.CP_SSL_AUTHENTICATION_FAILED, f"TLS with {address} failed: {exc}"
            ) from None
        except TooLarge:
            raise GatewayError(
                Code.CP_INVALID_MESSAGE, "the provider's reply exceeds the size limit"
            ) from None
        except (ClientError, ValueError) as exc:
            # Anything once a byte may have been written, even on a pooled connection
            # the peer had closed, is never sent elsewhere: the node may have acted on it.
            error = (
                PeerUnreachable if isinstance(exc, ClientError) and not exc.sent else GatewayError
            )
            raise error(
                Code.CP_NETWORK_ERROR, f"the provider's node at {address} failed: {exc}"
            ) from None
        return Reply(response.status, response.headers, response.body, response.peer_cert)

    async def close(self) -> None:
        await self._client.close()


class RegistryClient:
    """Calls registries (service providers' information systems) without altering bytes.

    No redirects are followed, nothing is decompressed, no cookie is kept and no headers
    are added beyond X-Road's own (and ``Host`` and ``Content-Length``), so the registry
    sees exactly the signed request and the client exactly the signed reply. An
    ``https://`` registry is called with its service's context (``tls``: CA, pins,
    client certificate from the service's section in the exchange's settings snapshot);
    a service without one is never called over TLS (fail closed). Its pins are checked
    after the handshake, before a byte of the request is written.
    """

    def __init__(self, *, max_body: int) -> None:
        self._client = Http1Client(max_body=max_body, max_field=MAX_HEADER_FIELD)
        self._checks: dict[frozenset[bytes], PeerCheck] = {}
        self._max_body = max_body

    def _check(self, context: RegistryContext) -> PeerCheck | None:
        """One check per set of pins (the pool is kept per check)."""
        if not context.pins:
            return None
        check = self._checks.get(context.pins)
        if check is None:
            accepted = context.pins

            def check(der: bytes | None) -> None:
                got = hashlib.sha256(der).digest() if der else b""
                if got not in accepted:
                    raise ValueError("no pinned certificate")

            self._checks[context.pins] = check
        return check

    async def call(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout: float,
        *,
        service: ServiceId,
        tls: RegistryContext | None,
    ) -> Reply:
        """Call ``service``'s registry at ``url`` over ``tls`` (its context, if it has
        TLS settings); refusals name the service."""
        context: RegistryContext | None = None
        check: PeerCheck | None = None
        if url.startswith("https://"):
            if tls is None:
                raise GatewayError(
                    Code.SP_SERVICE_SSL_FAILED,
                    f"the registry of {service} has no TLS trust configured "
                    "(tls_ca or tls_pin_sha256)",
                )
            context, check = tls, self._check(tls)
        try:
            response = await self._client.request(
                method, url, headers, body, timeout=timeout, ssl_context=context, check=check
            )
        except TimedOut:
            raise GatewayError(
                Code.SP_SERVICE_TIMEOUT, f"the registry did not answer within {timeout:g} s"
            ) from None
        except PeerRejected as exc:
            raise GatewayError(
                Code.SP_SERVICE_SSL_FAILED,
                f"the registry of {service} at {exc.host}:{exc.port} presented a "
                "certificate that matches none of the service's tls_pin_sha256",
            ) from None
        except HandshakeFailed as exc:
            raise GatewayError(
                Code.SP_SERVICE_SSL_FAILED, f"TLS with the registry of {service} failed: {exc}"
            ) from None
        except TooLarge:
            raise GatewayError(
                Code.SP_RESPONSE_TOO_LARGE, "the registry's response exceeds the limit"
            ) from None
        except (ClientError, ValueError) as exc:
            raise GatewayError(
                Code.SP_SERVICE_NETWORK_ERROR, f"the registry at {url} failed: {exc}"
            ) from None
        return Reply(response.status, response.headers, response.body)

    async def get_json_document(
        self, url: str, timeout: float, *, service: ServiceId, tls: RegistryContext | None
    ) -> bytes:
        reply = await self.call(
            "GET", url, [("accept", "application/json")], b"", timeout, service=service, tls=tls
        )
        if reply.status != 200:
            raise GatewayError(
                Code.SP_SERVICE_NETWORK_ERROR, f"{url} answered {reply.status}, not 200"
            )
        return reply.body

    async def close(self) -> None:
        await self._client.close()
