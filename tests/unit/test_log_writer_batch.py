"""What the group commit writes per batch, and when the SQLite writer checkpoints.

The writer skips certificate and OCSP references it stored, inserts a batch's Merkle
subtrees and operational records once at its end, and copies its WAL into the log file
only when its queue is empty: after its callers were resumed, never inside their
commit (docs/adr/0067-the-log-checkpoints-when-its-writer-is-idle.md)."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.messagelog import (
    EntrySelection,
    Kind,
    LogRecord,
    MessageLog,
    MessageLogError,
    ReplayError,
    Role,
    open_store,
)
from gateway.messagelog.records import OpRecord
from gateway.messagelog.sqlite_checkpoint import (
    BACKSTOP_FRAMES,
    IDLE_CHECKPOINT_FRAMES,
    IdleCheckpoint,
)

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
CERT = b"0\x82cert-of-a-rolled-back-batch"
OCSP = b"0\x82ocsp-of-a-rolled-back-batch"
CLIENT = "DE-NRW/GOV/05974040/gewerbeamt"
SERVICE = "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft"


def ref(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def record(message_id: str, body: bytes = b"{}") -> LogRecord:
    return LogRecord(
        role=Role.PROVIDER,
        kind=Kind.REQUEST,
        message_id=message_id,
        xroad_id=f"DE-NRW-{message_id}",
        client=CLIENT,
        service=SERVICE,
        created="2026-06-01T08:00:00.000Z",
        header=b'{"h":1}',
        body=body,
        signature="eyJ9..c2ln",
        cert_ref=ref(CERT),
        ocsp_ref=ref(OCSP),
    )


def op(message_id: str, n: int) -> OpRecord:
    at = f"2026-06-01T08:00:{n:02d}.000Z"
    return OpRecord(
        "provider", "DE/GOV/1/ss", "DE/GOV/2/ss", CLIENT, SERVICE, message_id, "x", at, at,
        2, 2, 200, True, "",
    )  # fmt: skip


def fail_on_boom(r: LogRecord) -> str:
    """A body policy that fails the batch of one marked record, after its references
    were inserted in the batch's transaction."""
    if r.message_id == "boom":
        raise RuntimeError("the disk went away")
    return ""


def test_a_reference_first_written_by_a_rolled_back_batch_is_written_again(
    log_location: Path | str,
) -> None:
    async def run() -> None:
        log = MessageLog(log_location, clock=lambda: NOW, body_policy=fail_on_boom)
        log.start()
        refs = {
            "certs": {ref(CERT): (CERT, '{"alg":"ES256"}')},
            "ocsp": {ref(OCSP): OCSP},
        }
        try:
            with pytest.raises(MessageLogError, match="rolled back"):
                await log.append([record("boom")], **refs)  # type: ignore[arg-type]
            await log.append([record("kept")], **refs)  # type: ignore[arg-type]
        finally:
            await log.close()

    asyncio.run(run())
    evidence = open_store(log_location).export_evidence(EntrySelection(all=True))
    assert [e.message_id for e in evidence.entries] == ["kept"]
    assert evidence.signer_certificates[ref(CERT)][0] == CERT
    assert evidence.ocsp[ref(OCSP)] == OCSP


def test_a_batchs_operational_records_keep_the_order_of_their_appends(
    log_location: Path | str,
) -> None:
    async def run() -> list[object]:
        log = MessageLog(log_location, clock=lambda: NOW)
        log.start()
        try:
            appends = []
            for n in range(24):
                # The 7th repeats the 3rd's replay key: it writes nothing, its record none.
                key = f"m{2 if n == 6 else n}"
                appends.append(
                    log.append(
                        [record(f"m{n}"), record(f"m{n}")],
                        replay_key=(CLIENT, key, "2026-06-01T08:00:00.000Z"),
                        operational=[op(f"m{n}", n)],
                    )
                )
            return await asyncio.gather(*appends, return_exceptions=True)
        finally:
            await log.close()

    outcomes = asyncio.run(run())
    assert isinstance(outcomes[6], ReplayError)
    kept = [f"m{n}" for n in range(24) if n != 6]
    store = open_store(log_location)
    assert [r.message_id for r in store.operational_records()] == kept
    assert [r.request_in for r in store.operational_records()] == [
        op(m, int(m[1:])).request_in for m in kept
    ]
    assert store.count_entries() == 2 * len(kept)


def test_the_sqlite_writer_checkpoints_after_its_callers_not_in_their_commit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    # One append whose WAL frames pass the idle threshold, not SQLite's own backstop.
    body = b"x" * (3 * IDLE_CHECKPOINT_FRAMES * 4096 // 4)
    assert len(body) * 2 < BACKSTOP_FRAMES * 4096

    async def run() -> tuple[int, int]:
        # Bodies kept in their rows: a body file would take these out of the WAL.
        log = MessageLog(path, clock=lambda: NOW, body_file_bytes=0)
        log.start()
        gate = threading.Event()
        try:
            # The writer is held in a side write until the large append and a look at
            # the file are queued behind it; they then run in one round, the look
            # after the append's callers were resumed.
            held = asyncio.ensure_future(log.write(lambda _conn: gate.wait(10)))
            appended = asyncio.ensure_future(
                log.append([record("big-1", body), record("big-2", body)])
            )
            looked = asyncio.ensure_future(log.write(lambda _conn: path.stat().st_size))
            await asyncio.sleep(0)
            gate.set()
            await held
            await appended
            in_round = await looked
            # Once its queue is empty the writer checkpoints. A look queued before the
            # writer found its queue empty comes first, so look again after a pause:
            # without the idle checkpoint the file never grows (the backstop is far).
            after: object = 0
            for _ in range(250):
                after = await log.write(lambda _conn: path.stat().st_size)
                if isinstance(after, int) and after > 2 * len(body):
                    break
                await asyncio.sleep(0.02)
        finally:
            await log.close()
        assert isinstance(in_round, int) and isinstance(after, int)
        return in_round, after

    in_round, after = asyncio.run(run())
    assert in_round < len(body)  # the append's commit left its pages in the WAL
    assert after > 2 * len(body)  # copied into the file once the writer was idle


def test_the_frames_waiting_are_read_from_the_wal_index_as_sqlite_counts_them(
    tmp_path: Path,
) -> None:
    """The idle checkpoint's count, read from the ``-shm`` file, against the WAL file's
    own length and SQLite's report of its checkpoint, on the SQLite this runs with."""
    path = tmp_path / "wal.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (v BLOB)")
        checkpoint = IdleCheckpoint(conn, path)
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        for n in range(40):
            conn.execute("INSERT INTO t VALUES (?)", (b"v" * (n * 300),))
        frames = (Path(f"{path}-wal").stat().st_size - 32) // (page_size + 24)
        assert checkpoint.waiting_frames() == frames > 40
        assert not checkpoint.run_if_due()  # below the threshold: nothing run
        busy, logged, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert (busy, logged, copied) == (0, frames, frames)
        assert checkpoint.waiting_frames() == 0
        checkpoint.close()
    finally:
        conn.close()
