"""What the lean HTTP/1.1 server and client cost per request on a kept-alive connection,
against real sockets on 127.0.0.1: the timers they arm and the socket options that keep
an answer from waiting for a delayed ACK (docs/performance.md, "Concurrency 1: syscalls,
wake-ups and the tail")."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from gateway.net import loop as net_loop
from gateway.net.guard import GuardSettings, guarded_server
from gateway.net.http1client import Http1Client, TimedOut
from gateway.net.http1server import Http1Server, HttpResponse, Request, Routes, text_response
from tests.unit.test_http1client import OK, Server, fixed

NEVER = lambda _request: b""  # noqa: E731 - reads the request, never answers

REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def _routes() -> Routes:
    routes = Routes()

    async def hello(request: Request) -> HttpResponse:
        return text_response("hi")

    routes.add_get("/", hello)
    return routes


async def _answer(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 ")
    return await asyncio.wait_for(reader.readexactly(2), 5)


def test_a_kept_alive_connection_arms_its_idle_timer_once_not_per_request() -> None:
    """The keep-alive timeout counts from the last answer, as before, but one timer per
    connection carries it: re-armed only when it expires early, never per request."""
    keepalive = 1.5

    async def main() -> tuple[int, float, bool]:
        loop = asyncio.get_running_loop()
        armed = 0
        call_later = loop.call_later

        def counting(delay: float, callback: Callable[..., Any], *args: Any) -> Any:
            nonlocal armed
            if getattr(callback, "__name__", "") == "_idle_expired":
                armed += 1
            return call_later(delay, callback, *args)

        loop.call_later = counting  # type: ignore[method-assign,assignment]
        lean = Http1Server(_routes(), keepalive_timeout=keepalive)
        server = await guarded_server(lean, "127.0.0.1", 0, GuardSettings())
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1]
        )
        try:
            for _ in range(18):
                writer.write(REQUEST)
                assert await _answer(reader) == b"hi"
            # Two more, each after a pause: the second after the timer armed at the
            # start has expired, which must not have closed a connection answered since.
            last = 0.0
            for _ in range(2):
                await asyncio.sleep(keepalive * 0.55)
                # Before the request: the server answers, and starts counting, after it.
                # (Taken after the answer, a process held back between the two would see
                # the idle time cut short by as long.)
                last = time.monotonic()
                writer.write(REQUEST)
                assert await _answer(reader) == b"hi"
            closed = await asyncio.wait_for(reader.read(1), 10) == b""
            return armed, time.monotonic() - last, closed and not lean.connections
        finally:
            writer.close()
            server.close()
            await lean.shutdown(1.0)

    armed, idle_for, closed = asyncio.run(main())
    assert closed  # an idle connection is still closed
    assert idle_for >= keepalive * 0.9  # counted from its last answer
    assert armed <= 4  # not one per request (20 requests)


def test_the_lean_server_and_client_sockets_send_without_delay() -> None:
    """TCP_NODELAY on both ends of a node's connections, on the loop the node runs: an
    answer written while the peer's ACK of the last one is delayed is sent at once."""
    options: dict[str, int] = {}

    async def main() -> None:
        lean = Http1Server(_routes())
        server = await guarded_server(lean, "127.0.0.1", 0, GuardSettings())
        client = Http1Client(max_body=1000)
        try:
            url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            for _ in range(2):
                response = await client.request("GET", url, [], b"", timeout=5)
                assert response.body == b"hi"
            transports = [("server", c._transport) for c in lean.connections]
            transports += [("client", c.transport) for c in client._live]
            for side, transport in transports:
                assert transport is not None
                sock = transport.get_extra_info("socket")
                options[side] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            await client.close()
            server.close()
            await lean.shutdown(1.0)

    net_loop.run(main())
    assert options == {"server": 1, "client": 1}


def _count_timers(loop: asyncio.AbstractEventLoop, names: set[str]) -> list[int]:
    """Count the loop's ``call_at`` calls whose callback is one of ``names``."""
    armed = [0]
    call_at = loop.call_at

    def counting(when: float, callback: Callable[..., Any], *args: Any) -> Any:
        if getattr(callback, "__name__", "") in names:
            armed[0] += 1
        return call_at(when, callback, *args)

    loop.call_at = counting  # type: ignore[method-assign,assignment]
    return armed


def test_the_client_keeps_one_deadline_timer_per_connection_not_one_per_request() -> None:
    async def main() -> tuple[int, int]:
        armed = _count_timers(asyncio.get_running_loop(), {"timed_out", "_check"})
        server = await Server([fixed(OK)]).start()
        client = Http1Client(max_body=1000)
        try:
            for _ in range(20):
                response = await client.request("GET", server.url + "/", [], b"", timeout=30)
                assert response.body == b"ok"
            return armed[0], server.connections
        finally:
            await client.close()
            await server.stop()

    armed, connections = asyncio.run(main())
    assert connections == 1
    assert armed == 1  # armed by the first request, not re-armed by the next 19


def test_a_request_on_a_kept_connection_times_out_at_its_own_deadline() -> None:
    """Neither at the deadline of an earlier request on the same connection (still the
    timer's), nor later than its own when that is the earlier one."""

    async def main() -> tuple[float, float]:
        server = await Server([fixed(OK), NEVER, fixed(OK), NEVER]).start()
        client = Http1Client(max_body=1000)
        try:
            url = server.url + "/"
            # Later than the timer: armed at the first request's deadline (0.6 s).
            assert (await client.request("GET", url, [], b"", timeout=0.6)).body == b"ok"
            await asyncio.sleep(0.3)
            start = time.monotonic()
            with pytest.raises(TimedOut):
                await client.request("GET", url, [], b"", timeout=0.6)
            later = time.monotonic() - start
            # Earlier than the timer: a long first timeout, then a short one.
            assert (await client.request("GET", url, [], b"", timeout=60)).body == b"ok"
            with pytest.raises(TimedOut):
                await asyncio.wait_for(client.request("GET", url, [], b"", timeout=0.3), 30)
            return later, 0.6
        finally:
            await client.close()
            await server.stop()

    later, limit = asyncio.run(main())
    assert later >= limit * 0.9  # not cut short by the first request's timer
