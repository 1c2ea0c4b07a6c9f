"""Retention that runs itself (docs/adr/0046-retention-that-runs-itself.md).

Deleting an entry's content keeps its leaf hash and body digest, so every proof of the
entries left, and every consistency proof between tree heads, verifies as before; the
data tracker's rows go only after their entry's content, at their own boundary. Both
backends: the ``log_location`` fixture.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from gateway.audit.export import Selection, export_bundle
from gateway.audit.parallel import verify_file
from gateway.audit.subjects import check_subjects
from gateway.core.merkle import verify_consistency
from gateway.messagelog import Expired, LogStore, NotProvableError, open_store, prove_entry
from gateway.messagelog.proofs import consistency, read_tree_heads
from gateway.node.config import NodeConfig, RetentionSection
from gateway.node.retention import RetentionJob
from gateway.sandbox.bench.audit import START, SUBJECT, SyntheticLog, build_log

ENTRIES = 24
LATER = START + timedelta(days=400)


def _log(tmp_path: Path, location: Path | str) -> SyntheticLog:
    url = location if isinstance(location, str) else None
    return build_log(tmp_path / "log", ENTRIES, head_every=6, database_url=url)


def _logged_at(store: LogStore, entry_id: int) -> str:
    return next(e.logged_at for e in store.entries() if e.id == entry_id)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_expire_deletes_exactly_what_is_due_and_proofs_still_verify(
    tmp_path: Path, log_location: Path | str
) -> None:
    log = _log(tmp_path, log_location)
    store = open_store(log.location)
    leaves = store.leaf_hashes(ENTRIES)
    before = {e.id: e for e in store.entries()}
    assert len(store.data_subjects()) == ENTRIES // 2  # one per response entry
    # Entries logged before entry 13 lose their content; the tracker rows only of
    # those logged before entry 7: its own boundary, later than the content's.
    expired = store.expire(_logged_at(store, 13), _logged_at(store, 7))
    after = {e.id: e for e in store.entries()}
    assert expired.entries == 12
    deleted = {i for i, e in after.items() if e.body_omitted == "deleted"}
    assert deleted == set(range(1, 13)), "entry 13, logged at the boundary, stays"
    assert {(after[i].header, after[i].body, after[i].signature) for i in deleted} == {
        (b"", b"", "")
    }
    assert all(after[i] == before[i] for i in range(13, ENTRIES + 1))
    assert [after[i].body_sha256 for i in deleted] == [before[i].body_sha256 for i in deleted]
    assert store.leaf_hashes(ENTRIES) == leaves, "every leaf hash is kept"
    subjects = store.data_subjects()
    kept_rows = {i for i in before if i >= 7 and before[i].kind == "response"}
    assert set(subjects) == kept_rows
    reads = store.data_subject_reads()
    assert reads is not None and set(reads) == kept_rows
    assert expired.tracker_rows == 2 * (len(before) // 2 - len(kept_rows))
    # The tracker still answers for the deleted reads it keeps rows of, and says so.
    usage = store.usage(SUBJECT)
    assert [(u.entry_id, u.archived, u.deleted) for u in usage] == [
        (i, i < 13, i < 13) for i in sorted(kept_rows)
    ]
    # Proofs of the entries left, of time and of consistency between heads.
    for entry_id in (13, ENTRIES):
        proof, _ = prove_entry(log.location, entry_id, log.tsa_cert)
        assert proof.leaf_index == entry_id - 1
    with pytest.raises(NotProvableError, match="deleted by the node's retention"):
        prove_entry(log.location, 3, log.tsa_cert)
    heads = {h.tree_size: h.root_hash for h in read_tree_heads(log.location)}
    verify_consistency(6, ENTRIES, heads[6], heads[ENTRIES], consistency(log.location, 6, 24))
    rest = tmp_path / "rest.jsonl"
    exported = export_bundle(store, rest, Selection(all=True), now=LATER)
    assert exported.archived == 12
    assert verify_file(rest, log.anchor).entries == ENTRIES - 12
    report = check_subjects(log.location)
    assert report.mismatches == []
    # A second pass at the same boundaries finds nothing more.
    assert store.expire(_logged_at(store, 13), _logged_at(store, 7)) == Expired(0, 0)
    assert store.expire(_logged_at(store, 13), _logged_at(store, 13)).tracker_rows == 2 * 3


def _job(
    log: SyntheticLog,
    section: RetentionSection,
    archive_dir: Path,
    registry: CollectorRegistry | None = None,
) -> RetentionJob:
    class Fixed:
        def now(self) -> datetime:
            return LATER

    return RetentionJob(
        "ss1",
        Fixed(),
        open_store(log.location),
        section,
        archive_dir,
        registry or CollectorRegistry(),
    )


def test_a_pass_archives_when_due_then_deletes_after_the_retention(
    tmp_path: Path, log_location: Path | str
) -> None:
    log = _log(tmp_path, log_location)
    store = open_store(log.location)
    cut = _time(_logged_at(store, 13))
    keep = (LATER - cut) / timedelta(days=1)
    section = RetentionSection(
        archive_every_hours=6, entries_keep_days=keep, tracker_keep_days=keep
    )
    archive_dir = tmp_path / "archive"
    registry = CollectorRegistry()
    job = _job(log, section, archive_dir, registry)
    assert registry.get_sample_value("gateway_archive_last_bundle_timestamp_seconds") == 0
    done = job.run_once(LATER)
    assert done.bundle == archive_dir / "archive-20260706T080000Z.jsonl"
    assert done.archived == ENTRIES
    assert verify_file(done.bundle, log.anchor).entries == ENTRIES
    assert done.expired.entries == 12
    assert [e.body_omitted for e in store.entries()] == ["deleted"] * 12 + ["archived"] * 12
    assert registry.get_sample_value("gateway_retention_deleted_entries_total") == 12
    assert registry.get_sample_value("gateway_retention_last_run_timestamp_seconds") == (
        LATER.timestamp()
    )
    assert registry.get_sample_value("gateway_archive_last_bundle_timestamp_seconds") == (
        LATER.timestamp()
    )
    # Not due again for six hours; a restarted job finds the last bundle by its name.
    again = _job(log, section, archive_dir)
    assert again.latest_bundle_time() == LATER
    assert again.run_once(LATER + timedelta(hours=5)).bundle is None
    assert sorted(p.name for p in archive_dir.iterdir()) == [done.bundle.name]
    # Due again, but nothing new is timestamped: no empty bundle.
    assert again.run_once(LATER + timedelta(hours=7)).bundle is None
    assert sorted(p.name for p in archive_dir.iterdir()) == [done.bundle.name]


def test_a_failing_seal_prunes_nothing(tmp_path: Path, log_location: Path | str) -> None:
    log = _log(tmp_path, log_location)
    section = RetentionSection(archive_every_hours=1)
    job = _job(log, section, tmp_path / "archive")

    def refuse(bundle: Path) -> None:
        raise OSError(f"cannot encrypt {bundle.name}")

    job.seal = refuse
    with pytest.raises(OSError, match="cannot encrypt"):
        job.run_once(LATER)
    assert {e.body_omitted for e in open_store(log.location).entries()} == {""}


def test_the_retention_section() -> None:
    defaults = RetentionSection()
    assert (defaults.archive_every_hours, defaults.entries_keep_days) == (6, 366)
    assert defaults.archive_after_days == 30
    assert defaults.tracker_keep_days == 366
    with pytest.raises(ValidationError, match="tracker_keep_days must be at least"):
        RetentionSection(entries_keep_days=30, tracker_keep_days=7)
    with pytest.raises(ValidationError):
        RetentionSection(entries_keep_days=0)
    assert RetentionSection(entries_keep_days=30, tracker_keep_days=366).entries_keep_days == 30
    config = NodeConfig.model_validate(
        {
            "node": {
                "id": "DE-NRW/GOV/05974028/ss1",
                "messagelog": "log.sqlite",
                "auth_cert": "auth.pem",
                "auth_key": "auth.key",
            },
            "signing": [],
            "globalconf": {"anchor": "anchor.json"},
            "retention": {"archive_dir": "/var/lib/gateway/archive", "archive_every_hours": 0},
        }
    )
    assert config.retention.archive_dir == Path("/var/lib/gateway/archive")
    assert config.retention.archive_every_hours == 0


def test_entries_younger_than_archive_after_days_stay_whole(
    tmp_path: Path, log_location: Path | str
) -> None:
    log = _log(tmp_path, log_location)
    section = RetentionSection(
        archive_every_hours=1,
        archive_after_days=401,
        entries_keep_days=1000,
        tracker_keep_days=1000,
    )
    done = _job(log, section, tmp_path / "archive").run_once(LATER)
    assert (done.bundle, done.archived, done.expired) == (None, 0, Expired(0, 0))
    assert {e.body_omitted for e in open_store(log.location).entries()} == {""}
