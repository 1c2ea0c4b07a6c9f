"""A registry's answer leaves in one write (registries/coalesce.py): what is written in
one turn of the event loop reaches the socket as one call, in order, and nothing held is
lost when the connection is closed; a real server answers through it byte for byte."""

from __future__ import annotations

import asyncio
import http.client
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from gateway.sandbox.localnet import free_port, wait_http
from registries.ariregister.app import create_app
from registries.coalesce import CoalescingTransport

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning
    )
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration


class _Socket(asyncio.Transport):
    """The far end of the transport: what reached it, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.calls.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_the_writes_of_one_turn_are_one_call() -> None:
    async def main() -> tuple[list[bytes], list[bytes], list[bytes]]:
        inner = _Socket()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"")
        transport.write(memoryview(b"ok"))
        assert inner.calls == []  # held until the end of the turn
        await asyncio.sleep(0)
        first = list(inner.calls)
        transport.write(b"second")
        await asyncio.sleep(0)
        second = list(inner.calls)
        transport.write(b"last words")
        transport.close()  # flushes before it closes
        return first, second, inner.calls

    first, second, last = asyncio.run(main())
    assert first == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    assert second == [*first, b"second"]
    assert last == [*second, b"last words"]


def test_a_registry_served_through_it_answers_as_in_process(tmp_path: Path) -> None:
    """The e-Business Register in its own process, asked on one kept-alive connection:
    each answer (a card, a refusal, the large OpenAPI document) as the app gives it."""
    paths = ["/ettevotted/16543210", "/ettevotted/99999999", "/openapi.json", "/health"]
    with TestClient(create_app(tmp_path / "in-process.sqlite")) as client:
        expected = [(r.status_code, r.content) for r in map(client.get, paths)]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "registries.ariregister", "--db", str(tmp_path / "served.sqlite"),
         "--port", str(port)],
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        answers = []
        for path in paths * 2:
            conn.request("GET", path)
            resp = conn.getresponse()
            answers.append((resp.status, resp.read()))
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert answers == expected * 2
