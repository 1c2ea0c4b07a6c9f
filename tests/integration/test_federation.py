"""Two instances federated on loopback: DE-NRW (Soest, Lippstadt) and EE-TEST (RIK).

Each instance has its own signed configuration (its own TUF repository), CA, OCSP
responder and TSA, and lists the other's anchor; every node runs as a ``gateway node
serve`` process. The registries are the recording registry of conftest.py.
"""

from __future__ import annotations

import dataclasses
import json
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from gateway.central.service import Central
from gateway.conf.anchor import load_anchor
from gateway.conf.directory import TrustParameters
from gateway.core.encoding import b64url, format_time
from gateway.core.envelope import RequestHeader, body_sha256
from gateway.core.errors import ERROR_TABLE, Code
from gateway.core.ids import ClientId, GroupId
from gateway.core.jws import Signer
from gateway.keys.files import load_certificate, load_private_key
from gateway.messagelog import (
    read_cosignatures,
    read_entries,
    read_tree_heads,
    read_witness_alerts,
)
from gateway.node.wire import AUTH_OCSP_HEADER, SIGN_OCSP_HEADER
from gateway.sandbox.cities import ARIREGISTER_SERVICE, EE_INSTANCE, RIK, City
from gateway.sandbox.estonia import ariregister_service, create_estonia, federate, start_ariregister
from gateway.sandbox.localnet import HOST, LocalNet, NodeFiles, ServiceSpec, free_port
from gateway.sandbox.localpki import issue_node_certificates
from gateway.trust.ca_store import init_ca
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    SERVICE,
    SOEST,
    RecordingRegistry,
    fetch_ocsp,
)
from tests.integration.test_evil_peer import refused, tls_context

pytestmark = pytest.mark.integration

COMPANY = ARIREGISTER_SERVICE
REGISTRIOSAKOND = RIK.subsystem("registriosakond")
ROGUE = City("Petturite OÜ", "99999999", ("pettus",), instance=EE_INSTANCE)
"""An EE-TEST member whose node's certificates were issued by DE-NRW's CA."""
STRANGER = City("Võõras OÜ", "88888888", ("voor",), instance=EE_INSTANCE)
"""An EE-TEST member whose node's certificates come from a CA of neither instance."""
PARTNERS = GroupId(EE_INSTANCE, "partners")
"""A global group of EE-TEST, defined by EE-TEST's configuration alone."""
PARTNER_SERVICE = LIPPSTADT.subsystem("melderegister").service("partnerAuskunft")
"""Lippstadt's service granted to EE-TEST's group ``partners``, not to any client."""


