"""Batched timestamping of the message log with real processes: two nodes, the trust
services (OCSP and TSA) as ``gateway trust serve``, a one-second timestamping interval.

Checks that tree heads appear on both nodes, that ``openssl ts -verify`` accepts their
tokens, that ``gateway log prove`` proves an entry, and that a TSA outage longer than the
tolerated one stops exchanges with the documented codes until the TSA is back, without a
restart. The provider (Lippstadt) tolerates 2 s, the consumer (Soest) 10 s, so the
provider's refusal is seen relayed before the consumer refuses on its own (8 s apart:
a test process stalled for seconds on a loaded machine still sees it). The OCSP
freshness window stays at its default hour, so the outage cannot trip OCSP checks.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx
import pytest

from gateway.conf.directory import TrustParameters
from gateway.messagelog import count_entries
from gateway.messagelog.proofs import read_tree_heads, timestamp_status
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    SERVICE,
    SOEST,
    RecordingRegistry,
    call,
)

pytestmark = pytest.mark.integration

TSA_NAME = "Development TSA DE-NRW"
PROVIDER_TOLERANCE = 2
CONSUMER_TOLERANCE = 10


@pytest.fixture(scope="module")
def tsnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    root: Path = tmp_path_factory.mktemp("tsnet")
    federation = LocalNet.create(root, [SOEST, LIPPSTADT], datetime.now(UTC))
    federation.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    key = "timestamp_failure_tolerance_seconds"
    federation.write_configs(
        extra={key: PROVIDER_TOLERANCE},
        parameters=TrustParameters(timestamping_interval_seconds=1),
    )
    soest_config = federation.nodes[SOEST.ags].config
    text = soest_config.read_text("utf-8")
    assert f"{key} = {PROVIDER_TOLERANCE}\n" in text
    soest_config.write_text(
        text.replace(f"{key} = {PROVIDER_TOLERANCE}\n", f"{key} = {CONSUMER_TOLERANCE}\n"),
        "utf-8",
    )
    try:
        federation.start_node(SOEST.ags)
        federation.start_node(LIPPSTADT.ags)
        yield federation
    finally:
        federation.stop()


def eventually(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Poll for something the nodes do in the background (a deadline, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def all_stamped(net: LocalNet, ags: str, at_least: int) -> bool:
    status = timestamp_status(net.nodes[ags].messagelog)
    return status.tree_size >= at_least and status.pending == 0


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tree_heads_appear_on_both_nodes_and_openssl_accepts_them(
    tsnet: LocalNet, tmp_path: Path
) -> None:
    for _ in range(3):
        response = call(tsnet)
        assert response.status_code == 200, response.text
    for ags in (SOEST.ags, LIPPSTADT.ags):
        eventually(partial(all_stamped, tsnet, ags, 6), f"tree heads on {ags}")
        heads = read_tree_heads(tsnet.nodes[ags].messagelog)
        head = heads[-1]
        assert head.tsa_name == TSA_NAME
        token = tmp_path / f"{ags}.tst"
        token.write_bytes(head.token)
        result = subprocess.run(
            [
                "openssl",
                "ts",
                "-verify",
                "-digest",
                hashlib.sha256(head.document).hexdigest(),
                "-in",
                str(token),
                "-token_in",
                "-CAfile",
                str(tsnet.ca_cert),
                "-untrusted",
                str(tsnet.trust.tsa_cert),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Verification: OK" in result.stdout


def test_gateway_log_prove_proves_an_entry(tsnet: LocalNet, tmp_path: Path) -> None:
    response = call(tsnet)
    assert response.status_code == 200, response.text
    db = tsnet.nodes[LIPPSTADT.ags].messagelog
    last = count_entries(db)
    eventually(lambda: all_stamped(tsnet, LIPPSTADT.ags, last), "the entry's tree head")

    listing = gateway("log", "timestamps", "--db", str(db))
    assert listing.returncode == 0, listing.stderr
    assert f"{last} entries, 0 pending" in listing.stdout

    export = tmp_path / "proof"
    proved = gateway(
        "log", "prove", "--db", str(db), "--id", str(last),
        "--tsa-cert", str(tsnet.trust.tsa_cert), "--ca", str(tsnet.ca_cert),
        "--export", str(export),
    )  # fmt: skip
    assert proved.returncode == 0, proved.stdout + proved.stderr
    assert f"entry {last} existed at " in proved.stdout
    # The exported files verify with openssl alone: the document is what was stamped.
    by_hand = subprocess.run(
        [
            "openssl", "ts", "-verify", "-data", str(export / "tree-head.json"),
            "-in", str(export / "token.tst"), "-token_in",
            "-CAfile", str(tsnet.ca_cert), "-untrusted", str(tsnet.trust.tsa_cert),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr

    missing = gateway(
        "log", "prove", "--db", str(db), "--id", str(last + 1000),
        "--tsa-cert", str(tsnet.trust.tsa_cert),
    )  # fmt: skip
    assert missing.returncode == 1
    assert f"cannot prove entry {last + 1000}: the log has no entry" in missing.stderr
    wrong_tsa = gateway(
        "log", "prove", "--db", str(db), "--id", str(last),
        "--tsa-cert", str(tsnet.nodes[LIPPSTADT.ags].sign_cert),
    )  # fmt: skip
    assert wrong_tsa.returncode == 1
    assert "cannot prove entry" in wrong_tsa.stderr and "timestamp" in wrong_tsa.stderr


def call_until_refused(net: LocalNet, code: str, timeout: float = 20) -> httpx.Response:
    """Keep calling until the node refuses with ``code``; meanwhile only successes (or
    the other side's timestamping refusal) are acceptable."""
    deadline = time.monotonic() + timeout
    while True:
        response = call(net)
        got = response.headers.get("X-Road-Error")
        if got == code:
            return response
        assert response.status_code == 200 or (got or "").endswith(".timestamping_failed"), (
            response.text
        )
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {code}")
        time.sleep(0.2)


def test_tsa_outage_refuses_then_recovers_without_restart(
    tsnet: LocalNet, registry: RecordingRegistry
) -> None:
    lippstadt = tsnet.nodes[LIPPSTADT.ags].messagelog
    stamped_before = timestamp_status(lippstadt).stamped_size
    tsnet.stop_trust()
    try:
        first = call(tsnet)
        assert first.status_code == 200, "the TSA must never be on the request path"

        # The provider tolerates 2 s; its refusal reaches the client through Soest.
        provider = call_until_refused(tsnet, "server.serverproxy.timestamping_failed")
        assert provider.status_code == 500
        assert provider.headers["X-Road-Error"] == "server.serverproxy.timestamping_failed"
        document = provider.json()
        assert document["type"] == "server.serverproxy.timestamping_failed"
        assert TSA_NAME in document["message"] and "log entries wait since" in document["message"]
        backlog = count_entries(lippstadt)

        # Then the consumer's own tolerance (10 s) runs out: refused before any other work.
        consumer = call_until_refused(tsnet, "server.clientproxy.timestamping_failed")
        assert consumer.status_code == 500
        assert "last successful time stamp 20" in consumer.json()["message"]
        calls = registry.count()
        again = call(tsnet)
        assert again.headers["X-Road-Error"] == "server.clientproxy.timestamping_failed"
        assert registry.count() == calls
        assert count_entries(lippstadt) == backlog, "a refused exchange was logged"
    finally:
        tsnet.start_trust()

    eventually(lambda: call(tsnet).status_code == 200, "exchanges to resume")
    for ags in (SOEST.ags, LIPPSTADT.ags):
        eventually(partial(all_stamped, tsnet, ags, 1), f"the backlog stamped on {ags}")
    after = [h.tree_size for h in read_tree_heads(lippstadt) if h.tree_size > stamped_before]
    assert after[0] >= backlog, "the first tree head after the outage covers the backlog"
