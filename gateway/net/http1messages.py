"""What the lean HTTP/1.1 server hands its handlers and takes back from them.

A :class:`Request` (the head parsed; the body read on demand with :meth:`Request.read`,
so the handler decides when, after its checks), an :class:`HttpResponse` (status,
headers in order, a whole body), the route table (:class:`Routes`) and :func:`encode`,
which writes an answer the way aiohttp wrote it on the node's ports (the handler's
headers in order, ``Content-Length``, ``Content-Type: application/octet-stream`` for an
untyped body, ``Date``, ``Connection``). The connection itself is in
``gateway/net/http1server.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl, unquote

from multidict import CIMultiDictProxy, MultiDict, MultiDictProxy

BODY_SPLIT: Final = 64 * 1024
"""An answer's body at least this long is written apart from its head, not copied onto
it (a copy of a 1 MiB body costs more than a second write; under this, one write)."""
_PIECE_COST: Final = 64
"""What a piece of body held costs beyond its bytes (its object, its place in the
queue): counted toward :data:`HIGH_WATER`, so that a body of one-byte chunks pauses
the socket at a bounded memory, not after 256 Ki objects."""
_MANY_PIECES: Final = 64
HIGH_WATER: Final = 256 * 1024
"""Body bytes buffered for a handler that has not asked for them before the socket is
no longer read (the guard then counts the stall as the server's)."""


class BodySource(Protocol):
    """The connection a request's body comes from."""

    def drained(self, request: Request) -> None: ...

    def write_continue(self) -> None: ...


_REASONS: Final = {s.value: s.phrase for s in HTTPStatus}
_NO_BODY_STATUS: Final = frozenset({204, 304})


class ClientGone(Exception):
    """The connection closed before the whole request body arrived: nobody is left to
    answer, and it is not the server's fault. Handlers let it pass; no answer is written."""


class HttpResponse:
    """A whole answer: status, headers in order, body. ``close`` ends the connection."""

    __slots__ = ("body", "close", "headers", "status")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] | None = None,
        content_type: str | None = None,
        *,
        close: bool = False,
    ) -> None:
        self.status = status
        self.body = body
        out = list(headers) if headers is not None else []
        if content_type is not None:
            out.append(("Content-Type", content_type))
        self.headers = out
        self.close = close

    def header(self, name: str) -> str | None:
        """The first value of ``name`` (case-insensitive), if any."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


def json_response(
    data: Any, status: int = 200, headers: Iterable[tuple[str, str]] | None = None
) -> HttpResponse:
    """JSON as aiohttp's ``web.json_response`` writes it (``json.dumps``, utf-8)."""
    return HttpResponse(
        status, json.dumps(data).encode(), headers, "application/json; charset=utf-8"
    )


def text_response(text: str, status: int = 200, content_type: str = "text/plain") -> HttpResponse:
    return HttpResponse(status, text.encode(), None, f"{content_type}; charset=utf-8")


