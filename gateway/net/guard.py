"""One connection guard for every listening port: read timeouts and connection caps.

Neither aiohttp (the node's consumer and peer ports, the trust services) nor uvicorn (the
central, the registries, the portal) bounds how long a client may take to send a request
head, or how long a request body may stall: a client sending its head one byte at a time,
or declaring a ``Content-Length`` it never sends, holds a connection (and a file
descriptor) for as long as it likes, and a few hundred such clients exhaust a process.

The guard wraps the server's ``asyncio.Protocol`` factory, so it sits below either
framework and sees the decrypted bytes of a TLS connection exactly as the HTTP parser
does. It follows the HTTP/1.1 framing of each request just far enough to know where the
head and the body end (``Content-Length`` or chunked), and:

- closes a connection whose request head is not complete ``header_timeout`` seconds after
  the connection was accepted, or after the head's first byte for a later request on a
  kept-alive connection (answering ``408`` first when part of a head arrived and nothing
  else was sent on it);
- closes a connection whose request body receives no byte for ``body_timeout`` seconds,
  unless the server itself stopped reading (flow control: then the stall is the server's);
- closes a connection whose transport stayed paused for writing (unsent answer bytes
  over the high-water mark) for ``write_timeout`` seconds on end, dropping those bytes
  (``abort``: a ``close`` waits for them): a client that never reads its answers would
  hold the connection and their memory for ever. A server closing with bytes unsent
  lowers the mark to zero first, so the same bound ends that close (the lean server does);
- answers ``503`` and closes a connection over ``max_connections`` open connections on
  the port, or over ``max_connections_per_ip`` from one address.

Between requests, a kept-alive connection is the server's business (its keep-alive
timeout closes it), and so is a request being processed: the guard only times what the
client owes (a request, or reading the answer to one). The TLS handshake is bounded by
``header_timeout`` and a TLS close's shutdown by ``write_timeout`` as well (the listeners
pass them as ``ssl_handshake_timeout`` and ``ssl_shutdown_timeout``). See docs/deployment.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from gateway.net.framing import Framing

if TYPE_CHECKING:
    from ssl import SSLContext

    from aiohttp import web

log = logging.getLogger(__name__)

REFUSED_LINGER_SECONDS = 0.5
"""How long a refused connection is drained before it is closed, so the client reads the
503 instead of a reset caused by the request bytes it already sent."""


@dataclass(frozen=True)
class GuardSettings:
    """The limits of one listening port; see docs/deployment.md for the defaults' reasons."""

    header_timeout: float = 10.0
    """Seconds a client has to send a complete request head (and finish a TLS handshake)."""
    body_timeout: float = 30.0
    """Longest pause, in seconds, between two pieces of a request body."""
    write_timeout: float = 30.0
    """Longest time, in seconds, the transport may stay paused for writing (a client not
    reading its answers) before the connection is closed and the unsent bytes dropped."""
    max_connections: int = 1024
    """Open connections the port accepts; more are answered 503 and closed."""
    max_connections_per_ip: int = 512
    """Open connections the port accepts from one address."""

    def __post_init__(self) -> None:
        if not self.header_timeout > 0 or not self.body_timeout > 0 or not self.write_timeout > 0:
            raise ValueError("the header, body and write timeouts must be positive")
        if self.max_connections < 1 or self.max_connections_per_ip < 1:
            raise ValueError("the connection caps must be at least 1")


def add_guard_arguments(parser: argparse.ArgumentParser, defaults: GuardSettings) -> None:
    """The guard flags every server command offers (``settings_from_args`` reads them)."""
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=defaults.header_timeout,
        help=f"seconds a client has to send a request head (default {defaults.header_timeout:g})",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=defaults.body_timeout,
        help=f"longest pause within a request body, seconds (default {defaults.body_timeout:g})",
    )
    parser.add_argument(
        "--write-timeout",
        type=float,
        default=defaults.write_timeout,
        help=f"longest wait for a client to read, seconds (default {defaults.write_timeout:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=defaults.max_connections,
        help=f"open connections accepted (default {defaults.max_connections})",
    )
    parser.add_argument(
        "--max-connections-per-ip",
        type=int,
        default=defaults.max_connections_per_ip,
        help=f"open connections accepted from one address (default "
        f"{defaults.max_connections_per_ip})",
    )


def settings_from_args(args: argparse.Namespace) -> GuardSettings:
    """The settings given by the flags of :func:`add_guard_arguments`."""
    return GuardSettings(
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        write_timeout=args.write_timeout,
        max_connections=args.max_connections,
        max_connections_per_ip=args.max_connections_per_ip,
    )


