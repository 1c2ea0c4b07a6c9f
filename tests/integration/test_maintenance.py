"""Maintenance mode drains without failing in-flight exchanges.

Soest (consumer) and Lippstadt (provider) run in this process (``Node``), so the test
switches their maintenance mode through the object the admin API holds
(``node.context.maintenance``), with the trust services as ``gateway trust serve``. One
exchange is held at a registry that answers only when the test opens its gate; while it
is in flight each node enters maintenance: new exchanges are refused with the side's
``maintenance_mode`` code (Lippstadt's relayed by Soest), readiness turns 503, the
gauges move. Once the gate opens the held exchange completes with 200, logged on both
nodes, and both nodes report drained. Every request, scrape and readiness call is made
with an async client on the nodes' own event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.errors import Code
from gateway.node.config import load_config
from gateway.node.server import Node
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    SERVICE,
    SLOW,
    SOEST,
    RecordingRegistry,
)

pytestmark = pytest.mark.integration

HELD_ANSWER = b'{"ergebnis":"nach der Wartung"}'
GATE_SAFETY_SECONDS = 120
"""How long the gated registry holds a call at most: only keeps a broken test from
hanging; the test opens the gate long before."""
LISTMETHODS = f"{LIPPSTADT.subsystem('melderegister')}/listMethods"


class GatedRegistry:
    """A registry whose every answer waits until the test opens its gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.arrived = threading.Event()
        gate, arrived = self.gate, self.arrived

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                arrived.set()
                gate.wait(GATE_SAFETY_SECONDS)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(HELD_ANSWER)))
                self.end_headers()
                self.wfile.write(HELD_ANSWER)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def gated() -> Iterator[GatedRegistry]:
    registry = GatedRegistry()
    thread = threading.Thread(
        target=registry.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield registry
    registry.gate.set()
    registry.server.shutdown()
    registry.server.server_close()


@pytest.fixture(scope="module")
def wnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry, gated: GatedRegistry
) -> Iterator[LocalNet]:
    net = LocalNet.create(tmp_path_factory.mktemp("wartung"), [SOEST, LIPPSTADT], datetime.now(UTC))
    net.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    net.add_service(
        ServiceSpec(
            id=SLOW,
            url=f"{gated.url}/gehalten",
            openapi_url=None,
            allowed=(GEWERBEAMT,),
            timeout_seconds=GATE_SAFETY_SECONDS,
        )
    )
    net.write_configs()
    net.start_trust()
    try:
        yield net
    finally:
        net.stop()


@asynccontextmanager
async def nodes(net: LocalNet) -> AsyncIterator[tuple[Node, Node]]:
    """Soest and Lippstadt, started in this process and stopped after the block."""
    lipp = Node(load_config(net.nodes[LIPPSTADT.ags].config))
    soest = Node(load_config(net.nodes[SOEST.ags].config))
    await lipp.start()
    await soest.start()
    try:
        yield soest, lipp
    finally:
        await soest.stop()
        await lipp.stop()


def urls(node: Node) -> tuple[str, str]:
    """A node's consumer URL and admin URL."""
    assert node.endpoints is not None and node.endpoints.metrics_url is not None
    return node.endpoints.consumer_url, node.endpoints.metrics_url


async def call(client: httpx.AsyncClient, soest: Node, path: str) -> httpx.Response:
    """Soest's trade office asks through Soest's consumer port."""
    return await client.get(
        f"{urls(soest)[0]}/r1/{path}",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": str(GEWERBEAMT)},
    )


async def gauges(client: httpx.AsyncClient, node: Node) -> dict[str, float]:
    """The node's unlabelled samples, parsed with Prometheus's own parser."""
    response = await client.get(f"{urls(node)[1]}/metrics")
    assert response.status_code == 200, response.text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if not sample.labels
    }


async def refusals(client: httpx.AsyncClient, node: Node, code: Code) -> float:
    """How many exchanges the node counted as refused with ``code``."""
    response = await client.get(f"{urls(node)[1]}/metrics")
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "gateway_exchanges_total" and sample.labels["code"] == code.value
    )


async def readiness(client: httpx.AsyncClient, node: Node) -> tuple[int, dict[str, Any]]:
    """``/health/ready``'s status and its checks by name; liveness must hold throughout."""
    consumer = urls(node)[0]
    live = await client.get(f"{consumer}/health/live")
    assert live.status_code == 200 and live.json()["alive"] is True, live.text
    ready = await client.get(f"{consumer}/health/ready")
    body = ready.json()
    assert body["ready"] is (ready.status_code == 200), body
    return ready.status_code, {c["check"]: c for c in body["checks"]}


def refused(response: httpx.Response, code: Code) -> None:
    assert response.status_code == 500, response.text
    assert response.headers.get("X-Road-Error") == code.value, response.text
    assert response.json()["type"] == code.value
    assert "maintenance mode since" in response.json()["message"]


def logged_message_ids(node: Node) -> set[str]:
    with closing(sqlite3.connect(f"{node.log.path.as_uri()}?mode=ro", uri=True)) as conn:
        return {m for (m,) in conn.execute("SELECT message_id FROM message_log")}


