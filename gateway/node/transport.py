"""HTTP clients on the hot path: node to node over pooled mTLS, and node to registry.

Both use aiohttp's client: measured on this machine class, httpx's async client costs
several times the CPU per proxied request. They sit behind two small classes so the rest
of the node never touches the library directly.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.client_reqrep import ClientRequest, Fingerprint
from aiohttp.connector import Connection
from cryptography import x509
from multidict import CIMultiDict
from yarl import URL

from gateway.core.envelope import MAX_HEADER_FIELD
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ServiceId
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
    """``connection refused`` rather than asyncio's ``Connect call failed ('h', p)``."""
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return str(error.verify_message)
    if isinstance(error, ssl.SSLError):
        return str(error.reason or error.strerror or type(error).__name__).lower()
    if error.errno:
        return os.strerror(error.errno).lower()
    return _OBJECT_REPR.sub("", str(error)).strip() or type(error).__name__


class _AnyOf(Fingerprint):
    """Accept a peer whose certificate matches any registered fingerprint (key rotation)."""

    def __init__(self, fingerprints: frozenset[str]) -> None:
        super().__init__(bytes.fromhex(next(iter(fingerprints))))
        self._accepted = frozenset(bytes.fromhex(fp) for fp in fingerprints)

    def check(self, transport: asyncio.Transport) -> None:
        import hashlib

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


class _PeerCertResponse(aiohttp.ClientResponse):
    """A response that remembers the TLS certificate of the connection it came on.

    Read in ``start``, when the connection is certainly still attached: aiohttp hands
    it back to the pool as soon as a short body has arrived, often before the caller
    sees the response.
    """

    peer_cert: bytes | None = None

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is not None:
            self.peer_cert = ssl_object.getpeercert(binary_form=True) or None
        return await super().start(connection)


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


class PeerClient:
    """Sends signed messages to other nodes over a persistent mTLS pool."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        connect_timeout: float,
        total_timeout: float,
        max_body: int,
    ) -> None:
        self._connector = PinnedConnector(ssl_context, limit=0, limit_per_host=256)
        self._session = aiohttp.ClientSession(
            connector=self._connector,
            timeout=aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            max_field_size=MAX_HEADER_FIELD,
            response_class=_PeerCertResponse,
            cookie_jar=aiohttp.DummyCookieJar(),  # nothing is added to a signed message
        )
        self._max_body = max_body
        self._timeout = total_timeout
        self._connect_timeout = connect_timeout

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
        self._connector.pin(address, pins, issuers)
        try:
            async with self._session.post(
                URL(f"{address}/gw/v1/exchange", encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                ssl=ssl_context,
            ) as resp:
                peer_cert = resp.peer_cert if isinstance(resp, _PeerCertResponse) else None
                data = await read_limited(resp.content, self._max_body)
                if data is None:
                    raise GatewayError(
                        Code.CP_INVALID_MESSAGE, "the provider's reply exceeds the size limit"
                    )
                return Reply(resp.status, CIMultiDict(resp.headers), data, peer_cert)
        # aiohttp raises these three from its connector, before the request is
        # written (the pin is checked right after the handshake, PinnedConnector):
        # the provider's node saw nothing of the message.
        except WrongInstanceCa as exc:
            raise PeerUnreachable(
                Code.CP_WRONG_INSTANCE_CA,
                f"{address} presented its registered certificate, but it was issued by "
                f"{exc.issuer}, which is not a CA of the provider node's instance",
            ) from None
        except aiohttp.ServerFingerprintMismatch:
            raise PeerUnreachable(
                Code.CP_SSL_AUTHENTICATION_FAILED,
                f"{address} presented a certificate not registered for the provider's node",
            ) from None
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise PeerUnreachable(
                Code.CP_SSL_AUTHENTICATION_FAILED,
                f"TLS with {address} failed: {describe_failure(exc, self._connect_timeout)}",
            ) from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise PeerUnreachable(
                Code.CP_NETWORK_ERROR,
                f"the provider's node at {address} failed: "
                f"{describe_failure(exc, self._connect_timeout)}",
            ) from None
        # Anything else may have come after bytes of the request were written, even on
        # a pooled connection the peer had closed: the node may have acted on it.
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayError(
                Code.CP_NETWORK_ERROR,
                f"the provider's node at {address} failed: {describe_failure(exc, self._timeout)}",
            ) from None

    async def close(self) -> None:
        await self._session.close()


class _RegistryConnector(aiohttp.TCPConnector):
    """Checks a registry's pinned certificates (``RegistryContext.pins``) right after
    the handshake, before the request is written: a registry that presents another
    certificate never sees the request. The pins travel with the request's context, so
    two services on one host may pin different certificates."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._checks: dict[frozenset[bytes], _AnyOf] = {}

    def _get_fingerprint(self, req: ClientRequest) -> Fingerprint | None:
        context = req.ssl
        if not isinstance(context, RegistryContext) or not context.pins:
            return None
        check = self._checks.get(context.pins)
        if check is None:
            check = self._checks[context.pins] = _AnyOf(
                frozenset(pin.hex() for pin in context.pins)
            )
        return check


