"""Slow and numerous clients on every kind of listening port, over real sockets.

Each server runs as its own process with short limits (a 1 s head and body timeout, 8
connections per address): a node (consumer port, and the TLS peer port), the trust
services (aiohttp), the central authority and a registry (both uvicorn). The clients are
raw sockets that do what an attacker does: send a head one byte at a time, declare a
body they never send, stop in the middle of a chunked body, open one connection too many.
The central must also refuse an oversized body before it has been sent.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.sandbox.localnet import LocalNet, free_port, wait_http
from tests.integration.conftest import SOEST

pytestmark = pytest.mark.integration

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
PER_IP = 8
SLACK = 10.0
"""Scheduling slack on a loaded machine, where a server may close a second or more
late; without the guard nothing closes these connections within a minute (uvicorn's
idle timeout runs only after an answer, the others' are 75 s, and the loop's TLS
handshake timeout is 60 s)."""
CENTRAL_MAX_BODY = 64 * 1024
GUARD_FLAGS = [
    "--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT),
    "--max-connections-per-ip", str(PER_IP),
]  # fmt: skip


@dataclass(frozen=True)
class Port:
    """One listening port and a request path on it that reads a body."""

    host: str
    port: int
    body_path: str
    body_type: str = "application/json"
    tls: ssl.SSLContext | None = None
    probe: str = "/health"
    """A path answered 200 to a GET."""
    body_headers: tuple[str, ...] = ()
    """What a request needs for the server to start reading its body."""

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        if self.tls is not None:
            return self.tls.wrap_socket(sock)
        return sock


@dataclass(frozen=True)
class Servers:
    net: LocalNet
    ports: dict[str, Port]
    central_url: str


def _port(url: str, body_path: str, **more: Any) -> Port:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return Port(parts.hostname, parts.port, body_path, **more)


def _spawn(net: LocalNet, args: list[str], name: str) -> subprocess.Popen[bytes]:
    log = (net.root / "logs" / f"{name}.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", *args], stdout=log, stderr=log)
    log.close()
    net.processes.append(proc)  # stopped with the federation
    return proc


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("slow")
    net = LocalNet.create(root, [SOEST], datetime.now(UTC))
    net.write_configs(
        extra={
            "header_timeout_seconds": HEADER_TIMEOUT,
            "body_timeout_seconds": BODY_TIMEOUT,
            "max_connections_per_ip": PER_IP,
        }
    )
    try:
        net.start_node(SOEST.ags)
        files = net.nodes[SOEST.ags]
        t = net.trust
        trust_port = free_port()
        trust = _spawn(
            net,
            ["trust", "serve", "--ca", str(t.ca_dir), "--ocsp-cert", str(t.directory / "ocsp.pem"),
             "--ocsp-key", str(t.directory / "ocsp.key"), "--development", "--host", "127.0.0.1",
             "--port", str(trust_port), *GUARD_FLAGS],
            "trust-guarded",
        )  # fmt: skip
        registry_port = free_port()
        registry = _spawn(
            net,
            ["registry", "ihk", "--db", str(root / "ihk.sqlite"), "--port", str(registry_port),
             *GUARD_FLAGS],
            "ihk",
        )  # fmt: skip
        central_port = free_port()
        central_url = f"http://127.0.0.1:{central_port}"
        subprocess.run(
            [sys.executable, "-m", "gateway", "central", "init", "--dir", str(root / "central"),
             "--instance", "DE-NRW", "--ca-cert", str(net.ca_cert), "--url", central_url,
             "--insecure-plain-keys"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        central = _spawn(
            net,
            ["central", "serve", "--dir", str(root / "central"), "--port", str(central_port),
             "--max-body-bytes", str(CENTRAL_MAX_BODY), *GUARD_FLAGS],
            "central",
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{trust_port}/health", trust)
        wait_http(f"http://127.0.0.1:{registry_port}/health", registry)
        wait_http(f"{central_url}/openapi.json", central)

        peer_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        peer_tls.check_hostname = False
        peer_tls.verify_mode = ssl.CERT_NONE
        peer_tls.load_cert_chain(
            files.auth_cert, files.directory / "auth.key", password=files.passphrase
        )
        peer = _port(files.peer_url, "/gw/v1/exchange")
        ports = {
            "consumer": _port(
                files.consumer_url,
                f"/r1/{SOEST.subsystem('gewerbeamt')}/x",
                body_headers=(f"X-Road-Client: {SOEST.subsystem('gewerbeamt')}",),
            ),
            "peer": Port(peer.host, peer.port, peer.body_path, tls=peer_tls),
            "trust": _port(
                f"http://127.0.0.1:{trust_port}", "/ocsp", body_type="application/ocsp-request"
            ),
            "central": Port(
                "127.0.0.1", central_port, "/registration/v1/client", probe="/openapi.json"
            ),
            "registry": _port(f"http://127.0.0.1:{registry_port}", "/benachrichtigungen"),
        }
        yield Servers(net, ports, central_url)
    finally:
        net.stop()


LISTENERS = ["consumer", "peer", "trust", "central", "registry"]


def _closed(socks: list[socket.socket], within: float, trickle: bytes = b"") -> list[bytes]:
    """Wait until the server closed every socket, sending ``trickle`` one byte every
    0.1 s on each; return what each received. Fails if one is still open at the end."""
    received = [b""] * len(socks)
    open_ = set(range(len(socks)))
    deadline = time.monotonic() + within
    sent = 0
    while open_ and time.monotonic() < deadline:
        if trickle and sent < len(trickle):
            for i in list(open_):
                try:
                    socks[i].sendall(trickle[sent : sent + 1])
                except OSError:
                    open_.discard(i)
            sent += 1
        readable, _, _ = select.select([socks[i] for i in open_], [], [], 0.1)
        for sock in readable:
            i = socks.index(sock)
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if data:
                received[i] += data
            else:
                open_.discard(i)
    still = len(open_)
    for sock in socks:
        sock.close()
    assert not still, f"{still} of {len(socks)} connections still open after {within} s"
    return received


def _head(port: Port, method: str, path: str, *lines: str) -> bytes:
    text = [f"{method} {path} HTTP/1.1", f"Host: {port.host}:{port.port}", *lines]
    return ("\r\n".join(text) + "\r\n\r\n").encode()


@pytest.mark.parametrize("name", LISTENERS)
def test_heads_sent_byte_by_byte_are_closed(servers: Servers, name: str) -> None:
    """Six clients trickle a head that never ends; each is closed once the head timeout
    passes, with a 408 where the port speaks plain HTTP and nothing was answered yet."""
    port = servers.ports[name]
    start = time.monotonic()  # before the server accepts any: its head timer starts later
    socks = [port.connect() for _ in range(6)]
    trickle = b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 200
    received = _closed(socks, HEADER_TIMEOUT + SLACK, trickle)
    assert time.monotonic() - start >= HEADER_TIMEOUT - 0.2
    for data in received:
        assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:100]


@pytest.mark.parametrize("name", ["consumer", "trust", "central", "registry"])
def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
    servers: Servers, name: str
) -> None:
    """Like a browser's unused preconnect: closed at the head timeout, with no 408 that
    the browser could show for the request it later sends."""
    port = servers.ports[name]
    assert _closed([port.connect()], HEADER_TIMEOUT + SLACK) == [b""]


def test_a_silent_tls_handshake_is_closed(servers: Servers) -> None:
    """On the peer port the head timeout also bounds the TLS handshake."""
    port = servers.ports["peer"]
    sock = socket.create_connection((port.host, port.port), timeout=5)
    _closed([sock], HEADER_TIMEOUT + SLACK)


@pytest.mark.parametrize("name", LISTENERS)
def test_a_body_shorter_than_its_content_length_is_closed(servers: Servers, name: str) -> None:
    port = servers.ports[name]
    sock = port.connect()
    sock.sendall(
        _head(port, "POST", port.body_path, f"Content-Type: {port.body_type}",
              "Content-Length: 1000", *port.body_headers)
        + b"{" * 10
    )  # fmt: skip
    _closed([sock], BODY_TIMEOUT + SLACK)


@pytest.mark.parametrize(("name", "status"), [("trust", b"200"), ("central", b"400")])
def test_a_slow_but_steady_body_is_served(servers: Servers, name: str, status: bytes) -> None:
    """The body timeout is the longest pause, not a deadline for the whole body: eight
    bytes 0.3 s apart take twice the timeout and are answered."""
    port = servers.ports[name]
    sock = port.connect()
    try:
        sock.sendall(
            _head(port, "POST", port.body_path, f"Content-Type: {port.body_type}",
                  "Content-Length: 8", "Connection: close")
        )  # fmt: skip
        for byte in b"{}      ":
            time.sleep(0.3)
            sock.sendall(bytes([byte]))
        assert _status(sock).startswith(b"HTTP/1.1 " + status)
    finally:
        sock.close()


@pytest.mark.parametrize("name", LISTENERS)
def test_an_unfinished_chunked_body_is_closed(servers: Servers, name: str) -> None:
    port = servers.ports[name]
    sock = port.connect()
    sock.sendall(
        _head(port, "POST", port.body_path, f"Content-Type: {port.body_type}",
              "Transfer-Encoding: chunked", *port.body_headers)
        + b"5\r\n{{{{{\r\n"
    )  # fmt: skip
    _closed([sock], BODY_TIMEOUT + SLACK)


def _response(sock: socket.socket, within: float = 5) -> tuple[bytes, bytes]:
    """The status line and body of one answer on ``sock`` (empty if it closed first)."""
    sock.settimeout(within)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return data.split(b"\r\n", 1)[0], b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except (ConnectionResetError, ssl.SSLError):
        return data.split(b"\r\n", 1)[0], b""
    return head.split(b"\r\n", 1)[0], body


def _status(sock: socket.socket, within: float = 5) -> bytes:
    return _response(sock, within)[0]


@pytest.mark.parametrize("name", LISTENERS)
def test_connections_over_the_cap_are_refused_with_503(servers: Servers, name: str) -> None:
    """The ninth connection from one address gets a 503 at once; once one of the eight
    closes, a new connection is served again.

    The eight have each been answered once and idle, kept alive: the head timeout no
    longer runs on them, so on a slow machine too the one this test closed is the only
    one closed when the new connection is served (checked; uvicorn's idle timeout, 5 s,
    is the nearest that could close another)."""
    port = servers.ports[name]
    held = [port.connect() for _ in range(PER_IP)]
    try:
        for sock in held:
            sock.sendall(_head(port, "GET", port.probe))
            assert _status(sock).startswith(b"HTTP/1.1 "), name
        extra = port.connect()
        assert _status(extra, within=30) == b"HTTP/1.1 503 Service Unavailable"
        extra.close()
        held.pop().close()
        deadline = time.monotonic() + 30
        while True:
            fresh = port.connect()
            fresh.sendall(_head(port, "GET", "/health", "Connection: close"))
            status = _status(fresh)
            fresh.close()
            if status != b"HTTP/1.1 503 Service Unavailable" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status != b"HTTP/1.1 503 Service Unavailable"
        assert status.startswith(b"HTTP/1.1 ")
        assert not [sock for sock in held if _closed_by_server(sock)], "a slot freed itself"
    finally:
        for sock in held:
            sock.close()


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (nothing else is due on it)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True


@pytest.mark.parametrize("name", ["consumer", "trust", "central", "registry"])
def test_a_kept_alive_connection_may_idle_between_requests(servers: Servers, name: str) -> None:
    """The head timeout runs from a head's first byte, not from the previous answer."""
    port = servers.ports[name]
    sock = port.connect()
    try:
        sock.sendall(_head(port, "GET", port.probe))
        assert _status(sock) == b"HTTP/1.1 200 OK"
        time.sleep(HEADER_TIMEOUT + 0.5)
        sock.sendall(_head(port, "GET", port.probe))
        assert _status(sock) == b"HTTP/1.1 200 OK"
    finally:
        sock.close()