class Request:
    """One request: its head parsed, its body read on demand with :meth:`read`."""

    __slots__ = (
        "_chunks",
        "_conn",
        "_continue",
        "_done",
        "_lost",
        "_query",
        "_size",
        "_waiter",
        "content_length",
        "expectation_failed",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query_string",
        "raw_path",
        "transport",
        "version",
    )

    def __init__(
        self,
        conn: BodySource | None,
        method: str,
        raw_path: str,
        version: str,
        headers: CIMultiDictProxy[str],
        transport: Any,
        *,
        keep_alive: bool = True,
        body_done: bool = True,
    ) -> None:
        self._conn = conn
        self.method = method
        self.raw_path = raw_path
        """The request target as the request line spells it (still percent-encoded)."""
        target, _, self.query_string = raw_path.partition("?")
        if target.startswith(("http://", "https://")):  # absolute form
            slash = target.find("/", target.find("//") + 2)
            target = target[slash:] if slash >= 0 else "/"
        self.path = unquote(target) if "%" in target else target
        self.version = version
        """``"1.1"``, ``"1.0"``, or what else the request line named."""
        self.headers = headers
        self.transport = transport
        """The connection's transport: ``get_extra_info("ssl_object")`` is the TLS peer."""
        self.keep_alive = keep_alive
        length = headers.get("Content-Length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        self._query: MultiDictProxy[str] | None = None
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._done = body_done
        self._lost = False
        self._waiter: asyncio.Future[None] | None = None
        expect = headers.getall("Expect", None)
        self.expectation_failed: str | None = None
        """The ``Expect`` field's value if it names an expectation other than
        ``100-continue``: the request is answered 417 and no handler sees it."""
        self._continue = False
        if expect is not None:
            asked, self.expectation_failed = expectations(expect)
            # RFC 9110 §10.1.1: a 100-continue in an HTTP/1.0 request is ignored.
            self._continue = asked and not body_done and version == "1.1"

    @property
    def query(self) -> MultiDictProxy[str]:
        if self._query is None:
            self._query = MultiDictProxy(
                MultiDict(parse_qsl(self.query_string, keep_blank_values=True))
            )
        return self._query

    @property
    def body_complete(self) -> bool:
        """Whether the whole body was received (read or not)."""
        return self._done

    async def read(self, limit: int) -> bytes | None:
        """The whole body, or ``None`` as soon as it grows past ``limit`` bytes (the rest
        is not read; the connection closes after the answer). Raises
        :class:`ClientGone` if the connection closes within the body."""
        chunks: list[bytes] = []
        whole: bytearray | None = None
        size = 0
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                size += len(chunk)
                if size > limit:
                    self._drop_buffer()
                    return None
                chunks.append(chunk)
            if len(chunks) > _MANY_PIECES:
                # A body sent as tiny chunks is kept in one buffer, not as an object per
                # chunk (some 50 bytes each, for a byte of body).
                if whole is None:
                    whole = bytearray()
                whole += b"".join(chunks)
                chunks.clear()
            self._size = 0
            if self._done:
                if whole is not None:
                    whole += b"".join(chunks)
                    return bytes(whole)
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if self._lost:
                raise ClientGone("the connection closed within the body")
            await self._wait()

    def _drop_buffer(self) -> None:
        self._chunks.clear()
        self._size = 0
        if self._conn is not None:
            self._conn.drained(self)

    async def _wait(self) -> None:
        conn = self._conn
        if conn is None:
            raise ClientGone("no connection")
        if self._continue:
            self._continue = False
            conn.write_continue()
        self._waiter = asyncio.get_running_loop().create_future()
        conn.drained(self)
        try:
            await self._waiter
        finally:
            self._waiter = None

    # -- fed by the connection

    def _feed(self, data: bytes) -> int:
        self._chunks.append(data)
        self._size += len(data) + _PIECE_COST
        self._wake()
        return self._size

    def _finish(self) -> None:
        self._done = True
        self._wake()

    def _connection_lost(self) -> None:
        self._lost = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def expectations(values: list[str]) -> tuple[bool, str | None]:
    """Whether the ``Expect`` fields ``values`` ask for ``100-continue`` (any case), and
    if they name any other expectation, their value to refuse (RFC 9110 §10.1.1; empty
    list members are ignored, RFC 9110 §5.6.1)."""
    asked = False
    for value in values:
        for item in value.split(","):
            member = item.strip().lower()
            if member == "100-continue":
                asked = True
            elif member:
                return asked, ", ".join(values)
    return asked, None


Handler = Callable[[Request], Awaitable[HttpResponse]]
VersionRefusal = Callable[[str], HttpResponse]
ExpectationRefusal = Callable[[str], HttpResponse]


def plain_version_refusal(version: str) -> HttpResponse:
    """The default answer to a request line that is not HTTP/1.x."""
    return text_response(f"HTTP/{version} is not supported; use HTTP/1.1\n", 505)


EXPECT_ECHO: Final = 64
"""How much of a refused ``Expect`` value an answer repeats."""


def plain_expectation_refusal(expect: str) -> HttpResponse:
    """The default answer to an ``Expect`` other than ``100-continue`` (aiohttp's text)."""
    return text_response(f"Unknown Expect: {expect[:EXPECT_ECHO]}", 417)


class Routes:
    """Exact paths first, then prefixes in the order added; a route's methods ``None``
    means any method, and one that takes ``GET`` takes ``HEAD`` too. A path some route
    holds under other methods only is answered 405, any other 404 (as aiohttp does).
    ``version_refusal`` answers a request line that is not HTTP/1.x and
    ``expectation_refusal`` an ``Expect`` other than ``100-continue``, before any route."""

    def __init__(
        self,
        version_refusal: VersionRefusal = plain_version_refusal,
        expectation_refusal: ExpectationRefusal = plain_expectation_refusal,
    ) -> None:
        self.version_refusal = version_refusal
        self.expectation_refusal = expectation_refusal
        self._exact: dict[str, list[tuple[frozenset[str] | None, Handler]]] = {}
        self._prefixes: list[tuple[str, frozenset[str] | None, Handler]] = []

    def add(self, methods: Iterable[str] | None, path: str, handler: Handler) -> None:
        self._exact.setdefault(path, []).append((_methods(methods), handler))

    def add_get(self, path: str, handler: Handler) -> None:
        self.add(("GET",), path, handler)

    def add_prefix(self, methods: Iterable[str] | None, prefix: str, handler: Handler) -> None:
        self._prefixes.append((prefix, _methods(methods), handler))

    def resolve(self, method: str, path: str) -> Handler | HttpResponse:
        allowed: set[str] = set()
        for methods, handler in self._exact.get(path, ()):
            if methods is None or method in methods:
                return handler
            allowed |= methods
        for prefix, methods, handler in self._prefixes:
            if path.startswith(prefix):
                if methods is None or method in methods:
                    return handler
                allowed |= methods
        if allowed:
            answer = text_response("405: Method Not Allowed", 405)
            answer.headers.append(("Allow", ",".join(sorted(allowed - {"HEAD"}))))
            return answer
        return text_response("404: Not Found", 404)


def _methods(methods: Iterable[str] | None) -> frozenset[str] | None:
    if methods is None:
        return None
    given = frozenset(methods)
    return given | {"HEAD"} if "GET" in given else given


class _Date:
    """The ``Date`` header's value, formatted once a second."""

    second = -1
    value = ""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.second = second
            cls.value = formatdate(second, usegmt=True)
        return cls.value


def encode(response: HttpResponse, version: str, *, keep_alive: bool, head: bool) -> bytes:
    """The answer's bytes: status line in the request's version (1.0 or 1.1), the
    handler's headers in order, ``Content-Length``, ``Date`` and ``Connection``. A CR or
    LF inside a header raises ``ValueError``: it would split the answer."""
    start, body = encode_parts(response, version, keep_alive=keep_alive, head=head)
    return start + body if body else start


def encode_parts(
    response: HttpResponse, version: str, *, keep_alive: bool, head: bool
) -> tuple[bytes, bytes]:
    """:func:`encode`'s answer as its head and its body (empty for ``HEAD``, 1xx, 204 and
    304), the body the handler's own object: a large body is written after its head
    rather than copied onto it (the server joins only bodies under :data:`BODY_SPLIT`)."""
    status = response.status
    body = response.body
    headers = response.headers
    lines = [f"HTTP/{'1.0' if version == '1.0' else '1.1'} {status} {_REASONS.get(status, '')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if status < 200 or status in _NO_BODY_STATUS:
        body = b""
    else:
        lines.append(f"Content-Length: {len(body)}")
        if body and not any(name.lower() == "content-type" for name, _ in headers):
            lines.append("Content-Type: application/octet-stream")
    lines.append(f"Date: {_Date.now()}")
    if not keep_alive:
        lines.append("Connection: close")
    elif version == "1.0":
        lines.append("Connection: keep-alive")
    text = "\r\n".join(lines)
    breaks = len(lines) - 1
    if text.count("\n") != breaks or text.count("\r") != breaks:
        raise ValueError("a CR or LF inside a header of the answer")
    data = (text + "\r\n\r\n").encode("utf-8", "surrogateescape")
    return data, b"" if head else body


def closing_answer(status: int, text: str) -> bytes:
    """A plain-text answer that closes the connection (a request the server refused)."""
    body = text.encode("utf-8", "replace")
    return (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nDate: {_Date.now()}\r\nConnection: close\r\n\r\n"
    ).encode() + body