class RegistryClient:
    """Calls registries (service providers' information systems) without altering bytes.

    No redirects are followed, nothing is decompressed and no headers are added beyond
    X-Road's own, so the registry sees exactly the signed request and the client exactly
    the signed reply. An ``https://`` registry is called with its service's context
    (``tls``: CA, pins, client certificate from the service's section in the exchange's
    settings snapshot); a service without one is never called over TLS (fail closed).
    """

    def __init__(self, *, max_body: int) -> None:
        self._session = aiohttp.ClientSession(
            connector=_RegistryConnector(limit=0, limit_per_host=256),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            max_field_size=MAX_HEADER_FIELD,
            # A registry's Set-Cookie goes to the client in the signed response, and is
            # never kept: a cookie sent with a later call would be a header nobody signed,
            # one client's session in another client's call (and a lookup per call).
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._max_body = max_body

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
        context: ssl.SSLContext | bool = True
        if url.startswith("https://"):
            if tls is None:
                raise GatewayError(
                    Code.SP_SERVICE_SSL_FAILED,
                    f"the registry of {service} has no TLS trust configured "
                    "(tls_ca or tls_pin_sha256)",
                )
            context = tls
        try:
            async with self._session.request(
                method,
                URL(url, encoded=True),  # forward path and query exactly as signed
                headers=CIMultiDict(headers),
                data=body if body or method not in ("GET", "HEAD") else None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
                ssl=context,
            ) as resp:
                data = await read_limited(resp.content, self._max_body)
                if data is None:
                    raise GatewayError(
                        Code.SP_RESPONSE_TOO_LARGE, "the registry's response exceeds the limit"
                    )
                return Reply(resp.status, CIMultiDict(resp.headers), data)
        except TimeoutError:
            raise GatewayError(
                Code.SP_SERVICE_TIMEOUT, f"the registry did not answer within {timeout:g} s"
            ) from None
        except aiohttp.ServerFingerprintMismatch as exc:
            raise GatewayError(
                Code.SP_SERVICE_SSL_FAILED,
                f"the registry of {service} at {exc.host}:{exc.port} presented a "
                "certificate that matches none of the service's tls_pin_sha256",
            ) from None
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise GatewayError(
                Code.SP_SERVICE_SSL_FAILED,
                f"TLS with the registry of {service} failed: {describe_failure(exc, timeout)}",
            ) from None
        except aiohttp.ClientError as exc:
            raise GatewayError(
                Code.SP_SERVICE_NETWORK_ERROR,
                f"the registry at {url} failed: {describe_failure(exc, timeout)}",
            ) from None

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
        await self._session.close()
