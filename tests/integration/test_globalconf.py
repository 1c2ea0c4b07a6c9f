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
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.conf.globalconf import CaEntry, MemberEntry, NodeEntry
from gateway.core.ids import NodeId
from gateway.keys.files import load_certificate, new_key_and_csr
from gateway.pki.keys import fingerprint_sha256
from gateway.pki.profiles import CertKind
from gateway.sandbox.cities import City
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from gateway.trust.ca_store import init_ca, issue_from_csr
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
    ctx.load_cert_chain(files.auth_cert, files.directory / "auth.key", password=files.passphrase)
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


def readiness(net: LocalNet) -> httpx.Response:
    return httpx.get(f"{net.nodes[SOEST.ags].consumer_url}/health/ready", timeout=30)


def globalconf_check(response: httpx.Response) -> dict[str, Any]:
    """The ``globalconf`` entry of a ``/health/ready`` answer."""
    (check,) = (c for c in response.json()["checks"] if c["check"] == "globalconf")
    found: dict[str, Any] = check
    return found


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
    # A load balancer sees it too: unready for the configuration, with the refusal's reason.
    unready = readiness(gnet)
    assert unready.status_code == 503, unready.text
    assert not unready.json()["ready"]
    assert "expired" in globalconf_check(unready)["detail"], unready.text
    gnet.publish_globalconf([SOEST.ags, LIPPSTADT.ags])  # the central authority is back
    until(lambda: query(gnet, SOEST, str(GEWERBEAMT)), None, "Soest after a fresh version")
    assert globalconf_check(readiness(gnet))["ok"] is True


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
        .replace('"sign.', f'"{gnet.nodes[SOEST.ags].directory}/sign.')
        .replace('"internal-tls.', f'"{gnet.nodes[SOEST.ags].directory}/internal-tls.')
        .replace('"key-passphrase"', f'"{gnet.nodes[SOEST.ags].key_passphrase_file}"'),
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


