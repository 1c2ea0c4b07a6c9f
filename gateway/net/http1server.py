"""A lean HTTP/1.1 server: one ``asyncio.Protocol`` per connection, httptools' parser.

The node's consumer and peer ports answer one kind of request each, with a head of a
few KiB and a bounded body, and their handlers build the whole answer before a byte of
it is written (nothing leaves a node before its log commit). aiohttp's server wraps
that in an application, a router, request and response objects, a stream reader and a
stream writer; here a connection is a parser, a queue of requests and one write per
answer, a large body after its head rather than copied onto it
(docs/adr/0068-lean-http-server-on-the-node-ports.md).

What it does: keep-alive (idle connections closed after ``keepalive_timeout``), pipelined
requests answered one at a time and in order, request bodies by ``Content-Length`` or
chunked, handed to the handler only when it asks (:meth:`Request.read`) and held back
from the socket until then (``pause_reading`` above a buffer's worth), ``Expect:
100-continue`` answered when the handler first reads, HTTP/1.0 (closed after the answer
unless it asked for keep-alive), a route table of exact paths and prefixes, the limits
aiohttp applied on these ports (a request target of 8190 bytes, a header field of
``max_field`` bytes name and value together: 400), a whole head of ``max_head`` bytes
(431), answers with ``Content-Length`` (none for 1xx, 204 and 304; no body for ``HEAD``),
``Connection: close`` honoured both ways, and a graceful :meth:`Http1Server.shutdown`.

A request line of another version than 1.0 and 1.1 is handed to the route table's
``version_refusal`` before any route runs, answered as HTTP/1.1 and closed, as
``gateway/net/httpversion.py`` does for the aiohttp listeners. An ``Expect`` naming
anything but ``100-continue`` is answered by its ``expectation_refusal`` (417) before
any route runs, in HTTP/1.0 as well.

What it does not do: HTTP/2, upgrades (websockets; an ``Upgrade`` header is ignored and
a ``CONNECT`` is routed like any method, then the connection closes), compression,
streamed answers, cookies, multipart. The connection guard (``gateway/net/guard.py``,
``guarded_server``) wraps this protocol's factory for the read timeouts, the caps and the
write timeout: an answer the client does not read for that long closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Final, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.net.http1messages import (
    BODY_SPLIT,
    HIGH_WATER,
    ClientGone,
    ExpectationRefusal,
    Handler,
    HttpResponse,
    Request,
    Routes,
    VersionRefusal,
    closing_answer,
    encode,
    encode_parts,
    json_response,
    plain_expectation_refusal,
    plain_version_refusal,
    text_response,
)

__all__ = [
    "ClientGone",
    "ExpectationRefusal",
    "Handler",
    "Http1Server",
    "HttpResponse",
    "Request",
    "Routes",
    "VersionRefusal",
    "encode",
    "json_response",
    "plain_expectation_refusal",
    "plain_version_refusal",
    "text_response",
]

log = logging.getLogger(__name__)

MAX_LINE: Final = 8190
"""Longest request target (aiohttp's ``max_line_size``): longer is refused with 400."""
MAX_HEADERS: Final = 32768
"""Most header fields in one head (aiohttp's server default)."""
MAX_HEAD: Final = 512 * 1024
"""Longest request head; longer is refused with 431 (a node's own heads stay far below:
one signed header of at most 64 KiB and two OCSP responses)."""
MAX_PIPELINED: Final = 100
"""Most requests queued on one connection: the next is answered 503 and the connection
closes once those before it are answered. Parsing a read cannot stop midway, so without
a cap one read of tiny pipelined heads would queue thousands of requests."""
KEEPALIVE_SECONDS: Final = 75.0
"""How long a kept-alive connection may idle between requests (aiohttp's default)."""
LINGER_SECONDS: Final = 2.0
"""How long the rest of a body the handler did not read is drained after the answer,
so the client reads the answer rather than a reset, before the connection closes."""
SHUTDOWN_SECONDS: Final = 60.0
"""How long :meth:`Http1Server.shutdown` waits for requests in flight (aiohttp's)."""


class _Refused(Exception):
    """A request the parser or a limit refused: answer ``status`` and close."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class _Stop(Exception):
    """Parse no further: nothing after a connection's last request is read."""


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _check_coding(headers: CIMultiDictProxy[str], version: str) -> None:
    """Refuse a ``Transfer-Encoding`` other than one ``chunked`` alone.

    llhttp frames ``gzip, chunked`` by its last coding and hands the body over still
    coded, which a handler would take for the body itself; and an HTTP/1.0 request
    with the header has a framing RFC 9112 §6.1 says to treat as faulty."""
    if version == "1.0":
        raise _Refused(400, "Transfer-Encoding in an HTTP/1.0 request")
    codings = headers.getall("Transfer-Encoding")
    if len(codings) != 1 or codings[0].strip().lower() != "chunked":
        raise _Refused(400, "a transfer coding other than chunked")


class _Connection(asyncio.Protocol):
    """One client connection: parse, queue, answer in order."""

    def __init__(self, server: Http1Server) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._fields = 0
        """The bytes of the header fields so far: a head whose last read also ended it is
        held to ``max_head`` as exactly as one still arriving."""
        self._in_head = False
        self._current: Request | None = None
        """The request whose body is arriving."""
        self._queue: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._idle_since = 0.0
        """Loop time of the connection's last answer (or its start): the keep-alive
        timeout counts from it."""
        self._paused = False
        self._stopped = False
        """No more requests are parsed (refused, closing, or the client said close)."""
        self._last = False
        """The request being parsed is the connection's last: its body is still read."""
        self._discarding = False
        self._refusal: bytes | None = None
        self._writable: asyncio.Future[None] | None = None
        """Pending while the transport's write buffer is over its high-water mark."""
        """The answer to a malformed request, written before the connection closes."""
        self.closing = False
        """Close once the request in hand is answered (shutdown)."""

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._server.connections.add(self)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        if self._stopped:
            return
        try:
            self._parser.feed_data(data)
            if self._in_head:
                self._head_size += len(data)
                if self._head_size > self._server.max_head:
                    raise _Refused(431, "the request head is too large")
        except httptools.HttpParserUpgrade:
            # CONNECT or an Upgrade: served as a plain request, then the connection closes;
            # what follows the head is another protocol's, never a body.
            self._stopped = True
            current = self._current
            if current is not None and not current._done:
                current._finish()
        except _Refused as refused:
            self._refuse(refused.status, str(refused))
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _Stop) or self._stopped:
                return  # after the last request (llhttp refuses bytes after a close itself)
            if isinstance(cause, _Refused):
                self._refuse(cause.status, str(cause))
            else:
                self._refuse(400, f"Bad Request: {exc}")

    def eof_received(self) -> bool | None:
        # Half-closed by the client: answer what was asked, then close (over TLS the
        # transport closes itself whatever is answered here).
        self._stopped = True
        current = self._current
        if current is not None and not current._done:
            current._connection_lost()
        transport = self._transport
        if transport is None or transport.get_extra_info("sslcontext") is not None:
            return None
        return self._task is not None or bool(self._queue)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._transport = None
        self._stopped = True
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        for request in self._queue:
            request._connection_lost()
        self.resume_writing()

    def pause_writing(self) -> None:
        # A client that sends requests and never reads the answers: no more answers are
        # written (nor requests read) until it has read what is buffered.
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        if self._stopped:
            raise _Stop  # a request after the last one, in the same read
        self._url = b""
        self._raw_headers = []
        self._in_head = True
        self._head_size = 0
        self._fields = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_LINE:
            raise _Refused(400, f"the request target is over {MAX_LINE} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        limit = self._server.max_field
        if len(value) > limit or len(name) > limit:
            raise _Refused(400, f"a header name or value is over {limit} bytes")
        self._fields += len(name) + len(value) + 4
        if self._fields > self._server.max_head:
            raise _Refused(431, "the request head is too large")
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        raw = self._raw_headers
        if len(raw) > MAX_HEADERS:
            raise _Refused(400, "too many header fields")
        # llhttp admits only token characters in a name; a value is decoded as aiohttp
        # did, so that bytes that are not UTF-8 go back out unchanged.
        headers = CIMultiDictProxy(
            CIMultiDict([(n.decode(), v.decode("utf-8", "surrogateescape")) for n, v in raw])
        )
        version = parser.get_http_version()
        if version == "1.1":
            hosts = len(headers.getall("Host", ()))
            if hosts != 1:  # RFC 9112 §3.2: none, or two that may name different hosts
                raise _Refused(
                    400,
                    "Missing 'Host' header in request."
                    if not hosts
                    else "more than one 'Host' header",
                )
        if "Transfer-Encoding" in headers:
            _check_coding(headers, version)
        has_body = "Transfer-Encoding" in headers or headers.get("Content-Length", "0") != "0"
        if len(self._queue) >= MAX_PIPELINED:
            raise _Refused(503, "too many pipelined requests")
        keep_alive = parser.should_keep_alive() and not self.closing
        request = Request(
            self,
            parser.get_method().decode("ascii", "replace"),
            _text(self._url),
            version,
            headers,
            self._transport,
            keep_alive=keep_alive,
            body_done=not has_body,
        )
        if not keep_alive:
            self._last = True  # nothing after this request is read, once its body is
        self._current = request
        self._queue.append(request)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve())

    def on_body(self, body: bytes) -> None:
        request = self._current
        if request is None or self._discarding:
            return
        if request._feed(body) > HIGH_WATER and request._waiter is None:
            self._pause()

    def on_message_complete(self) -> None:
        request, self._current = self._current, None
        if self._last:
            self._stopped = True
        if self._discarding:
            self._close()
            return
        if request is not None:
            request._finish()
        if self._task is not None and len(self._queue) > 1:
            self._pause()  # pipelined: the next request waits its turn off the socket

    # -- flow control

    def _pause(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def drained(self, request: Request) -> None:
        """The handler of ``request`` wants more of its body (or dropped it)."""
        if self._queue and self._queue[0] is request:
            self._resume()

    def write_continue(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    # -- answering

    async def _serve(self) -> None:
        """Answer the queued requests one at a time, in order."""
        try:
            while self._queue:
                if self._writable is not None:
                    self._pause()
                    await self._writable
                request = self._queue[0]
                if not await self._answer(request):
                    return
                self._queue.popleft()
                if self._stopped and not self._queue:
                    self._close()
                    return
                self._resume()
        finally:
            self._task = None
        self._arm_idle()

    async def _answer(self, request: Request) -> bool:
        """Answer ``request``; False if the connection is done with."""
        server = self._server
        version = request.version
        if version != "1.1" and version != "1.0":
            response = server.routes.version_refusal(version)
            response.close = True
            version = "1.1"
        elif request.expectation_failed is not None:
            # RFC 9110 §10.1.1: an expectation the server cannot meet is answered 417,
            # and the request goes no further (its body, if sent, is drained as unread).
            response = server.routes.expectation_refusal(request.expectation_failed)
        else:
            found = server.routes.resolve(request.method, request.path)
            if isinstance(found, HttpResponse):
                response = found
            else:
                try:
                    response = await found(request)
                except ClientGone:
                    self._close()
                    return False
                except Exception:
                    log.exception("%s: error answering %s", server.name, request.path)
                    response = text_response(
                        "500 Internal Server Error\n\nServer got itself in trouble", 500
                    )
                    response.close = True
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        complete = request._done
        keep_alive = request.keep_alive and not response.close and complete and not self.closing
        try:
            data, body = encode_parts(
                response, version, keep_alive=keep_alive, head=request.method == "HEAD"
            )
        except ValueError:
            log.exception("%s: cannot write the answer to %s", server.name, request.path)
            data, body = closing_answer(500, "500 Internal Server Error"), b""
            keep_alive = False
        if len(body) >= BODY_SPLIT:
            transport.writelines((data, body))
        else:
            transport.write(data + body if body else data)
        if keep_alive:
            return True
        if not complete and not request._lost and self._refusal is None:
            # Drain what is still coming of the body, briefly, so the client reads the
            # answer instead of a reset; then close.
            self._stopped = False
            self._discarding = True
            request._chunks.clear()
            self._resume()
            asyncio.get_running_loop().call_later(LINGER_SECONDS, self._close)
            return False
        self._close()
        return False

    def _refuse(self, status: int, text: str) -> None:
        """Answer a malformed request and close, after the answers owed before it."""
        self._stopped = True
        self._refusal = closing_answer(status, text)
        current = self._current
        if current is not None and not current._done:
            current._connection_lost()  # its handler reads no more of that body
        if self._task is None:
            self._close()

    def _close(self) -> None:
        self._stopped = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if self._refusal is not None:
                transport.write(self._refusal)
                self._refusal = None
            if transport.get_write_buffer_size():
                # A close waits for the unsent bytes, for ever if the client never reads
                # them. With no high-water mark left the transport counts as paused for
                # writing, and the guard's write timeout ends it (guard.py).
                transport.set_write_buffer_limits(high=0)
            transport.close()

    def _arm_idle(self) -> None:
        if self._transport is None or self._stopped:
            return
        if self.closing:
            self._close()
            return
        # One timer per connection, not one per request: re-arming costs about 2 µs on
        # uvloop (a handle and a libuv timer each time), a clock read 0.07 µs. The timer
        # finds out on expiry whether the connection was busy or answered since.
        loop = asyncio.get_running_loop()
        self._idle_since = loop.time()
        if self._idle is None:
            self._idle = loop.call_later(self._server.keepalive_timeout, self._idle_expired)

    def _idle_expired(self) -> None:
        self._idle = None
        if self._task is not None or self._in_head or self._current is not None:
            return  # busy: the answer re-arms it
        loop = asyncio.get_running_loop()
        left = self._idle_since + self._server.keepalive_timeout - loop.time()
        if left > 0:
            self._idle = loop.call_later(left, self._idle_expired)
        else:
            self._close()

    @property
    def paused(self) -> bool:
        """Whether the socket is not read (a body buffered past its mark, or a request
        waiting its turn)."""
        return self._paused

    @property
    def idle(self) -> bool:
        return self._task is None and not self._in_head and self._current is None

    def shut(self) -> None:
        """Shutdown: close now if idle, else after the request in hand."""
        self.closing = True
        if self.idle:
            self._close()


class Http1Server:
    """The connections of one listening port and their route table; ``self`` is the
    protocol factory to pass to ``create_server`` (or to the connection guard)."""

    def __init__(
        self,
        routes: Routes,
        *,
        name: str = "server",
        max_field: int = 8190,
        max_head: int = MAX_HEAD,
        keepalive_timeout: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.routes = routes
        self.name = name
        self.max_field = max_field
        self.max_head = max_head
        self.keepalive_timeout = keepalive_timeout
        self.connections: set[_Connection] = set()

    def __call__(self) -> asyncio.Protocol:
        return _Connection(self)

    async def shutdown(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """Close idle connections now and the others once their request in hand is
        answered, waiting up to ``timeout`` seconds; then close whatever is left.
        Stop accepting first (``asyncio.Server.close``)."""
        for conn in list(self.connections):
            conn.shut()
        deadline = asyncio.get_running_loop().time() + timeout
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn._close()
