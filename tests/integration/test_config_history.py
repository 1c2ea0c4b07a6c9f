"""A node's configuration history reaches the audit bundle: every version in force.

Lippstadt applies serial 1 at start and serial 2 on a refresh, logging one exchange
under each. The bundle of its whole log carries both versions with the times it applied
them, the verifier reports which serial each run of entries was logged under, and a
bundle of the later entries only carries serial 2. A changed byte in a carried file,
or versions swapped, are refused.

The same pair of nodes, on logs of their own, also shows that ``[logging] inline_commit``
of node.toml reaches the node's log, and that a value that is not a boolean stops it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.audit.anchor import load_anchor
from gateway.audit.bundle_read import read_bundle
from gateway.audit.export import Selection, export_bundle
from gateway.audit.parallel import verify_file
from gateway.audit.verify import AuditError, AuditFailure, describe_in_force
from gateway.conf.directory import TrustParameters
from gateway.messagelog.sqlite import read_versions
from gateway.node.config import ConfigError, load_config
from gateway.node.server import Node
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
def hnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    net = LocalNet.create(tmp_path_factory.mktemp("hnet"), [SOEST, LIPPSTADT], datetime.now(UTC))
    net.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    net.write_configs(
        parameters=TrustParameters(timestamping_interval_seconds=3600),
        globalconf_refresh_seconds=3600,
    )
    net.start_trust()
    try:
        yield net
    finally:
        net.stop()


async def _exchange(soest: Node) -> None:
    assert soest.endpoints is not None
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await client.get(
            f"{soest.endpoints.consumer_url}/r1/{SERVICE}",
            params={"familienname": "Schmidt"},
            headers={"X-Road-Client": str(GEWERBEAMT)},
        )
    assert reply.status_code == 200, reply.text


async def _two_versions(net: LocalNet) -> tuple[Path, datetime]:
    lipp = Node(load_config(net.nodes[LIPPSTADT.ags].config))
    soest = Node(load_config(net.nodes[SOEST.ags].config))
    await lipp.start()
    await soest.start()
    try:
        await _exchange(soest)
        net.publish_globalconf()
        assert await lipp.refresh_globalconf_once()
        assert not await lipp.refresh_globalconf_once()  # nothing new: nothing recorded
        between = datetime.now(UTC)
        await _exchange(soest)
        assert await lipp.timestamper.stamp_once()
        return lipp.log.path, between
    finally:
        await soest.stop()
        await lipp.stop()


def _restart_records_nothing(net: LocalNet, db: Path) -> None:
    async def restart() -> None:
        node = Node(load_config(net.nodes[LIPPSTADT.ags].config))
        await node.start()
        await node.stop()

    asyncio.run(restart())
    with sqlite3.connect(db) as conn:
        assert [v.serial for v in read_versions(conn)] == [1, 2]


def test_a_bundle_carries_every_configuration_version_in_force(hnet: LocalNet) -> None:
    db, between = asyncio.run(_two_versions(hnet))
    _restart_records_nothing(hnet, db)
    out = hnet.root / "history"
    out.mkdir()
    anchor_file = out / "anchor.pem"
    anchor_file.write_bytes(hnet.ca_cert.read_bytes() + hnet.trust.tsa_cert.read_bytes())
    anchor = load_anchor(anchor_file)

    bundle = out / "all.jsonl"
    export_bundle(db, bundle, Selection(all=True), now=datetime.now(UTC))
    report = verify_file(bundle, anchor)
    assert [v.snapshot.serial for v in report.configurations] == [1, 2]
    assert report.configuration is not None and report.configuration.serial == 2
    # Serial 1: the settings' bootstrap record (version 1) and the first exchange.
    assert [(r.version, r.count) for r in report.in_force] == [(0, 3), (1, 2)]
    ids = [e.id for e in read_bundle(bundle.read_bytes().splitlines()).entries]
    assert describe_in_force(report) == (
        f"entries {ids[0]}-{ids[2]} under serial 1, {ids[3]}-{ids[4]} under serial 2"
    )

    later = out / "later.jsonl"
    export_bundle(db, later, Selection(since=between), now=datetime.now(UTC))
    report = verify_file(later, anchor)
    assert [v.snapshot.serial for v in report.configurations] == [2]
    assert [(r.version, r.count) for r in report.in_force] == [(0, 2)]

    lines = bundle.read_bytes().splitlines(keepends=True)
    configs = [i for i, line in enumerate(lines) if b'"type":"configuration"' in line]
    assert len(configs) == 10

    def refused(changed: list[bytes]) -> AuditError:
        bundle.write_bytes(b"".join(changed))
        with pytest.raises(AuditError) as caught:
            verify_file(bundle, anchor)
        return caught.value

    # A changed byte of the first version's targets metadata: its signature fails.
    record = json.loads(lines[configs[3]])
    assert record["name"] == "metadata/targets.json" and record["version"] == 0
    data = bytearray(base64.b64decode(record["data"]))
    data[data.index(b'"version"') + 11] ^= 1
    record["data"] = base64.b64encode(bytes(data)).decode()
    changed = [*lines]
    changed[configs[3]] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    assert refused(changed).reason is AuditFailure.CONFIGURATION

    # The two versions swapped (records and manifest claims): serials go back.
    manifest = json.loads(lines[0])
    manifest["configurations"].reverse()
    swapped = [*lines]
    swapped[0] = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    for i in configs:
        record = json.loads(lines[i])
        record["version"] = 1 - record["version"]
        swapped[i] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    swapped[configs[0] : configs[-1] + 1] = [
        *swapped[configs[5] : configs[-1] + 1],
        *swapped[configs[0] : configs[5]],
    ]
    error = refused(swapped)
    assert error.reason is AuditFailure.CONFIGURATION and "serials must increase" in error.detail


def _own_log(config: Path, name: str, logging: str = "") -> Path:
    """A copy of ``config`` on a log file of its own (the test above counts the entries of
    the nodes' logs), with ``logging`` as its ``[logging]`` section."""
    text = config.read_text("utf-8")
    assert "logging" not in tomllib.loads(text)
    assert text.count('messagelog = "messagelog.sqlite"') == 1
    text = text.replace('messagelog = "messagelog.sqlite"', f'messagelog = "{name}.sqlite"')
    copy = config.with_name(f"{name}.toml")
    copy.write_text(text + (f"\n[logging]\n{logging}\n" if logging else ""), "utf-8")
    return copy


def test_inline_commit_off_in_node_toml_sends_every_append_to_the_writer(hnet: LocalNet) -> None:
    """Soest with ``inline_commit = false``, Lippstadt with the default: one exchange at a
    time, Lippstadt commits its lone appends on its event loop, Soest on its writer."""
    soest_toml = _own_log(hnet.nodes[SOEST.ags].config, "inline-off", "inline_commit = false")
    lipp_toml = _own_log(hnet.nodes[LIPPSTADT.ags].config, "inline-default")

    async def run() -> tuple[int, int, int, int]:
        lipp = Node(load_config(lipp_toml))
        soest = Node(load_config(soest_toml))
        await lipp.start()
        await soest.start()
        try:
            for _ in range(3):
                await _exchange(soest)
            return (
                soest.log.stats.inline_commits,
                soest.log.stats.units,
                lipp.log.stats.inline_commits,
                lipp.log.stats.units,
            )
        finally:
            await soest.stop()
            await lipp.stop()

    soest_inline, soest_units, lipp_inline, lipp_units = asyncio.run(run())
    assert soest_units >= 3 and soest_inline == 0
    assert lipp_units >= 3 and lipp_inline >= 1  # the default: the same exchange, inline

    bad = _own_log(hnet.nodes[SOEST.ags].config, "inline-bad", 'inline_commit = "sometimes"')
    with pytest.raises(ConfigError, match=r"logging\.inline_commit\n.*valid boolean"):
        load_config(bad)
