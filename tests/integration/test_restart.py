"""A node restarted with log entries waiting for their time stamp still audits.

Real processes: two nodes and the trust services (``gateway trust serve``: OCSP responder
and TSA in one process). The timestamping interval is long (120 s), so entries logged
before a restart are still pending when the node stops; the restarted node stamps that
backlog at once. Its signed tree head must carry the OCSP evidence an auditor checks, or
``gateway audit verify`` refuses the node's whole log from then on. And the OCSP answers
the node had before the restart are kept in its log: restarted while the responder is
down, it serves and signs with them while they are fresh.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.conf.directory import TrustParameters
from gateway.messagelog.proofs import timestamp_status
from gateway.sandbox.localnet import LocalNet, ServiceSpec, wait_http
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    SERVICE,
    SOEST,
    RecordingRegistry,
    call,
)

pytestmark = pytest.mark.integration

INTERVAL = 120
"""Seconds between time stamps: far longer than a test, so entries wait for a restart."""


@pytest.fixture(scope="module")
def restartnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("restartnet"), [SOEST, LIPPSTADT], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    federation.write_configs(parameters=TrustParameters(timestamping_interval_seconds=INTERVAL))
    try:
        federation.start_node(SOEST.ags)
        federation.start_node(LIPPSTADT.ags)
        yield federation
    finally:
        federation.stop()


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def eventually(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll for something the node does in the background (a deadline, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def stop_node(net: LocalNet, ags: str, how: signal.Signals) -> None:
    """Stop one node with ``how`` (SIGKILL: no draining, no clean close of its log)."""
    config = str(net.nodes[ags].config)
    for proc in list(net.processes):
        if proc.args[-1] == config and proc.poll() is None:  # type: ignore[index]
            proc.send_signal(how)
            proc.wait(timeout=10)
            net.processes.remove(proc)


def unsigned_evidence(db: Path) -> list[tuple[int, str]]:
    """Signed tree heads whose OCSP response is missing (no ref, or no stored DER)."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT s.tree_size, s.ocsp_ref FROM signed_tree_head s"
            " LEFT JOIN ocsp_response r ON r.ocsp_ref = s.ocsp_ref WHERE r.der IS NULL"
        ).fetchall()
    return [(int(size), str(ref)) for size, ref in rows]


def signed_heads(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM signed_tree_head").fetchone()
    return int(count)


def audit(net: LocalNet, ags: str, tmp_path: Path) -> None:
    """``gateway audit export --all`` and ``gateway audit verify`` both succeed."""
    db = net.nodes[ags].messagelog
    bundle = tmp_path / f"{ags}.jsonl"
    exported = gateway(
        "audit", "export", "--db", str(db), "--out", str(bundle), "--all",
        "--tsa-cert", str(net.trust.tsa_cert), "--ca", str(net.ca_cert),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(net.ca_cert.read_bytes() + net.trust.tsa_cert.read_bytes())
    verified = gateway("audit", "verify", str(bundle), "--anchor", str(anchor))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK ")


def test_a_node_killed_with_entries_waiting_stamps_them_with_evidence_after_restart(
    restartnet: LocalNet, tmp_path: Path
) -> None:
    db = restartnet.nodes[LIPPSTADT.ags].messagelog
    for _ in range(2):
        response = call(restartnet)
        assert response.status_code == 200, response.text
    before = timestamp_status(db)
    assert before.pending > 0, "the entries were stamped before the restart"

    stop_node(restartnet, LIPPSTADT.ags, signal.SIGKILL)
    restartnet.start_node(LIPPSTADT.ags)

    eventually(lambda: timestamp_status(db).pending == 0, "the backlog stamped at start-up")
    assert timestamp_status(db).tree_size >= before.tree_size
    assert signed_heads(db) > 0
    assert unsigned_evidence(db) == []
    audit(restartnet, LIPPSTADT.ags, tmp_path)


def test_a_node_restarted_while_the_responder_is_down_serves_with_its_kept_evidence(
    restartnet: LocalNet, tmp_path: Path
) -> None:
    db = restartnet.nodes[LIPPSTADT.ags].messagelog
    response = call(restartnet)
    assert response.status_code == 200, response.text
    assert timestamp_status(db).pending > 0
    heads = signed_heads(db)

    stop_node(restartnet, LIPPSTADT.ags, signal.SIGTERM)
    restartnet.stop_trust()  # OCSP responder and TSA are down during the restart
    files = restartnet.nodes[LIPPSTADT.ags]
    proc = restartnet._spawn(
        ["node", "serve", "--config", str(files.config)], f"node-{LIPPSTADT.ags}"
    )
    wait_http(f"{files.consumer_url}/health", proc)

    # The OCSP answers fetched before the restart are still fresh: the node serves.
    during = call(restartnet)
    assert during.status_code == 200, during.text
    assert signed_heads(db) == heads  # no TSA, so no tree head yet

    restartnet.start_trust()
    eventually(lambda: timestamp_status(db).pending == 0, "the backlog stamped after the outage")
    assert signed_heads(db) > heads
    assert unsigned_evidence(db) == []
    audit(restartnet, LIPPSTADT.ags, tmp_path)
