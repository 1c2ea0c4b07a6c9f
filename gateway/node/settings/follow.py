"""Settings recorded by another process of the node's cluster, in force here too.

Every process of a node cluster serves exchanges under the settings in its own memory
(``NodeContext.settings``). When another process records a version (a grant through
its management API), this process hears of it (``gateway.messagelog.watch_settings``:
PostgreSQL's ``NOTIFY`` at commit, and a check of the newest version every
``settings_poll_seconds``), reads it from the log and puts it in force through
``SettingsManager.adopt``: built the same way as a local change, never an older version
than the one in force (docs/adr/0050, docs/deployment.md, Node cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.messagelog import LogStoreError, MessageLogError, SettingsWatch, watch_settings
from gateway.node.context import NodeContext
from gateway.node.settings.errors import SettingsError
from gateway.node.settings.manager import SettingsManager

log = logging.getLogger("gateway.node")


class SettingsFollower:
    """Keeps this process's settings at the cluster's newest version."""

    def __init__(self, context: NodeContext, manager: SettingsManager) -> None:
        self._ctx = context
        self._manager = manager
        node = context.config.node
        self._poll = node.settings_poll_seconds
        self._location = node.log_location
        self._heard = 0
        self._wake = asyncio.Event()
        self._watch: SettingsWatch | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen (nothing to do on a SQLite log: its one process records every version)."""
        loop = asyncio.get_running_loop()

        def heard(version: int) -> None:  # the watch's thread
            loop.call_soon_threadsafe(self._note, version)

        self._watch = watch_settings(self._location, self._poll, heard)
        if self._watch is None:
            return
        self._task = asyncio.create_task(self._run(), name="settings-follower")
        self._watch.start()

    async def stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            await asyncio.to_thread(watch.stop)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _note(self, version: int) -> None:
        self._heard = max(self._heard, version)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._heard <= self._manager.current.version:
                self._ctx.settings_behind = ""
                continue  # this process's own change, or one already taken up
            try:
                stored = await asyncio.to_thread(self._ctx.log.store.latest_settings)
                if stored is not None:
                    await self._manager.adopt(stored)
                self._ctx.settings_behind = ""
            except (LogStoreError, MessageLogError, SettingsError) as exc:
                self._retry(str(exc))
            except Exception:  # the follower must outlive anything one attempt meets
                log.exception("%s: taking up a settings version failed", self._ctx.id)
                self._retry("see the error above")

    def _retry(self, why: str) -> None:
        """The version in force stays, readiness fails; the newest is tried again after
        a poll interval."""
        behind = (
            f"settings version {self._heard} of the cluster is not in force here (version "
            f"{self._manager.current.version} is): {why}"
        )
        self._ctx.settings_behind = behind
        log.error("%s: %s", self._ctx.id, behind)
        asyncio.get_running_loop().call_later(self._poll, self._wake.set)
