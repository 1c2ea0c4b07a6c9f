"""The lean server and its connection guard against a hostile client on 127.0.0.1.

Request smuggling, framing the guard and llhttp might read differently, and resource
exhaustion, each sent as raw bytes to the node's real listener (``guarded_server`` over
``Http1Server``). A refused request is answered 400/431/503 with ``Connection: close``,
nothing of it reaches a handler, and nothing pipelined after it is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import tracemalloc
from collections.abc import AsyncIterator

import httptools
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.net.framing import HEAD_LIMIT, Framing
from gateway.net.guard import GuardSettings, guarded_server
from gateway.net.http1server import (
    MAX_HEAD,
    MAX_PIPELINED,
    Http1Server,
    HttpResponse,
    Request,
    Routes,
    text_response,
)

H = b"POST /p HTTP/1.1\r\nHost: a\r\n"
TE = H + b"Transfer-Encoding: chunked\r\n\r\n"
NEXT = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
LAST = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
BIG = 1 << 20

REFUSED = {
    # Content-Length and Transfer-Encoding together, in either order
    "length-and-chunked": (
        H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "400",
    ),
    "chunked-and-length": (
        H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "400",
    ),
    "two-lengths-equal": (H + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nok", "400"),
    "two-lengths-differ": (H + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nok!", "400"),
    "length-list": (H + b"Content-Length: 2, 2\r\n\r\nok", "400"),
    "length-plus": (H + b"Content-Length: +2\r\n\r\nok", "400"),
    "length-minus": (H + b"Content-Length: -2\r\n\r\nok", "400"),
    "length-overflow": (H + b"Content-Length: 99999999999999999999999\r\n\r\n", "400"),
    # codings
    "chunked-identity": (H + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", "400"),
    "gzip-chunked": (H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "400"),
    "chunked-chunked": (H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", "400"),
    "two-coding-headers": (
        H + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "400",
    ),
    "chunked-not-last": (
        H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        "400",
    ),
    "identity": (H + b"Transfer-Encoding: identity\r\n\r\n", "400"),
    "xchunked": (H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", "400"),
    "coding-vtab": (H + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", "400"),
    "coding-trailing-comma": (H + b"Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n", "400"),
    "coding-space-before-colon": (H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", "400"),
    "coding-in-1.0": (
        b"POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        "400",
    ),
    # chunk sizes and extensions
    "chunk-plus": (TE + b"+2\r\nok\r\n0\r\n\r\n", "400"),
    "chunk-minus": (TE + b"-2\r\nok\r\n0\r\n\r\n", "400"),
    "chunk-0x": (TE + b"0x2\r\nok\r\n0\r\n\r\n", "400"),
    "chunk-underscore": (TE + b"1_0\r\nokokokokokokokok\r\n0\r\n\r\n", "400"),
    "chunk-space": (TE + b"2 \r\nok\r\n0\r\n\r\n", "400"),
    "chunk-overflow": (TE + b"10000000000000002\r\nok\r\n0\r\n\r\n", "400"),
    "chunk-extension-quote": (TE + b'2;a="\r\n"\r\nok\r\n0\r\n\r\n', "400"),
    "chunk-extension-lf": (TE + b"2;\nok\r\n0\r\n\r\n", "400"),
    "chunk-data-overrun": (TE + b"2\r\nokXX0\r\n\r\n", "400"),
    "chunk-lf-only": (TE + b"2\nok\n0\n\n", "400"),
    # line endings, folding, control characters
    "bare-lf": (b"GET /x HTTP/1.1\nHost: a\n\n", "400"),
    "bare-lf-in-head": (b"GET /x HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", "400"),
    "bare-cr": (b"GET /x HTTP/1.1\rHost: a\r\n\r\n", "400"),
    "obs-fold-space": (b"GET /x HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", "400"),
    "obs-fold-tab": (b"GET /x HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", "400"),
    "space-first-line": (b"GET /x HTTP/1.1\r\n Host: a\r\n\r\n", "400"),
    "nul-in-name": (b"GET /x HTTP/1.1\r\nHost: a\r\nX\x00: b\r\n\r\n", "400"),
    "nul-in-value": (b"GET /x HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", "400"),
    "cr-in-value": (b"GET /x HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "400"),
    "cr-in-name": (b"GET /x HTTP/1.1\r\nHost: a\r\nX\r: b\r\n\r\n", "400"),
    "ctl-in-value": (b"GET /x HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", "400"),
    "space-before-colon": (b"GET /x HTTP/1.1\r\nHost : a\r\n\r\n", "400"),
    "two-hosts": (b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
    # limits
    "head-over-limit": (
        b"GET /x HTTP/1.1\r\nHost: a\r\n" + b"X-Many: 1234567890\r\n" * (MAX_HEAD // 20) + b"\r\n",
        "431",
    ),
    "field-over-limit": (b"GET /x HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 8191 + b"\r\n\r\n", "400"),
    "target-over-limit": (b"GET /" + b"a" * 8191 + b" HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
}

ACCEPTED = {
    "coding-case": TE.replace(b"chunked", b"ChUnKeD") + b"2\r\nok\r\n0\r\n\r\n",
    "coding-tab": TE.replace(b": chunked", b":\tchunked") + b"2\r\nok\r\n0\r\n\r\n",
    "coding-trailing-space": TE.replace(b"chunked", b"chunked ") + b"2\r\nok\r\n0\r\n\r\n",
    "chunk-extension": TE + b'2;a=b;c="d;e"\r\nok\r\n0\r\n\r\n',
    "chunk-leading-zeros": TE + b"0002\r\nok\r\n0\r\n\r\n",
    "trailer": TE + b"2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
    "length-leading-zeros": H + b"Content-Length: 002\r\n\r\nok",
    "head-just-under-limit": b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
    + b"X-Many: 1234567890\r\n" * (MAX_HEAD // 20 - 10)
    + b"\r\nok",
}


class Seen:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes | None]] = []
        self.release = asyncio.Event()


def _routes(seen: Seen) -> Routes:
    async def x(request: Request) -> HttpResponse:
        seen.calls.append(("x", None))
        return text_response("x")

    async def p(request: Request) -> HttpResponse:
        body = await request.read(1000)
        seen.calls.append(("p", body))
        return HttpResponse(200, body or b"")

    async def big(request: Request) -> HttpResponse:
        seen.calls.append(("big", None))
        return HttpResponse(200, b"b" * BIG)

    async def slow(request: Request) -> HttpResponse:
        seen.calls.append(("slow", None))
        await seen.release.wait()
        return text_response("slow")

    routes = Routes()
    routes.add_get("/x", x)
    routes.add_get("/big", big)
    routes.add_get("/slow", slow)
    routes.add(("POST",), "/p", p)
    return routes


@contextlib.asynccontextmanager
async def _server(
    seen: Seen, settings: GuardSettings | None = None
) -> AsyncIterator[tuple[int, Http1Server]]:
    lean = Http1Server(_routes(seen), name="hostile")
    server = await guarded_server(lean, "127.0.0.1", 0, settings or GuardSettings())
    try:
        yield server.sockets[0].getsockname()[1], lean
    finally:
        server.close()
        await lean.shutdown(1.0)


def _statuses(got: bytes) -> list[str]:
    """The status of each answer in ``got`` (a body runs straight into the next head)."""
    return [m.decode() for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", got)]


async def _answered_then_quiet(
    reader: asyncio.StreamReader, final: int, quiet: float = 0.5
) -> bytes:
    """What the server sends on a kept-alive connection: until ``final`` answers other
    than ``100 Continue`` have begun, then until it is quiet for ``quiet`` s, so that
    anything extra shows too. Waiting for the answers themselves (10 s only keeps a
    broken build from hanging) lets a loaded machine, which can hold this process for
    longer than ``quiet``, delay them without losing them."""
    got = b""
    with contextlib.suppress(TimeoutError):
        while len([s for s in _statuses(got) if s != "100"]) < final:
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            if not chunk:
                return got
            got += chunk
        while chunk := await asyncio.wait_for(reader.read(65536), quiet):
            got += chunk
    return got


async def _exchange(port: int, data: bytes, wait: float = 2.0) -> tuple[list[str], bool]:
    """The status of every answer to ``data``, and whether the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    got = b""
    closed = False
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), wait):
            got += chunk
        closed = True
    except TimeoutError:
        pass
    except ConnectionResetError:
        closed = True
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return _statuses(got), closed


