"""Nodes on signed global configuration (``[globalconf]``), as real processes.

The configuration is published by the development TUF publisher of ``LocalNet``; the
nodes run the same TUF client they run against the central authority, refreshing every
second. Changes are observed by polling until the expected answer arrives (bounded by a
generous deadline), never by timing anything. The tests run in order on one federation:
join, exchange, removal, expiry, recovery.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.localnet import City, LocalNet, ServiceSpec
from tests.integration.conftest import RecordingRegistry

SOEST = City("Stadt Soest", "05974040", ("gewerbeamt",))
LIPPSTADT = City("Stadt Lippstadt", "05974028", ("melderegister",))
ISERLOHN = City("Stadt Iserlohn", "05962024", ("buergerbuero",))
SERVICE = LIPPSTADT.subsystem("melderegister").service("einfacheAuskunft")
GEWERBEAMT = SOEST.subsystem("gewerbeamt")
BUERGERBUERO = ISERLOHN.subsystem("buergerbuero")
DEADLINE = 30.0


@pytest.fixture(scope="module")
def gnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("gnet"), [SOEST, LIPPSTADT, ISERLOHN], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE,
            url=f"{registry.url}/personen",
            openapi_url=None,
            allowed=(GEWERBEAMT, BUERGERBUERO),
        )
    )
    federation.publish_globalconf([SOEST.ags, LIPPSTADT.ags])  # Iserlohn has not joined
    federation.write_configs(globalconf_refresh_seconds=1)
    try:
        for city in (SOEST, LIPPSTADT, ISERLOHN):
            federation.start_node(city.ags)
        yield federation
    finally:
        federation.stop()


def query(net: LocalNet, city: City, client: str) -> httpx.Response:
    url = f"{net.nodes[city.ags].consumer_url}/r1/{SERVICE}?familienname=Schmidt"
    return httpx.get(url, headers={"X-Road-Client": client}, timeout=30)


def peer_probe(net: LocalNet, as_city: City) -> httpx.Response:
    """An empty message to Lippstadt's peer port with ``as_city``'s auth certificate.

    A registered node gets past the TLS peer lookup and is refused for the missing OCSP
    status (``cert_validation``); an unregistered one is refused at the lookup.
    """
    files = net.nodes[as_city.ags]
    ctx = ssl.create_default_context(cafile=str(net.ca_cert))
    ctx.check_hostname = False
    ctx.load_cert_chain(files.auth_cert, files.directory / "auth.key")
    with httpx.Client(verify=ctx, timeout=30) as client:
        return client.post(f"{net.nodes[LIPPSTADT.ags].peer_url}/gw/v1/exchange", content=b"")


def code(response: httpx.Response) -> str | None:
    value: str | None = response.headers.get("X-Road-Error")
    return value


def until(probe: Callable[[], httpx.Response], want: str | None, what: str) -> httpx.Response:
    """Poll until ``probe`` answers with error code ``want`` (``None``: success)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        response = probe()
        if code(response) == want and (want is not None or response.status_code == 200):
            return response
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {response.status_code} {response.text}")
        time.sleep(0.2)


def test_two_nodes_exchange_on_global_configuration(gnet: LocalNet) -> None:
    response = query(gnet, SOEST, str(GEWERBEAMT))
    assert response.status_code == 200, response.text
    health = httpx.get(f"{gnet.nodes[SOEST.ags].consumer_url}/health", timeout=10).json()
    assert health["globalconf"]["serial"] == 1
    assert health["globalconf"]["outdated"] is False


def test_a_node_not_yet_registered_is_refused_then_accepted(gnet: LocalNet) -> None:
    response = query(gnet, ISERLOHN, str(BUERGERBUERO))
    assert code(response) == "client.unknown_member", response.text
    assert code(peer_probe(gnet, ISERLOHN)) == "server.serverproxy.ssl_authentication_failed"
    gnet.publish_globalconf()  # Iserlohn joins
    until(lambda: query(gnet, ISERLOHN, str(BUERGERBUERO)), None, "Iserlohn after joining")
    assert code(peer_probe(gnet, ISERLOHN)) == "server.serverproxy.cert_validation"


def test_a_removed_node_is_refused_within_one_refresh(gnet: LocalNet) -> None:
    gnet.publish_globalconf([SOEST.ags, LIPPSTADT.ags])  # Iserlohn leaves again
    until(
        lambda: peer_probe(gnet, ISERLOHN),
        "server.serverproxy.ssl_authentication_failed",
        "Lippstadt refusing the removed Iserlohn",
    )
    assert query(gnet, SOEST, str(GEWERBEAMT)).status_code == 200


