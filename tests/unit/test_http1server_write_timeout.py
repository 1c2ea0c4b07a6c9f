"""The connection guard's write timeout, against real sockets on 127.0.0.1.

A client that sends requests and never reads the answers would hold its connection, and
the answers' memory, for as long as it likes: the guard closes a connection whose
transport stays paused for writing longer than ``write_timeout``, and the lean server
makes a close with unsent bytes count as such a pause (gateway/net/guard.py). A client
that does read, however slowly, is never closed by it; over TLS, the close's shutdown
is held to the same bound. Each test runs on asyncio's loop and on uvloop's (the node's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop

from gateway.net.guard import GuardSettings, guarded_server
from gateway.net.http1server import Http1Server, HttpResponse, Request, Routes
from tests.unit.test_http1client import _contexts

BIG = 1 << 20
WRITE_TIMEOUT = 1.0
DEADLINE = 15.0
"""Only keeps a broken build from hanging; a working one closes after about a second."""
SETTINGS = GuardSettings(write_timeout=WRITE_TIMEOUT)


def _run(loop: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if loop == "uvloop":
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())


LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


@contextlib.asynccontextmanager
async def _server(
    sndbuf: int | None = None, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[int, Http1Server]]:
    async def big(request: Request) -> HttpResponse:
        return HttpResponse(200, b"b" * BIG)

    routes = Routes()
    routes.add_get("/big", big)
    lean = Http1Server(routes, name="write-timeout")
    server = await guarded_server(
        lean, "127.0.0.1", 0, SETTINGS, ssl_context=tls, name="write-timeout"
    )
    listener = server.sockets[0]
    if sndbuf is not None:  # accepted connections inherit the listener's buffer size
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    try:
        yield listener.getsockname()[1], lean
    finally:
        server.close()
        await lean.shutdown(1.0)


async def _connect(
    port: int, rcvbuf: int, tls: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return await asyncio.open_connection(
        sock=sock, limit=1 << 16, ssl=tls, server_hostname="127.0.0.1" if tls else None
    )


async def _raw(port: int, rcvbuf: int) -> socket.socket:
    """A non-blocking socket that reads only what it is asked for (a stream reader would
    read ahead into its own buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def _accepted(lean: Http1Server) -> None:
    while not lean.connections:
        await asyncio.sleep(0.01)


async def _closed_at(lean: Http1Server, seconds: float) -> float | None:
    """The loop time at which the server was seen without connections, waiting up to
    ``seconds`` (None: still open).

    Compared with a time taken before the request was sent, it bounds how soon the
    guard closed from below whatever the machine's load: the guard's timer is armed at
    the pause, after that time, and a loop's timer never fires early. (Measured from
    when this test noticed the connection instead, a process held back for a second
    between the pause and that notice would see the close as early.)"""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < seconds:
        if not lean.connections:
            return loop.time()
        await asyncio.sleep(0.02)
    return None


@LOOPS
def test_a_client_that_never_reads_is_closed_after_the_write_timeout(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    """It pipelines requests for large answers and reads nothing: the answers fill the
    buffers, the transport pauses, and the guard closes the connection once the pause
    has lasted the write timeout (not before)."""
    found: dict[str, float | None] = {}

    async def main() -> None:
        async with _server() as (port, lean):
            found["sent"] = asyncio.get_running_loop().time()
            _reader, writer = await _connect(port, 16384)
            writer.write(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n" * 8)
            await writer.drain()
            await _accepted(lean)
            found["closed"] = await _closed_at(lean, DEADLINE)
            writer.close()

    with caplog.at_level(logging.INFO, logger="gateway.net.guard"):
        _run(loop, main)
    sent, closed = found["sent"], found["closed"]
    assert sent is not None
    assert closed is not None, f"still open {DEADLINE} s after the write timeout"
    assert closed - sent >= WRITE_TIMEOUT, "closed before the write timeout"
    said = [r.getMessage() for r in caplog.records]
    assert any(f"answer not read for {WRITE_TIMEOUT:g} s" in m for m in said), said


@LOOPS
def test_a_closing_answer_left_unread_below_the_high_water_mark_is_closed(loop: str) -> None:
    """The answer to a ``Connection: close`` request, read until less than the
    transport's low-water mark is left unsent, then not at all: the transport would have
    resumed writing and waited for ever to send the rest. The server's close lowers the
    mark, so the guard's write timeout ends it too."""
    found: dict[str, float | int | None] = {}

    async def main() -> None:
        async with _server(sndbuf=4096) as (port, lean):
            loop = asyncio.get_running_loop()
            with await _raw(port, 4096) as sock:
                request = b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                await loop.sock_sendall(sock, request)
                await _accepted(lean)
                (conn,) = lean.connections
                transport = conn._transport
                assert transport is not None
                unsent = -1
                while not 0 <= unsent <= 8192:  # until a few KiB are left in the transport
                    assert await asyncio.wait_for(loop.sock_recv(sock, 1024), DEADLINE)
                    await asyncio.sleep(0)
                    unsent = transport.get_write_buffer_size()
                found["unsent"] = unsent
                found["closed"] = await _closed_at(lean, DEADLINE)

    _run(loop, main)
    assert found["unsent"], "the whole answer left the transport: nothing was tested"
    assert found["closed"] is not None, "a close with unsent bytes waited for ever"


@LOOPS
def test_over_tls_an_unread_closing_answer_is_closed_after_the_write_timeout(
    loop: str, tmp_path: Path
) -> None:
    """A ``Connection: close`` answer over TLS, never read: the close flushes, then
    shuts TLS down; the loop bounds that shutdown by the write timeout too (``close``
    waited the loop's default of 30 s otherwise)."""
    server_tls, client_tls, _ = _contexts(tmp_path)
    found: dict[str, float | None] = {}

    async def main() -> None:
        async with _server(tls=server_tls) as (port, lean):
            found["sent"] = asyncio.get_running_loop().time()
            _reader, writer = await _connect(port, 16384, client_tls)
            writer.write(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            await writer.drain()
            await _accepted(lean)
            found["closed"] = await _closed_at(lean, DEADLINE)
            writer.transport.abort()

    _run(loop, main)
    sent, closed = found["sent"], found["closed"]
    assert sent is not None
    assert closed is not None, f"still open {DEADLINE} s after the write timeout"
    assert closed - sent >= WRITE_TIMEOUT, "closed before the write timeout"


@LOOPS
def test_a_client_that_reads_slowly_is_served_whole(loop: str) -> None:
    """Slower than the write timeout over each whole answer, but reading all along: each
    pause is shorter than the timeout, and every answer arrives."""
    bodies: list[bytes] = []

    async def main() -> None:
        async with _server() as (port, lean):
            reader, writer = await _connect(port, 16384)
            writer.write(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n" * 2)
            await writer.drain()
            for _ in range(2):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
                assert b"Content-Length: %d" % BIG in head
                body = bytearray()
                while len(body) < BIG:  # 128 KiB every 0.25 s: 2 s per answer
                    await asyncio.sleep(0.25)
                    body += await asyncio.wait_for(
                        reader.readexactly(min(128 * 1024, BIG - len(body))), DEADLINE
                    )
                bodies.append(bytes(body))
            assert len(lean.connections) == 1  # kept alive all along
            writer.close()

    _run(loop, main)
    assert bodies == [b"b" * BIG] * 2
