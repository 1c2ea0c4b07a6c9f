"""One leader per node cluster, chosen through the database (docs/adr/0042).

Real PostgreSQL (``tests/pg.py``): two ``Leadership`` objects of one node id share a
database, as two processes of a cluster do; one leads, the other takes over when the
leader stops or its session dies. On SQLite the one process leads from the start. A
follower's log takes up what the other writers committed and stamped (``follow``), and
refuses exchanges once the cluster's backlog is older than the tolerated outage.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from gateway.conf.directory import Directory
from gateway.core.errors import Code, GatewayError
from gateway.messagelog import MessageLog, TreeHeadRecord
from gateway.messagelog.leader import Leadership, cluster_leader_pid
from gateway.messagelog.timestamper import Timestamper
from tests.unit.test_messagelog_postgres import NOW, clock, record

NODE = "DE-NRW/GOV/05974028/node1"
POLL = 0.1


class Recorder:
    """Which transitions a ``Leadership`` reported, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def lead(self) -> None:
        self.events.append("lead")

    async def follow(self) -> None:
        self.events.append("follow")


def leadership(location: Path | str, recorder: Recorder, node: str = NODE) -> Leadership:
    return Leadership(
        location, node, poll_seconds=POLL, on_lead=recorder.lead, on_follow=recorder.follow
    )


async def until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """A deadline for something the poll does in the background, not a timing claim."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def test_on_sqlite_the_one_process_leads_from_the_start(tmp_path: Path) -> None:
    events = Recorder()

    async def scenario() -> None:
        election = leadership(tmp_path / "messagelog.db", events)
        assert not election.shared
        await election.start()
        assert election.leading and events.events == ["lead"]
        await election.stop()
        assert not election.leading and events.events == ["lead", "follow"]

    run(scenario)
    assert cluster_leader_pid(tmp_path / "messagelog.db", NODE) is None


def test_one_process_of_a_cluster_leads_and_another_takes_over_when_it_stops(
    pg_url: str,
) -> None:
    first, second = Recorder(), Recorder()

    async def scenario() -> None:
        a, b = leadership(pg_url, first), leadership(pg_url, second)
        assert a.shared
        await a.start()
        await b.start()
        assert a.leading and not b.leading
        assert first.events == ["lead"] and second.events == []
        assert await asyncio.to_thread(cluster_leader_pid, pg_url, NODE) == os.getpid()
        await asyncio.sleep(5 * POLL)  # several polls: the follower stays a follower
        assert a.leading and not b.leading
        await a.stop()
        assert first.events == ["lead", "follow"]
        await until(lambda: b.leading, "the second process to take over")
        assert second.events == ["lead"]
        await b.stop()
        assert await asyncio.to_thread(cluster_leader_pid, pg_url, NODE) is None

    run(scenario)


def test_each_node_id_elects_its_own_leader(pg_url: str) -> None:
    async def scenario() -> None:
        a = leadership(pg_url, Recorder())
        b = leadership(pg_url, Recorder(), node="DE-NRW/GOV/05974040/node1")
        await a.start()
        await b.start()
        assert a.leading and b.leading
        await a.stop()
        await b.stop()

    run(scenario)


def test_a_leader_whose_session_dies_stops_leading_and_one_process_takes_over(
    pg_url: str,
) -> None:
    first, second = Recorder(), Recorder()

    async def scenario() -> None:
        a, b = leadership(pg_url, first), leadership(pg_url, second)
        await a.start()
        await b.start()
        assert a.leading
        # The server ends the leader's session, as when its host or its link dies.
        with psycopg.connect(pg_url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND granted AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchall()
        assert ended == [(True,)]
        await until(lambda: "follow" in first.events, "the old leader to stop leading")
        await until(lambda: a.leading != b.leading, "exactly one leader again")
        await asyncio.sleep(5 * POLL)
        assert a.leading != b.leading
        await a.stop()
        await b.stop()

    run(scenario)


def test_a_follower_takes_up_what_other_writers_committed_and_stamped(pg_url: str) -> None:
    async def scenario() -> None:
        async with MessageLog(pg_url, clock=clock) as a, MessageLog(pg_url, clock=clock) as b:
            await a.append([record("a"), record("a"), record("a")])
            snapshot = a.tree_snapshot()
            await a.append_tree_head(
                TreeHeadRecord(
                    tree_size=snapshot.tree_size,
                    root_hash=snapshot.root_hash,
                    last_entry_id=snapshot.last_entry_id,
                    document=b"doc",
                    gen_time=NOW,
                    token=b"token",
                    tsa_name="TSA",
                    tsa_cert_der=b"tsa-der",
                )
            )
            await a.append([record("a")])
            assert b.tree_snapshot().tree_size == 0
            await b.follow()
            assert b.tree_snapshot() == a.tree_snapshot()
            backlog = b.backlog()
            assert (backlog.tree_size, backlog.stamped_size, backlog.pending) == (4, 3, 1)
            assert backlog.last_stamp == NOW
            # The follower's tree is the database's: a head over it is accepted.
            mine = b.tree_snapshot()
            stored = await b.append_tree_head(
                TreeHeadRecord(
                    tree_size=mine.tree_size,
                    root_hash=mine.root_hash,
                    last_entry_id=mine.last_entry_id,
                    document=b"doc",
                    gen_time=NOW,
                    token=b"token",
                    tsa_name="TSA",
                    tsa_cert_der=b"tsa-der",
                )
            )
            assert stored > 0

    run(scenario)


@pytest.mark.parametrize("poll", [0, -1])
def test_the_poll_interval_must_be_positive(tmp_path: Path, poll: float) -> None:
    events = Recorder()
    with pytest.raises(ValueError, match="poll_seconds"):
        Leadership(
            tmp_path / "log.db",
            NODE,
            poll_seconds=poll,
            on_lead=events.lead,
            on_follow=events.follow,
        )


class MovableClock:
    def __init__(self) -> None:
        self.at = NOW

    def now(self) -> datetime:
        return self.at


def no_directory() -> Directory:
    raise AssertionError("a follower's check reads no directory")


def test_a_follower_refuses_once_the_clusters_backlog_is_older_than_tolerated(
    pg_url: str,
) -> None:
    node_clock = MovableClock()

    async def scenario() -> None:
        async with MessageLog(pg_url, clock=node_clock.now) as writer:
            await writer.append([record("a")])  # committed by another process, unstamped
            log = MessageLog(pg_url, clock=node_clock.now)
            log.start()
            try:
                stamper = Timestamper(
                    log,
                    no_directory,
                    NODE,
                    node_clock,
                    tolerated_outage=timedelta(seconds=60),
                    sync=log.follow,
                )
                single = Timestamper(
                    log, no_directory, NODE, node_clock, tolerated_outage=timedelta(seconds=60)
                )
                await log.follow()
                node_clock.at = NOW + timedelta(seconds=30)
                stamper.check(provider=True)  # within the tolerated outage
                node_clock.at = NOW + timedelta(seconds=61)
                with pytest.raises(GatewayError) as refused:
                    stamper.check(provider=True)
                assert refused.value.code is Code.SP_TIMESTAMPING_FAILED
                assert "node cluster's leader" in refused.value.message
                # A process that is no cluster's follower refuses only on its own failures.
                single.check(provider=True)
            finally:
                await log.close()

    run(scenario)
