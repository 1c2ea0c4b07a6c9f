"""Large bodies of the SQLite log in segment files beside it (``sqlite_bodies.py``,
docs/adr/0071-large-bodies-in-segment-files-beside-the-sqlite-log.md): what every
reader gets is what it got from the row, a crash's tail is cut at open, altered or
missing bytes are an error, and retention gives the segments back."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.audit.bundle_read import read_bundle
from gateway.audit.export import Selection, export_bundle
from gateway.audit.verify import verify_bundle
from gateway.core.atrest import DataKey
from gateway.messagelog import (
    Kind,
    LogRecord,
    MessageLog,
    Role,
    count_entries,
    open_store,
    read_entries,
)
from gateway.messagelog.records import LogStoreError, StoredEntry
from gateway.messagelog.sqlite_bodies import DEFAULT_THRESHOLD, segment_dir
from gateway.node.config_log import LoggingSection
from gateway.sandbox.bench.audit import START, build_log

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
THRESHOLD = 4096
KEY = DataKey(bytes(range(32)))


def record(body: bytes, kind: Kind = Kind.REQUEST, message_id: str | None = None) -> LogRecord:
    mid = message_id or str(uuid.uuid4())
    return LogRecord(
        role=Role.PROVIDER,
        kind=kind,
        message_id=mid,
        xroad_id=f"DE-NRW-{mid}",
        client="DE-NRW/GOV/05974040/gewerbeamt",
        service="DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
        created="2026-06-01T08:00:00.000Z",
        header=b'{"h":1}',
        body=body,
        signature="eyJ9..c2ln",
        cert_ref="",
    )


def body_of(size: int, seed: int) -> bytes:
    return hashlib.sha256(seed.to_bytes(4, "big")).digest() * (size // 32) + b"x" * (size % 32)


def write(path: Path, bodies: list[bytes], threshold: int, **kw: object) -> None:
    async def scenario() -> None:
        async with MessageLog(
            path,
            clock=lambda: NOW,
            salts=lambda: b"\x07" * 16,
            body_file_bytes=threshold,
            **kw,  # type: ignore[arg-type]
        ) as log:
            # Together (one batch, one fsync of the segment) and one at a time.
            half = len(bodies) // 2
            await asyncio.gather(
                *(log.append([record(b, message_id=f"m-{n}")]) for n, b in enumerate(bodies[:half]))
            )
            for n, b in enumerate(bodies[half:], start=half):
                await log.append([record(b, message_id=f"m-{n}")])

    asyncio.run(scenario())


def rows(path: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return [tuple(r) for r in conn.execute(query)]


def leaves(entries: list[StoredEntry]) -> list[tuple[int, bytes | None, str | None, bytes]]:
    return [(e.id, e.leaf_hash, e.body_sha256, e.body) for e in entries]


def segments(path: Path) -> list[str]:
    directory = segment_dir(path)
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_the_node_toml_setting_defaults_to_the_log_s_threshold_and_refuses_a_negative() -> None:
    assert LoggingSection().body_file_bytes == DEFAULT_THRESHOLD == 64 * 1024
    assert LoggingSection(body_file_bytes=0).body_file_bytes == 0  # every body in its row
    with pytest.raises(ValidationError, match="body_file_bytes"):
        LoggingSection(body_file_bytes=-1)


@pytest.mark.parametrize("data_key", [None, KEY], ids=["plain", "sealed"])
def test_bodies_from_the_threshold_on_go_to_a_segment_and_read_back_the_same(
    tmp_path: Path, data_key: DataKey | None
) -> None:
    """Just under the threshold stays in its row, at it goes to a file (as stored:
    sealed, when sealing, which adds 28 bytes); readers, leaves and the tree are those of
    a log that keeps every body in its rows."""
    seal = 28 if data_key else 0
    bodies = [
        body_of(THRESHOLD - 1 - seal, 1),
        body_of(THRESHOLD - seal, 2),
        b"",
        body_of(300_000, 3),
        body_of(10, 4),
        body_of(THRESHOLD - 1 - seal, 5),
        body_of(THRESHOLD - seal, 6),
        body_of(200_001, 7),
    ]
    files, rows_only = tmp_path / "files.db", tmp_path / "rows.db"
    write(files, bodies, THRESHOLD, data_key=data_key)
    write(rows_only, bodies, 0, data_key=data_key)

    in_files = rows(files, "SELECT entry_id, length FROM body_file ORDER BY entry_id")
    large = [n + 1 for n, b in enumerate(bodies) if len(b) + seal >= THRESHOLD]
    assert [r[0] for r in in_files] == large == [2, 4, 7, 8]
    assert [r[1] for r in in_files] == [len(bodies[i - 1]) + seal for i in large]
    stored = rows(files, "SELECT id, length(body) FROM message_log ORDER BY id")
    assert [n for n, size in stored if size == 0] == [2, 3, 4, 7, 8]  # 3: the empty body
    assert not rows(rows_only, "SELECT name FROM sqlite_master WHERE name = 'body_file'")
    assert not segment_dir(rows_only).exists()

    on = open_store(files, data_key=data_key)
    off = open_store(rows_only, data_key=data_key)
    assert [e.body for e in on.entries()] == bodies
    assert leaves(on.entries()) == leaves(off.entries())
    assert on.leaf_hashes(8) == off.leaf_hashes(8)
    assert on.entry(4) is not None and on.entry(4) == off.entry(4)
    assert [e.body for e in on.entries(message_id="m-7")] == [bodies[7]]


def test_a_large_body_exports_and_verifies_offline(tmp_path: Path) -> None:
    body = b'{"scan":"' + body_of(DEFAULT_THRESHOLD * 2, 9).hex().encode() + b'"}'
    log = build_log(tmp_path / "log", 6, head_every=4, body=body)
    # Each request's body is empty, each response's is ``body``, in a segment.
    assert rows(log.db, "SELECT entry_id FROM body_file") == [(2,), (4,), (6,)]
    assert rows(log.db, "SELECT DISTINCT length(body) FROM message_log") == [(0,)]

    out = tmp_path / "all.jsonl"
    export_bundle(log.db, out, Selection(all=True), now=START + timedelta(days=1))
    with out.open("rb") as handle:
        bundle = read_bundle(handle)
    assert [e.body for e in bundle.entries] == [b"", body] * 3
    report = verify_bundle(bundle, log.anchor)
    assert report.entries == report.signatures == 6


def test_a_crash_s_unnamed_tail_is_cut_when_the_writer_opens(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    bodies = [body_of(THRESHOLD * 2, n) for n in range(4)]
    write(path, bodies, THRESHOLD)
    (name,) = segments(path)
    segment = segment_dir(path) / name
    committed = segment.stat().st_size
    assert committed == sum(len(b) for b in bodies)
    # Bytes written and synced, then the crash before the batch's COMMIT.
    with segment.open("ab") as f:
        f.write(b"\xff" * 12345)

    more = [body_of(THRESHOLD * 3, 7)]
    write(path, more, THRESHOLD)  # opens (cuts the tail), then appends after the cut
    assert segment.stat().st_size == committed + len(more[0])
    assert [e.body for e in read_entries(path)] == bodies + more
    (start,) = rows(path, "SELECT start FROM body_file WHERE entry_id = 5")[0]
    assert start == committed


def test_missing_or_altered_bytes_are_an_error_when_read(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    write(path, [body_of(THRESHOLD * 2, n) for n in range(4)], THRESHOLD)
    (name,) = segments(path)
    segment = segment_dir(path) / name
    with segment.open("r+b") as f:  # one byte of the second body altered
        f.seek(THRESHOLD * 2 + 100)
        f.write(b"\x00" if f.read(1) != b"\x00" else b"\x01")
    store = open_store(path)
    assert store.entry(1) is not None
    with pytest.raises(LogStoreError, match=r"entry 2: the body read from .* digest"):
        store.entry(2)
    with pytest.raises(LogStoreError, match="entry 2"):
        store.entries()

    with segment.open("r+b") as f:  # the last body's bytes lost
        f.truncate(THRESHOLD * 7)
    with pytest.raises(LogStoreError, match=rf"entry 4: .* ends before the body's {THRESHOLD * 2}"):
        store.entry(4)
    segment.unlink()
    with pytest.raises(LogStoreError, match=r"entry 1: its body in .* cannot be read"):
        store.entry(1)


def test_retention_and_archiving_give_segments_back_never_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    # Segments of about two bodies each: 8 bodies fill four, the fifth is begun.
    bodies = [body_of(THRESHOLD * 2, n) for n in range(9)]
    write(path, bodies, THRESHOLD, body_segment_bytes=THRESHOLD * 4)
    assert len(segments(path)) == 5
    store = open_store(path)

    later = "2999-01-01T00:00:00Z"
    assert store.expire(later, "1970-01-01T00:00:00Z").entries == 9
    # Every row blanked: every segment but the newest (the writer's) is gone.
    assert segments(path) == ["00000005.seg"]
    assert rows(path, "SELECT COUNT(*) FROM body_file") == [(0,)]
    assert [e.body_omitted for e in store.entries()] == ["deleted"] * 9
    assert count_entries(path) == 9

    # The writer goes on in the newest segment after a restart, and reads still work.
    write(path, [body_of(THRESHOLD * 2, 20)], THRESHOLD, body_segment_bytes=THRESHOLD * 4)
    assert segments(path) == ["00000005.seg"]
    assert store.entries()[-1].body == body_of(THRESHOLD * 2, 20)


def test_a_body_retention_blanks_is_zeroed_in_a_segment_that_stays(tmp_path: Path) -> None:
    """The segment stays (the writer appends to it), the blanked bodies' bytes do not:
    deleted content is gone from the disk, as SQLite's secure delete does for rows."""
    path = tmp_path / "log.db"
    bodies = [body_of(THRESHOLD * 2, n) for n in range(4)]
    write(path, bodies, THRESHOLD)
    (name,) = segments(path)
    before = (segment_dir(path) / name).read_bytes()
    assert all(b in before for b in bodies)

    store = open_store(path)
    assert store.expire("2999-01-01T00:00:00Z", "1970-01-01T00:00:00Z").entries == 4
    assert segments(path) == [name]
    left = (segment_dir(path) / name).read_bytes()
    assert len(left) == len(before)  # zeroed in place: the writer's offsets stay
    assert not any(b[:64] in left for b in bodies)
    assert left == bytes(len(left))