async def _drain(net: LocalNet, registry: RecordingRegistry, gated: GatedRegistry) -> None:
    async with nodes(net) as (soest, lipp), httpx.AsyncClient(timeout=60) as client:
        try:
            await _drain_steps(client, soest, lipp, registry, gated)
        finally:
            gated.gate.set()  # a failed step must not leave the nodes' stop waiting


async def _drain_steps(
    client: httpx.AsyncClient,
    soest: Node,
    lipp: Node,
    registry: RecordingRegistry,
    gated: GatedRegistry,
) -> None:
    assert (await call(client, soest, str(SERVICE))).status_code == 200
    for node in (soest, lipp):
        assert (await readiness(client, node))[0] == 200
        gauge = await gauges(client, node)
        assert gauge["gateway_maintenance_mode"] == 0, node.id
        assert gauge["gateway_exchanges_in_flight"] == 0, node.id

    # One exchange in flight on both nodes: it waits at the gated registry.
    held = asyncio.create_task(call(client, soest, str(SLOW)))
    while not gated.arrived.is_set():
        assert not held.done(), held.result().text
        await asyncio.sleep(0.05)
    for node in (soest, lipp):
        assert (await gauges(client, node))["gateway_exchanges_in_flight"] == 1, node.id

    # The provider's node enters maintenance: a new exchange, a metadata service
    # included, is refused before its registry is called, and Soest relays the code.
    lipp.context.maintenance.enter("Aktualisierung", lipp.clock.now())
    calls = registry.count()
    refused(await call(client, soest, str(SERVICE)), Code.SP_MAINTENANCE_MODE)
    refused(await call(client, soest, LISTMETHODS), Code.SP_MAINTENANCE_MODE)
    assert registry.count() == calls
    assert await refusals(client, lipp, Code.SP_MAINTENANCE_MODE) == 2
    status, checks = await readiness(client, lipp)
    assert status == 503 and not checks["maintenance"]["ok"], checks
    assert "Aktualisierung" in checks["maintenance"]["detail"]
    assert all(c["ok"] for name, c in checks.items() if name != "maintenance"), checks
    gauge = await gauges(client, lipp)
    assert gauge["gateway_maintenance_mode"] == 1
    assert gauge["gateway_exchanges_in_flight"] == 1
    assert not await lipp.context.maintenance.drained(0.2)  # the held one is not cut

    # The consumer's node too: its own information system is refused at once.
    soest.context.maintenance.enter("Umzug", soest.clock.now())
    refused(await call(client, soest, str(SERVICE)), Code.CP_MAINTENANCE_MODE)
    assert registry.count() == calls
    assert (await readiness(client, soest))[0] == 503
    assert (await gauges(client, soest))["gateway_maintenance_mode"] == 1
    assert not held.done()

    # The registry answers: the exchange in flight completes, logged on both nodes.
    gated.gate.set()
    answer = await held
    assert answer.status_code == 200, answer.text
    assert answer.content == HELD_ANSWER
    message_id = answer.headers["X-Road-Request-Id"]
    assert message_id in logged_message_ids(lipp)
    assert message_id in logged_message_ids(soest)
    assert await lipp.context.maintenance.drained(30)
    assert await soest.context.maintenance.drained(30)
    for node in (soest, lipp):
        gauge = await gauges(client, node)
        assert gauge["gateway_exchanges_in_flight"] == 0, node.id
        assert gauge["gateway_maintenance_mode"] == 1, node.id

    # Out of maintenance: ready, counted as such, and exchanging again.
    for node in (soest, lipp):
        node.context.maintenance.leave()
        status, checks = await readiness(client, node)
        assert status == 200 and checks["maintenance"]["ok"], checks
        assert (await gauges(client, node))["gateway_maintenance_mode"] == 0
    assert (await call(client, soest, str(SERVICE))).status_code == 200
    assert registry.count() == calls + 1


def test_maintenance_mode_drains_without_failing_in_flight_exchanges(
    wnet: LocalNet, registry: RecordingRegistry, gated: GatedRegistry
) -> None:
    asyncio.run(_drain(wnet, registry, gated))


async def _consumer_only(net: LocalNet, registry: RecordingRegistry) -> None:
    async with nodes(net) as (soest, lipp), httpx.AsyncClient(timeout=60) as client:
        soest.context.maintenance.enter("", soest.clock.now())
        calls = registry.count()
        refused(await call(client, soest, str(SERVICE)), Code.CP_MAINTENANCE_MODE)
        assert registry.count() == calls
        assert await refusals(client, soest, Code.CP_MAINTENANCE_MODE) == 1
        # listClients is no exchange: read from the directory, nothing sent or logged.
        clients = await client.get(
            f"{urls(soest)[0]}/listClients", headers={"Accept": "application/json"}
        )
        assert clients.status_code == 200, clients.text
        assert clients.json()["member"], clients.text
        # Only the node in maintenance is out: the provider's node stays ready.
        assert (await readiness(client, soest))[0] == 503
        assert (await readiness(client, lipp))[0] == 200
        soest.context.maintenance.leave()
        assert (await call(client, soest, str(SERVICE))).status_code == 200


def test_a_consumer_node_in_maintenance_refuses_its_information_systems(
    wnet: LocalNet, registry: RecordingRegistry
) -> None:
    asyncio.run(_consumer_only(wnet, registry))