# --- the guard ----------------------------------------------------------------------------


def _plain(status: str, text: str, *extra: str) -> bytes:
    """A complete ``Connection: close`` response, written by the guard itself."""
    body = text.encode() + b"\r\n"
    head = [f"HTTP/1.1 {status}", "Connection: close", *extra, "Content-Type: text/plain"]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


_TIMEOUT_RESPONSE = _plain("408 Request Timeout", "the request head did not arrive in time")
_BUSY_RESPONSE = _plain(
    "503 Service Unavailable", "too many connections; try again later", "Retry-After: 1"
)


class ConnectionGuard:
    """The connection counts and limits of one listening port."""

    def __init__(self, settings: GuardSettings, name: str = "server") -> None:
        self.settings = settings
        self.name = name
        self.open = 0
        self.per_ip: dict[str, int] = {}
        self.refused = 0
        """Refusals since the last warning."""
        self.warned_at = float("-inf")

    def wrap(self, factory: Callable[..., asyncio.BaseProtocol]) -> Callable[..., GuardedProtocol]:
        """A protocol factory that puts every connection of ``factory`` under this guard."""

        def guarded(*args: Any, **kwargs: Any) -> GuardedProtocol:
            return GuardedProtocol(self, cast(asyncio.Protocol, factory(*args, **kwargs)))

        return guarded

    def admit(self, ip: str) -> bool:
        if self.open >= self.settings.max_connections:
            return self._refuse(f"{self.open} connections open, the last refused from {ip}")
        count = self.per_ip.get(ip, 0)
        if count >= self.settings.max_connections_per_ip:
            return self._refuse(f"{count} connections open from {ip}")
        self.open += 1
        self.per_ip[ip] = count + 1
        return True

    def _refuse(self, why: str) -> bool:
        """Count a refusal; warn at most once a second, so a flood cannot flood the log."""
        self.refused += 1
        now = time.monotonic()
        if now - self.warned_at >= 1.0:
            log.warning("%s: refused %d connection(s): %s", self.name, self.refused, why)
            self.refused = 0
            self.warned_at = now
        return False

    def release(self, ip: str) -> None:
        self.open -= 1
        left = self.per_ip[ip] - 1
        if left:
            self.per_ip[ip] = left
        else:
            del self.per_ip[ip]