def test_central_authority_down_for_less_than_expiry(gnet: LocalNet) -> None:
    repo = gnet.tuf
    assert repo is not None
    port = urlsplit(repo.base_url).port
    repo.shutdown()
    try:

        def health() -> dict[str, Any]:
            url = f"{gnet.nodes[SOEST.ags].consumer_url}/health"
            body: dict[str, Any] = httpx.get(url, timeout=10).json()["globalconf"]
            return body

        deadline = time.monotonic() + DEADLINE
        while health()["last_failure"] is None:  # a refresh has failed...
            assert time.monotonic() < deadline, "no refresh failure reported"
            time.sleep(0.2)
        assert health()["outdated"] is False
        response = query(gnet, SOEST, str(GEWERBEAMT))  # ...and traffic continues
        assert response.status_code == 200, response.text
    finally:
        repo.serve(port=port or 0)


def test_expired_configuration_refuses_every_exchange(gnet: LocalNet) -> None:
    gnet.publish_globalconf([SOEST.ags, LIPPSTADT.ags], expires_in=timedelta(seconds=3))
    # Nothing newer is published: once the metadata expires, both sides refuse.
    response = until(
        lambda: query(gnet, SOEST, str(GEWERBEAMT)),
        "server.clientproxy.global_conf_outdated",
        "Soest refusing on expired configuration",
    )
    assert "expired" in response.json()["message"]
    until(
        lambda: peer_probe(gnet, SOEST),
        "server.serverproxy.global_conf_outdated",
        "Lippstadt refusing on expired configuration",
    )
    deadline = time.monotonic() + DEADLINE
    while True:  # the refresh after the expiry reports TUF's verdict
        health = httpx.get(f"{gnet.nodes[SOEST.ags].consumer_url}/health", timeout=10).json()
        if "ExpiredMetadataError" in (health["globalconf"]["last_failure"] or ""):
            break
        assert time.monotonic() < deadline, health
        time.sleep(0.2)
    assert health["globalconf"]["outdated"] is True
    gnet.publish_globalconf([SOEST.ags, LIPPSTADT.ags])  # the central authority is back
    until(lambda: query(gnet, SOEST, str(GEWERBEAMT)), None, "Soest after a fresh version")


def test_restart_without_the_central_authority_uses_the_verified_cache(gnet: LocalNet) -> None:
    repo = gnet.tuf
    assert repo is not None
    port = urlsplit(repo.base_url).port
    repo.shutdown()
    try:
        gnet.stop_node(SOEST.ags)
        gnet.start_node(SOEST.ags)  # the cached metadata still names the persisted document
        response = query(gnet, SOEST, str(GEWERBEAMT))
        assert response.status_code == 200, response.text
        health = httpx.get(f"{gnet.nodes[SOEST.ags].consumer_url}/health", timeout=10).json()
        assert health["globalconf"]["last_failure"]  # says the repository was unreachable
    finally:
        repo.serve(port=port or 0)


def test_node_check_prints_the_anchor_fingerprint(gnet: LocalNet) -> None:
    assert gnet.tuf is not None
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "node",
            "check",
            "--config",
            str(gnet.nodes[SOEST.ags].config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"anchor root fingerprint (SHA-256): {gnet.tuf.anchor().fingerprint()}" in result.stdout


def test_a_wrong_anchor_refuses_to_start(gnet: LocalNet, tmp_path: Path) -> None:
    from gateway.conf.anchor import load_anchor, save_anchor
    from gateway.conf.tufdev import DevRepository

    other = DevRepository(tmp_path / "other", "DE-NRW")
    real = load_anchor(gnet.anchor_path)
    forged = type(real)(real.instance, real.metadata_url, real.targets_url, other.anchor().root)
    save_anchor(tmp_path / "anchor.json", forged)
    config = gnet.nodes[SOEST.ags].config.read_text("utf-8")
    broken = tmp_path / "node.toml"
    broken.write_text(
        config.replace(f'anchor = "{gnet.anchor_path}"', f'anchor = "{tmp_path / "anchor.json"}"')
        .replace('state_dir = "globalconf"', f'state_dir = "{tmp_path / "state"}"')
        .replace('messagelog = "messagelog.sqlite"', f'messagelog = "{tmp_path / "log.sqlite"}"')
        .replace('"auth.', f'"{gnet.nodes[SOEST.ags].directory}/auth.')
        .replace('"sign.', f'"{gnet.nodes[SOEST.ags].directory}/sign.'),
        "utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "node", "serve", "--config", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "UnsignedMetadataError" in result.stderr
    assert "does not start" in result.stderr
