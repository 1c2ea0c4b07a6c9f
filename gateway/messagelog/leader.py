"""Which process of a node cluster runs the log's timestamper and witness.

Several processes may serve one node id on one PostgreSQL database (the
``--workers`` of ``gateway node serve`` or processes on several machines). Each writes
exchanges to the shared log, the database ordering their batches (docs/adr/0035). Time
stamps and cosignatures are per log, not per process: one process, the leader, runs
them, chosen through the database (a session advisory lock, ``postgres_leader.py``;
docs/adr/0042). The others poll for the lock and take over within about one poll
interval after the leader's session ends; a leader that loses its connection stops at
once. Two leaders for a moment would only ask the TSA twice: a tree head that does not
extend the stored one is refused by the database's frontier lock.

A SQLite log has one writer process, which is always the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.messagelog.location import is_postgres_url

if TYPE_CHECKING:
    from gateway.messagelog.postgres_leader import PostgresLeaderLock

__all__ = ["Leadership", "cluster_leader_pid"]

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


class Leadership:
    """This process's part in its cluster's election; ``leading`` says the outcome.

    ``on_lead`` runs when this process becomes the leader, ``on_follow`` when it stops
    being it (or at ``stop()``), ``on_tick`` after every poll of a process that
    follows (to keep what it reports about the shared log current).
    """

    def __init__(
        self,
        location: Path | str,
        node_id: str,
        *,
        poll_seconds: float,
        on_lead: Hook,
        on_follow: Hook,
        on_tick: Hook | None = None,
    ) -> None:
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self._node_id = node_id
        self._poll = poll_seconds
        self._on_lead, self._on_follow, self._on_tick = on_lead, on_follow, on_tick
        self._lock: PostgresLeaderLock | None = None
        if is_postgres_url(location):
            from gateway.messagelog.postgres_leader import PostgresLeaderLock

            self._lock = PostgresLeaderLock(str(location), node_id, keepalive_seconds=poll_seconds)
        self.leading = False
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def elects(location: Path | str) -> bool:
        """Whether a log at ``location`` may be shared by a cluster (PostgreSQL)."""
        return is_postgres_url(location)

    @property
    def shared(self) -> bool:
        """Whether the log is shared by a cluster (PostgreSQL), so leadership is elected."""
        return self._lock is not None

    async def start(self) -> None:
        """Take part: decide once now (a single process leads before it serves), then
        poll in the background."""
        if self._lock is None:
            await self._become(True)
            return
        await self._decide()
        self._task = asyncio.create_task(self._run(), name=f"leadership:{self._node_id}")

    async def stop(self) -> None:
        """Leave: stop leading (the hooks stop the leader's services), release the lock
        so another process takes over at its next poll."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._become(False)
        if self._lock is not None:
            await asyncio.to_thread(self._lock.release)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            try:
                await self._decide()
                if not self.leading and self._on_tick is not None:
                    await self._on_tick()
            except Exception:  # the election must outlive any failure of a hook
                log.exception("node %s: leadership poll failed", self._node_id)

    async def _decide(self) -> None:
        assert self._lock is not None
        held = await asyncio.to_thread(self._lock.poll)
        await self._become(held)

    async def _become(self, leading: bool) -> None:
        if leading == self.leading:
            return
        self.leading = leading
        if self._lock is not None:
            log.warning(
                "node %s: this process %s the cluster's timestamper and witness (%s)",
                self._node_id,
                "now runs" if leading else "no longer runs",
                self._lock.location,
            )
        await (self._on_lead() if leading else self._on_follow())


def cluster_leader_pid(location: Path | str, node_id: str) -> int | None:
    """The process id of the cluster's leader, as its database connection names it
    (None while no process leads; on a SQLite log, always None: nothing is elected)."""
    if not is_postgres_url(location):
        return None
    from gateway.messagelog.postgres_leader import leader_pid

    return leader_pid(str(location), node_id)
