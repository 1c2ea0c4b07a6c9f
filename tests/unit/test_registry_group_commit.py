"""The registries' group commit: several transactions to one commit, an answer only after
its commit, and a failing job that fails alone (registries/common.py: GroupCommit)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from registries.common import GroupCommit, sqlite_engine

Connection = sqlite3.Connection


def _rows(db: Path) -> list[str]:
    """What another connection sees: only committed rows."""
    with closing(sqlite3.connect(db)) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM t ORDER BY name")]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "g.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (name TEXT NOT NULL UNIQUE)")
        conn.commit()
    return path


def _insert(name: str, seen: list[list[str]], db: Path) -> Callable[[Connection], str]:
    def job(conn: Connection) -> str:
        conn.execute("INSERT INTO t (name) VALUES (:n)", {"n": name})
        seen.append(_rows(db))  # before the commit: not visible to anyone else
        return name

    return job


def test_results_come_after_the_commit_and_batches_share_one(db: Path) -> None:
    engine = sqlite_engine(db)
    writes = GroupCommit(engine, inline=False)  # the blocker holds the thread
    seen: list[list[str]] = []
    gate = threading.Event()

    def blocker(conn: Connection) -> str:
        gate.wait(10)  # holds the thread while the next jobs queue up
        return "blocker"

    async def main() -> list[object]:
        first = asyncio.ensure_future(writes.run(blocker))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(writes.run(_insert(f"n{i}", seen, db))) for i in range(5)]
        await asyncio.sleep(0.05)
        gate.set()
        done = await asyncio.gather(first, *rest)
        assert _rows(db) == [f"n{i}" for i in range(5)]  # committed when answered
        return list(done)

    try:
        assert asyncio.run(main()) == ["blocker", "n0", "n1", "n2", "n3", "n4"]
    finally:
        writes.stop()
        engine.dispose()
    # The five queued jobs ran in one transaction: none saw another's row committed.
    assert seen == [[], [], [], [], []]


def test_a_failing_job_fails_alone(db: Path) -> None:
    engine = sqlite_engine(db)
    writes = GroupCommit(engine, inline=False)  # the blocker holds the thread
    seen: list[list[str]] = []
    gate = threading.Event()

    def blocker(conn: Connection) -> str:
        gate.wait(10)
        return "blocker"

    async def main() -> list[object]:
        first = asyncio.ensure_future(writes.run(blocker))
        await asyncio.sleep(0.05)
        jobs = [
            asyncio.ensure_future(writes.run(_insert("a", seen, db))),
            asyncio.ensure_future(writes.run(_insert("a", seen, db))),
            asyncio.ensure_future(writes.run(_insert("b", seen, db))),
        ]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *jobs, return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        writes.stop()
        engine.dispose()
    assert results[0] == "blocker"
    assert results[1] == "a"
    assert isinstance(results[2], Exception)  # the duplicate, and only it
    assert results[3] == "b"
    assert _rows(db) == ["a", "b"]


def test_a_lone_job_commits_on_the_callers_thread_and_company_goes_to_the_thread(
    db: Path,
) -> None:
    engine = sqlite_engine(db)
    writes = GroupCommit(engine)
    seen: list[list[str]] = []
    threads: dict[str, str] = {}

    def on(name: str) -> Callable[[Connection], str]:
        insert = _insert(name, seen, db)

        def job(conn: Connection) -> str:
            threads[name] = threading.current_thread().name
            return insert(conn)

        return job

    def failing(conn: Connection) -> str:
        conn.execute("INSERT INTO t (name) VALUES ('ghost')")
        raise RuntimeError("refused")

    async def main() -> tuple[str, str]:
        caller = threading.current_thread().name
        assert await writes.run(on("alone")) == "alone"
        assert _rows(db) == ["alone"]  # committed before run() returned
        with pytest.raises(RuntimeError):
            await writes.run(failing)
        assert _rows(db) == ["alone"]  # nothing of the failed job, rolled back
        together = await asyncio.gather(*(writes.run(on(f"n{i}")) for i in range(4)))
        assert together == ["n0", "n1", "n2", "n3"]
        return caller, threading.current_thread().name

    try:
        caller, _ = asyncio.run(main())
    finally:
        writes.stop()
        engine.dispose()
    assert threads["alone"] == caller  # no hand-off for a lookup on its own
    assert {threads[f"n{i}"] for i in range(4)} == {"registry-group-commit"}
    assert seen[1:] == [["alone"]] * 4  # the four shared one transaction
    assert _rows(db) == ["alone", "n0", "n1", "n2", "n3"]