def test_smuggling_and_malformed_heads_are_refused_and_nothing_after_is_handled() -> None:
    async def main() -> dict[str, tuple[list[str], bool, int]]:
        found = {}
        for name, (request, _) in REFUSED.items():
            seen = Seen()
            async with _server(seen) as (port, _lean):
                statuses, closed = await _exchange(port, request + NEXT)
            found[name] = (statuses, closed, len(seen.calls))
        return found

    found = asyncio.run(main())
    wrong = {name: got for name, got in found.items() if got != ([REFUSED[name][1]], True, 0)}
    assert not wrong, wrong


def test_odd_but_valid_framings_are_served_and_the_next_request_too() -> None:
    async def main() -> dict[str, tuple[list[str], list[tuple[str, bytes | None]]]]:
        found = {}
        seen = Seen()
        async with _server(seen) as (port, _lean):
            for name, request in ACCEPTED.items():
                seen.calls.clear()
                statuses, _ = await _exchange(port, request + LAST)
                found[name] = (statuses, list(seen.calls))
        return found

    for name, (statuses, calls) in asyncio.run(main()).items():
        assert (statuses, calls) == (["200", "200"], [("p", b"ok"), ("x", None)]), name
        # The guard ends each request where llhttp ends it.
        framing = Framing()
        framing.feed(ACCEPTED[name] + NEXT)
        assert (framing.completed, framing.in_body) == (2, False), name


