"""A request line that is not HTTP/1.x gets 505 in an HTTP/1.1 status line, on every
aiohttp listener: the node's consumer and peer ports and the trust services.

aiohttp passes ``GET / HTTP/2.0`` to the application and would answer ``HTTP/2.0 200 OK``
in HTTP/1.1 framing. Raw sockets against real processes, so nothing in between fixes
up the request line.
"""

from __future__ import annotations

import socket
import ssl

import pytest

from gateway.sandbox.localnet import LocalNet
from tests.integration.conftest import LIPPSTADT, SOEST

pytestmark = pytest.mark.integration


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes (the refusal closes)."""
    sock.settimeout(10)
    sock.sendall(request)
    chunks: list[bytes] = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _plain(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return _exchange(sock, request)


def _tls(net: LocalNet, port: int, request: bytes) -> bytes:
    """Over mTLS as Soest's node: the peer port answers only registered nodes."""
    files = net.nodes[SOEST.ags]
    context = ssl.create_default_context(cafile=str(net.ca_cert))
    context.load_cert_chain(
        files.auth_cert, files.directory / "auth.key", password=files.passphrase
    )
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        return _exchange(sock, request)


def _status_and_headers(answer: bytes) -> tuple[str, dict[str, str]]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return head[0], headers


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/0.9"])
def test_consumer_port(net: LocalNet, version: str) -> None:
    port = net.nodes[SOEST.ags].consumer_port
    answer = _plain(port, f"GET /health {version}\r\nHost: 127.0.0.1\r\n\r\n".encode())
    status, headers = _status_and_headers(answer)
    assert status == "HTTP/1.1 505 HTTP Version Not Supported", answer
    assert headers["x-road-error"] == "client.http_version_not_supported"
    assert headers["connection"] == "close"
    assert version.encode() in answer  # the message names what was sent


def test_consumer_r1_path(net: LocalNet) -> None:
    """The exchange path itself is refused before anything is read or signed."""
    port = net.nodes[SOEST.ags].consumer_port
    request = b"GET /r1/DE-NRW/GOV/05974028/melderegister/einfacheAuskunft HTTP/2.0\r\n"
    answer = _plain(port, request + b"Host: 127.0.0.1\r\nX-Road-Client: x\r\n\r\n")
    status, headers = _status_and_headers(answer)
    assert status == "HTTP/1.1 505 HTTP Version Not Supported", answer
    assert headers["x-road-error"] == "client.http_version_not_supported"


def test_peer_port(net: LocalNet) -> None:
    port = net.nodes[LIPPSTADT.ags].peer_port
    request = b"POST /gw/v1/exchange HTTP/2.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    status, headers = _status_and_headers(_tls(net, port, request))
    assert status == "HTTP/1.1 505 HTTP Version Not Supported"
    assert headers["x-road-error"] == "client.http_version_not_supported"


def test_trust_services(net: LocalNet) -> None:
    answer = _plain(net.trust.port, b"GET /health HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n")
    status, _ = _status_and_headers(answer)
    assert status == "HTTP/1.1 505 HTTP Version Not Supported", answer
    assert b"HTTP/2.0 is not supported" in answer


def test_an_expectation_other_than_100_continue(net: LocalNet) -> None:
    """417 in X-Road's error format on the consumer port's exchange path, before anything
    is read or signed; the admin port (aiohttp) answers it 417 as well, in plain text."""
    port = net.nodes[SOEST.ags].consumer_port
    request = b"POST /r1/DE-NRW/GOV/05974028/melderegister/einfacheAuskunft HTTP/1.1\r\n"
    request += b"Host: 127.0.0.1\r\nX-Road-Client: x\r\nExpect: 100-continue, tea\r\n"
    answer = _plain(port, request + b"Content-Length: 5\r\nConnection: close\r\n\r\n")
    status, headers = _status_and_headers(answer)
    assert status == "HTTP/1.1 417 Expectation Failed", answer
    assert headers["x-road-error"] == "client.expectation_failed"
    assert b"100-continue, tea" in answer  # the message names what was sent
    admin = net.nodes[SOEST.ags].metrics_port
    answer = _plain(
        admin,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: tea\r\nConnection: close\r\n\r\n",
    )
    assert _status_and_headers(answer)[0] == "HTTP/1.1 417 Expectation Failed", answer


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_http1_still_answered(net: LocalNet, version: str) -> None:
    port = net.nodes[SOEST.ags].consumer_port
    request = f"GET /health {version}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    status, _ = _status_and_headers(_plain(port, request.encode()))
    assert status == f"{version} 200 OK"
