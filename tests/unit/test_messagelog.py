"""The message log only reports success once an entry is durable, and batches commits."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.messagelog import (
    Kind,
    LogRecord,
    MessageLog,
    MessageLogError,
    ReplayError,
    Role,
    count_entries,
    read_entries,
)

CLIENT = "EE/GOV/70000001/tartu"
NOW = datetime(2025, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
CERT_DER = b"0\x82\x01\x0afake-der\x00\xff"
CERT_REF = hashlib.sha256(CERT_DER).hexdigest()


def clock() -> datetime:
    return NOW


def record(
    message_id: str | None = None, *, kind: str = "request", body: bytes = b"{}"
) -> LogRecord:
    return LogRecord(
        role=Role.PROVIDER,
        kind=Kind(kind),
        message_id=message_id or str(uuid.uuid4()),
        xroad_id="EE/GOV/70000001/tartu/" + str(uuid.uuid4()),
        client=CLIENT,
        service="EE/GOV/70000002/rahvastik/persons/v1",
        created="2025-03-04T05:06:07.000Z",
        header=b'{"alg":"ES256"}\x00\xff\xfe',
        body=body,
        signature="c2lnbmF0dXJl",
        cert_ref=CERT_REF,
    )


@contextlib.contextmanager
def other_connection(path: Path) -> Iterator[sqlite3.Connection]:
    """A separate connection, as another process would open it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with other_connection(path) as conn:
        return list(conn.execute(sql))


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Hold the database's write lock so the log's writer must wait mid-batch."""
    with other_connection(path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")


def test_writer_connection_is_wal_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "log" / "messagelog.db"
    log = MessageLog(path, clock=clock)
    try:
        assert log.journal_mode == "wal"
        assert log.synchronous == 2
        assert rows(path, "PRAGMA journal_mode") == [("wal",)]
    finally:
        asyncio.run(log.close())


def test_refuses_to_run_without_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An in-memory database cannot use WAL; the log must refuse rather than run without it.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MessageLogError, match="WAL"):
        MessageLog(Path(":memory:"), clock=clock)


def test_append_is_visible_to_another_connection_byte_exact(tmp_path: Path) -> None:
    path = tmp_path / "messagelog.db"
    request = record(body=b'{"id": "38001085718"}\x00\x80')
    response = record(request.message_id, kind="response", body=b"\xff" * 300)

    async def scenario() -> None:
        async with MessageLog(path, clock=clock) as log:
            ids = await log.append([request, response])
            assert len(ids) == 2 and ids[0] < ids[1]
            # Still open: the rows must already be committed, not merely buffered.
            with other_connection(path) as conn:
                got = conn.execute(
                    "SELECT id, logged_at, role, kind, message_id, xroad_id, client, service,"
                    " created, header, body, signature, cert_ref FROM message_log ORDER BY id"
                ).fetchall()
            expected = [
                (
                    i,
                    "2025-03-04T05:06:07.891Z",
                    r.role,
                    r.kind,
                    r.message_id,
                    r.xroad_id,
                    r.client,
                    r.service,
                    r.created,
                    r.header,
                    r.body,
                    r.signature,
                    r.cert_ref,
                )
                for i, r in zip(ids, (request, response), strict=True)
            ]
            assert got == expected
            assert all(type(row[9]) is bytes and type(row[10]) is bytes for row in got)

    asyncio.run(scenario())
    entries = read_entries(path, message_id=request.message_id)
    assert [(e.kind, e.header, e.body) for e in entries] == [
        ("request", request.header, request.body),
        ("response", response.header, response.body),
    ]
    assert read_entries(path, message_id="no-such-id") == []
    assert count_entries(path) == 2


def test_concurrent_appends_share_commits(log_location: Path | str) -> None:
    path = log_location

    async def scenario() -> None:
        async with MessageLog(path, clock=clock) as log:
            results = await asyncio.gather(*(log.append([record()]) for _ in range(200)))
            stats = log.stats
        assert sorted(i for ids in results for i in ids) == list(range(1, 201))
        assert stats.units == 200 and stats.rows == 200
        assert stats.commits < stats.units
        assert stats.largest_batch > 1

    asyncio.run(scenario())
    assert count_entries(path) == 200


def test_waiting_appends_go_out_in_batches_of_at_most_max_batch(tmp_path: Path) -> None:
    path = tmp_path / "messagelog.db"

    async def scenario() -> None:
        async with MessageLog(path, clock=clock, max_batch=8) as log:
            with write_lock_held(path):
                # The writer is stuck on the lock, so all 40 are queued before any commit.
                tasks = [asyncio.create_task(log.append([record()])) for _ in range(40)]
                await asyncio.sleep(0.05)
            await asyncio.gather(*tasks)
            stats = log.stats
        assert stats.units == 40
        assert stats.largest_batch == 8
        assert stats.commits <= 6  # the first may be taken alone, then 39 in batches of 8

    asyncio.run(scenario())


def test_event_loop_keeps_running_while_a_commit_waits(tmp_path: Path) -> None:
    path = tmp_path / "messagelog.db"

    async def scenario() -> None:
        async with MessageLog(path, clock=clock) as log:
            with write_lock_held(path):
                pending = asyncio.create_task(log.append([record()]))
                # If append touched sqlite on the loop thread, the loop would be stuck in
                # the busy wait and these ticks could not run while it is pending.
                ticks = 0
                for _ in range(200):
                    await asyncio.sleep(0)
                    ticks += 1
                    assert not pending.done()
                await asyncio.sleep(0.02)
                assert not pending.done()
            assert len(await pending) == 1
            assert ticks == 200

    asyncio.run(scenario())


def test_replay_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "messagelog.db"
    first = record()
    key = (CLIENT, first.message_id, first.created)

    async def scenario() -> None:
        async with MessageLog(path, clock=clock) as log:
            await log.append([first], replay_key=key)
            with pytest.raises(ReplayError):
                await log.append([record(first.message_id, body=b"again")], replay_key=key)
            # Same message id from a different client is a different request.
            other = record(first.message_id)
            await log.append([other], replay_key=("EE/GOV/1/x", first.message_id, "t"))

    asyncio.run(scenario())
    assert [e.body for e in read_entries(path, message_id=first.message_id)] == [b"{}", b"{}"]
    assert rows(path, "SELECT count(*) FROM seen_request") == [(2,)]


def test_replay_within_one_batch_lets_exactly_one_through(tmp_path: Path) -> None:
    path = tmp_path / "messagelog.db"
    message_id = str(uuid.uuid4())
    key = (CLIENT, message_id, "2025-03-04T05:06:07.000Z")

    async def scenario() -> None:
        async with MessageLog(path, clock=clock) as log:
            with write_lock_held(path):
                # The writer takes this one and waits for the lock; meanwhile the next three
                # queue up and are then drained into one batch together.
                blocker = asyncio.create_task(log.append([record()]))
                await asyncio.sleep(0.02)
                tasks = [
                    asyncio.create_task(log.append([record(message_id)], replay_key=key)),
                    asyncio.create_task(log.append([record(message_id)], replay_key=key)),
                    asyncio.create_task(log.append([record()])),
                ]
                await asyncio.sleep(0.02)
            await blocker
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert log.stats.largest_batch >= 3  # the duplicates really shared a batch

        assert sum(isinstance(r, list) for r in results[:2]) == 1
        assert sum(isinstance(r, ReplayError) for r in results[:2]) == 1
        assert isinstance(results[2], list)  # the rest of the batch still commits

    asyncio.run(scenario())
    assert len(read_entries(path, message_id=message_id)) == 1
    assert count_entries(path) == 3


def test_replay_is_detected_after_a_restart(log_location: Path | str) -> None:
    path = log_location
    first = record()
    key = (CLIENT, first.message_id, first.created)

    async def before() -> None:
        async with MessageLog(path, clock=clock) as log:
            await log.append([first], replay_key=key)

    async def after() -> None:
        async with MessageLog(path, clock=clock) as log:
            with pytest.raises(ReplayError):
                await log.append([record(first.message_id)], replay_key=key)

    asyncio.run(before())
    asyncio.run(after())
    assert count_entries(path) == 1


def test_database_failure_fails_the_append_and_the_writer_survives(tmp_path: Path) -> None:
    path = tmp_path / "messagelog.db"
    victim = record()
    key = (CLIENT, victim.message_id, victim.created)

    async def scenario() -> None:
        async with MessageLog(path, clock=clock) as log:
            with other_connection(path) as conn:
                conn.execute(
                    "CREATE TRIGGER broken_disk BEFORE INSERT ON message_log"
                    " BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END"
                )
            with pytest.raises(MessageLogError, match="simulated disk failure"):
                await log.append([victim], certs={CERT_REF: (CERT_DER, "")}, replay_key=key)
            results = await asyncio.gather(
                *(log.append([record()]) for _ in range(5)), return_exceptions=True
            )
            assert all(isinstance(r, MessageLogError) for r in results)
            assert log.stats.failed_batches >= 2

            with other_connection(path) as conn:
                conn.execute("DROP TRIGGER broken_disk")
            # Rolled back completely: neither a false replay nor a lost certificate.
            ids = await log.append([victim], certs={CERT_REF: (CERT_DER, "")}, replay_key=key)
            assert len(ids) == 1

    asyncio.run(scenario())
    assert count_entries(path) == 1
    assert rows(path, "SELECT cert_ref FROM signer_certificate") == [(CERT_REF,)]


def test_certificate_is_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "messagelog.db"
    certs = {CERT_REF: (CERT_DER, "eyJhbGciOiJFUzI1NiJ9")}

    async def scenario() -> None:
        async with MessageLog(path, clock=clock) as log:
            await asyncio.gather(*(log.append([record()], certs=certs) for _ in range(20)))
            await log.append([record()], certs=certs)
        async with MessageLog(path, clock=clock) as log:  # and across a restart
            await log.append([record()], certs=certs)

    asyncio.run(scenario())
    assert rows(path, "SELECT cert_ref, der, jws_header FROM signer_certificate") == [
        (CERT_REF, CERT_DER, "eyJhbGciOiJFUzI1NiJ9")
    ]


def test_certificate_ref_must_be_the_der_hash(log_location: Path | str) -> None:
    async def scenario() -> None:
        async with MessageLog(log_location, clock=clock) as log:
            with pytest.raises(ValueError, match="SHA-256"):
                await log.append([record()], certs={"00" * 32: (CERT_DER, "")})

    asyncio.run(scenario())


def test_invalid_record_is_refused_before_it_can_fail_a_batch(log_location: Path | str) -> None:
    bad = dataclasses.replace(record(), role="middleman")  # type: ignore[arg-type]

    async def scenario() -> None:
        async with MessageLog(log_location, clock=clock) as log:
            with pytest.raises(ValueError, match="role"):
                await log.append([bad])
            assert log.stats.failed_batches == 0

    asyncio.run(scenario())


def test_a_body_digest_the_caller_has_is_not_computed_again(log_location: Path | str) -> None:
    """The node passes the digest its signed header names (computed from the body, or
    checked against it); the writer stores and commits to that digest as given, and
    computes one only for a record without it. A malformed one is refused before it
    can join a batch."""
    given = record(body=b"x" * 4096)
    given = dataclasses.replace(given, body_sha256=hashlib.sha256(b"y").hexdigest())
    computed = record(given.message_id, kind="response", body=b"z" * 4096)

    async def scenario() -> None:
        async with MessageLog(log_location, clock=clock) as log:
            await log.append([given, computed])
            for bad in ("AB" * 32, "ab" * 31, "g" * 64):
                with pytest.raises(ValueError, match="body_sha256"):
                    await log.append([dataclasses.replace(record(), body_sha256=bad)])
            assert log.stats.failed_batches == 0

    asyncio.run(scenario())
    stored = read_entries(log_location, message_id=given.message_id)
    assert [e.body_sha256 for e in stored] == [
        hashlib.sha256(b"y").hexdigest(),
        hashlib.sha256(computed.body).hexdigest(),
    ]


def test_close_waits_for_queued_appends(log_location: Path | str) -> None:
    path = log_location

    async def scenario() -> None:
        log = MessageLog(path, clock=clock)
        log.start()
        tasks = [asyncio.create_task(log.append([record()])) for _ in range(50)]
        await asyncio.sleep(0)  # let every task queue its unit
        await log.close()
        assert all(t.done() and not t.cancelled() and t.exception() is None for t in tasks)
        with pytest.raises(MessageLogError, match="closed"):
            await log.append([record()])

    asyncio.run(scenario())
    assert count_entries(path) == 50


def test_append_before_start_is_refused(log_location: Path | str) -> None:
    async def scenario() -> None:
        log = MessageLog(log_location, clock=clock)
        try:
            with pytest.raises(MessageLogError, match="not started"):
                await log.append([record()])
        finally:
            await log.close()

    asyncio.run(scenario())


def test_probe_commits_a_write_that_changes_no_content(tmp_path: Path) -> None:
    """Readiness asks the log to commit a write (gateway/node/health.py): it must reach
    the database file like an append does, and leave entries and tree as they were."""
    path = tmp_path / "messagelog.db"

    async def scenario() -> None:
        async with MessageLog(path, clock=clock) as log:
            await log.append([record()])
            snapshot = log.tree_snapshot()
            with other_connection(path) as conn:
                (before,) = conn.execute("PRAGMA data_version").fetchone()
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                await log.probe()
                (after,) = conn.execute("PRAGMA data_version").fetchone()
                assert after != before, "the probe committed nothing"
                assert conn.execute("PRAGMA user_version").fetchone() == (version,)
            assert log.tree_snapshot() == snapshot

    asyncio.run(scenario())
    assert count_entries(path) == 1


def test_probe_is_refused_like_an_append_when_the_log_does_not_run(
    log_location: Path | str,
) -> None:
    async def scenario() -> None:
        log = MessageLog(log_location, clock=clock)
        with pytest.raises(MessageLogError, match="not started"):
            await log.probe()
        log.start()
        await log.probe()
        await log.close()
        with pytest.raises(MessageLogError, match="closed"):
            await log.probe()

    asyncio.run(scenario())
