"""The consumer edge authenticates information systems by their connection type.

Real processes and sockets on 127.0.0.1: Soest's node hosts three subsystems, one per
connection type (``gewerbeamt`` https, ``ordnungsamt`` https-no-auth, ``bauamt`` http);
Lippstadt provides the service, whose registry records every call. A refused request
must reach neither the registry nor either message log.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gateway.core.errors import Code
from gateway.keys.files import new_self_signed
from gateway.messagelog import read_entries
from gateway.node.clientauth import ClientCertStore
from gateway.node.config import load_config
from gateway.node.server import Node
from gateway.pki.keys import fingerprint_sha256
from gateway.sandbox.cities import City
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import LIPPSTADT, SERVICE, RecordingRegistry

SOEST = City("Stadt Soest", "05974040", ("gewerbeamt", "ordnungsamt", "bauamt"))
GEWERBEAMT = SOEST.subsystem("gewerbeamt")
ORDNUNGSAMT = SOEST.subsystem("ordnungsamt")
BAUAMT = SOEST.subsystem("bauamt")
REFUSED = Code.CLIENT_SSL_AUTHENTICATION_FAILED.value


@pytest.fixture(scope="module")
def tls_net(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    root: Path = tmp_path_factory.mktemp("tls-net")
    net = LocalNet.create(root, [SOEST, LIPPSTADT], datetime.now(UTC))
    soest = net.nodes[SOEST.ags]
    soest.connection_type = "https"
    soest.connection_types = {"ordnungsamt": "https-no-auth", "bauamt": "http"}
    net.add_service(
        ServiceSpec(
            id=SERVICE,
            url=f"{registry.url}/personen",
            openapi_url=None,
            allowed=(GEWERBEAMT, ORDNUNGSAMT, BAUAMT),
        )
    )
    net.write_configs()
    # An expired certificate, registered for the trade office all the same.
    expired = soest.directory / "information-systems" / "expired.pem"
    cert = new_self_signed(
        expired,
        expired.with_suffix(".key"),
        "expired",
        datetime.now(UTC) - timedelta(days=30),
        days=1,
        client=True,
    )
    ClientCertStore(soest.client_certs).add(GEWERBEAMT, cert)
    # A self-signed certificate nobody registered.
    stranger = soest.directory / "stranger.pem"
    new_self_signed(
        stranger, stranger.with_suffix(".key"), "stranger", datetime.now(UTC), days=30, client=True
    )
    try:
        net.start_node(SOEST.ags)
        net.start_node(LIPPSTADT.ags)
        yield net
    finally:
        net.stop()


def _tls(net: LocalNet, cert: Path | None = None) -> ssl.SSLContext:
    """Trust Soest's internal TLS certificate; present ``cert`` (key beside it)."""
    files = net.nodes[SOEST.ags]
    ctx = ssl.create_default_context(cafile=str(files.internal_cert))
    if cert is not None:
        ctx.load_cert_chain(cert, cert.with_suffix(".key"))
    return ctx


def _cert(net: LocalNet, subsystem: str) -> Path:
    return net.nodes[SOEST.ags].client_cert(subsystem)


def _call(url: str, client: str, verify: ssl.SSLContext | bool = True) -> httpx.Response:
    return httpx.get(
        f"{url}/r1/{SERVICE}",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": client},
        verify=verify,
        timeout=30,
    )


def _logged(net: LocalNet) -> int:
    return sum(len(read_entries(net.nodes[a].messagelog)) for a in (SOEST.ags, LIPPSTADT.ags))


def _node_log(net: LocalNet) -> str:
    return (net.root / "logs" / f"node-{SOEST.ags}.log").read_text("utf-8")


def _assert_refused(
    net: LocalNet, registry: RecordingRegistry, reply: httpx.Response, before: tuple[int, int]
) -> None:
    """Refused with the documented code, before anything reached the provider or a log,
    and written to the node's operational log as a refusal."""
    assert reply.status_code == 400, reply.text
    assert reply.headers["X-Road-Error"] == REFUSED
    assert reply.json()["type"] == REFUSED
    assert (registry.count(), _logged(net)) == before
    assert f"({reply.json()['detail']}): {REFUSED}" in _node_log(net)


def _state(net: LocalNet, registry: RecordingRegistry) -> tuple[int, int]:
    return registry.count(), _logged(net)


