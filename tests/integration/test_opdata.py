"""``getSecurityServerOperationalData`` over a loopback federation of real processes.

Soest, Lippstadt and Iserlohn run as ``gateway node serve`` processes. Soest's
Gewerbeamt and Iserlohn's Bürgerbüro read Lippstadt's Melderegister; Soest's
Ordnungsamt is refused. Each client then asks Lippstadt's node, through its own node,
for operational records: it gets its own and no one else's; Lippstadt's own subsystem
(the node owner) gets all; a provider asking the consumer's node gets the records of
the calls of its services.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.core.ids import SubsystemId
from gateway.node.opdata import OPDATA_SERVICE
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import (
    GEWERBEAMT,
    ISERLOHN,
    LIPPSTADT,
    ORDNUNGSAMT,
    SERVICE,
    SOEST,
    RecordingRegistry,
)

pytestmark = pytest.mark.integration

BUERGERBUERO = ISERLOHN.subsystem("buergerbuero")
MELDEREGISTER = LIPPSTADT.subsystem("melderegister")
INVALID = "server.serverproxy.invalid_operational_query"


@pytest.fixture(scope="module")
def onet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("opdata"), [SOEST, LIPPSTADT, ISERLOHN], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE,
            url=f"{registry.url}/personen",
            openapi_url=None,
            allowed=(GEWERBEAMT, BUERGERBUERO),
        )
    )
    federation.write_configs()
    try:
        for city in (SOEST, LIPPSTADT, ISERLOHN):
            federation.start_node(city.ags)
        yield federation
    finally:
        federation.stop()


def consumer(net: LocalNet, client: SubsystemId) -> str:
    """The plain consumer port of the node that hosts ``client``."""
    return net.nodes[client.member_code].consumer_url


def read_register(net: LocalNet, client: SubsystemId) -> httpx.Response:
    return httpx.get(
        f"{consumer(net, client)}/r1/{SERVICE}",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": str(client)},
        timeout=30,
    )


def opdata(
    net: LocalNet, client: SubsystemId, provider: SubsystemId, params: dict[str, str]
) -> httpx.Response:
    return httpx.get(
        f"{consumer(net, client)}/r1/{provider}/{OPDATA_SERVICE}",
        params=params,
        headers={"X-Road-Client": str(client)},
        timeout=30,
    )


def window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "since": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "until": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def records(net: LocalNet, client: SubsystemId, provider: SubsystemId) -> list[dict[str, Any]]:
    response = opdata(net, client, provider, window())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client"] == str(client)
    assert body["next_records_from"] is None
    result: list[dict[str, Any]] = body["records"]
    return result


@pytest.fixture(scope="module")
def exchanged(onet: LocalNet) -> dict[SubsystemId, str]:
    """One exchange of each client; the message id of each, by client."""
    ids: dict[SubsystemId, str] = {}
    for client, status in ((GEWERBEAMT, 200), (BUERGERBUERO, 200), (ORDNUNGSAMT, 500)):
        response = read_register(onet, client)
        assert response.status_code == status, response.text
        ids[client] = response.headers["X-Road-Id"]
    return ids


def test_a_client_sees_its_own_records_only(
    onet: LocalNet, exchanged: dict[SubsystemId, str]
) -> None:
    soest = records(onet, GEWERBEAMT, MELDEREGISTER)
    iserlohn = records(onet, BUERGERBUERO, MELDEREGISTER)

    assert exchanged[GEWERBEAMT] in {r["xroad_id"] for r in soest}
    assert {r["client"] for r in soest} == {str(GEWERBEAMT)}
    assert all(r["node"] == str(LIPPSTADT.node) for r in soest)
    assert exchanged[BUERGERBUERO] not in {r["xroad_id"] for r in soest}
    assert exchanged[BUERGERBUERO] in {r["xroad_id"] for r in iserlohn}
    assert {r["client"] for r in iserlohn} == {str(BUERGERBUERO)}


def test_the_node_owner_sees_every_record(
    onet: LocalNet, exchanged: dict[SubsystemId, str]
) -> None:
    deadline = time.monotonic() + 20
    while True:  # a refusal's record is written in the next batch, within a second
        seen = {r["xroad_id"] for r in records(onet, MELDEREGISTER, MELDEREGISTER)}
        if set(exchanged.values()) <= seen or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(exchanged.values()) <= seen


def test_a_provider_sees_the_calls_of_its_services_on_the_consumers_node(
    onet: LocalNet, exchanged: dict[SubsystemId, str]
) -> None:
    seen = records(onet, MELDEREGISTER, GEWERBEAMT)

    assert exchanged[GEWERBEAMT] in {r["xroad_id"] for r in seen}
    assert all(r["service"].startswith(f"{MELDEREGISTER}/") for r in seen)
    assert all(r["node"] == str(SOEST.node) for r in seen)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"since": "2026-01-01T00:00:00Z"},
        {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"since": "gestern", "until": "2026-01-01T00:00:00Z"},
        {"since": "2026-01-01T00:00:00", "until": "2026-01-02T00:00:00Z"},
    ],
)
def test_bad_bounds_are_refused_with_a_documented_code(
    onet: LocalNet, params: dict[str, str]
) -> None:
    response = opdata(onet, GEWERBEAMT, MELDEREGISTER, params)

    assert response.status_code == 500
    assert response.json()["type"] == INVALID
    assert response.headers["X-Road-Error"] == INVALID
