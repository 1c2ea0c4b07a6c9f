"""The provider's node calls an ``https://`` registry over TLS, trusting only what the
service's section configures (docs/protocol.md section 9,
"Registries over TLS").

The registries are real TLS servers on 127.0.0.1 whose certificates a test CA issued
(THROWAWAY TEST FIXTURES, made per run in a temporary directory). A refusal must come
before the registry sees a request: its recorder stays empty.
"""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.core.ids import ServiceId
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import (
    GEWERBEAMT,
    ISERLOHN,
    LIPPSTADT,
    SOEST,
    RecordingRegistry,
    _handler,
)

pytestmark = pytest.mark.integration

MELDE = LIPPSTADT.subsystem("melderegister")
PINNED = MELDE.service("tlsGepinnt")
BY_CA = MELDE.service("tlsPerCa")
WRONG_PIN = MELDE.service("tlsFalscherPin")
UNTRUSTED_CA = MELDE.service("tlsFremdeCa")
WRONG_HOST = MELDE.service("tlsFalscherName")
WITH_CLIENT_CERT = MELDE.service("tlsMitClientZertifikat")
WITHOUT_CLIENT_CERT = MELDE.service("tlsOhneClientZertifikat")
SSL_FAILED = "server.serverproxy.service_failed.ssl_authentication_failed"


@dataclass
class Pki:
    """A test CA and the files it issued, all throwaway."""

    directory: Path
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    cert: x509.Certificate | None = None

    def __post_init__(self) -> None:
        now = datetime.now(UTC)
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"Test CA {self.directory.name}")]
        )
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def issue(
        self, label: str, *, server: bool, names: list[x509.GeneralName]
    ) -> tuple[Path, Path]:
        """A leaf certificate and key (PEM files) for ``names``."""
        assert self.cert is not None
        now = datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = self.directory / f"{label}.pem", self.directory / f"{label}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_file, key_file


def fingerprint(cert_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


LOOPBACK: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]


@dataclass
class TlsRegistry:
    """A recording registry behind TLS; ``peers`` holds the client certificate (DER)
    of each call, ``b""`` when none was presented."""

    recorder: RecordingRegistry
    server: ThreadingHTTPServer
    peers: list[bytes]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"


def start_tls_registry(cert: Path, key: Path, client_ca: Path | None = None) -> TlsRegistry:
    recorder = RecordingRegistry()
    peers: list[bytes] = []
    base = _handler(recorder)

    class Handler(base):  # type: ignore[valid-type,misc]
        def do_GET(self) -> None:
            assert isinstance(self.connection, ssl.SSLSocket)
            peers.append(self.connection.getpeercert(binary_form=True) or b"")
            super().do_GET()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    recorder.server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return TlsRegistry(recorder, server, peers)


