"""Configuration history: which signed version each entry was judged against.

The pure parts (which versions an export carries, which version each entry was logged
under) on hand-made times; the offline check of a sequence of versions on a development
TUF repository, including a root rotation; the node's history table; and the bundle
records that carry it.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from securesystemslib.signer import CryptoSigner
from sqlmodel import SQLModel, create_engine
from tuf.api.serialization.json import JSONSerializer

from gateway.audit.bundle import Bundle, ConfigItem, ConfigVersion, Manifest, encode_bundle
from gateway.audit.bundle_read import read_bundle
from gateway.audit.configuration import (
    SNAPSHOT_FILES,
    InForceRun,
    SnapshotError,
    in_force_runs,
    merge_runs,
    select_versions,
    verify_versions,
)
from gateway.audit.verify import AuditError, AuditFailure, check_configuration, check_versions
from gateway.conf.tufdev import DevRepository
from gateway.messagelog.schema import schema_tables
from gateway.messagelog.sqlite import read_versions
from gateway.messagelog.sqlite_writes import record_version
from tests.unit.test_configuration_snapshot import _document, _snapshot

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


def _t(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


# -- pure range assignment -------------------------------------------------------------


def test_select_versions_carries_the_one_in_force_at_the_first_entry_and_later_ones() -> None:
    applied = [_t(0), _t(10), _t(20), _t(30)]
    assert select_versions(applied, _t(12), _t(25)) == slice(1, 3)
    assert select_versions(applied, _t(10), _t(10)) == slice(1, 2)  # applied at that instant
    assert select_versions(applied, _t(35), _t(40)) == slice(3, 4)
    assert select_versions(applied, _t(-5), _t(5)) == slice(0, 1)
    assert select_versions(applied, _t(-9), _t(-5)) == slice(0, 0)  # before any history
    assert select_versions(applied, None, None) == slice(3, 4)  # no entries: the latest
    assert select_versions([], _t(1), _t(2)) == slice(0, 0)


def test_in_force_runs_name_the_version_each_entry_was_logged_under() -> None:
    applied = [_t(10), _t(20)]
    entries = [(1, _t(5)), (2, _t(10)), (3, _t(15)), (4, _t(20)), (5, _t(21))]
    assert in_force_runs(applied, entries) == [
        InForceRun(None, 1, 1, 1),
        InForceRun(0, 2, 3, 2),
        InForceRun(1, 4, 5, 2),
    ]
    assert in_force_runs([], entries) == [InForceRun(None, 1, 5, 5)]


def test_runs_split_by_chunks_merge_back() -> None:
    applied = [_t(0), _t(10)]
    entries = [(i, _t(i)) for i in range(1, 20)]
    whole = in_force_runs(applied, entries)
    chunks = [in_force_runs(applied, entries[a : a + 4]) for a in range(0, len(entries), 4)]
    assert merge_runs(run for chunk in chunks for run in chunk) == whole
    assert whole == [InForceRun(0, 1, 9, 9), InForceRun(1, 10, 19, 10)]


# -- offline check of a sequence of versions ---------------------------------------------


def _rotate_root(repo: DevRepository, *, sign_with_old: bool = True, skip: int = 0) -> None:
    """Replace the root key: a new root version signed by the old and the new key."""
    old = repo.signers["root"]
    new = CryptoSigner.generate_ecdsa()
    root = repo.root
    root.signed.revoke_key(old.public_key.keyid, "root")
    root.signed.add_key(new.public_key, "root")
    root.signed.version += 1 + skip
    root.signatures.clear()
    if sign_with_old:
        root.sign(old, append=True)
    root.sign(new, append=True)
    path = repo.metadata_dir / f"{root.signed.version}.root.json"
    path.write_bytes(root.to_bytes(JSONSerializer()))
    repo.signers["root"] = new


def _versions(
    tmp: Path, *, rotate: bool = False, sign_with_old: bool = True, skip: int = 0
) -> list[dict[str, bytes]]:
    repo = DevRepository(tmp / "tuf", "DE-NRW")
    files = []
    for serial in (1, 2, 3):
        if serial == 3 and rotate:
            _rotate_root(repo, sign_with_old=sign_with_old, skip=skip)
        document = _document(serial)
        repo.publish(document)
        files.append(_snapshot(repo, document))
    return files


def _claims(files: list[dict[str, bytes]]) -> list[tuple[int, str, dict[str, bytes]]]:
    return [(i + 1, f"2025-06-01T08:0{i}:00.000Z", f) for i, f in enumerate(files)]


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, bytes]]:
    return _versions(tmp_path_factory.mktemp("rotated"), rotate=True)


def test_versions_verify_across_a_root_rotation(rotated: list[dict[str, bytes]]) -> None:
    checked = verify_versions(_claims(rotated))
    assert [v.snapshot.serial for v in checked] == [1, 2, 3]
    assert [v.snapshot.root_version for v in checked] == [1, 1, 2]
    assert checked[0].applied_at == T0


def test_a_root_not_signed_by_the_previous_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match=r"version 2 .*root rotation"):
        verify_versions(_claims(_versions(tmp_path, rotate=True, sign_with_old=False)))


def test_a_root_version_skipped_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="root v3 follows root v1"):
        verify_versions(_claims(_versions(tmp_path, rotate=True, skip=1)))


def test_the_sequence_must_increase(rotated: list[dict[str, bytes]]) -> None:
    claims = _claims(rotated)
    with pytest.raises(SnapshotError, match="serials must increase"):
        verify_versions([claims[1], claims[0]])
    with pytest.raises(SnapshotError, match="applied-times must increase"):
        verify_versions([claims[0], (2, claims[0][1], claims[1][2])])
    with pytest.raises(SnapshotError, match="signed document has serial 2"):
        verify_versions([claims[0], (5, claims[1][1], claims[1][2])])
    with pytest.raises(SnapshotError, match="UTC with milliseconds"):
        verify_versions([(1, "2025-06-01T08:00:00+00:00", claims[0][2])])
    with pytest.raises(SnapshotError, match="not RFC 3339"):
        verify_versions([(1, "yesterday", claims[0][2])])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, 2), st.sampled_from(SNAPSHOT_FILES), st.integers(0, 10_000))
def test_any_changed_byte_of_any_version_is_refused(
    rotated: list[dict[str, bytes]], version: int, name: str, at: int
) -> None:
    files = [dict(f) for f in rotated]
    data = bytearray(files[version][name])
    data[at % len(data)] ^= 0x01
    files[version][name] = bytes(data)
    with pytest.raises(SnapshotError):
        verify_versions(_claims(files))


# -- the node's history table ------------------------------------------------------------


def _db(tmp: Path) -> sqlite3.Connection:
    engine = create_engine(f"sqlite:///{tmp / 'log.sqlite'}")
    SQLModel.metadata.create_all(engine, tables=schema_tables())
    engine.dispose()
    return sqlite3.connect(tmp / "log.sqlite")


def test_history_records_each_new_document_once(
    tmp_path: Path, rotated: list[dict[str, bytes]]
) -> None:
    conn = _db(tmp_path)
    first, second = (tuple(f.items()) for f in rotated[:2])
    assert record_version(conn, first, 1, "2025-06-01T08:00:00.000Z")
    assert not record_version(conn, first, 1, "2025-06-01T08:01:00.000Z")  # a restart
    assert record_version(conn, second, 2, "2025-06-01T08:02:00.000Z")
    versions = read_versions(conn)
    assert [(v.serial, v.applied_at) for v in versions] == [
        (1, "2025-06-01T08:00:00.000Z"),
        (2, "2025-06-01T08:02:00.000Z"),
    ]
    assert versions[1].files == second
    with pytest.raises(ValueError, match="exactly"):
        record_version(conn, first[1:], 1, "2025-06-01T08:03:00.000Z")


def test_a_log_from_before_history_has_none(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.sqlite")
    conn.execute("CREATE TABLE message_log (id INTEGER PRIMARY KEY)")
    assert read_versions(conn) == []


# -- bundle records ------------------------------------------------------------------------


def _bundle(files: list[dict[str, bytes]]) -> Bundle:
    claims = _claims(files)
    return Bundle(
        Manifest(
            node="DE-NRW/GOV/05974028/ss1",
            exported_at="2025-06-01T09:00:00.000Z",
            selection={"all": True},
            log_size=0,
            tree_heads=(),
            entries=(),
            certificates=0,
            ocsp_responses=0,
            configurations=tuple(
                ConfigVersion(serial, applied, tuple(f)) for serial, applied, f in claims
            ),
        ),
        configuration=[
            ConfigItem(name, data, position)
            for position, f in enumerate(files)
            for name, data in f.items()
        ],
    )


def test_versions_survive_the_bundle_encoding(rotated: list[dict[str, bytes]]) -> None:
    bundle = _bundle(rotated)
    parsed = read_bundle(list(encode_bundle(bundle)))
    assert parsed.manifest == bundle.manifest and parsed.configuration == bundle.configuration
    assert [v.snapshot.serial for v in check_versions(parsed)] == [1, 2, 3]


def test_records_must_match_the_manifest(rotated: list[dict[str, bytes]]) -> None:
    bundle = _bundle(rotated)
    moved = [*bundle.configuration]
    moved[0] = ConfigItem(moved[0].name, moved[0].data, 1)
    with pytest.raises(AuditError) as caught:
        check_versions(Bundle(bundle.manifest, configuration=moved))
    assert caught.value.reason is AuditFailure.MANIFEST_MISMATCH
    # A versioned record in a single-snapshot bundle is not silently ignored.
    single = dataclasses.replace(bundle.manifest, configurations=())
    with pytest.raises(AuditError) as caught:
        check_configuration(Bundle(single, configuration=bundle.configuration))
    assert caught.value.reason is AuditFailure.MANIFEST_MISMATCH
    both = dataclasses.replace(bundle.manifest, configuration=tuple(SNAPSHOT_FILES))
    with pytest.raises(AuditError) as caught:
        check_versions(Bundle(both, configuration=bundle.configuration))
    assert caught.value.reason is AuditFailure.MANIFEST_MISMATCH