@pytest.fixture(scope="module")
def two(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[tuple[LocalNet, LocalNet]]:
    root = tmp_path_factory.mktemp("federation")
    now = datetime.now(UTC)
    de = LocalNet.create(root / "de", [SOEST, LIPPSTADT], now)
    ee = create_estonia(root / "ee", now)
    rogue = NodeFiles(ROGUE, ee.root / ROGUE.key, free_port(), free_port())
    rogue.directory.mkdir(parents=True)
    issue_node_certificates(de.trust.ca_dir, rogue, now.replace(microsecond=0))
    ee.nodes[ROGUE.key] = rogue
    stranger = NodeFiles(STRANGER, ee.root / STRANGER.key, free_port(), free_port())
    stranger.directory.mkdir(parents=True)
    init_ca(root / "stranger-ca", "CA of no instance", now.replace(microsecond=0))
    issue_node_certificates(root / "stranger-ca", stranger, now.replace(microsecond=0))
    ee.nodes[STRANGER.key] = stranger
    federate(de, ee)
    register_port = free_port()
    ee.add_service(ariregister_service(register_port))
    # Lippstadt grants its Melderegister to the Estonian registration department, and to
    # the rogue member (so that only the CA check stands between it and the register).
    allowed = (REGISTRIOSAKOND, ROGUE.subsystem("pettus"))
    de.add_service(ServiceSpec(SERVICE, f"{registry.url}/personen", None, allowed))
    de.add_service(ServiceSpec(PARTNER_SERVICE, f"{registry.url}/personen", None, ()))
    # Logs stamped within seconds, and Soest's and RIK's nodes witnessing every second
    # (their peers include the other instance's nodes).
    de.parameters = ee.parameters = TrustParameters(timestamping_interval_seconds=1)
    de.write_configs()
    ee.write_configs()
    for files in (de.nodes[SOEST.ags], ee.nodes[RIK.ags]):
        with files.config.open("a", encoding="utf-8") as toml:
            toml.write("\n[audit]\nwitness_interval_seconds = 1\n")
    with de.nodes[LIPPSTADT.ags].config.open("a", encoding="utf-8") as toml:
        toml.write(f'\n[[access]]\nservice = "{PARTNER_SERVICE}"\ngroup = "{PARTNERS}"\n')
    try:
        start_ariregister(ee, register_port)
        de.start_node(SOEST.ags)
        de.start_node(LIPPSTADT.ags)
        ee.start_node(RIK.ags)
        yield de, ee
    finally:
        de.stop()
        ee.stop()


def _get(files: NodeFiles, service: object, client: object, **headers: str) -> httpx.Response:
    return httpx.get(
        f"{files.consumer_url}/r1/{service}",
        headers={"X-Road-Client": str(client), **headers},
        timeout=30,
    )


def test_soest_reads_an_estonian_company_through_both_instances(
    two: tuple[LocalNet, LocalNet],
) -> None:
    """The e-resident's company opens a branch in Soest: the trade office reads its
    registry card from the Estonian register, with the registration's case number."""
    de, ee = two
    soest = de.nodes[SOEST.ags]
    response = _get(soest, f"{COMPANY}/16543210", GEWERBEAMT, **{"X-Road-Issue": "GA-2026-0815"})
    assert response.status_code == 200, response.text
    company = response.json()
    assert (company["nimi"], company["ariregistri_kood"]) == ("Nordlicht Digital OÜ", "16543210")
    assert company["aadress"]["linn"] == "Tallinn"
    assert [p["nimi"] for p in company["kaardile_kantud_isikud"]] == ["Jonas Becker"]
    message_id = response.headers["X-Road-Request-Id"]
    consumer = read_entries(soest.messagelog, message_id=message_id)
    provider = read_entries(ee.nodes[RIK.ags].messagelog, message_id=message_id)
    assert [(e.role, e.kind) for e in consumer] == [
        ("consumer", "request"),
        ("consumer", "response"),
    ]
    assert [(e.role, e.kind) for e in provider] == [
        ("provider", "request"),
        ("provider", "response"),
    ]
    assert consumer[0].header == provider[0].header  # the same signed bytes on both sides
    assert b"GA-2026-0815" in provider[0].header
    # Without a case number RIK's node refuses before its register is asked.
    refused(_get(soest, f"{COMPANY}/16543210", GEWERBEAMT), "server.serverproxy.missing_issue")


def test_the_exchange_is_timestamped_and_witnessed_on_both_sides(
    two: tuple[LocalNet, LocalNet],
) -> None:
    """Soest's and RIK's logs each get a time stamp from their own instance's TSA over
    the entries of one cross-instance exchange, and each node co-signs the other's
    signed tree head: the other instance's node is one of its witnesses."""
    de, ee = two
    soest, rik = de.nodes[SOEST.ags], ee.nodes[RIK.ags]
    response = _get(soest, f"{COMPANY}/16543210", GEWERBEAMT, **{"X-Road-Issue": "GA-9"})
    assert response.status_code == 200, response.text
    message_id = response.headers["X-Road-Request-Id"]
    deadline = time.monotonic() + 60
    for files, other in ((soest, rik), (rik, soest)):
        [*_, last] = read_entries(files.messagelog, message_id=message_id)
        assert last.leaf_index is not None
        while True:
            heads = read_tree_heads(files.messagelog)
            cosigned = {
                row.tree_size
                for row in read_cosignatures(
                    files.messagelog, log_node=str(files.city.node), witness=str(other.city.node)
                )
            }
            stamped = [h for h in heads if h.tree_size > last.leaf_index]
            if stamped and any(size > last.leaf_index for size in cosigned):
                break
            assert time.monotonic() < deadline, (files.city.name, heads[-1:], cosigned)
            time.sleep(0.5)
        assert stamped[0].tsa_name == f"Development TSA {files.city.instance}"


def test_an_estonian_agency_reads_lippstadt_only_where_granted(
    two: tuple[LocalNet, LocalNet], registry: RecordingRegistry
) -> None:
    _, ee = two
    rik = ee.nodes[RIK.ags]
    response = _get(rik, SERVICE, REGISTRIOSAKOND)
    assert response.status_code == 200, response.text
    assert registry.calls[-1].headers["x-road-client"] == str(REGISTRIOSAKOND)
    before = registry.count()
    refused(_get(rik, SERVICE, RIK.subsystem("ariregister")), "server.serverproxy.access_denied")
    assert registry.count() == before


def test_metadata_lists_the_federated_instances_members(two: tuple[LocalNet, LocalNet]) -> None:
    de, _ = two
    response = httpx.get(
        f"{de.nodes[SOEST.ags].consumer_url}/listClients",
        params={"xRoadInstance": EE_INSTANCE},
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    listed = {m["id"]["member_code"] for m in response.json()["member"]}
    assert str(RIK.ags) in listed
    assert all(m["id"]["xroad_instance"] == EE_INSTANCE for m in response.json()["member"])
    # An instance DE-NRW does not federate with: nothing of it is known, nothing listed.
    other = httpx.get(
        f"{de.nodes[SOEST.ags].consumer_url}/listClients",
        params={"xRoadInstance": "FI-TEST"},
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert other.status_code == 200 and other.json() == {"member": []}


def test_health_shows_each_federated_instances_configuration(
    two: tuple[LocalNet, LocalNet],
) -> None:
    de, ee = two
    health = httpx.get(f"{de.nodes[SOEST.ags].consumer_url}/health", timeout=30).json()
    federated = health["globalconf"]["federated"]
    assert set(federated) == {EE_INSTANCE}
    assert federated[EE_INSTANCE]["serial"] == ee.serial
    assert federated[EE_INSTANCE]["outdated"] is False


def test_an_instance_not_federated_is_refused(two: tuple[LocalNet, LocalNet]) -> None:
    de, _ = two
    response = _get(de.nodes[SOEST.ags], "FI-TEST/GOV/0245437-2/rekisteri/haku", GEWERBEAMT)
    refused(response, "server.clientproxy.instance_not_federated")


def test_a_node_with_a_certificate_from_the_wrong_instances_ca_is_refused(
    two: tuple[LocalNet, LocalNet], registry: RecordingRegistry
) -> None:
    """EE-TEST's configuration lists the rogue node, but its certificates come from
    DE-NRW's CA: a CA certifies its own instance's nodes and members only."""
    de, ee = two
    rogue = ee.nodes[ROGUE.key]
    client = ROGUE.subsystem("pettus")
    header = RequestHeader(
        message_id=str(uuid.uuid4()),
        xroad_id="rogue-1",
        client=client,
        service=SERVICE,
        method="GET",
        path="",
        query="",
        headers=(),
        user_id=None,
        issue=None,
        created=format_time(datetime.now(UTC)),
        body_sha256=body_sha256(b""),
        body_length=0,
    )
    envelope = header.checked_bytes()
    signer = Signer(
        ROGUE.member,
        load_private_key(rogue.directory / "sign.key", rogue.passphrase),
        [load_certificate(rogue.sign_cert)],
    )
    auth = load_certificate(rogue.auth_cert)
    headers = {
        "X-Gw-Envelope": b64url(envelope),
        "X-Gw-Signature": signer.sign(envelope),
        AUTH_OCSP_HEADER: b64url(fetch_ocsp(de, auth)),
        SIGN_OCSP_HEADER: b64url(fetch_ocsp(de, load_certificate(rogue.sign_cert))),
    }
    ctx = tls_context(rogue.auth_cert, rogue.directory / "auth.key", de.ca_cert, rogue.passphrase)
    before = registry.count()
    with httpx.Client(verify=ctx, timeout=30) as http:
        response = http.post(
            f"{de.nodes[LIPPSTADT.ags].peer_url}/gw/v1/exchange", headers=headers, content=b""
        )
    refused(response, "server.serverproxy.wrong_instance_ca")
    assert "not a CA of EE-TEST" in response.text
    assert registry.count() == before


class ImpostorNode:
    """A TLS listener at an EE-TEST node's registered address presenting that node's
    registered certificate, as a node with a wrongly issued certificate would: it
    counts the requests that reach it (exchanges and witnesses' reads) and refuses each
    one in the provider's error format, which a consumer's node would relay to its
    client."""

    def __init__(self, files: NodeFiles) -> None:
        self.requests = 0
        code = Code.SP_ACCESS_DENIED
        refusal = json.dumps({"type": code.value, "message": "no", "detail": "no"}).encode()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.refuse()

            def do_GET(self) -> None:
                outer.requests += 1
                self.refuse()

            def refuse(self) -> None:
                self.send_response(ERROR_TABLE[code].status)
                self.send_header("X-Road-Error", code.value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(refusal)))
                self.end_headers()
                self.wfile.write(refusal)

            def log_message(self, *args: object) -> None:
                pass

        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(files.auth_cert, files.directory / "auth.key", files.passphrase)
        self.server = ThreadingHTTPServer((HOST, files.peer_port), Handler)
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("city", "code"),
    [
        (ROGUE, "server.clientproxy.wrong_instance_ca"),
        (STRANGER, "server.clientproxy.ssl_authentication_failed"),
    ],
    ids=["de-nrw-ca", "no-instances-ca"],
)
def test_a_provider_node_with_a_certificate_from_the_wrong_ca_gets_nothing(
    two: tuple[LocalNet, LocalNet], city: City, code: str
) -> None:
    """The consumer side: EE-TEST's configuration lists the node and pins its
    certificate, but DE-NRW's CA (or a CA of neither instance) issued it. Soest's node
    refuses right after the handshake: not a byte of the request reaches that node,
    its refusal is not relayed, nothing is logged."""
    de, ee = two
    impostor = ImpostorNode(ee.nodes[city.key])
    try:
        service = city.subsystem(city.subsystems[0]).service("andmed")
        response = _get(de.nodes[SOEST.ags], service, GEWERBEAMT)
        refused(response, code)
        assert impostor.requests == 0
    finally:
        impostor.close()
    message_id = response.headers["X-Road-Request-Id"]
    assert read_entries(de.nodes[SOEST.ags].messagelog, message_id=message_id) == []
    if city is ROGUE:
        assert "which is not a CA of the provider node's instance" in response.text


def test_the_witness_refuses_a_peer_with_a_certificate_from_the_wrong_instances_ca(
    two: tuple[LocalNet, LocalNet],
) -> None:
    """The witness side: Soest's node witnesses every node of both instances each
    second, the rogue EE-TEST node among them. It applies the client proxy's rule, so
    the rogue node, which presents its pinned certificate from DE-NRW's CA, is asked
    for no tree head at all and Soest's log records the refusal naming that CA."""
    de, ee = two
    soest = de.nodes[SOEST.ags]
    peer = str(ee.nodes[ROGUE.key].city.node)

    def refusals() -> list[str]:
        return [
            a.detail
            for a in read_witness_alerts(soest.messagelog)
            if a.peer == peer and a.code == "server.clientproxy.wrong_instance_ca"
        ]

    before = len(refusals())
    impostor = ImpostorNode(ee.nodes[ROGUE.key])
    try:
        deadline = time.monotonic() + 60
        while len(refusals()) <= before:
            assert time.monotonic() < deadline, read_witness_alerts(soest.messagelog)
            time.sleep(0.5)
        assert impostor.requests == 0
    finally:
        impostor.close()
    detail = refusals()[-1]
    assert "issued by CN=Development CA DE-NRW" in detail, detail
    assert "which is not a CA of" in detail and "instance EE-TEST" in detail, detail
    assert not read_cosignatures(soest.messagelog, log_node=peer)


def test_a_node_with_another_instances_certificate_does_not_start(
    two: tuple[LocalNet, LocalNet],
) -> None:
    """The rogue node's own check refuses what its peers would refuse: an authentication
    certificate from a CA of another instance than its own."""
    _, ee = two
    config = str(ee.nodes[ROGUE.key].config)
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "node", "check", "--config", config],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "issued by 'CN=Development CA DE-NRW', which is not a trusted root" in result.stderr


