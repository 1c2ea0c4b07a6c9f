"""A loopback federation in real processes, shared by the integration tests of a module.

Soest (consumer) and Lippstadt (provider) run as ``gateway node serve`` processes.
Iserlohn is registered in the directory but not started: its keys serve as a peer that
holds valid, registered certificates and misbehaves. The registry is a small HTTP server
in the test process that records every call, so tests can assert it was *not* called.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.localnet import City, LocalNet, ServiceSpec

SOEST = City("Stadt Soest", "05974040", ("gewerbeamt", "ordnungsamt"))
LIPPSTADT = City("Stadt Lippstadt", "05974028", ("melderegister",))
ISERLOHN = City("Stadt Iserlohn", "05962024", ("buergerbuero",))
SERVICE = LIPPSTADT.subsystem("melderegister").service("einfacheAuskunft")
DISABLED = LIPPSTADT.subsystem("melderegister").service("abgeschaltet")
GEWERBEAMT = SOEST.subsystem("gewerbeamt")
ORDNUNGSAMT = SOEST.subsystem("ordnungsamt")
SLOW = LIPPSTADT.subsystem("melderegister").service("langsam")
"""A service whose registry path (``/langsam``) answers only after ``SLOW_SECONDS``."""
SLOW_SECONDS = 3.0


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordingRegistry:
    """Answers every request with a small JSON document and remembers it."""

    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    release: threading.Event = field(default_factory=threading.Event)
    """Set at teardown: lets ``/langsam`` calls still waiting finish at once."""

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self) -> int:
        with self.lock:
            return len(self.calls)


def _handler(registry: RecordingRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with registry.lock:
                registry.calls.append(
                    Call(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
            if "/langsam" in self.path:
                # Slower than any timeout a test gives this path; the caller has usually
                # hung up by the time this answers, so a broken pipe is expected.
                registry.release.wait(SLOW_SECONDS)
                payload = b'{"ergebnis":"zu spaet"}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    self.close_connection = True
                return
            if "/redirect" in self.path:
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if "/fail" in self.path:
                payload = b'{"registry":"error"}'
                self.send_response(503)
            else:
                payload = json.dumps(
                    {"ergebnis": "gefunden", "path": self.path, "echo": body.decode("latin-1")}
                ).encode()
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Registry", "recording")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def slow_service(registry: RecordingRegistry, timeout_seconds: float = 0.5) -> ServiceSpec:
    """``SLOW`` at the registry's ``/langsam`` path, with a timeout well below its delay."""
    assert timeout_seconds < SLOW_SECONDS
    return ServiceSpec(
        id=SLOW,
        url=f"{registry.url}/langsam",
        openapi_url=None,
        allowed=(GEWERBEAMT,),
        timeout_seconds=timeout_seconds,
    )


@pytest.fixture(scope="module")
def registry() -> Iterator[RecordingRegistry]:
    reg = RecordingRegistry()
    reg.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(reg))
    thread = threading.Thread(target=reg.server.serve_forever, daemon=True)
    thread.start()
    yield reg
    reg.release.set()
    reg.server.shutdown()
    reg.server.server_close()


@pytest.fixture(scope="module")
def net(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    root: Path = tmp_path_factory.mktemp("net")
    federation = LocalNet.create(root, [SOEST, LIPPSTADT, ISERLOHN], datetime.now(UTC))
    federation.add_service(
        ServiceSpec(
            id=SERVICE,
            url=f"{registry.url}/personen",
            openapi_url=None,
            allowed=(GEWERBEAMT, ISERLOHN.subsystem("buergerbuero")),
            methods=("GET", "POST"),
        )
    )
    federation.add_service(
        ServiceSpec(
            id=DISABLED,
            url=f"{registry.url}/aus",
            openapi_url=None,
            allowed=(GEWERBEAMT,),
            enabled=False,
        )
    )
    federation.write_configs()
    try:
        federation.start_node(SOEST.ags)
        federation.start_node(LIPPSTADT.ags)
        yield federation
    finally:
        federation.stop()
