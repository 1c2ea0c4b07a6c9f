"""A provider node whose wall clock jumps 2 min ahead of the TSA's, and back.

Lippstadt's node runs under libfaketime (the fault harness's ``FakeClock``), timestamps
every second and keeps the default ``max_clock_skew_seconds`` (2 s). Ahead of the TSA,
an exchange it answers is logged at its own time; the next time stamp shows the skew,
and from then on the node refuses with ``server.serverproxy.clock_skew``, readiness is
503 and ``gateway_clock_skew_seconds`` shows it. Set right, a later token lifts the
refusal. Waiting is polling for an outcome with a deadline that only keeps a broken
build from hanging.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from gateway.conf.directory import TrustParameters
from gateway.sandbox.faults.clock import FakeClock, find_libfaketime
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import GEWERBEAMT, LIPPSTADT, SERVICE, SOEST, RecordingRegistry

pytestmark = pytest.mark.integration

DEADLINE = 30
AHEAD = 120


@pytest.fixture(scope="module")
def skewed(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[tuple[LocalNet, FakeClock]]:
    library = find_libfaketime()
    if library is None:
        pytest.skip("libfaketime is missing: make system-packages")
    root = tmp_path_factory.mktemp("clock-skew")
    federation = LocalNet.create(root / "net", [SOEST, LIPPSTADT], datetime.now(UTC))
    federation.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    federation.write_configs(parameters=TrustParameters(timestamping_interval_seconds=1))
    clock = FakeClock(library, root / "lippstadt-clock")
    federation.nodes[LIPPSTADT.ags].env = tuple(clock.env().items())
    try:
        federation.start_node(SOEST.ags)
        federation.start_node(LIPPSTADT.ags)
        yield federation, clock
    finally:
        federation.stop()


def call(net: LocalNet) -> httpx.Response:
    return httpx.get(
        f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": str(GEWERBEAMT)},
        timeout=30,
    )


def ready(net: LocalNet) -> httpx.Response:
    return httpx.get(f"{net.nodes[LIPPSTADT.ags].consumer_url}/health/ready", timeout=30)


def skew_gauge(net: LocalNet) -> float:
    text = httpx.get(f"{net.nodes[LIPPSTADT.ags].metrics_url}/metrics", timeout=10).text
    [line] = [x for x in text.splitlines() if x.startswith("gateway_clock_skew_seconds ")]
    return float(line.split()[1])


def poll(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


def test_a_node_ahead_of_the_tsa_refuses_until_its_clock_is_true(
    skewed: tuple[LocalNet, FakeClock],
) -> None:
    net, clock = skewed
    assert call(net).status_code == 200
    poll("a first time stamp", lambda: abs(skew_gauge(net)) < 2)
    assert ready(net).status_code == 200

    clock.set(AHEAD)
    # Lippstadt answers and logs this exchange at its jumped time; the time stamp of
    # that entry shows the skew (Soest may refuse the answer from Lippstadt's future).
    call(net)
    poll("the skew measured", lambda: skew_gauge(net) > 2)
    assert AHEAD - 10 < skew_gauge(net) < AHEAD + 10
    unready = ready(net)
    assert unready.status_code == 503
    [timestamping] = [c for c in unready.json()["checks"] if c["check"] == "timestamping"]
    assert not timestamping["ok"]
    assert "max_clock_skew_seconds" in timestamping["detail"]
    refused = call(net)
    assert refused.headers["X-Road-Error"] == "server.serverproxy.clock_skew", refused.text

    clock.set(0)
    poll("readiness again", lambda: ready(net).status_code == 200)
    assert abs(skew_gauge(net)) < 2
    assert call(net).status_code == 200
