"""Retention runs by itself in a running node (``[retention]``, ADR 0046).

Two nodes run as ``gateway node serve`` processes with a retention of a few seconds and
a check every half second; after two exchanges the consumer's node archives them to a
bundle in ``archive/`` beside its node.toml and then deletes their content on its own,
keeping every leaf hash, so the tree heads it signed still follow from its leaves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.conf.directory import TrustParameters
from gateway.core.merkle import tree_hash, verify_consistency
from gateway.messagelog import open_store
from gateway.messagelog.proofs import consistency, read_tree_heads
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

RETENTION = """
[retention]
archive_every_hours = 0.0005
archive_after_days = 0
entries_keep_days = 0.0001
tracker_keep_days = 0.0001
check_every_seconds = 0.5
"""
"""A bundle every 1.8 s at most, content deleted after about 9 s (entries are stamped
within a second, so archiving comes first)."""


@pytest.fixture(scope="module")
def rnet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("retention"), [SOEST, LIPPSTADT, ISERLOHN], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    federation.write_configs(
        globalconf_refresh_seconds=1, parameters=TrustParameters(timestamping_interval_seconds=1)
    )
    soest = federation.nodes[SOEST.ags].config
    soest.write_text(soest.read_text("utf-8") + RETENTION, "utf-8")
    try:
        federation.start_node(SOEST.ags)
        federation.start_node(LIPPSTADT.ags)
        yield federation
    finally:
        federation.stop()


def _metrics(net: LocalNet) -> dict[str, float]:
    text = httpx.get(f"{net.nodes[SOEST.ags].metrics_url}/metrics", timeout=10).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def test_the_node_archives_and_deletes_by_itself(rnet: LocalNet) -> None:
    for _ in range(2):
        response = httpx.get(
            f"{rnet.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}",
            params={"familienname": "Schmidt"},
            headers={"X-Road-Client": str(GEWERBEAMT)},
            timeout=30,
        )
        assert response.status_code == 200, response.text
    files = rnet.nodes[SOEST.ags]
    store = open_store(files.log_location)
    exchanged = [e for e in store.entries() if e.kind in ("request", "response")]
    assert len(exchanged) == 4
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        metrics = _metrics(rnet)
        gone = {e.id for e in store.entries() if e.body_omitted == "deleted"}
        if {e.id for e in exchanged} <= gone and metrics.get(
            "gateway_archive_last_bundle_timestamp_seconds", 0
        ):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the node did not archive and delete by itself: {metrics}")
    assert metrics["gateway_retention_deleted_entries_total"] >= 4
    assert metrics["gateway_retention_last_run_timestamp_seconds"] > 0
    bundles = sorted((files.config.parent / "archive").glob("archive-*.jsonl"))
    assert bundles, "the bundle is in archive/ beside node.toml"
    archived = b"".join(b.read_bytes() for b in bundles)
    assert all(e.message_id.encode() in archived for e in exchanged)
    for entry in store.entries():
        if entry.id in gone:
            assert (entry.header, entry.body, entry.signature) == (b"", b"", "")
    # The heads the node signed still follow from the leaf hashes it kept.
    heads = read_tree_heads(files.log_location)
    assert heads
    last = heads[-1]
    assert tree_hash(store.leaf_hashes(last.tree_size)) == last.root_hash
    first = heads[0]
    proof = consistency(files.log_location, first.tree_size, last.tree_size)
    verify_consistency(first.tree_size, last.tree_size, first.root_hash, last.root_hash, proof)