def _until(condition: str, check: object, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = check()  # type: ignore[operator]
        if response.headers.get("X-Road-Error", "") == condition or (
            condition == "" and response.status_code == 200
        ):
            return response  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, response.text
        time.sleep(0.5)


def test_an_expired_foreign_configuration_stops_that_instance_only(
    two: tuple[LocalNet, LocalNet],
) -> None:
    """EE-TEST's configuration expires (its central stops re-signing): Soest refuses to
    route to EE-TEST, still reaches Lippstadt, and routes again once EE-TEST publishes."""
    de, ee = two
    soest = de.nodes[SOEST.ags]
    assert ee.tuf is not None
    ee.tuf.publish(ee.globalconf().to_bytes(), expires_in=timedelta(seconds=4))

    def company() -> httpx.Response:
        return _get(soest, f"{COMPANY}/12345678", GEWERBEAMT, **{"X-Road-Issue": "GA-1"})

    response = _until("server.clientproxy.federated_conf_outdated", company)
    assert "EE-TEST" in response.text and "expired" in response.text
    # Lippstadt grants Soest nothing here: an access refusal proves routing went on.
    refused(_get(soest, SERVICE, GEWERBEAMT), "server.serverproxy.access_denied")
    ee.tuf.publish(ee.globalconf().to_bytes())
    _until("", company)


def _published(ee: LocalNet, groups: dict[GroupId, tuple[ClientId, ...]]) -> int:
    """Sign and publish EE-TEST's next version with ``groups``; its serial."""
    assert ee.tuf is not None
    conf = dataclasses.replace(ee.globalconf(), groups=groups)
    ee.tuf.publish(conf.to_bytes())
    return conf.serial


def test_a_global_group_of_the_federated_instance_opens_a_service(
    two: tuple[LocalNet, LocalNet], registry: RecordingRegistry
) -> None:
    """Lippstadt grants EE-TEST's group ``partners``; who is in it is EE-TEST's word. RIK's
    register subsystem, put in the group at EE-TEST's central, reads the service; taken
    out there, it is refused from Lippstadt's next refresh of EE-TEST's configuration."""
    _, ee = two
    rik = ee.nodes[RIK.ags]
    member = RIK.subsystem("ariregister")

    def partner_call() -> httpx.Response:
        return _get(rik, PARTNER_SERVICE, member)

    # Not in the group yet (once Lippstadt holds a valid EE-TEST version: an earlier
    # test may have let it expire).
    _until("server.serverproxy.access_denied", partner_call, timeout=60)
    _published(ee, {PARTNERS: (member,)})
    response = _until("", partner_call, timeout=60)
    assert registry.calls[-1].headers["x-road-client"] == str(member)
    assert response.headers["X-Road-Service"] == str(PARTNER_SERVICE)
    _published(ee, {PARTNERS: (REGISTRIOSAKOND,)})
    _until("server.serverproxy.access_denied", partner_call, timeout=60)
    before = registry.count()
    refused(partner_call(), "server.serverproxy.access_denied")
    assert registry.count() == before


def _history(files: NodeFiles) -> list[dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "log", "configurations", "--db", str(files.messagelog)],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_the_log_records_each_foreign_configuration_version_an_exchange_rests_on(
    two: tuple[LocalNet, LocalNet],
) -> None:
    """Soest's configuration history holds EE-TEST's versions beside DE-NRW's: instance,
    serial, expiry and root fingerprint, applied before the exchange that used it."""
    de, ee = two
    soest = de.nodes[SOEST.ags]
    assert ee.tuf is not None
    serial = _published(ee, {})

    def company() -> httpx.Response:
        health = httpx.get(f"{soest.consumer_url}/health", timeout=30).json()
        if health["globalconf"]["federated"][EE_INSTANCE]["serial"] != serial:
            return httpx.Response(503, headers={"X-Road-Error": "not yet"})
        return _get(soest, f"{COMPANY}/16543210", GEWERBEAMT, **{"X-Road-Issue": "GA-7"})

    response = _until("", company, timeout=60)
    logged = read_entries(soest.messagelog, message_id=response.headers["X-Road-Request-Id"])
    history = _history(soest)
    own = [row for row in history if row["own"]]
    assert own and {row["instance"] for row in own} == {"DE-NRW"}
    foreign = [row for row in history if not row["own"]]
    assert {row["instance"] for row in foreign} == {EE_INSTANCE}
    serials = [int(str(row["serial"])) for row in foreign]
    assert serials == sorted(serials)
    rested_on = [r for r in foreign if str(r["applied_at"]) <= logged[0].logged_at][-1]
    assert rested_on["serial"] == serial
    assert rested_on["root_sha256"] == ee.tuf.anchor().fingerprint()
    expires = datetime.fromisoformat(str(rested_on["expires"]))
    assert expires > datetime.fromisoformat(logged[0].logged_at)
    # A version applied again (a restart, fresher timestamps) adds no row.
    assert len({row["document_sha256"] for row in foreign}) == len(foreign)
    # The node's admin API shows the same history.
    key = (soest.directory / "admin.key").read_text().strip()
    answer = httpx.get(
        f"{soest.metrics_url}/api/v1/log/configurations",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["versions"] == history


def test_operators_federate_two_centrals_with_the_cli(tmp_path: Path) -> None:
    """``gateway central anchor`` on one side, ``gateway central federate add`` on the
    other: the next signed serial carries the anchor; ``remove`` takes it out again."""
    gateway = [sys.executable, "-m", "gateway"]
    dirs = {}
    for instance in ("DE-NRW", EE_INSTANCE):
        ca = tmp_path / f"ca-{instance}"
        init_ca(ca, f"CA {instance}", datetime.now(UTC))
        dirs[instance] = tmp_path / f"central-{instance}"
        subprocess.run(
            [*gateway, "central", "init", "--dir", str(dirs[instance]), "--instance", instance,
             "--ca-cert", str(ca / "ca.pem"), "--ocsp-url", "http://127.0.0.1:1/ocsp",
             "--insecure-plain-keys"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    anchor = tmp_path / "ee-anchor.json"
    subprocess.run(
        [*gateway, "central", "anchor", "--dir", str(dirs[EE_INSTANCE]), "--out", str(anchor)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    added = subprocess.run(
        [*gateway, "central", "federate", "add", str(anchor), "--dir", str(dirs["DE-NRW"])],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "federated with EE-TEST" in added.stdout
    assert Central(dirs["DE-NRW"]).current().federated == (load_anchor(anchor),)
    own = subprocess.run(
        [*gateway, "central", "federate", "add", str(anchor), "--dir", str(dirs[EE_INSTANCE])],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert own.returncode != 0 and "own anchor" in own.stderr
    subprocess.run(
        [*gateway, "central", "federate", "remove", EE_INSTANCE, "--dir", str(dirs["DE-NRW"])],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert Central(dirs["DE-NRW"]).current().federated == ()
