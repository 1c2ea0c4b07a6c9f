"""A lean HTTP/1.1 client: one ``asyncio.Protocol`` per connection, httptools' parser.

The node's two hot-path clients (node to node, node to registry) send a request whose
bytes are fixed in advance (signed) and read one whole answer of bounded size. aiohttp's
client builds request and response objects, a stream reader, timers and a connector's
bookkeeping around that; here a connection is a parser and a list of body pieces
(docs/adr/0064-lean-http-client-on-the-hot-path.md).

What it does: keep-alive pools per (host, port, TLS context, peer check); a ``check``
called with the peer's DER certificate right after the TLS handshake and *before* a
byte of the request is written (a refused peer never sees the request); a connect
timeout and a total timeout; a body limit that stops reading and closes the connection;
``Content-Length``, chunked and close-delimited answers, none for ``HEAD``, 204, 304
and interim 1xx; answer headers raw, in order, with duplicates. The request goes out as
given, with ``Host`` (unless given) and ``Content-Length`` the only headers added.

What it does not do: redirects, proxies, decompression, cookies, authentication from the
URL, upgrades, HTTP/2. An idempotent request that fails on a reused connection before
any byte of an answer arrived is sent once more on a new one (RFC 9112 section 9.3.1.1);
any other request never is.

Every failure is a :class:`ClientError`; ``sent`` says whether a byte of the request may
have been written, which is what decides whether another server may be tried.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

import httptools
from multidict import CIMultiDict

from gateway.net.deadline import ConnectionDeadline

PeerCheck = Callable[[bytes | None], None]
"""Called with the peer's DER certificate (``None`` on plain TCP) once the connection
is up and before the request is written; raising refuses the connection."""

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
KEEPALIVE_SECONDS = 15.0
"""An idle pooled connection older than this is closed rather than reused: well below
the servers' own keep-alive (aiohttp 75 s), so a request rarely meets a connection the
server is closing at that moment (aiohttp's client uses the same figure)."""
MAX_HEADERS = 128
MAX_FIELD = 8190
BODY_SPLIT = 64 * 1024
"""A request body at least this long is written apart from its head, not copied onto it."""


class ClientError(Exception):
    """A request that got no complete answer; ``str()`` says why in an operator's words."""

    sent = True
    """Whether a byte of the request may have been written (the server may have acted)."""


class CannotConnect(ClientError):
    """No connection: the name did not resolve, or the connection was refused or reset."""

    sent = False

    def __init__(self, host: str, port: int, error: OSError) -> None:
        self.host, self.port, self.os_error = host, port, error
        if isinstance(error, socket.gaierror):
            text = f"cannot resolve {host}"
        else:
            text = f"cannot connect to {host}:{port}: {os_reason(error)}"
        super().__init__(text)


class HandshakeFailed(CannotConnect):
    """The TLS handshake failed (the peer's certificate, the protocol, the peer's refusal)."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        super().__init__(host, port, error)
        self.args = (f"the TLS handshake with {host}:{port} failed: {os_reason(error)}",)


class PeerRejected(CannotConnect):
    """The ``check`` refused the peer after the handshake; ``reason`` is what it raised."""

    def __init__(self, host: str, port: int, reason: Exception) -> None:
        ClientError.__init__(self, f"{host}:{port} was refused: {reason}")
        self.host, self.port, self.reason = host, port, reason


class TimedOut(ClientError):
    """A limit ran out; ``phase`` ``connect`` (connection and handshake, nothing sent),
    ``pool`` (waiting for a free connection, nothing sent) or ``answer``."""

    def __init__(self, phase: str, limit: float) -> None:
        self.phase, self.limit = phase, limit
        self.sent = phase == "answer"
        text = (
            f"no connection within {limit:g} s"
            if phase == "connect"
            else f"no complete answer within {limit:g} s"
        )
        super().__init__(text)


class Disconnected(ClientError):
    """The connection broke or was closed before the whole answer arrived."""


class BadAnswer(ClientError):
    """The answer is not HTTP/1.x this client reads (malformed, a head over the limits)."""


class TooLarge(ClientError):
    """The answer's body is over the limit; the connection was closed."""


def os_reason(error: OSError) -> str:
    """``connection refused`` rather than asyncio's ``Connect call failed ('h', p)``."""
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return str(error.verify_message)
    if isinstance(error, ssl.SSLError):
        return str(error.reason or error.strerror or type(error).__name__).lower()
    if error.errno:
        return os.strerror(error.errno).lower()
    return str(error).strip() or type(error).__name__


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: CIMultiDict[str]
    body: bytes
    peer_cert: bytes | None
    """The DER certificate the server presented in TLS, ``None`` on plain TCP."""


_Key = tuple[str, int, ssl.SSLContext | None, PeerCheck | None]


class _Connection(asyncio.Protocol):
    """One connection, one request at a time: the parser's callbacks fill the answer."""

    def __init__(self, max_body: int, max_field: int, live: set[_Connection]) -> None:
        self.transport: asyncio.Transport | None = None
        self.deadline = ConnectionDeadline(self.timed_out)
        self._live = live
        self.peer_cert: bytes | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._max_body = max_body
        self._max_field = max_field
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._head_only = False
        self._reset()

    def _reset(self) -> None:
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._head_bytes = 0
        self._head_done = False
        self._length: bytes | None = None
        self._coding: bytes | None = None
        self._got_bytes = False
        self._done: Response | None = None
        self._keep = False
        self._extra = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self._live.add(self)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: a server talking out of turn
            self._close()
            return
        self._got_bytes = True
        if not self._head_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADERS * self._max_field:
                self._fail(BadAnswer("the answer's head is over the size limit"))
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadAnswer("the server switched protocols"))
        except httptools.HttpParserError as exc:
            # Also after a complete answer, when bytes that follow it in the same read
            # are not HTTP: the answer is not trusted (aiohttp refuses it alike).
            cause = exc.__context__
            self._fail(cause if isinstance(cause, ClientError) else BadAnswer(f"bad answer: {exc}"))
        else:
            if self._done is not None:
                self._deliver()

    def connection_lost(self, exc: Exception | None) -> None:
        self._live.discard(self)
        self.closed = True
        self.reusable = False
        if self._waiter is None or self._waiter.done():
            return
        if self._head_done and self._until_close():
            self._complete(keep=False)
            self._deliver()
        elif self._head_done:
            self._fail(Disconnected("the answer's body was cut off"))
        elif isinstance(exc, OSError):
            self._fail(Disconnected(f"connection failed: {os_reason(exc)}"))
        else:
            self._fail(Disconnected("the connection was closed before a complete answer arrived"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > self._max_field:
            raise BadAnswer(f"a header field of the answer is over {self._max_field} bytes")
        if len(self._headers) >= MAX_HEADERS:
            raise BadAnswer(f"the answer has more than {MAX_HEADERS} header fields")
        if len(name) == 14 and name.lower() == b"content-length":
            self._length = value
        elif len(name) == 17 and name.lower() == b"transfer-encoding":
            self._coding = value
        self._headers.append(
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        )

    def _until_close(self) -> bool:
        """Whether the answer's body ends with the connection (no length, not chunked)."""
        if self._coding is not None:
            return self._coding.rsplit(b",", 1)[-1].strip().lower() != b"chunked"
        return self._length is None

    def on_message_begin(self) -> None:
        if self._waiter is None or self._done is not None:  # an answer nobody asked for
            self._extra = True

    def on_headers_complete(self) -> None:
        if self._done is not None or self._extra:
            return
        status = self._parser.get_status_code()
        if status < 200:
            return  # interim: its (empty) message completes, the answer follows
        self._head_done = True
        if self._head_only:
            # No body follows a HEAD answer whatever it declares; the parser cannot be
            # told so, and would wait for one: answer now and never reuse.
            self._complete(keep=False)
            return
        declared = self._length
        if (
            declared is not None
            and self._coding is None
            and declared.strip().isdigit()
            and int(declared) > self._max_body
        ):  # refused before a byte of the body is read
            raise TooLarge("the answer's body exceeds the size limit")

    def on_body(self, body: bytes) -> None:
        if self._done is not None or not self._head_done:
            return
        self._size += len(body)
        if self._size > self._max_body:
            raise TooLarge("the answer's body exceeds the size limit")
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._head_done:  # an interim 1xx answer
            self._headers, self._length, self._coding = [], None, None
            return
        if self._done is None and not self._extra:
            self._complete(keep=self._parser.should_keep_alive())

    # the request
    async def exchange(self, request: bytes, body: bytes | None, head_only: bool) -> Response:
        """Write the request (``body`` apart when long) and wait for the whole answer."""
        assert self.transport is not None
        self._reset()
        self._head_only = head_only
        self.reusable = False
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        if body is None:
            self.transport.write(request)
        else:
            self.transport.writelines((request, body))
        return await waiter

    def _complete(self, keep: bool) -> None:
        """The answer is whole; it is handed over once the bytes read with it parsed."""
        headers: CIMultiDict[str] = CIMultiDict(self._headers)
        pieces, self._body = self._body, []
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        # The pieces go now: a pooled connection holds no part of an answer it handed
        # over until its next request (a megabyte body per idle connection otherwise).
        del pieces
        self._done = Response(self._parser.get_status_code(), headers, body, self.peer_cert)
        self._keep = keep

    def _deliver(self) -> None:
        response, self._done = self._done, None
        waiter, self._waiter = self._waiter, None
        keep = self._keep and not self._extra and not self.closed
        self.reusable = keep
        if waiter is not None and not waiter.done() and response is not None:
            waiter.set_result(response)
        if not keep:
            self._close()

    def _fail(self, exc: ClientError) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._close()

    def timed_out(self, limit: float) -> None:
        """The total timeout: end the request under way, and the connection."""
        self._fail(TimedOut("answer", limit))

    def _close(self) -> None:
        self.reusable = False
        self.deadline.cancel()
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()

    @property
    def answered_nothing(self) -> bool:
        return not self._got_bytes


class _Pool:
    """The idle connections of one key, newest last, and how many are in use."""

    __slots__ = ("busy", "idle", "waiters")

    def __init__(self) -> None:
        self.idle: deque[_Connection] = deque()
        self.busy = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    def take(self, now: float) -> _Connection | None:
        while self.idle and (
            self.idle[0].closed or now - self.idle[0].idle_since > KEEPALIVE_SECONDS
        ):
            self.idle.popleft()._close()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        return None


class Http1Client:
    """Keep-alive pools and the request call; one per kind of peer, closed with ``close``."""

    def __init__(
        self, *, max_body: int, max_field: int = MAX_FIELD, limit_per_host: int = 256
    ) -> None:
        self._max_body = max_body
        self._max_field = max_field
        self._limit = limit_per_host
        self._pools: dict[_Key, _Pool] = {}
        self._live: set[_Connection] = set()

    async def request(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        *,
        timeout: float,
        connect_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        check: PeerCheck | None = None,
    ) -> Response:
        """Send one request and return the whole answer, or raise :class:`ClientError`.

        ``url``'s path and query are sent exactly as written; an ``https://`` URL needs
        ``ssl_context``. ``timeout`` bounds the whole call, ``connect_timeout`` (at most
        that) the connection and its handshake. ``check`` sees the peer's certificate
        before the request is written, on each new connection; a pool is kept per check,
        so a changed check takes new connections. ``Content-Length`` is sent when there
        is a body or the method is not ``GET`` or ``HEAD``.
        """
        secure, host, port, authority, target = _split(url)
        if secure and ssl_context is None:
            raise ValueError(f"{url}: an https:// URL needs a TLS context")
        context = ssl_context if secure else None
        head = _head(method, target, authority, headers, body)
        split = len(body) >= BODY_SPLIT
        request = head if split else head + body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key: _Key = (host, port, context, check)
        pool = self._pools.get(key)
        if pool is None:
            self._sweep(loop.time())
            pool = self._pools[key] = _Pool()
        await self._admit(pool, deadline, timeout)
        try:
            retry = method in IDEMPOTENT
            while True:
                conn = pool.take(loop.time())
                reused = conn is not None
                if conn is None:
                    limit = timeout if connect_timeout is None else min(connect_timeout, timeout)
                    remaining = deadline - loop.time()
                    conn = await self._connect(key, min(limit, remaining), limit)
                conn.deadline.start(loop, deadline, timeout)
                try:
                    response = await conn.exchange(
                        request, body if split else None, method == "HEAD"
                    )
                except Disconnected:
                    if not (retry and reused and conn.answered_nothing):
                        raise
                    retry = False
                    continue
                except BaseException:  # cancelled: the answer is not read to its end
                    conn._close()
                    raise
                finally:
                    conn.deadline.stop()
                if conn.reusable:
                    conn.idle_since = loop.time()
                    pool.idle.append(conn)
                return response
        finally:
            pool.busy -= 1
            while pool.waiters:
                waiter = pool.waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break

    async def _admit(self, pool: _Pool, deadline: float, timeout: float) -> None:
        """Wait for a free place among the pool's connections in use."""
        while pool.busy >= self._limit:
            waiter = asyncio.get_running_loop().create_future()
            pool.waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise TimedOut("pool", timeout) from None
        pool.busy += 1

    async def _connect(self, key: _Key, limit: float, stated: float) -> _Connection:
        """A new connection, its handshake done and its peer checked; nothing written."""
        host, port, context, check = key
        loop = asyncio.get_running_loop()

        def factory() -> _Connection:
            return _Connection(self._max_body, self._max_field, self._live)

        try:
            async with asyncio.timeout(limit):
                conn = await _open(loop, factory, host, port, context)
        except TimeoutError:
            raise TimedOut("connect", stated) from None
        except ssl.SSLError as exc:
            raise HandshakeFailed(host, port, exc) from None
        except OSError as exc:
            raise CannotConnect(host, port, exc) from None
        assert conn.transport is not None
        ssl_object = conn.transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            conn.peer_cert = ssl_object.getpeercert(binary_form=True) or None
        if check is not None:
            try:
                check(conn.peer_cert)
            except Exception as exc:
                conn._close()
                raise PeerRejected(host, port, exc) from exc
        return conn

    def _sweep(self, now: float) -> None:
        """Close expired idle connections and forget empty pools (a changed check or TLS
        context leaves its old pool behind)."""
        for key, pool in list(self._pools.items()):
            pool.take(now)  # drops the expired from the old end
            if not pool.idle and not pool.busy:
                del self._pools[key]

    async def close(self) -> None:
        """Close every connection, idle or in use, and let the loop release them."""
        self._pools.clear()
        for conn in list(self._live):
            conn._close()
        for _ in range(10):  # an aborted TLS connection is lost a turn or two later
            if not self._live:
                break
            await asyncio.sleep(0)


async def _open(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], _Connection],
    host: str,
    port: int,
    context: ssl.SSLContext | None,
) -> _Connection:
    """Connect to each address of ``host`` in turn; refusals of all of them with one
    errno raise that errno, so the reason reads ``connection refused``."""
    name = host if context is not None else None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        _, conn = await loop.create_connection(
            factory, host, port, ssl=context, server_hostname=name
        )
        return conn
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    errors: list[OSError] = []
    for *_, address in infos:
        try:
            _, conn = await loop.create_connection(
                factory, str(address[0]), int(address[1]), ssl=context, server_hostname=name
            )
        except ssl.SSLError:
            raise
        except OSError as exc:
            errors.append(exc)
            continue
        return conn
    if not errors:
        raise OSError(f"{host} has no address")
    if len({e.errno for e in errors}) == 1:
        raise errors[0]
    raise OSError("; ".join(os_reason(e) for e in errors))


