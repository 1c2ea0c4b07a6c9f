"""A registry process that can be told to misbehave, for the fault harness.

It answers ``/personen`` with a small JSON document that echoes the request's size, and
``POST /_mode/<mode>`` switches how it answers from then on: ``ok``, ``slow`` (answers,
late: ``SLOW_SECONDS``), ``garbage`` (bytes that are not HTTP, then hang up) or ``never``
(holds the connection open without answering until the mode changes). A separate process
so that the harness can also ``kill -9`` it.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "slow", "garbage", "never")
SLOW_SECONDS = 1.5
"""Late but within the harness's service timeout: a slow registry costs latency only."""


class _State:
    def __init__(self) -> None:
        self.mode = "ok"
        self.changed = threading.Condition()

    def set(self, mode: str) -> None:
        with self.changed:
            self.mode = mode
            self.changed.notify_all()

    def wait_until_not(self, mode: str, limit: float) -> None:
        deadline = time.monotonic() + limit
        with self.changed:
            while self.mode == mode and time.monotonic() < deadline:
                self.changed.wait(deadline - time.monotonic())


def handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith("/_mode/"):
                mode = self.path.removeprefix("/_mode/")
                if mode not in MODES:
                    self._send(400, {"error": f"unknown mode {mode}"})
                    return
                state.set(mode)
                self._send(200, {"mode": mode})
                return
            if self.path == "/health":
                self._send(200, {"mode": state.mode})
                return
            mode = state.mode
            if mode == "garbage":
                self.wfile.write(b"\x00\xffnot http at all\r\n\r\n")
                self.close_connection = True
                return
            if mode == "never":
                state.wait_until_not("never", 600)
                self.close_connection = True
                return
            if mode == "slow":
                time.sleep(SLOW_SECONDS)
            self._send(200, {"ergebnis": "gefunden", "bytes": len(body)})

        def _send(self, status: int, payload: dict[str, object]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the node gave up on a late answer
                self.close_connection = True

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="a registry that can misbehave on request")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(_State()))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
