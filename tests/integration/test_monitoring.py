"""Monitoring of running nodes: Prometheus metrics, operational records, the dashboard.

Two nodes (Soest, Lippstadt) run as ``gateway node serve`` processes. Soest's
Gewerbeamt may read Lippstadt's register, its Ordnungsamt may not: each call of the
Ordnungsamt is refused by Lippstadt with ``access_denied`` and relayed by Soest. The
metrics are read from each node's admin listener and parsed with Prometheus's own
parser; the operational records are compared with the message log entry by entry.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

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

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
DENIED = "server.serverproxy.access_denied"
UNKNOWN_CLIENT = "client.unknown_member"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def mnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("monitoring"), [SOEST, LIPPSTADT, ISERLOHN], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    federation.write_configs(globalconf_refresh_seconds=1)
    try:
        federation.start_node(SOEST.ags)
        federation.start_node(LIPPSTADT.ags)
        yield federation
    finally:
        federation.stop()


def call(net: LocalNet, client: str) -> httpx.Response:
    return httpx.get(
        f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": client},
        timeout=30,
    )


def scrape(net: LocalNet, ags: str) -> tuple[str, Samples]:
    """A node's ``/metrics`` as text and as samples by name and labels."""
    response = httpx.get(f"{net.nodes[ags].metrics_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def exchanges(samples: Samples, side: str, client: str, code: str) -> float:
    return value(
        samples,
        "gateway_exchanges_total",
        side=side,
        client=client,
        service=str(SERVICE),
        code=code,
    )


def test_counters_move_by_exactly_the_exchanges_made(mnet: LocalNet) -> None:
    _, soest_before = scrape(mnet, SOEST.ags)
    _, lippstadt_before = scrape(mnet, LIPPSTADT.ags)
    for _ in range(3):
        assert call(mnet, str(GEWERBEAMT)).status_code == 200
    for _ in range(2):
        refused = call(mnet, str(ORDNUNGSAMT))
        assert refused.headers["X-Road-Error"] == DENIED, refused.text
    # A refusal of Soest's own: Iserlohn's subsystem is no client of Soest's node.
    assert call(mnet, str(ISERLOHN.subsystem("buergerbuero"))).status_code == 400
    _, soest = scrape(mnet, SOEST.ags)
    _, lippstadt = scrape(mnet, LIPPSTADT.ags)

    def moved(after: Samples, before: Samples, side: str, client: str, code: str) -> float:
        return exchanges(after, side, client, code) - exchanges(before, side, client, code)

    assert moved(soest, soest_before, "consumer", str(GEWERBEAMT), "ok") == 3
    assert moved(soest, soest_before, "consumer", str(ORDNUNGSAMT), DENIED) == 2
    assert moved(lippstadt, lippstadt_before, "provider", str(GEWERBEAMT), "ok") == 3
    assert moved(lippstadt, lippstadt_before, "provider", str(ORDNUNGSAMT), DENIED) == 2
    # Refused before the client was known to be Soest's: no client or service label
    # (a caller could otherwise create a series per name it makes up).
    unknown = {"side": "consumer", "client": "", "service": "", "code": UNKNOWN_CLIENT}
    name = "gateway_exchanges_total"
    assert value(soest, name, **unknown) - value(soest_before, name, **unknown) == 1
    # Each exchange observed once in its side's latency histogram.
    count = "gateway_exchange_duration_seconds_count"
    assert value(soest, count, side="consumer") - value(soest_before, count, side="consumer") == 6
    assert (
        value(lippstadt, count, side="provider") - value(lippstadt_before, count, side="provider")
        == 5
    )
    # Only successes wait for a log commit.
    commits = "gateway_log_commit_duration_seconds_count"
    assert value(soest, commits) - value(soest_before, commits) == 3


def test_gauges_describe_the_node(mnet: LocalNet) -> None:
    assert call(mnet, str(GEWERBEAMT)).status_code == 200
    _, samples = scrape(mnet, SOEST.ags)
    assert value(samples, "gateway_globalconf_serial") >= 1

    # NaN until the first refresh after start-up (every second here), then its age.
    def refreshed() -> float:
        age = value(scrape(mnet, SOEST.ags)[1], "gateway_globalconf_age_seconds")
        return 0 <= age < 60

    assert _poll(refreshed)
    assert value(samples, "gateway_maintenance_mode") == 0
    assert value(samples, "gateway_witness_alerts") == 0
    assert value(samples, "gateway_messagelog_queue_depth") >= 0
    assert value(samples, "gateway_timestamp_backlog_entries") >= 0
    expiry = {k: v for k, v in samples.items() if k[0] == "gateway_certificate_expiry_days"}
    ocsp = {k: v for k, v in samples.items() if k[0] == "gateway_ocsp_age_seconds"}
    # The authentication certificate and Soest's signing certificate, each labelled.
    assert len(expiry) == 2 and len(ocsp) == 2, samples
    assert all(0 < days < 3 * 366 for days in expiry.values())
    assert all(0 <= age < 3600 for age in ocsp.values())


def _admin_key(net: LocalNet, ags: str) -> dict[str, str]:
    """The node's first API key, made at its start: the records are its owner's."""
    key = (net.nodes[ags].directory / "admin.key").read_text().strip()
    return {"Authorization": f"Bearer {key}"}


def _operational(net: LocalNet, ags: str, **params: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{net.nodes[ags].metrics_url}/operational",
        params=params,
        headers=_admin_key(net, ags),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["node"] == str(net.nodes[ags].city.node)
    records: list[dict[str, Any]] = body["records"]
    return records


def _logged_requests(net: LocalNet, ags: str, role: str) -> dict[str, tuple[str, str, str]]:
    """The message log's request entries of ``role``: message id to (client, service,
    X-Road-Id)."""
    path = net.nodes[ags].directory / "messagelog.sqlite"
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT message_id, client, service, xroad_id FROM message_log "
            "WHERE role = ? AND kind = 'request'",
            (role,),
        ).fetchall()
    return {m: (c, s, x) for m, c, s, x in rows}


def _poll(check: Any, deadline: float = 30) -> Any:
    """Ask until ``check`` returns something true (refusals are written once a second)."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result or time.monotonic() > end:
            return result
        time.sleep(0.2)


def test_operational_records_match_the_message_log(mnet: LocalNet) -> None:
    started = datetime.now(UTC).isoformat()
    assert call(mnet, str(GEWERBEAMT)).status_code == 200
    denied = call(mnet, str(ORDNUNGSAMT))
    assert denied.headers["X-Road-Error"] == DENIED
    for ags, side in ((SOEST.ags, "consumer"), (LIPPSTADT.ags, "provider")):

        def refused(ags: str = ags) -> list[dict[str, Any]]:
            records = _operational(mnet, ags, since=started)
            return [r for r in records if not r["succeeded"]]

        refusals = _poll(refused)
        assert [(r["client"], r["error_code"]) for r in refusals] == [(str(ORDNUNGSAMT), DENIED)]
        assert refusals[0]["status"] == denied.status_code and refusals[0]["side"] == side
        # Every success of the node's whole life matches one logged exchange, and back.
        records = [r for r in _operational(mnet, ags) if r["succeeded"]]
        logged = _logged_requests(mnet, ags, side)
        assert {r["message_id"]: (r["client"], r["service"], r["xroad_id"]) for r in records} == (
            logged
        )
        assert len(records) == len(logged)
        for record in records:
            assert record["side"] == side and record["error_code"] == ""
            assert record["node"] == str(mnet.nodes[ags].city.node)
            other = LIPPSTADT if ags == SOEST.ags else SOEST
            assert record["peer_node"] == str(other.node)
            assert record["request_in"] <= record["response_out"]
            assert record["response_size"] > 0 and record["status"] == 200
    # The owner filters by client and time.
    only = _operational(mnet, SOEST.ags, client=str(ORDNUNGSAMT), since=started)
    assert {r["client"] for r in only} == {str(ORDNUNGSAMT)} and len(only) == 1
    earlier = _operational(mnet, SOEST.ags, until=started, client=str(ORDNUNGSAMT))
    assert {r["message_id"] for r in earlier}.isdisjoint(r["message_id"] for r in only)
    assert all(r["request_in"] < only[0]["request_in"] for r in earlier)
    # And the same records through the CLI.
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "node",
            "opdata",
            "--config",
            str(mnet.nodes[SOEST.ags].config),
            "--since",
            started,
            "--client",
            str(ORDNUNGSAMT),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert [json.loads(line) for line in cli.stdout.splitlines()] == only


def test_a_malformed_bound_is_refused_with_its_code(mnet: LocalNet) -> None:
    response = httpx.get(
        f"{mnet.nodes[SOEST.ags].metrics_url}/operational",
        params={"since": "yesterday"},
        headers=_admin_key(mnet, SOEST.ags),
    )
    assert response.status_code == 400
    assert response.json()["type"] == "admin.invalid"
    assert "since" in response.json()["message"]


def test_metrics_and_records_are_not_on_the_consumer_edge(mnet: LocalNet) -> None:
    for path in ("/metrics", "/operational"):
        response = httpx.get(f"{mnet.nodes[SOEST.ags].consumer_url}{path}", timeout=10)
        assert response.status_code == 400, (path, response.text)
        assert response.headers["X-Road-Error"] == "client.bad_request"
        assert "gateway_exchanges" not in response.text


_METRIC = re.compile(r"\b(gateway_[a-z_]+)\b")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def test_the_dashboard_names_only_exported_metrics(mnet: LocalNet) -> None:
    assert call(mnet, str(GEWERBEAMT)).status_code == 200
    text, _ = scrape(mnet, SOEST.ags)
    exported = set()
    for family in text_string_to_metric_families(text):
        exported.add(family.name)
        exported.update(sample.name for sample in family.samples)
        if family.type == "counter":
            # A counter with labels has no sample until its first increment (no
            # failover yet, say); its HELP and TYPE lines declare it all the same.
            exported.add(f"{family.name}_total")
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    expressions += [v["query"] for v in dashboard["templating"]["list"] if v.get("type") == "query"]
    named = {name for expr in expressions for name in _METRIC.findall(expr)}
    assert len(expressions) >= 9 and named
    missing = sorted(named - exported)
    assert not missing, f"the dashboard names metrics the node does not export: {missing}"
    # Every family the node exports appears on the dashboard (the counters' and
    # histograms' creation times aside: the parser returns them as families of their own).
    families = {
        f.name for f in text_string_to_metric_families(text) if not f.name.endswith("_created")
    }
    shown = {n.removesuffix(s) for n in named for s in _SUFFIXES if n.endswith(s)} | named
    assert families <= shown, sorted(families - shown)


def test_node_status_shows_diagnostics_and_recent_traffic(mnet: LocalNet) -> None:
    assert call(mnet, str(GEWERBEAMT)).status_code == 200
    _, samples = scrape(mnet, SOEST.ags)
    serial = int(value(samples, "gateway_globalconf_serial"))
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "node",
            "status",
            "--config",
            str(mnet.nodes[SOEST.ags].config),
            "--minutes",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    screen = status.stdout
    assert screen.startswith(f"node {SOEST.node} at ")
    assert f"global configuration: serial {serial}," in screen
    assert "authentication certificate of" in screen and "signing certificate of" in screen
    assert "maintenance mode: off" in screen
    # The traffic lines agree with the node's own records of the same window.
    records = _operational(mnet, SOEST.ags)
    ok = sum(1 for r in records if r["succeeded"])
    assert re.search(rf"consumer +ok +{ok}\n", screen), screen
    assert f"{GEWERBEAMT} -> {SERVICE}  ok: {ok}" in screen


def test_node_status_of_a_node_that_does_not_answer(mnet: LocalNet) -> None:
    config = mnet.nodes[ISERLOHN.ags].config  # Iserlohn's node is not running here
    status = subprocess.run(
        [sys.executable, "-m", "gateway", "node", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode != 0
    assert f"node {ISERLOHN.node} does not answer on http://127.0.0.1:" in status.stderr