def _split(url: str) -> tuple[bool, str, int, str, str]:
    """Scheme, host, port, authority and target of ``url``, the target as written."""
    if url.startswith("https://"):
        secure, rest = True, url[8:]
    elif url.startswith("http://"):
        secure, rest = False, url[7:]
    else:
        raise ValueError(f"{url}: not an http:// or https:// URL")
    end = len(rest)
    for mark in "/?#":
        at = rest.find(mark)
        if at != -1 and at < end:
            end = at
    authority, target = rest[:end], rest[end:].partition("#")[0]
    if "@" in authority:
        raise ValueError(f"{url}: user information in a URL is not supported")
    if not target.startswith("/"):
        target = "/" + target
    if authority.startswith("["):
        host, _, tail = authority[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = authority.partition(":")
    if not host:
        raise ValueError(f"{url}: no host")
    if port_text and not port_text.isdigit():
        raise ValueError(f"{url}: bad port")
    port = int(port_text) if port_text else (443 if secure else 80)
    return secure, host, port, authority, target


def _head(
    method: str, target: str, authority: str, headers: Iterable[tuple[str, str]], body: bytes
) -> bytes:
    """The request head: the caller's headers in order, ``Host`` first unless given, and
    ``Content-Length``. CR, LF or NUL anywhere would split the head: refused."""
    lines = [f"{method} {target} HTTP/1.1"]
    given = [f"{name}: {value}" for name, value in headers]
    if not any(line[:5].lower() == "host:" for line in given):
        lines.append(f"Host: {authority}")
    lines += given
    if body or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    text = "\r\n".join(lines)
    breaks = len(lines) - 1  # each CR and LF is one of the separators, or it is refused
    if text.count("\n") != breaks or text.count("\r") != breaks or "\0" in text:
        raise ValueError("a request line or header contains CR, LF or NUL")
    return (text + "\r\n\r\n").encode("utf-8", "surrogateescape")
