"""Baseline (b): a reverse proxy as lean as one hop can be in Python.

Two of these stand where the two nodes stand: mutual TLS 1.3 between them with the
nodes' own authentication certificates, a pooled keep-alive connection to the next hop,
and no signing, verification or logging. What the gateway spends beyond this pair is
what its security work costs, so this pair must not be slower than a proxy needs to be:
a baseline with framework overhead of its own makes every ratio look better than it is.

Hence no web framework and no HTTP client library: an ``asyncio.Protocol`` on uvloop
parses requests and responses with httptools (the C parser uvicorn uses), forwards the
end-to-end headers (the node's rule, :func:`gateway.core.headers.end_to_end_headers`)
with the body framed by ``Content-Length``, and keeps idle upstream connections in a
pool. It still does what a proxy must: whole messages in both directions, hop-by-hop
headers dropped, a request at a time per connection in order, ``502`` when the next hop
fails, the client's keep-alive or close honoured.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from collections import deque
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import httptools

from gateway.core.headers import end_to_end_headers
from gateway.keys.files import load_certificates
from gateway.keys.passphrase import read_passphrase_file
from gateway.node.tls import client_context, server_context

MAX_BODY = 16 * 1024 * 1024
"""Largest body relayed either way (the bench sends up to a few MiB)."""

Message = tuple[int, bytes, list[tuple[bytes, bytes]], bytes]
"""Status (0 for a request), the reason or the request line's method and target,
the headers and the body."""


def _head(first_line: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """A message head with end-to-end headers only and a recomputed ``Content-Length``."""
    kept = end_to_end_headers((n.decode("latin-1"), v.decode("latin-1")) for n, v in headers)
    lines = [first_line]
    lines += [f"{n}: {v}".encode("latin-1") for n, v in kept]
    lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n"


class _Upstream(asyncio.Protocol):
    """One keep-alive connection to the next hop, carrying one request at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Message] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._reason = b""
        self.reusable = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad response from upstream: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(ConnectionError("upstream closed the connection"))

    # httptools callbacks
    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        if not self._parser.should_keep_alive():
            self.reusable = False
        message = (
            self._parser.get_status_code(),
            self._reason,
            self._headers,
            b"".join(self._body),
        )
        self._headers, self._body, self._reason = [], [], b""
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self._transport is not None:
            self._transport.close()

    async def send(self, request: bytes) -> Message:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return await self._waiter


class UpstreamPool:
    """Idle keep-alive connections to one origin (``http://`` or ``https://`` host:port)."""

    def __init__(self, origin: str, tls: ssl.SSLContext | None) -> None:
        parts = urlsplit(origin)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream needs a host and a port: {origin}")
        self.host, self.port = parts.hostname, parts.port
        self.authority = f"{self.host}:{self.port}".encode()
        self._tls = tls if parts.scheme == "https" else None
        self._idle: deque[_Upstream] = deque()

    async def exchange(self, request: bytes) -> Message:
        """Send one whole request, return the whole response; one retry on a fresh
        connection when a pooled one was closed by the other side while idle."""
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable:
                try:
                    response = await conn.send(request)
                except ConnectionError:
                    continue
                self._release(conn)
                return response
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            lambda: _Upstream(self), self.host, self.port, ssl=self._tls
        )
        response = await conn.send(request)
        self._release(conn)
        return response

    def _release(self, conn: _Upstream) -> None:
        if conn.reusable:
            self._idle.append(conn)


class RelayProtocol(asyncio.Protocol):
    """One client connection: parse each request, relay it, answer, in order."""

    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._queue: deque[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes, bool]] = deque()
        self._busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._reply_and_close(400, b"Bad Request")

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_BODY:
            self._reply_and_close(413, b"Content Too Large")
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        request = (method, self._url, self._headers, b"".join(self._body))
        self._queue.append((*request, self._parser.should_keep_alive()))
        self._url, self._headers, self._body, self._size = b"", [], [], 0
        if not self._busy:
            self._busy = True
            asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._queue and self._transport is not None:
            method, url, headers, body, keep_alive = self._queue.popleft()
            first = b"%s %s HTTP/1.1\r\nhost: %s" % (method, url, self._pool.authority)
            try:
                status, reason, out_headers, out_body = await self._pool.exchange(
                    _head(first, headers, body) + body
                )
            except (OSError, ConnectionError):
                self._reply_and_close(502, b"Bad Gateway")
                return
            if self._transport is None:
                return
            status_line = b"HTTP/1.1 %d %s" % (status, reason)
            if not keep_alive:
                out_headers = [*out_headers, (b"Connection", b"close")]
            self._transport.write(_head(status_line, out_headers, out_body) + out_body)
            if not keep_alive:
                self._transport.close()
                return
        self._busy = False

    def _reply_and_close(self, status: int, reason: bytes) -> None:
        if self._transport is not None:
            self._transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                % (status, reason)
            )
            self._transport.close()
            self._transport = None


async def serve(
    port: int, upstream: str, server_tls: ssl.SSLContext | None, client_tls: ssl.SSLContext | None
) -> None:
    """Relay on 127.0.0.1:``port`` to ``upstream`` until cancelled."""
    pool = UpstreamPool(upstream, client_tls)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: RelayProtocol(pool), "127.0.0.1", port, ssl=server_tls, backlog=1024
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="lean relay (benchmark baseline)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="http(s)://host:port of the next hop")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--tls-in", action="store_true", help="listen with mutual TLS")
    parser.add_argument("--key-passphrase-file", type=Path, default=None)
    args = parser.parse_args()
    roots = load_certificates(args.ca)
    pw = (
        None if args.key_passphrase_file is None else read_passphrase_file(args.key_passphrase_file)
    )
    client_tls = (
        client_context(args.cert, args.key, roots, pw)
        if args.upstream.startswith("https")
        else None
    )
    server_tls = server_context(args.cert, args.key, roots, pw) if args.tls_in else None
    work = serve(args.port, args.upstream, server_tls, client_tls)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(work)
    else:
        uvloop.run(work)


if __name__ == "__main__":
    main()
