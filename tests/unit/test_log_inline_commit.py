"""A lone append commits on the caller's thread; anything else goes to the writer.

The rule and why it keeps durability and order: gateway/messagelog/inline_commit.py and
docs/adr/0070-a-lone-append-commits-on-the-event-loop.md. Which thread ran a commit is
seen from inside its transaction: the body policy is called there for every record.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.messagelog import (
    Kind,
    LogRecord,
    MessageLog,
    MessageLogError,
    ReplayError,
    Role,
    count_entries,
    open_store,
    read_entries,
)
from gateway.messagelog.sqlite_checkpoint import BACKSTOP_FRAMES, IDLE_CHECKPOINT_FRAMES

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
CLIENT = "DE-NRW/GOV/05974040/gewerbeamt"
SERVICE = "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft"


def record(message_id: str | None = None, body: bytes = b"{}") -> LogRecord:
    mid = message_id or str(uuid.uuid4())
    return LogRecord(
        role=Role.PROVIDER,
        kind=Kind.REQUEST,
        message_id=mid,
        xroad_id=f"DE-NRW-{mid}",
        client=CLIENT,
        service=SERVICE,
        created="2026-06-01T08:00:00.000Z",
        header=b'{"h":1}',
        body=body,
        signature="eyJ9..c2ln",
        cert_ref="",
    )


class Threads:
    """A body policy that notes which thread wrote each message id, and fails the
    batch of a record whose body is ``boom`` (after the batch began)."""

    def __init__(self) -> None:
        self.by_id: dict[str, int] = {}

    def __call__(self, r: LogRecord) -> str:
        self.by_id[r.message_id] = threading.get_ident()
        if r.body == b"boom":
            raise RuntimeError("the disk went away")
        return ""


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another connection holds the file's write lock (as retention or archiving do)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def open_log(path: Path | str, threads: Threads | None = None, **kw: object) -> MessageLog:
    return MessageLog(path, clock=lambda: NOW, body_policy=threads, **kw)  # type: ignore[arg-type]


def test_one_append_at_a_time_commits_on_the_callers_thread(log_location: Path | str) -> None:
    """On SQLite a lone append is committed by the caller's own thread, durably, before
    it returns; PostgreSQL's log keeps every commit on the writer thread."""
    threads = Threads()
    inline = isinstance(log_location, Path)

    async def scenario() -> None:
        async with open_log(log_location, threads) as log:
            loop_thread = threading.get_ident()
            for n in range(1, 6):
                mid = str(uuid.uuid4())
                assert await log.append([record(mid)]) == [n]
                # Already durable: another connection sees it as soon as append returns.
                assert [e.id for e in read_entries(log_location, message_id=mid)] == [n]
                on_loop = threads.by_id[mid] == loop_thread
                assert on_loop is inline
            assert log.stats.inline_commits == (5 if inline else 0)
            assert log.stats.units == 5
            assert log.tree_snapshot().tree_size == 5

    asyncio.run(scenario())


def test_turned_off_every_append_goes_to_the_writer(tmp_path: Path) -> None:
    """``[logging] inline_commit = false`` in a node's configuration (the node passes it
    on: tests/integration/test_config_history.py)."""
    threads = Threads()

    async def scenario() -> None:
        async with open_log(tmp_path / "log.db", threads, inline_commit=False) as log:
            for _ in range(3):
                await log.append([record()])
            assert log.stats.inline_commits == 0
            assert threading.get_ident() not in set(threads.by_id.values())

    asyncio.run(scenario())


def test_appends_started_together_share_the_writers_commit_in_call_order(
    tmp_path: Path,
) -> None:
    threads = Threads()

    async def scenario() -> None:
        async with open_log(tmp_path / "log.db", threads) as log:
            results = await asyncio.gather(*(log.append([record()]) for _ in range(50)))
            # The first was alone when it was called: it waited its turn, found the
            # others behind it and went to the writer first.
            assert results == [[n] for n in range(1, 51)]
            assert log.stats.inline_commits == 0
            assert log.stats.largest_batch > 1
            assert threading.get_ident() not in set(threads.by_id.values())

    asyncio.run(scenario())


async def writer_free(log: MessageLog) -> None:
    """Until the writer thread has let go of the connection (its idle checkpoint runs
    after its callers resumed): an append then is alone by the gate's rule."""
    for _ in range(1000):
        if log._gate.writing.acquire(blocking=False):
            log._gate.writing.release()
            if not log._gate._outstanding:
                return
        await asyncio.sleep(0.005)
    raise AssertionError("the writer thread kept the connection for 5 s")


def test_inline_and_batched_appends_mixed_keep_call_order_and_all_commit(
    tmp_path: Path,
) -> None:
    """Lone, then queued behind a writer stuck on another connection's lock, then lone
    again: every append is durable, ids follow the calls, and the inline path is taken
    exactly when nothing else was queued or being written."""
    path = tmp_path / "log.db"
    threads = Threads()
    mids = [str(uuid.uuid4()) for _ in range(8)]

    async def scenario() -> None:
        async with open_log(path, threads) as log:
            loop_thread = threading.get_ident()
            assert await log.append([record(mids[0])]) == [1]  # alone: inline
            with write_lock_held(path):
                # Alone too, but the file's write lock is taken: it must not wait on the
                # loop, so the writer takes it (and waits); the rest queue behind it.
                first = asyncio.create_task(log.append([record(mids[1])]))
                for _ in range(5):
                    await asyncio.sleep(0)
                rest = [asyncio.create_task(log.append([record(m)])) for m in mids[2:7]]
                await asyncio.sleep(0.05)
                assert not first.done() and not any(t.done() for t in rest)
            assert await first == [2]
            assert [await t for t in rest] == [[n] for n in range(3, 8)]
            await writer_free(log)  # it may still hold the connection after answering
            assert await log.append([record(mids[7])]) == [8]  # alone again: inline
            assert log.stats.inline_commits == 2

            wrote = [threads.by_id[m] == loop_thread for m in mids]
            assert wrote == [True, False, False, False, False, False, False, True]

    asyncio.run(scenario())
    entries = read_entries(path)
    assert [e.message_id for e in entries] == mids
    assert [e.id for e in entries] == list(range(1, 9))