class GuardedProtocol(asyncio.Protocol):
    """Forwards everything to the server's protocol, timing what the client owes."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.framing = Framing()
        self.transport: asyncio.Transport | None = None
        self.ip = ""
        self.admitted = False
        self.timer: asyncio.TimerHandle | None = None
        self.timing_head = False
        self.last_data = 0.0
        """Loop time of the last piece of a request body."""
        self.write_timer: asyncio.TimerHandle | None = None
        self.write_paused_at: float | None = None
        """Loop time the transport last paused for writing; None while it is not paused."""

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        if not self.guard.admit(self.ip):
            self.transport.write(_BUSY_RESPONSE)
            if self.transport.can_write_eof():
                self.transport.write_eof()
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(REFUSED_LINGER_SECONDS, self.transport.close)
            return
        self.admitted = True
        self._time_head()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return  # a refused connection: drained until it is closed
        framing = self.framing
        before = framing.completed
        framing.feed(data)
        if framing.in_body:
            # Re-arming a timer per piece of a large body would cost more than the
            # check: note the time, and let the timer find out how long it was idle.
            self.last_data = asyncio.get_running_loop().time()
            if self.timer is None or self.timing_head:
                self._arm(self.guard.settings.body_timeout, head=False)
        elif framing.completed == 0:
            pass  # the first head: timed from the connection's start
        elif framing.head_started:
            if not self.timing_head or framing.completed != before:
                self._time_head()  # a later head: timed from its first byte
        elif self.timer is not None:
            # Between requests: the server's keep-alive timeout applies.
            self.timer.cancel()
            self.timer = None
            self.timing_head = False
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if not self.admitted:
            return False
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.write_timer is not None:
            self.write_timer.cancel()
            self.write_timer = None
        if self.admitted:
            self.admitted = False
            self.guard.release(self.ip)
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        # Armed once, it looks at the pause when it fires: a large answer pauses and
        # resumes the transport often, and re-arming a timer each time costs more.
        loop = asyncio.get_running_loop()
        self.write_paused_at = loop.time()
        if self.write_timer is None:
            bound = self.guard.settings.write_timeout
            self.write_timer = loop.call_later(bound, self._write_expired)
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.write_paused_at = None
        self.inner.resume_writing()

    # -- timers

    def _time_head(self) -> None:
        self._arm(self.guard.settings.header_timeout, head=True)

    def _arm(self, seconds: float, *, head: bool) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timing_head = head
        self.timer = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _expired(self) -> None:
        self.timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        head = self.timing_head
        if not head:
            idle = asyncio.get_running_loop().time() - self.last_data
            if idle < self.guard.settings.body_timeout:
                self._arm(self.guard.settings.body_timeout - idle, head=False)
                return
        if not transport.is_reading():
            # The server paused reading (flow control, or busy with the previous request
            # of a kept-alive connection): the client is not the one stalling.
            self._arm(self.guard.settings.body_timeout, head=head)
            return
        if head:
            what = f"request head not complete within {self.guard.settings.header_timeout:g} s"
        else:
            what = f"request body stalled for {self.guard.settings.body_timeout:g} s"
        log.info("%s: closing the connection from %s: %s", self.guard.name, self.ip, what)
        if head and self.framing.completed == 0 and self.framing.head_started:
            # Nothing was answered on this connection yet, so a 408 cannot interleave.
            # A connection that sent nothing at all (a browser's preconnect) is closed
            # silently, as nginx does: a 408 there would be shown for its next request.
            transport.write(_TIMEOUT_RESPONSE)
        transport.close()

    def _write_expired(self) -> None:
        self.write_timer = None
        since = self.write_paused_at
        transport = self.transport
        if since is None or transport is None:
            return  # resumed: the client reads; the next pause arms the timer again
        bound = self.guard.settings.write_timeout
        loop = asyncio.get_running_loop()
        waited = loop.time() - since
        if waited < bound:  # resumed and paused again since the timer was armed
            self.write_timer = loop.call_later(bound - waited, self._write_expired)
            return
        what = f"answer not read for {bound:g} s"
        log.info("%s: closing the connection from %s: %s", self.guard.name, self.ip, what)
        transport.abort()


# --- adapters -----------------------------------------------------------------------------


def guarded_site(
    runner: web.AppRunner,
    host: str,
    port: int,
    settings: GuardSettings,
    *,
    ssl_context: SSLContext | None = None,
    backlog: int = 128,
    name: str = "server",
    sock: socket.socket | None = None,
) -> web.BaseSite:
    """An aiohttp site like ``web.TCPSite``, with every connection under a guard; on
    ``sock`` (already bound and listening, e.g. by a parent of several worker
    processes) instead of binding ``host:port`` itself."""
    from aiohttp import web

    class GuardedSite(web.BaseSite):
        @property
        def name(self) -> str:
            scheme = "https" if ssl_context is not None else "http"
            return f"{scheme}://{host}:{port}"

        async def start(self) -> None:
            await super().start()
            server = runner.server
            assert server is not None
            self._server = await guarded_server(
                server,
                host,
                port,
                settings,
                ssl_context=ssl_context,
                backlog=backlog,
                name=name,
                sock=sock,
            )

    return GuardedSite(runner, ssl_context=ssl_context, backlog=backlog)


async def guarded_server(
    factory: Callable[[], asyncio.BaseProtocol],
    host: str,
    port: int,
    settings: GuardSettings,
    *,
    ssl_context: SSLContext | None = None,
    backlog: int = 128,
    name: str = "server",
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """Listen with any protocol factory (the lean server's), every connection under a
    guard as in :func:`guarded_site`: the same caps, timeouts and TLS handshake limit."""
    guard = ConnectionGuard(settings, name)
    where: dict[str, Any] = {"sock": sock} if sock else {"host": host, "port": port}
    return await asyncio.get_running_loop().create_server(
        guard.wrap(factory),
        **where,
        ssl=ssl_context,
        backlog=backlog,
        ssl_handshake_timeout=settings.header_timeout if ssl_context else None,
        ssl_shutdown_timeout=settings.write_timeout if ssl_context else None,
    )


def run_asgi(
    app: Any,
    host: str,
    port: int,
    settings: GuardSettings,
    *,
    name: str = "server",
    http: type[asyncio.Protocol] | str = "auto",
) -> None:
    """Serve an ASGI app with uvicorn until interrupted, every connection under a guard.

    ``http`` is uvicorn's HTTP protocol (its own choice by default); a registry passes
    one that writes each answer in one call (``registries/coalesce.py``)."""
    import uvicorn

    # ws="none": a WebSocket upgrade would hand the transport to another protocol,
    # out of the guard's sight; no app here uses WebSockets.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", ws="none", http=http)
    config.load()
    guard = ConnectionGuard(settings, name)
    config.http_protocol_class = cast(
        "type[asyncio.Protocol]", guard.wrap(config.http_protocol_class)
    )
    uvicorn.Server(config).run()
