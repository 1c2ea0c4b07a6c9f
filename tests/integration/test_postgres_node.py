"""Two nodes whose message logs live in PostgreSQL, as real processes.

Soest and Lippstadt each get a database of the throwaway cluster (``tests/pg.py``),
its schema made by ``gateway db upgrade`` with the node's own ``node.toml``, and
``[node] database_url`` instead of a SQLite file. An exchange is answered, both halves
are in the databases, the tree heads are timestamped, and ``gateway audit export
--db postgresql://...`` gives a bundle ``gateway audit verify`` accepts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.conf.directory import TrustParameters
from gateway.messagelog import Kind, Role, read_entries
from gateway.messagelog.proofs import timestamp_status
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    SERVICE,
    SOEST,
    RecordingRegistry,
    call,
)
from tests.pg import PgCluster

pytestmark = pytest.mark.integration


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll for something the nodes do in the background (a deadline, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def pgnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry, pg_cluster: PgCluster
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("pgnet"), [SOEST, LIPPSTADT], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    for files in federation.nodes.values():
        files.database_url = pg_cluster.fresh_database(empty=True)
    federation.write_configs(parameters=TrustParameters(timestamping_interval_seconds=1))
    for files in federation.nodes.values():
        upgraded = gateway("db", "upgrade", str(files.config))
        assert upgraded.returncode == 0, upgraded.stderr
    try:
        federation.start_node(SOEST.ags)
        federation.start_node(LIPPSTADT.ags)
        yield federation
    finally:
        federation.stop()


def test_an_exchange_is_logged_in_postgresql_and_audits(pgnet: LocalNet, tmp_path: Path) -> None:
    response = call(pgnet)
    assert response.status_code == 200, response.text
    soest, lippstadt = pgnet.nodes[SOEST.ags], pgnet.nodes[LIPPSTADT.ags]
    for files, role in ((soest, Role.CONSUMER), (lippstadt, Role.PROVIDER)):
        assert files.database_url is not None
        assert not files.messagelog.exists()
        entries = read_entries(files.database_url)
        assert [(e.role, e.kind) for e in entries] == [
            (Role.NODE, Kind.ADMIN),  # the settings' first version, recorded at start
            (role, Kind.REQUEST),
            (role, Kind.RESPONSE),
        ]
    ready = httpx.get(f"{soest.consumer_url}/health/ready", timeout=30)
    assert ready.status_code == 200, ready.text  # the readiness probe commits on PostgreSQL

    url = lippstadt.database_url
    assert url is not None
    eventually(lambda: timestamp_status(url).pending == 0, "Lippstadt's tree head")
    bundle = tmp_path / "lippstadt.jsonl"
    exported = gateway(
        "audit", "export", "--db", url, "--out", str(bundle), "--all",
        "--tsa-cert", str(pgnet.trust.tsa_cert), "--ca", str(pgnet.ca_cert),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(pgnet.ca_cert.read_bytes() + pgnet.trust.tsa_cert.read_bytes())
    verified = gateway("audit", "verify", str(bundle), "--anchor", str(anchor))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK ")