def test_a_failing_inline_commit_fails_its_caller_only_and_the_writer_carries_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    threads = Threads()

    async def scenario() -> None:
        async with open_log(path, threads) as log:
            loop_thread = threading.get_ident()
            await log.append([record()])
            boom = record(body=b"boom")
            with pytest.raises(MessageLogError, match="the disk went away"):
                await log.append([boom], replay_key=(CLIENT, boom.message_id, boom.created))
            assert threads.by_id[boom.message_id] == loop_thread  # it failed inline
            # The writer and the tree are as before: a burst through the writer, then
            # a lone one inline, and the same request can now be logged.
            burst = await asyncio.gather(*(log.append([record()]) for _ in range(20)))
            assert burst == [[n] for n in range(2, 22)]
            await writer_free(log)  # the writer has settled the burst
            again = dataclasses.replace(boom, body=b"{}")
            key = (CLIENT, boom.message_id, boom.created)
            assert await log.append([again], replay_key=key) == [22]
            assert threads.by_id[boom.message_id] == loop_thread
            with pytest.raises(ReplayError):
                await log.append([again], replay_key=key)
            stats = log.stats
            assert stats.failed_batches == 1
            assert stats.inline_commits == 4  # the first, the failed one, the last two
            assert log.tree_snapshot().tree_size == 22

    asyncio.run(scenario())
    assert count_entries(path) == 22
    store = open_store(path)
    assert [e.id for e in read_entries(path)] == list(range(1, 23))
    assert len(store.leaf_hashes(22)) == 22


def test_a_lone_append_accepted_before_close_or_cancel_is_written(tmp_path: Path) -> None:
    path = tmp_path / "log.db"

    async def scenario() -> None:
        log = open_log(path)
        log.start()
        closing = asyncio.create_task(log.append([record()]))
        await asyncio.sleep(0)  # it is accepted and waits its turn of the loop
        await log.close()
        assert await closing == [1]
        with pytest.raises(MessageLogError, match="closed"):
            await log.append([record()])

        async with open_log(path) as again:
            cancelled = asyncio.create_task(again.append([record()]))
            await asyncio.sleep(0)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            # Written all the same, before the next append, which comes after it.
            assert await again.append([record()]) == [3]

    asyncio.run(scenario())
    assert count_entries(path) == 3


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from(["ok", "replay", "boom", "bad"])),
        min_size=1,
        max_size=8,
    )
)
def test_inline_and_writer_paths_write_the_same_log_and_refuse_alike(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, str]]
) -> None:
    """The same appends, one wave at a time (a wave of one is lone, so inline), with the
    inline path on and off: the same ids, refusals, rows, leaves and tree."""

    def wave_records(w: int, size: int, kind: str) -> list[tuple[LogRecord, str]]:
        out = []
        for i in range(size):
            mid = "replayed" if kind == "replay" else f"m{w}-{i}"
            body = b"boom" if kind == "boom" and i == size - 1 else b"{}"
            out.append((record(mid, body), kind))
        return out

    async def run(path: Path, inline: bool) -> list[object]:
        outcomes: list[object] = []
        log = MessageLog(
            path,
            clock=lambda: NOW,
            body_policy=Threads(),
            salts=lambda: b"\x07" * 16,
            inline_commit=inline,
        )
        async with log:
            for w, (size, kind) in enumerate(steps):

                async def one(r: LogRecord, kind: str) -> object:
                    try:
                        if kind == "bad":
                            return await log.append([dataclasses.replace(r, cert_ref="x")])
                        return await log.append([r], replay_key=(CLIENT, r.message_id, r.created))
                    except (MessageLogError, ReplayError, ValueError) as exc:
                        return type(exc).__name__

                wave = wave_records(w, size, kind)
                outcomes += await asyncio.gather(*(one(r, k) for r, k in wave))
            outcomes.append(log.tree_snapshot().root_hash)
        return outcomes

    base = tmp_path_factory.mktemp("agree")
    on, off = base / "on.db", base / "off.db"
    assert asyncio.run(run(on, True)) == asyncio.run(run(off, False))
    assert read_entries(on) == read_entries(off)
    assert open_store(on).leaf_hashes(count_entries(on)) == open_store(off).leaf_hashes(
        count_entries(off)
    )


def test_after_a_large_inline_commit_the_writer_checkpoints(tmp_path: Path) -> None:
    """The inline commit leaves the WAL's copy into the file to the writer thread, woken
    for it (docs/adr/0067-the-log-checkpoints-when-its-writer-is-idle.md)."""
    path = tmp_path / "log.db"
    body = b"x" * (3 * IDLE_CHECKPOINT_FRAMES * 4096 // 4)  # past the idle threshold
    assert len(body) * 2 < BACKSTOP_FRAMES * 4096  # and short of SQLite's own

    async def scenario() -> None:
        # Bodies kept in their rows: a body file would take these out of the WAL.
        async with open_log(path, body_file_bytes=0) as log:
            await log.append([record("big-1", body), record("big-2", body)])
            assert log.stats.inline_commits == 1
            for _ in range(1000):
                if path.stat().st_size > 2 * len(body):
                    break
                await asyncio.sleep(0.01)
            assert path.stat().st_size > 2 * len(body)  # copied without another append

    asyncio.run(scenario())
