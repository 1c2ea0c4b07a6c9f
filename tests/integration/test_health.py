"""Liveness, readiness and bind addresses of a node, with real processes and sockets.

Two nodes (Soest, Lippstadt) run as ``gateway node serve`` with the trust services as
``gateway trust serve``. Timestamping runs every second and Soest tolerates a 2 s TSA
outage; OCSP answers are fresh for 10 s and refreshed every second. Stopping the trust
services therefore makes Soest unready first for timestamping (seconds after an
exchange leaves entries to stamp) and, later, for its own stale OCSP status; both
recover once they are back, without a restart. Waiting is polling for an outcome with a
deadline that only keeps a broken build from hanging.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.conf.directory import TrustParameters
from gateway.messagelog.proofs import timestamp_status
from gateway.node.config import NodeConfig
from gateway.node.server import Node
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import (
    GEWERBEAMT,
    ISERLOHN,
    LIPPSTADT,
    SERVICE,
    SOEST,
    RecordingRegistry,
)

pytestmark = pytest.mark.integration

TOLERANCE = 2
FRESHNESS = 10
DEADLINE = 60
CHECKS = ["maintenance", "globalconf", "settings", "timestamping", "ocsp", "messagelog"]


@pytest.fixture(scope="module")
def hnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("health"), [SOEST, LIPPSTADT, ISERLOHN], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    federation.trust.ocsp_validity_seconds = FRESHNESS
    federation.write_configs(
        extra={"timestamp_failure_tolerance_seconds": TOLERANCE, "ocsp_refresh_seconds": 1.0},
        parameters=TrustParameters(
            timestamping_interval_seconds=1, ocsp_freshness_seconds=FRESHNESS
        ),
    )
    try:
        federation.start_node(SOEST.ags)
        federation.start_node(LIPPSTADT.ags)
        yield federation
    finally:
        federation.stop()


def consumer(net: LocalNet, ags: str = SOEST.ags) -> str:
    return net.nodes[ags].consumer_url


def call(net: LocalNet) -> httpx.Response:
    return httpx.get(
        f"{consumer(net)}/r1/{SERVICE}",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": str(GEWERBEAMT)},
        timeout=30,
    )


def ready(net: LocalNet, ags: str = SOEST.ags) -> httpx.Response:
    """``/health/ready`` of a node (Soest's unless ``ags`` names another); liveness is
    asked alongside and must hold."""
    live = httpx.get(f"{consumer(net, ags)}/health/live", timeout=10)
    assert live.status_code == 200 and live.json()["alive"] is True, live.text
    return httpx.get(f"{consumer(net, ags)}/health/ready", timeout=30)


def checks(response: httpx.Response) -> dict[str, dict[str, Any]]:
    body = response.json()
    assert [c["check"] for c in body["checks"]] == CHECKS, body
    assert body["ready"] is (response.status_code == 200), body
    return {c["check"]: c for c in body["checks"]}


def poll_ready(
    net: LocalNet, done: Callable[[httpx.Response], bool], ags: str = SOEST.ags
) -> tuple[httpx.Response, list[httpx.Response]]:
    """Ask readiness until ``done``; return that answer and every earlier one."""
    seen: list[httpx.Response] = []
    deadline = time.monotonic() + DEADLINE
    while True:
        response = ready(net, ags)
        if done(response):
            return response, seen
        seen.append(response)
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting; last answer {response.status_code}: {response.text}")
        time.sleep(0.2)


OWN = ("authentication certificate", "signing certificate")


def ocsp_detail(response: httpx.Response) -> str:
    return str(checks(response)["ocsp"]["detail"])


def failing(response: httpx.Response) -> set[str]:
    return {name for name, c in checks(response).items() if not c["ok"]}


def test_a_serving_node_is_live_and_ready(hnet: LocalNet) -> None:
    assert call(hnet).status_code == 200
    answer, _ = poll_ready(hnet, lambda r: r.status_code == 200)
    assert failing(answer) == set()
    assert answer.json()["node"] == str(SOEST.node)
    # /health keeps answering what it did: the node and its global configuration.
    legacy = httpx.get(f"{consumer(hnet)}/health", timeout=10)
    assert legacy.status_code == 200
    assert legacy.json()["status"] == "ok" and "serial" in legacy.json()["globalconf"]


def test_readiness_fails_while_the_tsa_outage_exceeds_the_tolerance_then_recovers(
    hnet: LocalNet,
) -> None:
    poll_ready(hnet, lambda r: r.status_code == 200)
    hnet.stop_trust()
    try:
        assert call(hnet).status_code == 200, "leaves log entries waiting for a time stamp"
        unready, earlier = poll_ready(hnet, lambda r: r.status_code == 503)
        assert all(r.status_code == 200 for r in earlier)
        # The outage passed the tolerance long before the 10 s OCSP window ends.
        assert failing(unready) == {"timestamping"}, unready.text
        detail = checks(unready)["timestamping"]["detail"]
        assert detail.startswith("timestamping of the message log has failed since"), detail
        assert f"longer than the tolerated {TOLERANCE} s" in detail
        # The exchange is refused for the same reason, by the same check.
        refused = call(hnet)
        assert refused.headers["X-Road-Error"] == "server.clientproxy.timestamping_failed"
        assert refused.json()["message"].startswith(detail.split(";")[0])
    finally:
        hnet.start_trust()
    recovered, _ = poll_ready(hnet, lambda r: r.status_code == 200)
    assert failing(recovered) == set()
    # Lippstadt, the provider, tolerates the same outage and recovers on its own schedule.
    poll_ready(hnet, lambda r: r.status_code == 200, LIPPSTADT.ags)
    assert call(hnet).status_code == 200


def test_readiness_fails_while_the_own_ocsp_status_is_stale_then_recovers(
    hnet: LocalNet,
) -> None:
    poll_ready(hnet, lambda r: r.status_code == 200)
    # Nothing left to stamp: the outage below can only make the OCSP status stale.
    soest_log = hnet.nodes[SOEST.ags].messagelog
    deadline = time.monotonic() + DEADLINE
    while timestamp_status(soest_log).pending:
        assert time.monotonic() < deadline, "Soest's log entries were never stamped"
        time.sleep(0.2)
    hnet.stop_trust()
    try:
        first, _ = poll_ready(hnet, lambda r: r.status_code == 503)
        assert failing(first) == {"ocsp"}, first.text
        # The two statuses were fetched moments apart and go stale moments apart; once
        # both have, readiness names each of them, not only the first one.
        unready, _ = poll_ready(
            hnet, lambda r: all(f"OCSP status for its {c}" in ocsp_detail(r) for c in OWN)
        )
        assert failing(unready) == {"ocsp"}, unready.text
        detail = ocsp_detail(unready)
        assert detail.count("no longer usable") == 2 and "freshness window" in detail
        refused = call(hnet)
        assert refused.headers["X-Road-Error"] == "server.clientproxy.ocsp_unavailable"
        # An exchange stops at the first certificate it needs: the authentication one.
        assert "OCSP status for its authentication certificate" in refused.json()["message"]
    finally:
        hnet.start_trust()
    recovered, _ = poll_ready(hnet, lambda r: r.status_code == 200)
    assert failing(recovered) == set()


def test_readiness_fails_while_the_message_log_cannot_be_written_then_recovers(
    hnet: LocalNet,
) -> None:
    poll_ready(hnet, lambda r: r.status_code == 200)
    # Another process holds the log's write lock for longer than the writer waits for it.
    conn = sqlite3.connect(hnet.nodes[SOEST.ags].messagelog, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        unready = ready(hnet)
        assert unready.status_code == 503, unready.text
        assert failing(unready) == {"messagelog"}, unready.text
        detail = checks(unready)["messagelog"]["detail"]
        assert detail.startswith("the message log cannot be written:"), detail
        assert "database is locked" in detail, detail
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    recovered, _ = poll_ready(hnet, lambda r: r.status_code == 200)
    assert failing(recovered) == set()


# --- bind addresses ---------------------------------------------------------------------


def _without_listen(path: Path) -> NodeConfig:
    """A generated node.toml without ``consumer_listen`` and ``peer_listen``: the defaults."""
    from gateway.node.config import load_config

    text = "".join(
        line
        for line in path.read_text("utf-8").splitlines(keepends=True)
        if not line.startswith(
            ("consumer_listen", "consumer_tls_listen", "peer_listen", "metrics_listen")
        )
    )
    stripped = path.with_name("node-default-listen.toml")
    stripped.write_text(text, "utf-8")
    assert "consumer_listen" not in tomllib.loads(text)["node"]
    return load_config(stripped)


async def _bound(config: NodeConfig) -> dict[str, list[tuple[str, int]]]:
    node = Node(config)
    await node.start()
    try:
        return dict(node.bound)
    finally:
        await node.stop()


def test_a_node_with_the_default_listen_addresses_binds_loopback_only(hnet: LocalNet) -> None:
    # Iserlohn's node is not running in this federation: it is started here, in process.
    config = _without_listen(hnet.nodes[ISERLOHN.ags].config)
    node = config.node
    # The defaults' hosts, on ports the OS chooses (the default ports may be taken here).
    keys = ("consumer_listen", "consumer_tls_listen", "peer_listen", "metrics_listen")
    hosts = {key: getattr(node, key).rpartition(":")[0] for key in keys}
    assert hosts == dict.fromkeys(keys, "127.0.0.1")
    ephemeral = node.model_copy(update={key: f"{host}:0" for key, host in hosts.items()})
    bound = asyncio.run(_bound(config.model_copy(update={"node": ephemeral})))
    assert set(bound) == {"consumer", "consumer_tls", "peer", "admin"}
    for port, sockets in bound.items():
        assert sockets, port
        assert {address for address, _ in sockets} == {"127.0.0.1"}, (port, sockets)


def test_a_consumer_port_bound_beyond_loopback_is_warned_about(
    hnet: LocalNet, caplog: pytest.LogCaptureFixture
) -> None:
    config = _without_listen(hnet.nodes[ISERLOHN.ags].config)
    node = config.node.model_copy(
        update={
            "consumer_listen": "0.0.0.0:0",
            "consumer_tls_listen": "127.0.0.1:0",
            "peer_listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
        }
    )
    with caplog.at_level("WARNING", logger="gateway.node"):
        bound = asyncio.run(_bound(config.model_copy(update={"node": node})))
    assert {address for address, _ in bound["consumer"]} == {"0.0.0.0"}  # noqa: S104
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("consumer port listens on 0.0.0.0:" in w for w in warnings), warnings
    assert not any("peer port" in w for w in warnings), warnings
