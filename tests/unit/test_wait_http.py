"""``wait_http`` polls with one client: a client per poll loaded the trusted roots every
50 ms, costing the machine more CPU than the process it waited for (ADR 0056)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from httpx._transports import default as transports

from gateway.sandbox.processes import wait_http


@pytest.fixture
def contexts_built(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every TLS context httpx's transports build from here on (by their verify)."""
    built: list[object] = []
    original = transports.create_ssl_context  # type: ignore[attr-defined]

    def counting(
        verify: ssl.SSLContext | bool = True, cert: None = None, trust_env: bool = True
    ) -> ssl.SSLContext:
        built.append(verify)
        context: ssl.SSLContext = original(verify=verify, cert=cert, trust_env=trust_env)
        return context

    monkeypatch.setattr(transports, "create_ssl_context", counting)
    return built


@pytest.fixture
def late_server() -> Iterator[tuple[str, threading.Event]]:
    """A server that answers 503 until the event is set, then 200."""
    up = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if up.is_set() else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health", up
    finally:
        server.shutdown()
        server.server_close()


def test_polling_a_port_builds_one_client(contexts_built: list[object]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(RuntimeError, match="did not come up within"):
        wait_http(f"http://127.0.0.1:{port}/health", None, 0.6)
    assert contexts_built == [True]


def test_it_returns_once_the_server_answers_200(
    contexts_built: list[object], late_server: tuple[str, threading.Event]
) -> None:
    url, up = late_server
    threading.Timer(0.3, up.set).start()
    own = ssl.create_default_context()
    wait_http(url, None, 30, verify=own)
    assert up.is_set()
    assert contexts_built == [own]


def test_a_process_that_dies_while_waited_for_is_reported_with_its_log(
    tmp_path: Path,
) -> None:
    """A failed start in CI leaves only the test's error: it carries the end of the
    process's log, here the configuration error of a node whose file does not exist."""
    from gateway.sandbox.processes import Launch, spawn

    missing = tmp_path / "absent" / "node.toml"
    log = tmp_path / "node.log"
    proc = spawn(Launch("node-x", ("node", "serve", "--config", str(missing)), log))
    with pytest.raises(RuntimeError) as failure:
        wait_http("http://127.0.0.1:9/health", proc, timeout=60)
    message = str(failure.value)
    assert f"exited with code {proc.returncode}" in message
    assert f"the end of its log {log}" in message
    assert str(missing) in message, message
