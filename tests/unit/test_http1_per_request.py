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

from gateway.net import loop as net_loop
from gateway.net.guard import GuardSettings, guarded_server
from gateway.net.http1client import Http1Client
from gateway.net.http1server import Http1Server, HttpResponse, Request, Routes, text_response

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
            for _ in range(2):
                await asyncio.sleep(keepalive * 0.55)
                writer.write(REQUEST)
                assert await _answer(reader) == b"hi"
            last = time.monotonic()
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
