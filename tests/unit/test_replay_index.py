"""The replay guard's rebuild reads only the message window, and the window's past is
pruned: a node's start-up stays flat as the log grows.

The rebuild's query (``SEEN_SINCE`` of each backend) must be a range read of
``seen_request``'s index on ``created`` (migration 0005), shown by the database's own
plan; a log made before the index gets it from ``gateway db upgrade`` and, on SQLite,
when a node opens the file. Retention deletes the replay keys older than twice the
window, on both backends.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from prometheus_client import CollectorRegistry

from gateway.core.encoding import format_time
from gateway.messagelog import Kind, LogRecord, MessageLog, Role, open_store, upgrade_schema
from gateway.messagelog.migrations import HEAD, upgrade
from gateway.messagelog.postgres_commit import SEEN_SINCE as PG_SEEN_SINCE
from gateway.messagelog.sqlite_commit import SEEN_SINCE
from gateway.node.config import RetentionSection
from gateway.node.retention import RetentionJob
from tests.pg import PgCluster

NOW = datetime(2026, 5, 4, 9, 30, 0, 123000, tzinfo=UTC)
WINDOW = timedelta(seconds=300)
CLIENT = "DE-NRW/GOV/05974040/gewerbeamt"
INDEX = "ix_seen_request_created"


class Fixed:
    def now(self) -> datetime:
        return NOW


def _record(created: datetime) -> LogRecord:
    return LogRecord(
        role=Role.PROVIDER,
        kind=Kind.REQUEST,
        message_id=str(uuid.uuid4()),
        xroad_id=f"x/{uuid.uuid4()}",
        client=CLIENT,
        service="DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
        created=format_time(created),
        header=b"{}",
        body=b"{}",
        signature="c2ln",
        cert_ref="0" * 64,
    )


def _sqlite_plan(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {SEEN_SINCE}", ("2026-01-01",)).fetchall()
    return " / ".join(str(row[-1]) for row in rows)


def _pg_plan(url: str) -> str:
    """PostgreSQL's plan with sequential scans priced out: a table this small would be
    scanned whatever its indexes, but an index that can serve the range is then taken,
    and without one the plan stays a sequential scan."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        query = PG_SEEN_SINCE.replace("%s", "'2026-01-01'")
        return " / ".join(str(row[0]) for row in conn.execute(f"EXPLAIN {query}").fetchall())


def test_the_rebuild_is_an_index_range_on_sqlite_also_in_a_file_from_before(
    tmp_path: Path,
) -> None:
    path = tmp_path / "messagelog.db"
    log = MessageLog(path, clock=lambda: NOW)
    asyncio.run(log.close())
    # Covering: since revision 0006 the index holds the whole key (WITHOUT ROWID table).
    assert f"SEARCH seen_request USING COVERING INDEX {INDEX} (created>?)" in _sqlite_plan(path)
    # A file a node of revision 0004 made: no index, the rebuild scans the table.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"DROP INDEX {INDEX}")
        conn.commit()
    assert _sqlite_plan(path).startswith("SCAN seen_request")
    log = MessageLog(path, clock=lambda: NOW)  # the node's start gives it the index
    asyncio.run(log.close())
    assert INDEX in _sqlite_plan(path)
    # ``gateway db upgrade`` brings a file at revision 0004 to 0005 and its index.
    older = tmp_path / "older.db"
    assert upgrade(older, "0004") == "0004"
    assert "SCAN seen_request" in _sqlite_plan(older)
    assert upgrade_schema(older) == HEAD
    assert f"INDEX {INDEX} (created>?)" in _sqlite_plan(older)


def test_the_rebuild_uses_the_index_on_postgresql_after_the_upgrade(
    pg_cluster: PgCluster,
) -> None:
    url = pg_cluster.fresh_database(empty=True)
    assert upgrade(url, "0004") == "0004"
    assert _pg_plan(url).startswith("Seq Scan on seen_request")
    assert upgrade_schema(url) == HEAD
    plan = _pg_plan(url)
    assert INDEX in plan and "Seq Scan" not in plan, plan
    assert upgrade_schema(url) == HEAD  # a second run changes nothing


def test_retention_prunes_replay_keys_past_twice_the_window(
    tmp_path: Path, log_location: Path | str
) -> None:
    ages = {
        "long past": 3 * WINDOW,
        "past the window, within the margin": WINDOW + timedelta(seconds=30),
        "inside the window": timedelta(seconds=5),
        "dated ahead": -WINDOW / 2,
    }
    records = {name: _record(NOW - age) for name, age in ages.items()}

    async def fill() -> None:
        async with MessageLog(log_location, clock=lambda: NOW) as log:
            for rec in records.values():
                await log.append([rec], replay_key=(CLIENT, rec.message_id, rec.created))

    asyncio.run(fill())
    section = RetentionSection(archive_every_hours=0)
    store = open_store(log_location)
    job = RetentionJob(
        "ss1",
        Fixed(),
        store,
        section,
        tmp_path / "archive",
        CollectorRegistry(),
        replay_window=WINDOW,
    )
    done = job.run_once(NOW)
    assert (done.expired.entries, done.expired.seen_rows) == (0, 1)
    log = MessageLog(log_location, clock=lambda: NOW)
    kept = {message_id for _, message_id, _ in log.seen_since("")}
    asyncio.run(log.close())
    assert kept == {r.message_id for n, r in records.items() if n != "long past"}
    assert len(store.entries()) == len(records), "the log entries themselves all stay"
    # Without the node's window (a job built by hand), the replay keys are kept.
    keeping = RetentionJob(
        "ss1",
        Fixed(),
        store,
        section,
        tmp_path / "archive",
        CollectorRegistry(),
    )
    assert keeping.run_once(NOW + 10 * WINDOW).expired.seen_rows == 0
