"""Two instances federated on loopback: DE-NRW (Soest, Lippstadt) and EE-TEST (RIK).

Each instance has its own signed configuration (its own TUF repository), CA, OCSP
responder and TSA, and lists the other's anchor; every node runs as a ``gateway node
serve`` process. The registries are the recording registry of conftest.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gateway.central.service import Central
from gateway.conf.anchor import load_anchor
from gateway.core.encoding import b64url, format_time
from gateway.core.envelope import RequestHeader, body_sha256
from gateway.core.jws import Signer
from gateway.keys.files import load_certificate, load_private_key
from gateway.messagelog import read_entries
from gateway.node.wire import AUTH_OCSP_HEADER, SIGN_OCSP_HEADER
from gateway.sandbox.cities import ARIREGISTER_SERVICE, EE_INSTANCE, RIK, City
from gateway.sandbox.estonia import ariregister_service, create_estonia, federate, start_ariregister
from gateway.sandbox.localnet import LocalNet, NodeFiles, ServiceSpec, free_port
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
    federate(de, ee)
    register_port = free_port()
    ee.add_service(ariregister_service(register_port))
    # Lippstadt grants its Melderegister to the Estonian registration department, and to
    # the rogue member (so that only the CA check stands between it and the register).
    allowed = (REGISTRIOSAKOND, ROGUE.subsystem("pettus"))
    de.add_service(ServiceSpec(SERVICE, f"{registry.url}/personen", None, allowed))
    de.write_configs()
    ee.write_configs()
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