class _Ends:
    """Where llhttp ends requests: the count of complete messages, or an error."""

    def __init__(self) -> None:
        self.completed = 0

    def on_message_complete(self) -> None:
        self.completed += 1


_CHUNK_LINE = st.tuples(
    st.integers(1, 40),
    st.sampled_from(["", ";a=b", ";x", ';q="a;b"', "0"]),
    st.sampled_from(["%x", "%X", "0%x", "00%x"]),
)


@given(
    chunks=st.lists(_CHUNK_LINE, max_size=6),
    trailer=st.sampled_from([b"", b"X-T: 1\r\n", b"X-T: 1\r\nY: 2\r\n"]),
    coding=st.sampled_from([b"chunked", b"Chunked", b"CHUNKED", b" chunked ", b"\tchunked"]),
    piece=st.integers(1, 50),
)
def test_the_guard_ends_a_chunked_request_where_llhttp_ends_it(
    chunks: list[tuple[int, str, str]], trailer: bytes, coding: bytes, piece: int
) -> None:
    body = b""
    for size, extension, spelling in chunks:
        if extension == "0":
            extension = ""
        body += (spelling % size).encode() + extension.encode() + b"\r\n" + b"z" * size + b"\r\n"
    data = H + b"Transfer-Encoding:" + coding + b"\r\n\r\n" + body + b"0\r\n" + trailer
    data += b"\r\n" + NEXT
    ends = _Ends()
    parser = httptools.HttpRequestParser(ends)
    framing = Framing()
    for at in range(0, len(data), piece):
        parser.feed_data(data[at : at + piece])
        framing.feed(data[at : at + piece])
        assert framing.completed == ends.completed
    assert ends.completed == 2


def test_a_head_the_server_accepts_is_never_too_long_for_the_guard_to_time() -> None:
    """A head between the guard's limit and the server's would turn the guard's framing
    opaque, and a client could then trickle it (and every later head) a byte a
    ``body_timeout``: such a head is closed after ``header_timeout`` like any other."""
    assert HEAD_LIMIT >= MAX_HEAD
    settings = GuardSettings(header_timeout=0.5, body_timeout=30.0)

    async def main() -> tuple[bytes, bool]:
        seen = Seen()
        async with _server(seen, settings) as (port, _lean):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(NEXT)
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(1)  # answered: the next head is timed from its start
            writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\n" + b"X-Pad: 123456789\r\n" * 5000)
            got = b""
            closed = False
            try:
                for _ in range(20):  # a byte every 0.2 s: never a body stall
                    writer.write(b"X")
                    await writer.drain()
                    with contextlib.suppress(TimeoutError):
                        chunk = await asyncio.wait_for(reader.read(1000), 0.2)
                        if not chunk:
                            closed = True
                            break
                        got += chunk
            except ConnectionError:
                closed = True
            writer.close()
            return got, closed

    got, closed = asyncio.run(main())
    assert closed
    assert got == b""  # no 408 on a connection that was answered before


