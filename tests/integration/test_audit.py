"""An audit of a real node's log: export Lippstadt's message log with ``gateway audit
export`` and verify it offline with ``gateway audit verify`` against an anchor made of
the federation's CA and TSA certificates; then change one byte and expect the verifier
to name the entry.

Real processes: two nodes, the OCSP responder and TSA (``gateway trust serve``), a
one-second timestamping interval so tree heads appear quickly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.conf.directory import TrustParameters
from gateway.messagelog.proofs import timestamp_status
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import GEWERBEAMT, LIPPSTADT, SERVICE, SOEST, RecordingRegistry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def auditnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("auditnet"), [SOEST, LIPPSTADT], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    federation.write_configs(parameters=TrustParameters(timestamping_interval_seconds=1))
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


def test_export_and_verify_lippstadts_log_then_a_flipped_byte_names_the_entry(
    auditnet: LocalNet, tmp_path: Path
) -> None:
    for _ in range(3):
        response = httpx.get(
            f"{auditnet.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}",
            params={"familienname": "Schmidt"},
            headers={"X-Road-Client": str(GEWERBEAMT)},
            timeout=30,
        )
        assert response.status_code == 200, response.text
    db = auditnet.nodes[LIPPSTADT.ags].messagelog
    deadline = time.monotonic() + 20
    while not (
        (status := timestamp_status(db)).tree_size >= 7 and status.pending == 0
    ):  # a deadline, not a timing claim
        assert time.monotonic() < deadline, "no tree head covered Lippstadt's entries"
        time.sleep(0.1)

    bundle = tmp_path / "lippstadt.jsonl"
    exported = gateway(
        "audit",
        "export",
        "--db",
        str(db),
        "--out",
        str(bundle),
        "--all",
        "--tsa-cert",
        str(auditnet.trust.tsa_cert),
        "--ca",
        str(auditnet.ca_cert),
    )
    assert exported.returncode == 0, exported.stderr
    assert "7 entries" in exported.stdout  # the settings' bootstrap record, 3 exchanges

    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(auditnet.ca_cert.read_bytes() + auditnet.trust.tsa_cert.read_bytes())
    verified = gateway("audit", "verify", str(bundle), "--anchor", str(anchor))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK ")
    assert "7 entries" in verified.stdout

    # One byte of the third entry's signed header changes (to another base64 letter):
    # the file still parses, the verifier names that entry.
    lines = bundle.read_bytes().splitlines(keepends=True)
    entries = [i for i, line in enumerate(lines) if json.loads(line)["type"] == "entry"]
    victim = entries[2]
    entry_id = json.loads(lines[victim])["id"]
    start = lines[victim].index(b'"header":"') + len(b'"header":"') + 20
    data = bytearray(b"".join(lines))
    offset = sum(len(line) for line in lines[:victim]) + start
    data[offset] = ord("A") if data[offset] != ord("A") else ord("B")
    bundle.write_bytes(bytes(data))
    refused = gateway("audit", "verify", str(bundle), "--anchor", str(anchor))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"FAIL entry {entry_id} " in refused.stderr
    assert "leaf_mismatch" in refused.stderr
