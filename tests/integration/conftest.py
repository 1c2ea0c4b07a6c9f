"""A loopback federation in real processes, shared by the integration tests of a module.

Soest (consumer) and Lippstadt (provider) run as ``gateway node serve`` processes.
Iserlohn is registered in the directory but not started: its keys serve as a peer that
holds valid, registered certificates and misbehaves. The registry is a small HTTP server
in the test process that records every call, so tests can assert it was *not* called.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from gateway.core.encoding import b64url
from gateway.core.envelope import MAX_HEADER_NAME, MAX_HEADER_VALUE, MAX_HEADERS
from gateway.keys.files import load_certificate, load_private_key
from gateway.node.wire import AUTH_OCSP_HEADER, SIGN_OCSP_HEADER
from gateway.pki.ocsp import build_ocsp_request
from gateway.sandbox.cities import City
from gateway.sandbox.localnet import LocalNet, ServiceSpec

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
GZIP_ANSWER = gzip.compress(b'{"ergebnis":"gefunden","komprimiert":true}', mtime=0)
"""What the registry answers, with ``Content-Encoding: gzip``, on any ``/gzip`` path."""
OVERSIZE_HEADERS: dict[str, list[tuple[str, str]]] = {
    "/viele-header": [(f"X-Viel-{i}", "1") for i in range(MAX_HEADERS + 1)],
    "/langer-name": [("X-" + "n" * (MAX_HEADER_NAME - 1), "1")],
    "/langer-wert": [("X-Lang", "a" * (MAX_HEADER_VALUE + 1))],
    "/grosse-header": [(f"X-Gross-{i}", "a" * 4096) for i in range(16)],
    "/euro-zeichen": [("X-Waehrung", "\xe2\x82\xac")],  # sent as the UTF-8 bytes of '€'
}
"""Extra response headers the registry sends on these paths, each set breaking one rule
of the signed response header: too many, a long name, a long value, too large together,
a character outside Latin-1."""


def call(net: LocalNet) -> httpx.Response:
    """Soest's trade office asks Lippstadt's Melderegister through Soest's plain port."""
    return httpx.get(
        f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": str(GEWERBEAMT)},
        timeout=30,
    )


def fetch_ocsp(net: LocalNet, cert: x509.Certificate) -> bytes:
    """The DER OCSP response the federation's responder gives for ``cert`` right now."""
    response = httpx.post(
        net.trust.ocsp_url,
        content=build_ocsp_request(cert, load_certificate(net.ca_cert)),
        headers={"Content-Type": "application/ocsp-request"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.content


def ocsp_headers(net: LocalNet, auth_ags: str, signer_ags: str | None = None) -> dict[str, str]:
    """Node-to-node OCSP headers, as ``auth_ags``'s node would send them when it signs
    with ``signer_ags``'s (default: its own) signing certificate."""
    auth = load_certificate(net.nodes[auth_ags].auth_cert)
    sign = load_certificate(net.nodes[signer_ags or auth_ags].sign_cert)
    return {
        AUTH_OCSP_HEADER: b64url(fetch_ocsp(net, auth)),
        SIGN_OCSP_HEADER: b64url(fetch_ocsp(net, sign)),
    }


def craft_ocsp(
    net: LocalNet,
    cert: x509.Certificate,
    *,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    this_update: datetime | None = None,
    next_update: datetime | None = None,
    signed_by: tuple[Path, Path] | None = None,
    passphrase: bytes | None = None,
) -> bytes:
    """An OCSP response about ``cert`` with chosen times and status, signed with the
    federation's real responder key, or with ``signed_by`` (certificate and key files)
    to forge one (``passphrase`` opens an encrypted key). Built with ``cryptography``
    directly: ``build_ocsp_response`` refuses to sign for a responder the CA did not
    delegate, which is what a forger does."""
    now = datetime.now(UTC).replace(microsecond=0)
    this_update = this_update or now
    next_update = next_update or this_update + timedelta(hours=1)
    cert_path, key_path = signed_by or (
        net.trust.directory / "ocsp.pem",
        net.trust.directory / "ocsp.key",
    )
    signer = load_certificate(cert_path)
    revoked = status is ocsp.OCSPCertStatus.REVOKED
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert,
            load_certificate(net.ca_cert),
            hashes.SHA256(),
            status,
            this_update,
            next_update,
            this_update - timedelta(minutes=1) if revoked else None,
            x509.ReasonFlags.key_compromise if revoked else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, signer)
        .certificates([signer])
    )
    key = load_private_key(key_path, passphrase)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


SUBJECT_IDNR = "47110815123"
"""The person a ``/betroffen`` answer names in ``X-Data-Subject``."""


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
            if "/gzip" in self.path:
                # A registry that compresses its answer: the client must get these bytes.
                payload = GZIP_ANSWER
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
            elif "/fail" in self.path:
                payload = b'{"registry":"error"}'
                self.send_response(503)
            elif "/betroffen" in self.path:
                # An answer that names the person it discloses (the data tracker's header).
                payload = b'{"ergebnis":"gefunden","idnr":"' + SUBJECT_IDNR.encode() + b'"}'
                self.send_response(200)
                self.send_header("X-Data-Subject", SUBJECT_IDNR)
            elif self.path[self.path.rfind("/") :] in OVERSIZE_HEADERS:
                payload = b'{"ergebnis":"gefunden"}'
                self.send_response(200)
                for name, value in OVERSIZE_HEADERS[self.path[self.path.rfind("/") :]]:
                    self.send_header(name, value)
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
    # A short poll: shutdown() waits for the loop's next look, 0.5 s by default.
    thread = threading.Thread(
        target=reg.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
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