def _json_answer(sock: socket.socket) -> tuple[bytes, dict[str, str]]:
    status, body = _response(sock)
    answer: dict[str, str] = json.loads(body)
    return status, answer


@pytest.mark.parametrize(
    "path", ["/registration/v1/auth-cert", "/registration/v1/client", "/admin/v1/members"]
)
def test_the_central_refuses_a_declared_oversized_body_before_it_is_sent(
    servers: Servers, path: str
) -> None:
    port = servers.ports["central"]
    sock = port.connect()
    try:
        head = _head(port, "POST", path, "Content-Type: application/json",
                     "Content-Length: 50000000")  # fmt: skip
        sock.sendall(head + b"[" * 1024)
        status, body = _json_answer(sock)
    finally:
        sock.close()
    assert status.startswith(b"HTTP/1.1 413 ")
    assert body["type"] == "central.request_too_large"
    assert f"limit of {CENTRAL_MAX_BODY} bytes" in body["message"]


def test_the_central_counts_a_streamed_body(servers: Servers) -> None:
    """Without a length, the chunks are counted and refused once they pass the limit,
    while the client is still sending."""
    port = servers.ports["central"]
    sock = port.connect()
    try:
        sock.sendall(
            _head(port, "POST", "/registration/v1/auth-cert", "Content-Type: application/json",
                  "Transfer-Encoding: chunked")
        )  # fmt: skip
        chunk = b"[" * 8192
        for _ in range(CENTRAL_MAX_BODY // len(chunk) + 1):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, body = _json_answer(sock)
    finally:
        sock.close()
    assert status.startswith(b"HTTP/1.1 413 ")
    assert body["type"] == "central.request_too_large"


def test_the_central_still_reads_a_body_within_the_limit(servers: Servers) -> None:
    """A registration under the limit reaches the application (and is judged there)."""
    port = servers.ports["central"]
    sock = port.connect()
    try:
        payload = json.dumps({"document": "x" * 1000}).encode()
        sock.sendall(
            _head(port, "POST", "/registration/v1/client", "Content-Type: application/json",
                  f"Content-Length: {len(payload)}", "Connection: close")
            + payload
        )  # fmt: skip
        status, body = _json_answer(sock)
    finally:
        sock.close()
    assert status == b"HTTP/1.1 400 Bad Request"
    assert body["type"] == "registration.malformed"


@pytest.mark.parametrize("path", ["/health", "/ocsp"])
def test_the_trust_services_refuse_a_declared_oversized_body_on_every_route(
    servers: Servers, path: str
) -> None:
    port = servers.ports["trust"]
    sock = port.connect()
    try:
        method = "GET" if path == "/health" else "POST"
        sock.sendall(
            _head(port, method, path, "Content-Type: application/ocsp-request",
                  "Content-Length: 50000000")
            + b"\x30" * 1024
        )  # fmt: skip
        assert _status(sock).startswith(b"HTTP/1.1 413 ")
    finally:
        sock.close()


def test_the_guard_is_documented() -> None:
    """Operators find every flag and node.toml key with its default."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text("utf-8")
    for key in (
        "header_timeout_seconds", "body_timeout_seconds", "max_connections_per_ip",
        "write_timeout_seconds", "--write-timeout",
        "--header-timeout", "--body-timeout", "--max-connections-per-ip", "--max-body-bytes",
        "central.request_too_large",
    ):  # fmt: skip
        assert key in doc, key


def test_no_server_logged_a_traceback(servers: Servers) -> None:
    """Connections closed by the guard are not internal errors of the servers (run last)."""
    for log in sorted((servers.net.root / "logs").glob("*.log")):
        assert "Traceback" not in log.read_text(), log.name