def test_a_client_that_never_reads_gets_no_more_answers_than_the_buffers_hold() -> None:
    """Answers are not written past the transport's high-water mark (``pause_writing``),
    and requests are not read meanwhile: what a client that reads nothing costs the
    server is a few answers, not one per request it pipelined."""
    count = 64

    async def main() -> tuple[int, list[bytes]]:
        seen = Seen()
        async with _server(seen) as (port, _lean):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n" * count)
            await writer.drain()
            await asyncio.sleep(1.0)
            stalled = len(seen.calls)
            bodies = []
            for _ in range(count):  # then the client reads: every answer comes, in order
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                assert b"Content-Length: %d" % BIG in head
                bodies.append(await asyncio.wait_for(reader.readexactly(BIG), 10))
            writer.close()
            return stalled, bodies

    stalled, bodies = asyncio.run(main())
    assert stalled <= 16, f"{stalled} answers of {BIG} bytes written to a client not reading"
    assert len(bodies) == count and all(b == b"b" * BIG for b in bodies)


def test_pipelined_requests_past_the_cap_are_refused_after_those_before_are_answered() -> None:
    async def main() -> tuple[list[str], bool, int, bool]:
        seen = Seen()
        async with _server(seen) as (port, lean):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n" + NEXT * (MAX_PIPELINED * 4))
            await writer.drain()
            while not seen.calls:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            paused = all(conn.paused for conn in lean.connections)
            seen.release.set()
            got = b""
            closed = False
            try:
                while chunk := await asyncio.wait_for(reader.read(65536), 5):
                    got += chunk
                closed = True
            except ConnectionResetError:
                closed = True
            writer.close()
        return _statuses(got), closed, len(seen.calls), paused

    statuses, closed, calls, paused = asyncio.run(main())
    assert paused
    assert statuses == ["200"] * MAX_PIPELINED + ["503"]
    assert calls == MAX_PIPELINED
    assert closed


@pytest.mark.parametrize(
    ("request_bytes", "interim"),
    [
        (b"GET /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", 0),
        (b"POST /p HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok", 0),
        (
            b"POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nExpect: 100-continue\r\n"
            b"Content-Length: 2\r\n\r\n",
            1,
        ),
    ],
    ids=["no-body", "http-1.0", "twice"],
)
def test_expect_100_continue_is_answered_at_most_once_and_only_for_a_body(
    request_bytes: bytes, interim: int
) -> None:
    async def main() -> bytes:
        seen = Seen()
        async with _server(seen) as (port, _lean):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request_bytes)
            await writer.drain()
            got = b""
            if interim:  # the body is due: the client waits for the interim answer first
                got = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                writer.write(b"ok")
            got += await _answered_then_quiet(reader, 1)
            writer.close()
            return got

    got = asyncio.run(main())
    assert got.count(b"HTTP/1.1 100 Continue") == interim
    assert got.count(b" 200 OK\r\n") == 1


def test_a_body_of_tiny_chunks_costs_about_its_size_not_an_object_a_byte() -> None:
    """A 200 KB body sent one byte per chunk: what the server holds while it reads it
    (Python's allocation tracer, peak over the exchange) stays near the body's size."""
    size = 200_000
    body = b"".join(b"1\r\n%c\r\n" % (65 + n % 26) for n in range(size)) + b"0\r\n\r\n"
    got: list[int] = []

    async def main() -> tuple[list[str], int]:
        async def read(request: Request) -> HttpResponse:
            whole = await request.read(1 << 20)
            got.append(len(whole or b""))
            return text_response("read")

        routes = Routes()
        routes.add(("POST",), "/tiny", read)
        lean = Http1Server(routes, name="tiny")
        server = await guarded_server(lean, "127.0.0.1", 0, GuardSettings())
        port = server.sockets[0].getsockname()[1]
        try:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            statuses, _ = await _exchange(
                port,
                b"POST /tiny HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + body,
                wait=30.0,
            )
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
            server.close()
            await lean.shutdown(1.0)
        return statuses, peak

    statuses, peak = asyncio.run(main())
    assert statuses == ["200"]
    assert got == [size]
    # Traced too: the client's copies of the wire bytes (6 per body byte) and the chunks
    # of one read not yet handed to the handler. An object per byte held until the end
    # of the body cost some 95 bytes per body byte.
    assert peak < 50 * size, f"peak {peak} bytes for a {size}-byte body"


