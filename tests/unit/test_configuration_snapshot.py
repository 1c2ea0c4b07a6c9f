"""The configuration snapshot an audit bundle carries: verified offline with python-tuf.

A snapshot from a development TUF repository (the same code the central authority's
repository and the nodes' client use) verifies; a changed byte in any of its five files,
a missing file, a forged timestamp, or metadata of another version is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.audit.configuration import (
    SNAPSHOT_FILES,
    SnapshotError,
    read_snapshot,
    verify_snapshot,
)
from gateway.conf.globalconf import TARGET_NAME, CaEntry, GlobalConf
from gateway.conf.tufdev import DevRepository
from gateway.pki.ca import create_root_ca
from gateway.pki.keys import generate_key

NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


def _document(serial: int) -> bytes:
    ca = create_root_ca("Snapshot CA", generate_key(), NOW - timedelta(days=1))
    return GlobalConf(
        instance="DE-NRW",
        serial=serial,
        generated="2025-06-01T08:00:00Z",
        cas=(CaEntry(ca, ("http://127.0.0.1:1/ocsp",)),),
    ).to_bytes()


def _snapshot(repo: DevRepository, document: bytes) -> dict[str, bytes]:
    """The files a node's state directory holds after applying ``document``."""
    meta = repo.metadata_dir
    targets = max(meta.glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0]))
    snapshot = max(meta.glob("*.snapshot.json"), key=lambda p: int(p.name.split(".")[0]))
    root = max(meta.glob("*.root.json"), key=lambda p: int(p.name.split(".")[0]))
    return {
        "metadata/root.json": root.read_bytes(),
        "metadata/timestamp.json": (meta / "timestamp.json").read_bytes(),
        "metadata/snapshot.json": snapshot.read_bytes(),
        "metadata/targets.json": targets.read_bytes(),
        TARGET_NAME: document,
    }


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[DevRepository, dict[str, bytes]]:
    repo = DevRepository(tmp_path_factory.mktemp("tuf"), "DE-NRW")
    document = _document(7)
    repo.publish(document)
    return repo, _snapshot(repo, document)


def test_a_published_snapshot_verifies(
    published: tuple[DevRepository, dict[str, bytes]], tmp_path: Path
) -> None:
    _, files = published
    checked = verify_snapshot(files)
    assert (checked.instance, checked.serial, checked.targets_version) == ("DE-NRW", 7, 2)
    for name, data in files.items():  # as a node's state directory lays them out
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    assert [name for name, _ in read_snapshot(tmp_path)] == list(SNAPSHOT_FILES)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(SNAPSHOT_FILES), st.integers(0, 10_000))
def test_any_changed_byte_is_refused(
    published: tuple[DevRepository, dict[str, bytes]], name: str, at: int
) -> None:
    _, files = published
    data = bytearray(files[name])
    data[at % len(data)] ^= 0x01
    with pytest.raises(SnapshotError):
        verify_snapshot({**files, name: bytes(data)})


def test_a_missing_file_is_refused(published: tuple[DevRepository, dict[str, bytes]]) -> None:
    _, files = published
    with pytest.raises(SnapshotError, match="exactly"):
        verify_snapshot({k: v for k, v in files.items() if k != "metadata/snapshot.json"})


def test_a_forged_timestamp_or_mixed_versions_are_refused(tmp_path: Path) -> None:
    repo = DevRepository(tmp_path / "tuf", "DE-NRW")
    first = _document(1)
    repo.publish(first)
    old = _snapshot(repo, first)
    second = _document(2)
    repo.publish(second)
    new = _snapshot(repo, second)
    with pytest.raises(SnapshotError):  # the old targets under the new snapshot
        verify_snapshot({**new, "metadata/targets.json": old["metadata/targets.json"]})
    with pytest.raises(SnapshotError):  # the document of another version
        verify_snapshot({**new, TARGET_NAME: first})
    repo.bump_timestamp(forge=True)
    with pytest.raises(SnapshotError):
        verify_snapshot(_snapshot(repo, second))
