"""Maintenance mode shared by every process of a node on one machine, through a file.

Behind ``gateway node serve --workers N`` a call to the shared admin port reaches one
worker; the mode it switches must hold in all of them, and in a worker the parent starts
again later. So the mode lives in a small file beside ``node.toml`` (``[node]
maintenance_file``, ``maintenance.json`` by default): present, the node is in maintenance
since the time and for the reason it records; absent, the node admits exchanges. The
admin API writes it atomically (a temporary file, fsync, rename, fsync of the directory)
under an exclusive lock, so two toggles through two workers are one after the other and
each is one admin record. Every process reads it at start-up and then watches it every
:data:`WATCH_SECONDS`: a change made through any process is in force in all of them
within that time. The file belongs to the machine, not to the cluster's database, so
one machine of a cluster can be drained behind its load balancer while the others serve
(docs/adr/0059). It survives a restart: a node drained for an upgrade stays drained
until an operator takes it out.

A file that cannot be read or parsed keeps the node in maintenance (fail closed), with
a reason that says so, until the operator takes the node out (which removes the file).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.core.encoding import format_time
from gateway.node.maintenance import Maintenance

__all__ = ["WATCH_SECONDS", "MaintenanceFile", "MaintenanceRecord", "MaintenanceWatch"]

log = logging.getLogger("gateway.node")

WATCH_SECONDS = 0.5
"""How often every process looks at the file: the longest a change made through one
process takes to be in force in the others (docs/node-admin.md)."""

Signature = tuple[int, int, int] | None
"""The file's inode, modification time and size, or ``None`` while it is absent: a
rename puts a new inode in place, so every write changes it."""


@dataclass(frozen=True, slots=True)
class MaintenanceRecord:
    """What the file says: in maintenance since ``since``, for ``reason``."""

    since: datetime
    reason: str


class MaintenanceFileError(Exception):
    """The file is there but is not a record this module wrote."""


class MaintenanceFile:
    """The file itself: read, written atomically, removed, locked for one toggle."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    def signature(self) -> Signature:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def read(self) -> MaintenanceRecord | None:
        """The record in force, ``None`` if there is none; raises
        :class:`MaintenanceFileError` for a file that is unreadable or malformed."""
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise MaintenanceFileError(f"cannot read {self.path}: {exc}") from None
        try:
            data = json.loads(text)
            since = datetime.fromisoformat(data["since"])
            reason = data["reason"]
        except (ValueError, KeyError, TypeError) as exc:
            raise MaintenanceFileError(f"{self.path} is not a maintenance record: {exc}") from None
        if since.tzinfo is None or not isinstance(reason, str):
            raise MaintenanceFileError(f"{self.path} is not a maintenance record")
        return MaintenanceRecord(since, reason)

    def write(self, record: MaintenanceRecord) -> None:
        """Put ``record`` in place so that no process ever reads half of it, and so that
        it is on disk before the caller answers."""
        body = json.dumps({"since": format_time(record.since), "reason": record.reason})
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            out.write(body + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        self._sync_directory()

    def clear(self) -> None:
        """Take the node out of maintenance: the file is removed, durably."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._sync_directory()

    def _sync_directory(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the machine-wide lock of one toggle: the other processes' toggles wait,
        polling, so the event loop keeps serving and a cancelled wait leaves nothing
        behind."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.02)
            yield
        finally:
            os.close(fd)  # closing the one descriptor releases its lock


class MaintenanceWatch:
    """Keeps one process's :class:`Maintenance` at what the file says.

    Only a change of the file is applied (a new signature), so the process's mode is
    set from the file at start-up and whenever any process writes or removes it."""

    def __init__(
        self, mode: Maintenance, file: MaintenanceFile, clock: Callable[[], datetime]
    ) -> None:
        self.mode = mode
        self.file = file
        self._clock = clock
        self._seen: Signature | bool = False  # False: never looked yet
        self._task: asyncio.Task[None] | None = None

    def sync(self) -> None:
        """Apply the file if it changed since the last look."""
        signature = self.file.signature()
        if signature == self._seen:
            return
        self._seen = signature
        try:
            record = self.file.read()
        except MaintenanceFileError as exc:
            log.error("maintenance mode kept on: %s", exc)
            self.mode.follow(self._clock(), f"the maintenance state cannot be read: {exc}")
            return
        if record is None:
            self.mode.follow(None, "")
        else:
            self.mode.follow(record.since, record.reason)

    def start(self) -> None:
        self.sync()
        self._task = asyncio.create_task(self._watch(), name="maintenance-file")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                self.sync()
            except OSError:  # the watch must outlive a directory briefly unreadable
                log.exception("maintenance file %s", self.file.path)
