"""``gateway node backup`` and ``restore`` on a running node.

Lippstadt's node is backed up while it serves, then its directory is moved away and
the backup restored in its place, as on a fresh machine: the node starts from it,
answers, and its whole log exports and verifies with ``gateway audit verify``. Its
nodes keep every non-empty body in the log's segment files (a threshold of one byte), so
the backup must carry them beside the snapshot (ADR 0071). A
tampered backup is refused for its signature, one opened with another backup key for
the key, each with a message saying so.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.conf.directory import TrustParameters
from gateway.messagelog import body_segment_dir, open_store, timestamp_status
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    SERVICE,
    SOEST,
    RecordingRegistry,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("backupnet"), [SOEST, LIPPSTADT], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    federation.write_configs(parameters=TrustParameters(timestamping_interval_seconds=1))
    for files in federation.nodes.values():
        text = files.config.read_text("utf-8")
        assert "logging" not in tomllib.loads(text)
        files.config.write_text(text + "\n[logging]\nbody_file_bytes = 1\n", "utf-8")
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
        timeout=120,
        check=False,
    )


def _exchange(net: LocalNet) -> None:
    response = httpx.get(
        f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": str(GEWERBEAMT)},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def _stamped(db: Path, size: int) -> None:
    deadline = time.monotonic() + 30
    while not ((status := timestamp_status(db)).tree_size >= size and status.pending == 0):
        assert time.monotonic() < deadline, "no tree head covered the entries"
        time.sleep(0.1)


def test_backup_restore_on_a_fresh_directory_serves_the_same_log(
    bnet: LocalNet, tmp_path: Path
) -> None:
    for _ in range(2):
        _exchange(bnet)
    files = bnet.nodes[LIPPSTADT.ags]
    _stamped(files.messagelog, 5)  # the settings' record and two exchanges
    before = [(e.id, e.leaf_hash, e.body) for e in open_store(files.messagelog).entries()]
    assert any(b"Schmidt" in body for *_, body in before)  # a response body, from a segment
    assert list(body_segment_dir(files.messagelog).iterdir())

    made = gateway("node", "backup-key", "--out", str(tmp_path / "backup.key"))
    assert made.returncode == 0, made.stderr
    other = gateway("node", "backup-key", "--out", str(tmp_path / "other.key"))
    assert other.returncode == 0, other.stderr
    backup = tmp_path / "lippstadt.backup"
    written = gateway(
        "node",
        "backup",
        "--config",
        str(files.config),
        "--recipient",
        str(tmp_path / "backup.pub"),
        str(backup),
    )
    assert written.returncode == 0, written.stderr
    signer = written.stdout.split("signer sha256")[1].split()[0]
    data = backup.read_bytes()
    assert b"Schmidt" not in data and b"BEGIN PRIVATE KEY" not in data  # encrypted

    tampered = tmp_path / "tampered.backup"
    tampered.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
    refused = gateway(
        "node",
        "restore",
        str(tampered),
        "--to",
        str(tmp_path / "t"),
        "--key",
        str(tmp_path / "backup.key"),
    )
    assert refused.returncode == 2
    assert "signature does not verify" in refused.stderr
    wrong = gateway(
        "node",
        "restore",
        str(backup),
        "--to",
        str(tmp_path / "w"),
        "--key",
        str(tmp_path / "other.key"),
    )
    assert wrong.returncode == 2
    assert "wrong decryption key" in wrong.stderr
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())

    # The machine is lost: the node's directory goes, the backup comes back in its place.
    bnet.stop_node(LIPPSTADT.ags)
    lost = files.directory.with_name(files.directory.name + ".lost")
    files.directory.rename(lost)
    restored = gateway(
        "node",
        "restore",
        str(backup),
        "--to",
        str(files.directory),
        "--key",
        str(tmp_path / "backup.key"),
        "--signer",
        signer,
    )
    assert restored.returncode == 0, restored.stderr
    assert files.config.read_bytes() == (lost / files.config.name).read_bytes()
    for key in lost.rglob("*.key"):
        copy = files.directory / key.relative_to(lost)
        assert copy.read_bytes() == key.read_bytes()
        assert stat.S_IMODE(copy.stat().st_mode) == stat.S_IMODE(key.stat().st_mode)
    assert [(e.id, e.leaf_hash, e.body) for e in open_store(files.messagelog).entries()] == before

    bnet.start_node(LIPPSTADT.ags)
    _exchange(bnet)
    _stamped(files.messagelog, 7)
    bundle = tmp_path / "restored.jsonl"
    exported = gateway(
        "audit",
        "export",
        "--db",
        str(files.messagelog),
        "--out",
        str(bundle),
        "--all",
        "--tsa-cert",
        str(bnet.trust.tsa_cert),
        "--ca",
        str(bnet.ca_cert),
    )
    assert exported.returncode == 0, exported.stderr
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(bnet.ca_cert.read_bytes() + bnet.trust.tsa_cert.read_bytes())
    verified = gateway("audit", "verify", str(bundle), "--anchor", str(anchor))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "7 entries" in exported.stdout
