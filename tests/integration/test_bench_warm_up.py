"""Each measured bench run is preceded by uncounted load of the same scenario.

A real load generator (the Python one, in its own process) against a counting HTTP
server on loopback: the server sees the warm-up's requests, the run's result does not.
No figure is asserted here: speed is measured by ``make bench``, never in a test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway.sandbox.bench.runner import drive
from gateway.sandbox.bench.topology import Scenario

pytestmark = pytest.mark.integration


class _Counting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    served = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with _Counting.lock:
            _Counting.served += 1
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Counting.served = 0
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/echo"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_warm_up_is_served_and_not_counted(server: str) -> None:
    scenario = Scenario(name="direct", url=server, headers={}, processes={})
    result = drive(scenario, concurrency=1, duration=5.0, body_bytes=64, count=20, warm_up=0.3)
    assert result["ok"] == 20 and result["errors"] == 0
    assert result["warm_up_ok"] > 0
    # Served, and not counted (a request cut off at the warm-up's end may be served
    # without being counted as a success).
    assert 20 + result["warm_up_ok"] <= _Counting.served <= 21 + result["warm_up_ok"]

    _Counting.served = 0
    cold = drive(scenario, concurrency=1, duration=5.0, body_bytes=64, count=20)
    assert cold["ok"] == 20 and cold["warm_up_ok"] == 0
    assert _Counting.served == 20  # no warm-up asked, none run