def test_encrypting_an_older_log_moves_its_file_bodies_sealed_into_their_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    bodies = [body_of(THRESHOLD * 2, n) for n in range(4)]
    write(path, bodies, THRESHOLD)
    (name,) = segments(path)
    assert bodies[0] in (segment_dir(path) / name).read_bytes()

    assert open_store(path, data_key=KEY).seal_rows() == 4
    assert [e.body for e in read_entries(open_store(path, data_key=KEY))] == bodies
    assert rows(path, "SELECT COUNT(*) FROM body_file") == [(0,)]
    # The newest segment stays (a running writer may append to it); its plaintext not.
    left = (segment_dir(path) / name).read_bytes()
    assert not any(b[:64] in left for b in bodies)


def test_a_batch_s_bodies_are_synced_once_before_its_rows_are_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: the appends of one batch share one ``fdatasync`` of the segment,
    and it runs while their rows cannot yet be seen by any other connection."""
    path = tmp_path / "log.db"
    seen: list[int] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        real(fd)
        with closing(sqlite3.connect(path)) as conn:  # what a reader sees meanwhile
            seen.append(conn.execute("SELECT COUNT(*) FROM message_log").fetchone()[0])

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    write(path, [body_of(THRESHOLD, n) for n in range(8)] + [body_of(THRESHOLD, 9)], THRESHOLD)
    # Four appended together (one batch), then five one at a time.
    assert seen == [0, 4, 5, 6, 7, 8]
    assert count_entries(path) == 9


def test_the_tree_rebuilt_at_start_up_hashes_the_bodies_in_segments(tmp_path: Path) -> None:
    """A log whose saved frontier is gone is rehashed from its entries when the writer
    opens it: the bodies in segments are read (and checked) for their leaves, which then
    match the stored ones; a body altered in its segment stops the start."""
    path = tmp_path / "log.db"
    write(path, [body_of(THRESHOLD * 2, n) for n in range(4)], THRESHOLD, data_key=KEY)
    leaves_before = open_store(path).leaf_hashes(4)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("DELETE FROM log_tree_state")
        conn.commit()
    write(path, [body_of(THRESHOLD * 2, 9)], THRESHOLD, data_key=KEY)
    assert open_store(path).leaf_hashes(5)[:4] == leaves_before

    with closing(sqlite3.connect(path)) as conn:
        conn.execute("DELETE FROM log_tree_state")
        conn.commit()
    (name,) = segments(path)
    with (segment_dir(path) / name).open("r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(LogStoreError, match="entry 1: the body read from"):
        write(path, [], THRESHOLD, data_key=KEY)


def test_a_crash_in_the_first_large_body_s_transaction_leaves_no_table_and_no_bytes(
    tmp_path: Path,
) -> None:
    """The table comes with the first large body's commit: a log of small bodies has
    none, and the bytes of a first large body whose commit never came are cut."""
    path = tmp_path / "log.db"
    write(path, [body_of(100, n) for n in range(2)], THRESHOLD)
    assert not rows(path, "SELECT name FROM sqlite_master WHERE name = 'body_file'")
    segment_dir(path).mkdir()
    (segment_dir(path) / "00000001.seg").write_bytes(b"\xff" * 5000)  # synced, not committed

    write(path, [body_of(THRESHOLD, 7)], THRESHOLD)
    assert rows(path, "SELECT entry_id, segment, start FROM body_file") == [(3, 1, 0)]
    assert (segment_dir(path) / "00000001.seg").stat().st_size == THRESHOLD
    assert read_entries(path)[-1].body == body_of(THRESHOLD, 7)