@dataclass
class Setup:
    net: LocalNet
    plain: TlsRegistry
    """Serves the CA-issued certificate for 127.0.0.1; asks for no client certificate."""
    wrong_host: TlsRegistry
    """Serves a CA-issued certificate for another name only."""
    mutual: TlsRegistry
    """Requires a client certificate from the node's internal client CA."""
    client_cert: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("registry-tls")
    registry_ca = Pki(root / "registry-ca")
    other_ca = Pki(root / "other-ca")
    internal_ca = Pki(root / "internal-ca")
    cert, key = registry_ca.issue("registry", server=True, names=LOOPBACK)
    elsewhere = registry_ca.issue(
        "elsewhere", server=True, names=[x509.DNSName("melderegister.example")]
    )
    client_cert, client_key = internal_ca.issue("node-internal", server=False, names=LOOPBACK)
    other_cert, _ = other_ca.issue("other", server=True, names=LOOPBACK)
    plain = start_tls_registry(cert, key)
    wrong_host = start_tls_registry(*elsewhere)
    mutual = start_tls_registry(cert, key, client_ca=internal_ca.ca_file)
    registries = [plain, wrong_host, mutual]

    def spec(
        service: ServiceId, registry: TlsRegistry, **tls: str | tuple[str, ...]
    ) -> ServiceSpec:
        return ServiceSpec(
            id=service,
            url=f"{registry.url}/personen",
            openapi_url=None,
            allowed=(GEWERBEAMT,),
            tls=tuple(tls.items()),
        )

    net = LocalNet.create(root / "net", [SOEST, LIPPSTADT, ISERLOHN], datetime.now(UTC))
    ca = str(registry_ca.ca_file)
    for service_spec in (
        spec(PINNED, plain, tls_pin_sha256=(fingerprint(cert),)),
        spec(BY_CA, plain, tls_ca=ca),
        spec(WRONG_PIN, plain, tls_pin_sha256=(fingerprint(other_cert),)),
        spec(UNTRUSTED_CA, plain, tls_ca=str(other_ca.ca_file)),
        spec(WRONG_HOST, wrong_host, tls_ca=ca),
        spec(
            WITH_CLIENT_CERT,
            mutual,
            tls_ca=ca,
            tls_client_cert=str(client_cert),
            tls_client_key=str(client_key),
        ),
        spec(WITHOUT_CLIENT_CERT, mutual, tls_ca=ca),
    ):
        net.add_service(service_spec)
    net.write_configs()
    try:
        net.start_node(SOEST.ags)
        net.start_node(LIPPSTADT.ags)
        yield Setup(net, plain, wrong_host, mutual, client_cert)
    finally:
        net.stop()
        for registry in registries:
            registry.server.shutdown()
            registry.server.server_close()


def call(setup: Setup, service: ServiceId) -> httpx.Response:
    return httpx.get(
        f"{setup.net.nodes[SOEST.ags].consumer_url}/r1/{service}?familienname=Schmidt",
        headers={"X-Road-Client": str(GEWERBEAMT)},
        timeout=30,
    )


@pytest.mark.parametrize("service", [PINNED, BY_CA])
def test_a_trusted_registry_is_called_over_tls(setup: Setup, service: ServiceId) -> None:
    before = setup.plain.recorder.count()
    response = call(setup, service)
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "/personen?familienname=Schmidt"
    assert setup.plain.recorder.count() == before + 1
    assert setup.plain.recorder.calls[-1].headers["x-road-client"] == str(GEWERBEAMT)


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        (WRONG_PIN, "matches none of the service's tls_pin_sha256"),
        (UNTRUSTED_CA, "unable to get local issuer certificate"),
        (WRONG_HOST, "mismatch"),
    ],
)
def test_an_untrusted_registry_is_never_sent_the_request(
    setup: Setup, service: ServiceId, reason: str
) -> None:
    before = setup.plain.recorder.count() + setup.wrong_host.recorder.count()
    response = call(setup, service)
    assert response.status_code == 500, response.text
    assert response.headers["X-Road-Error"] == SSL_FAILED
    message = response.json()["message"]
    assert str(service) in message
    assert reason in message
    assert setup.plain.recorder.count() + setup.wrong_host.recorder.count() == before


def test_the_internal_client_certificate_is_presented_when_configured(setup: Setup) -> None:
    before = setup.mutual.recorder.count()
    response = call(setup, WITH_CLIENT_CERT)
    assert response.status_code == 200, response.text
    assert setup.mutual.recorder.count() == before + 1
    presented = x509.load_der_x509_certificate(setup.mutual.peers[-1])
    expected = x509.load_pem_x509_certificate(setup.client_cert.read_bytes())
    assert presented == expected


def test_a_registry_that_requires_a_client_certificate_gets_nothing_without_one(
    setup: Setup,
) -> None:
    before = setup.mutual.recorder.count()
    response = call(setup, WITHOUT_CLIENT_CERT)
    assert response.status_code == 500, response.text
    # TLS 1.3 lets the server refuse the missing certificate after the client finished
    # its handshake, so the node sees either a failed handshake or a closed connection.
    assert response.headers["X-Road-Error"] in (
        SSL_FAILED,
        "server.serverproxy.service_failed.network_error",
    )
    assert setup.mutual.recorder.count() == before
