"""The node's part in a node cluster: the log's services run in the elected process only.

Every process of a cluster serves exchanges; the timestamper, the witness and the
retention job run in the one process ``gateway.messagelog.leader.Leadership`` elects
through the shared database (docs/adr/0042). This module starts and stops them as
leadership comes and goes, and keeps the metric ``gateway_cluster_leader``
(``NodeContext.leader``). On SQLite the one process leads from the start, as a node
always did. Every process, leader or not, follows the node's maintenance mode on this
machine (``maintenance_file.py``) and, on PostgreSQL, keeps its settings at the
cluster's newest version (``settings/follow.py``) and takes up a signing certificate
another process imported into the files (``keyadmin.take_up_signing_files``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.messagelog import MessageLogError
from gateway.messagelog.leader import Leadership
from gateway.messagelog.witness import Witness
from gateway.node.context import NodeContext
from gateway.node.keyadmin import take_up_signing_files
from gateway.node.retention import RetentionJob
from gateway.node.settings.follow import SettingsFollower
from gateway.node.settings.manager import SettingsManager


class NodeCluster:
    """Starts the timestamper, the witness and the retention job while this process
    leads: two processes archiving and deleting the same entries would race."""

    def __init__(
        self,
        context: NodeContext,
        witness: Witness,
        retention: RetentionJob | None = None,
        settings: SettingsManager | None = None,
    ) -> None:
        self._ctx = context
        self._witness = witness
        self._retention = retention
        self._follower = None if settings is None else SettingsFollower(context, settings)
        self._key_files: asyncio.Task[None] | None = None
        self._refused: set[str] = set()
        node = context.config.node
        self.leadership = Leadership(
            node.log_location,
            str(context.id),
            poll_seconds=node.leader_poll_seconds,
            on_lead=self._lead,
            on_follow=self._follow,
            on_tick=self._observe,
        )
        context.leader = False

    async def start(self) -> None:
        """Decide once (a leader stamps a backlog before the node serves), then poll;
        follow the settings versions the other processes record."""
        self._ctx.maintenance_watch.start()  # before the node listens: a restart stays drained
        await self.leadership.start()
        if self._follower is not None:
            await self._follower.start()
        if self.leadership.shared:
            self._key_files = asyncio.create_task(self._watch_key_files(), name="key-files")

    async def stop(self) -> None:
        task, self._key_files = self._key_files, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._follower is not None:
            await self._follower.stop()
        await self.leadership.stop()
        await self._ctx.maintenance_watch.stop()

    async def _watch_key_files(self) -> None:
        """A signing certificate imported through another process (or copied to this
        host) is put to use here within ``settings_poll_seconds`` (docs/adr/0050)."""
        while True:
            await asyncio.sleep(self._ctx.config.node.settings_poll_seconds)
            try:
                await take_up_signing_files(self._ctx, self._refused)
            except Exception:  # the watch must outlive any failure of one attempt
                logging.getLogger("gateway.node").exception("%s: key files", self._ctx.id)

    async def _lead(self) -> None:
        if self.leadership.shared:
            # What the previous leader stamped and the others committed, before the
            # first attempt (each attempt takes it up again, ``Timestamper``'s sync).
            await self._observe()
        await self._ctx.timestamper.start()
        await self._witness.start()
        if self._retention is not None:
            self._retention.start()
        self._ctx.leader = True

    async def _follow(self) -> None:
        self._ctx.leader = False
        if self._retention is not None:
            await self._retention.stop()
        await self._witness.stop()
        await self._ctx.timestamper.stop()

    async def _observe(self) -> None:
        """A follower's view of the shared log (backlog, latest tree head) follows the
        database, so its metrics and its refusal on a failing TSA are the cluster's."""
        with contextlib.suppress(MessageLogError):
            await self._ctx.log.follow()
