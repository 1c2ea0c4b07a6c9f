"""A real node's log with an admin record between its exchanges still serves and audits.

Real processes: two nodes and the trust services. The provider's node is stopped, an
admin change is logged into its message log with its own signing key (as its management
API does while it runs), and the node started again: it must accept its log, go on
serving and stamping, and ``gateway audit export`` / ``verify`` must carry and check the
admin record beside the exchanges.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.conf.directory import TrustParameters
from gateway.core.adminrecord import AdminRecord
from gateway.core.jws import Signer
from gateway.core.roles import ApiRole, key_actor
from gateway.keys.files import load_certificate, load_private_key
from gateway.messagelog import MessageLog, SqliteLogStore
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

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def adminnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("adminnet"), [SOEST, LIPPSTADT], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    # Long enough that the entries wait for the restart; the restarted node stamps them.
    federation.write_configs(parameters=TrustParameters(timestamping_interval_seconds=120))
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


def test_an_admin_record_in_a_real_nodes_log_is_exported_and_verified(
    adminnet: LocalNet, tmp_path: Path
) -> None:
    files = adminnet.nodes[LIPPSTADT.ags]
    db = files.messagelog
    assert call(adminnet).status_code == 200

    adminnet.stop_node(LIPPSTADT.ags)
    signer = Signer(
        LIPPSTADT.member,
        load_private_key(files.directory / "sign.key", files.passphrase),
        [load_certificate(files.sign_cert)],
    )
    record = AdminRecord(
        at=datetime.now(UTC),
        actor=key_actor("a1b2c3d4e5f6", "anna"),
        role=ApiRole.SERVICE_ADMINISTRATOR.value,
        action="access.grant",
        target=str(SERVICE),
        before=None,
        after={"subjects": [str(GEWERBEAMT)]},
    )

    # The settings document the node runs with after the restart: a valid one (the
    # version its first start recorded), or it would refuse to start.
    in_force = SqliteLogStore(db).latest_settings()
    assert in_force is not None and in_force.version == 1

    async def log_change() -> int:
        async with MessageLog(db, clock=lambda: datetime.now(UTC)) as log:
            receipt = await log.append_admin(record, signer, in_force.document)
        return receipt.leaf_index

    leaf = asyncio.run(log_change())
    adminnet.start_node(LIPPSTADT.ags)
    assert call(adminnet).status_code == 200  # the node goes on serving over its log

    deadline = time.monotonic() + 60
    while timestamp_status(db).stamped_size <= leaf:  # stamped at start-up, with evidence
        assert time.monotonic() < deadline, "the restarted node did not stamp its backlog"
        time.sleep(0.2)
    store = SqliteLogStore(db)
    bootstrap, stored = store.admin_records()  # the settings' first version, then ours
    assert bootstrap.record.action == "settings.bootstrap"
    assert stored.record == record and stored.leaf_index == leaf
    assert stored.cert_ref == signer.cert_ref
    entry = [e for e in store.entries() if e.kind == "admin"][-1]
    assert entry.ocsp_ref  # the node's kept OCSP answer for its signing key

    bundle = tmp_path / "lippstadt.jsonl"
    exported = gateway(
        "audit", "export", "--db", str(db), "--out", str(bundle), "--all",
        "--tsa-cert", str(adminnet.trust.tsa_cert), "--ca", str(adminnet.ca_cert),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(adminnet.ca_cert.read_bytes() + adminnet.trust.tsa_cert.read_bytes())
    verified = gateway("audit", "verify", str(bundle), "--anchor", str(anchor))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "2 of them admin records" in verified.stdout