@pytest.mark.parametrize(
    "head",
    [
        b"POST /tiny HTTP/1.1\r\nHost: a\r\nConnection: close\r\n",
        b"POST /tiny HTTP/1.0\r\n",
    ],
    ids=["connection-close", "http-1.0"],
)
def test_the_body_of_a_last_request_is_read_whole_and_nothing_after_it(head: bytes) -> None:
    """A connection's last request still has its whole body parsed, over many reads;
    a request pipelined after it is neither parsed nor handled."""
    size = 1 << 20
    calls: list[int] = []

    async def main() -> list[str]:
        async def read(request: Request) -> HttpResponse:
            whole = await request.read(2 << 20)
            calls.append(len(whole or b""))
            return text_response("read")

        routes = Routes()
        routes.add(("POST",), "/tiny", read)
        lean = Http1Server(routes, name="last")
        server = await guarded_server(lean, "127.0.0.1", 0, GuardSettings())
        port = server.sockets[0].getsockname()[1]
        try:
            body = b"Content-Length: %d\r\n\r\n" % size + b"q" * size
            statuses, closed = await _exchange(port, head + body + b"POST /tiny HTTP/1.1\r\n")
            assert closed
            return statuses
        finally:
            server.close()
            await lean.shutdown(1.0)

    assert asyncio.run(main()) == ["200"]
    assert calls == [size]


EXPECT_REFUSED = {
    "unknown": b"GET /x HTTP/1.1\r\nHost: a\r\nExpect: tea\r\n\r\n",
    "continue-and-more": b"POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, tea\r\n"
    b"Content-Length: 2\r\n\r\nok",
    "second-field": b"POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nExpect: tea\r\n"
    b"Content-Length: 2\r\n\r\nok",
    "continue-with-value": b"GET /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue=1\r\n\r\n",
    "http-1.0": b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\nExpect: tea\r\n\r\n",
}
EXPECT_ACCEPTED = {
    "case": (
        b"POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n",
        1,
    ),
    "spaces": (
        b"POST /p HTTP/1.1\r\nHost: a\r\nExpect:  100-CONTINUE \r\nContent-Length: 2\r\n\r\n",
        1,
    ),
    "empty-members": (
        b"POST /p HTTP/1.1\r\nHost: a\r\nExpect: ,100-continue,\r\nContent-Length: 2\r\n\r\n",
        1,
    ),
    "empty": (b"POST /p HTTP/1.1\r\nHost: a\r\nExpect:\r\nContent-Length: 2\r\n\r\nok", 0),
}


@pytest.mark.parametrize("name", list(EXPECT_REFUSED))
def test_an_expectation_other_than_100_continue_is_refused_417_before_any_handler(
    name: str,
) -> None:
    """RFC 9110 §10.1.1: nothing of the request reaches a handler, no ``100 Continue``
    is sent, and the connection, its framing intact, answers the next request."""

    async def main() -> tuple[bytes, list[tuple[str, bytes | None]]]:
        seen = Seen()
        async with _server(seen) as (port, _lean):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(EXPECT_REFUSED[name] + LAST)
            got = b""
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                while chunk := await asyncio.wait_for(reader.read(65536), 2.0):
                    got += chunk
            writer.close()
            return got, seen.calls

    got, calls = asyncio.run(main())
    assert _statuses(got) == ["417", "200"], got
    assert b"Expectation Failed" in got and b"Unknown Expect: " in got
    assert b" 100 Continue" not in got
    assert calls == [("x", None)]  # only the request after it


@pytest.mark.parametrize("name", list(EXPECT_ACCEPTED))
def test_100_continue_in_any_case_is_still_answered_and_the_body_read(name: str) -> None:
    request, interim = EXPECT_ACCEPTED[name]

    async def main() -> tuple[bytes, list[tuple[str, bytes | None]]]:
        seen = Seen()
        async with _server(seen) as (port, _lean):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            got = b""
            if interim:
                got = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                writer.write(b"ok")
            got += await _answered_then_quiet(reader, 1)
            writer.close()
            return got, seen.calls

    got, calls = asyncio.run(main())
    assert got.count(b"HTTP/1.1 100 Continue\r\n\r\n") == interim, got
    assert _statuses(got) == ["100"] * interim + ["200"], got
    assert calls == [("p", b"ok")]


def test_a_refused_expectation_whose_body_never_comes_is_answered_and_closed() -> None:
    """The client waits for ``100 Continue`` before its body, as it may: it gets 417
    at once, and the connection closes after the short drain of an unread body."""

    async def main() -> tuple[list[str], bool, int]:
        seen = Seen()
        async with _server(seen) as (port, _lean):
            statuses, closed = await _exchange(
                port,
                b"POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, tea\r\n"
                b"Content-Length: 2\r\n\r\n",
                wait=5.0,
            )
            return statuses, closed, len(seen.calls)

    assert asyncio.run(main()) == (["417"], True, 0)