class _Stub(BaseHTTPRequestHandler):
    """A provider node's TLS endpoint that records calls and answers nonsense."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        _Stub.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no")

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_a_newly_approved_ca_is_trusted_for_tls_after_one_refresh(
    gnet: LocalNet, tmp_path: Path
) -> None:
    """A node whose auth certificate comes from a second CA: refused in both directions
    while the configuration does not approve that CA, accepted once it does; the nodes'
    TLS server and client contexts are swapped without a restart."""
    now = datetime.now(UTC).replace(microsecond=0)
    init_ca(tmp_path / "ca2", "Second CA DE-NRW", now)
    node2 = NodeId(ISERLOHN.member.instance, "GOV", ISERLOHN.ags, "ss2")
    key, csr, cert = tmp_path / "auth.key", tmp_path / "auth.csr", tmp_path / "auth.pem"
    new_key_and_csr(CertKind.AUTH, node2, key, csr, ISERLOHN.name)
    issue_from_csr(tmp_path / "ca2", csr, CertKind.AUTH, cert, now, ip_addresses=("127.0.0.1",))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    stub = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    stub.socket = server_ctx.wrap_socket(stub.socket, server_side=True)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    repo = gnet.tuf
    assert repo is not None
    base = gnet.globalconf([SOEST.ags, LIPPSTADT.ags])
    registered = replace(
        base,
        members=(*base.members, MemberEntry(ISERLOHN.member, ISERLOHN.name, (BUERGERBUERO,))),
        nodes=(
            *base.nodes,
            NodeEntry(
                node2,
                f"https://127.0.0.1:{stub.server_address[1]}",
                (fingerprint_sha256(load_certificate(cert)),),
                (ISERLOHN.member, BUERGERBUERO),
            ),
        ),
    )
    service = BUERGERBUERO.service("auskunft")

    def consumer() -> httpx.Response:  # Soest's client context meets the CA2 server
        url = f"{gnet.nodes[SOEST.ags].consumer_url}/r1/{service}"
        return httpx.get(url, headers={"X-Road-Client": str(GEWERBEAMT)}, timeout=30)

    def provider() -> str:  # Lippstadt's server context meets a CA2 client
        ctx = ssl.create_default_context(cafile=str(gnet.ca_cert))
        ctx.check_hostname = False
        ctx.load_cert_chain(cert, key)
        url = f"{gnet.nodes[LIPPSTADT.ags].peer_url}/gw/v1/exchange"
        try:
            with httpx.Client(verify=ctx, timeout=30) as client:
                return code(client.post(url, content=b"")) or "no error"
        except httpx.HTTPError as exc:
            return f"TLS refused: {type(exc).__name__}"

    try:
        repo.publish(registered.to_bytes())  # the node is listed, its CA is not approved
        until(consumer, "server.clientproxy.ssl_authentication_failed", "Soest refusing CA2")
        assert provider().startswith("TLS refused"), "Lippstadt accepted a CA2 client"
        assert _Stub.seen == []
        approved = replace(
            registered,
            serial=registered.serial + 1,
            cas=(*registered.cas, CaEntry(load_certificate(tmp_path / "ca2" / "ca.pem"), ())),
        )
        gnet.serial = approved.serial
        repo.publish(approved.to_bytes())
        response = until(consumer, "server.clientproxy.invalid_message", "Soest trusting CA2")
        assert _Stub.seen, response.text  # the handshake succeeded, the request went out
        deadline = time.monotonic() + DEADLINE
        while (verdict := provider()).startswith("TLS refused"):
            assert time.monotonic() < deadline, "Lippstadt still refuses the CA2 client"
            time.sleep(0.2)
        assert verdict == "server.serverproxy.cert_validation"  # past TLS, to OCSP
    finally:
        stub.shutdown()
        stub.server_close()
        gnet.publish_globalconf([SOEST.ags, LIPPSTADT.ags])


def test_iserlohn_joins_through_the_central_while_others_exchange(
    tmp_path: Path, registry: RecordingRegistry
) -> None:
    """The partner-city flow against a real central authority (``gateway central serve``):
    Soest keeps querying Lippstadt throughout, without a single failure; Lippstadt
    refuses Iserlohn's node until the operator approves its registration, and accepts it
    one refresh after."""
    net = LocalNet.create(tmp_path, [SOEST, LIPPSTADT, ISERLOHN], datetime.now(UTC), central=True)
    net.add_service(
        ServiceSpec(
            id=SERVICE,
            url=f"{registry.url}/personen",
            openapi_url=None,
            allowed=(GEWERBEAMT, BUERGERBUERO),
        )
    )
    failures: list[str] = []
    exchanges = 0
    stop = threading.Event()

    def keep_exchanging() -> None:
        nonlocal exchanges
        while not stop.is_set():
            try:
                response = query(net, SOEST, str(GEWERBEAMT))
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code != 200:
                failures.append(response.text)
            exchanges += 1

    traffic = threading.Thread(target=keep_exchanging, daemon=True)
    try:
        net.start_trust()
        net.start_central()
        for city in (SOEST, LIPPSTADT):
            net.join(city.ags, datetime.now(UTC))
        net.write_configs(globalconf_refresh_seconds=1)
        net.start_node(SOEST.ags)
        net.start_node(LIPPSTADT.ags)
        traffic.start()
        pending = net.join(ISERLOHN.ags, datetime.now(UTC), approve=False)
        assert [r["status"] for r in pending.requests] == ["pending", "pending"]
        assert code(peer_probe(net, ISERLOHN)) == "server.serverproxy.ssl_authentication_failed"
        for request in pending.requests:  # the node first, then its client
            net.central_admin("POST", f"/requests/{request['id']}/approve")
        until(
            lambda: peer_probe(net, ISERLOHN),
            "server.serverproxy.cert_validation",  # past the lookup: registered
            "Lippstadt accepting Iserlohn after the approval",
        )
        net.start_node(ISERLOHN.ags)
        until(lambda: query(net, ISERLOHN, str(BUERGERBUERO)), None, "Iserlohn's first query")
        before = exchanges
        deadline = time.monotonic() + DEADLINE
        while exchanges == before:  # at least one more exchange after Iserlohn started
            assert time.monotonic() < deadline, failures
            time.sleep(0.1)
    finally:
        stop.set()
        if traffic.is_alive():
            traffic.join(timeout=60)
        net.stop()
    assert failures == []
    assert exchanges > 0


def test_a_global_group_from_the_central_decides_access_within_one_refresh(
    tmp_path: Path, registry: RecordingRegistry
) -> None:
    """A global group defined at a real central authority, used as the subject of a
    provider's access right: a client is allowed once the operator adds it to the group
    and refused again once removed, each one configuration refresh after the change."""
    net = LocalNet.create(tmp_path, [SOEST, LIPPSTADT], datetime.now(UTC), central=True)
    # No access right for any client by name: only the group's grant below.
    net.add_service(
        ServiceSpec(id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=())
    )
    group = "DE-NRW/meldeauskunft"

    def set_members(*members: str) -> int:
        """Replace the group's members at the central; the serial that published it."""
        answer = net.central_admin(
            "PUT",
            f"/groups/{group}",
            {"description": "Behörden mit einfacher Melderegisterauskunft", "members": members},
        )
        assert answer["members"] == sorted(members)
        return int(net.central_admin("GET", "/configuration")["serial"])

    def serial_at_lippstadt() -> int:
        health = httpx.get(f"{net.nodes[LIPPSTADT.ags].consumer_url}/health", timeout=10)
        return int(health.json()["globalconf"]["serial"])

    try:
        net.start_trust()
        net.start_central()
        for city in (SOEST, LIPPSTADT):
            net.join(city.ags, datetime.now(UTC))
        set_members()  # the group exists, with nobody in it yet
        net.write_configs(globalconf_refresh_seconds=1)
        config = net.nodes[LIPPSTADT.ags].config
        config.write_text(
            config.read_text("utf-8")
            + "\n".join(["", "[[access]]", f'service = "{SERVICE}"', f'group = "{group}"', ""]),
            "utf-8",
        )
        net.start_node(SOEST.ags)
        net.start_node(LIPPSTADT.ags)
        calls = registry.count()
        refused = query(net, SOEST, str(GEWERBEAMT))
        assert code(refused) == "server.serverproxy.access_denied", refused.text

        added = set_members(str(GEWERBEAMT))
        allowed = until(lambda: query(net, SOEST, str(GEWERBEAMT)), None, "member of the group")
        assert allowed.json()["ergebnis"] == "gefunden"
        assert serial_at_lippstadt() >= added  # decided on the version with the member
        assert registry.count() > calls

        removed = set_members()
        until(
            lambda: query(net, SOEST, str(GEWERBEAMT)),
            "server.serverproxy.access_denied",
            "removed from the group",
        )
        assert serial_at_lippstadt() >= removed
    finally:
        net.stop()