def test_registered_certificate_is_served(tls_net: LocalNet, registry: RecordingRegistry) -> None:
    files = tls_net.nodes[SOEST.ags]
    before = registry.count()
    reply = _call(
        files.consumer_tls_url, str(GEWERBEAMT), _tls(tls_net, _cert(tls_net, "gewerbeamt"))
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["X-Road-Client"] == str(GEWERBEAMT)
    assert registry.count() == before + 1


@pytest.mark.parametrize(
    "presented",
    ["none", "another subsystem's", "expired"],
)
def test_https_client_without_its_valid_certificate_is_refused(
    tls_net: LocalNet, registry: RecordingRegistry, presented: str
) -> None:
    files = tls_net.nodes[SOEST.ags]
    cert = {
        "none": None,
        "another subsystem's": _cert(tls_net, "ordnungsamt"),
        "expired": files.directory / "information-systems" / "expired.pem",
    }[presented]  # the Ordnungsamt's is registered, for the Ordnungsamt only
    before = _state(tls_net, registry)
    reply = _call(files.consumer_tls_url, str(GEWERBEAMT), _tls(tls_net, cert))
    _assert_refused(tls_net, registry, reply, before)


def test_plain_http_for_an_https_client_is_refused(
    tls_net: LocalNet, registry: RecordingRegistry
) -> None:
    files = tls_net.nodes[SOEST.ags]
    for client in (GEWERBEAMT, ORDNUNGSAMT):
        before = _state(tls_net, registry)
        _assert_refused(tls_net, registry, _call(files.consumer_url, str(client)), before)


def test_unknown_certificate_fails_the_handshake(
    tls_net: LocalNet, registry: RecordingRegistry
) -> None:
    """The TLS port trusts only registered certificates: a stranger gets no HTTP answer."""
    files = tls_net.nodes[SOEST.ags]
    before = _state(tls_net, registry)
    with pytest.raises(httpx.TransportError):
        _call(
            files.consumer_tls_url, str(GEWERBEAMT), _tls(tls_net, files.directory / "stranger.pem")
        )
    assert _state(tls_net, registry) == before


def test_https_no_auth_and_http_clients(tls_net: LocalNet, registry: RecordingRegistry) -> None:
    files = tls_net.nodes[SOEST.ags]
    before = registry.count()
    assert _call(files.consumer_tls_url, str(ORDNUNGSAMT), _tls(tls_net)).status_code == 200
    assert _call(files.consumer_url, str(BAUAMT)).status_code == 200
    assert _call(files.consumer_tls_url, str(BAUAMT), _tls(tls_net)).status_code == 200
    assert registry.count() == before + 3


def test_certificates_are_added_and_removed_with_the_cli_without_restart(
    tls_net: LocalNet, registry: RecordingRegistry, tmp_path: Path
) -> None:
    files = tls_net.nodes[SOEST.ags]
    fresh = tmp_path / "fresh.pem"
    cert = new_self_signed(
        fresh, fresh.with_suffix(".key"), "fresh", datetime.now(UTC), days=30, client=True
    )
    fp = fingerprint_sha256(cert)

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "node", "client-cert", *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    config = ["--config", str(files.config)]
    assert fp in cli("add", *config, str(GEWERBEAMT), str(fresh))
    assert fp in cli("list", *config, str(GEWERBEAMT))
    reply = _call(files.consumer_tls_url, str(GEWERBEAMT), _tls(tls_net, fresh))
    assert reply.status_code == 200, reply.text
    # Several certificates per subsystem: the one registered before still serves it.
    registered = _tls(tls_net, _cert(tls_net, "gewerbeamt"))
    assert _call(files.consumer_tls_url, str(GEWERBEAMT), registered).status_code == 200
    cli("remove", *config, str(GEWERBEAMT), fp)
    assert fp not in cli("list", *config)
    with pytest.raises(httpx.TransportError):
        _call(files.consumer_tls_url, str(GEWERBEAMT), _tls(tls_net, fresh))
    # Removing one certificate leaves the subsystem's others in place.
    registered = _tls(tls_net, _cert(tls_net, "gewerbeamt"))
    assert _call(files.consumer_tls_url, str(GEWERBEAMT), registered).status_code == 200


def test_audit_api_refuses_a_bare_client_header(tls_net: LocalNet) -> None:
    files = tls_net.nodes[SOEST.ags]
    denied = Code.AUDIT_ACCESS_DENIED.value
    header = {"X-Road-Client": str(GEWERBEAMT)}
    bare = httpx.get(f"{files.consumer_url}/audit/v1/entries", headers=header, timeout=30)
    assert bare.headers["X-Road-Error"] == denied, bare.text
    no_cert = httpx.get(
        f"{files.consumer_tls_url}/audit/v1/entries", headers=header, verify=_tls(tls_net)
    )
    assert no_cert.headers["X-Road-Error"] == denied, no_cert.text
    own = httpx.get(
        f"{files.consumer_tls_url}/audit/v1/entries",
        headers=header,
        verify=_tls(tls_net, _cert(tls_net, "gewerbeamt")),
    )
    assert own.status_code == 200, own.text
    assert {e["client"] for e in own.json()["entries"]} == {str(GEWERBEAMT)}


def test_no_plain_port_without_an_http_client(tls_net: LocalNet, tmp_path: Path) -> None:
    """Lippstadt's configuration made all-https: its node serves only the TLS port."""
    files = tls_net.nodes[LIPPSTADT.ags]
    config = load_config(files.config)
    config = config.model_copy(
        update={
            "clients": [],
            "globalconf": config.globalconf.model_copy(update={"state_dir": tmp_path / "gc"}),
            "node": config.node.model_copy(
                update={
                    "consumer_listen": "127.0.0.1:0",
                    "consumer_tls_listen": "127.0.0.1:0",
                    "peer_listen": "127.0.0.1:0",
                    "metrics_listen": "127.0.0.1:0",
                    "messagelog": files.directory / "all-https.sqlite",
                }
            ),
        }
    )
    assert not config.serves_plain_http()

    async def run() -> None:
        node = Node(config)
        endpoints = await node.start()
        try:
            assert endpoints.consumer_tls_url is not None
            assert endpoints.consumer_url == endpoints.consumer_tls_url
            assert endpoints.consumer_url.startswith("https://")
            ctx = ssl.create_default_context(cafile=str(files.internal_cert))
            async with httpx.AsyncClient(verify=ctx, timeout=30) as http:
                assert (await http.get(f"{endpoints.consumer_tls_url}/health")).status_code == 200
        finally:
            await node.stop()

    asyncio.run(run())
