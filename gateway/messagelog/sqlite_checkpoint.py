"""When the SQLite writer copies its WAL back into the log file: after its callers
have their answers, not before.

SQLite checkpoints by itself at the end of the commit that takes the WAL past
``wal_autocheckpoint`` pages: it copies the WAL's pages into the database file and
fsyncs both, inside the ``COMMIT`` whose callers are waiting. With 1 MiB bodies that is
every other exchange; with small ones it is the slow commit in every hundred or so.
The writer therefore runs the checkpoint itself once its queue is empty, after the
batch's callers were resumed (``SqliteWriterDb.idle``), as soon as
``IDLE_CHECKPOINT_FRAMES`` frames wait for it, the number SQLite's own default uses.
SQLite's automatic checkpoint stays on, at ``BACKSTOP_FRAMES``, for a writer that is
never idle. Neither changes what a commit makes durable: every commit is synced before
its callers are told (``synchronous=FULL``); a checkpoint only moves committed pages
(docs/adr/0067-the-log-checkpoints-when-its-writer-is-idle.md).

How many frames wait is read from the WAL index (the ``-shm`` file: ``mxFrame`` of its
header and ``nBackfill`` of its checkpoint information, both native-endian 32-bit words,
https://www.sqlite.org/walformat.html): a read of 8 bytes, no lock and no statement. It
only decides when to checkpoint; if it cannot be read, the backstop decides.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import Final

__all__ = ["BACKSTOP_FRAMES", "IDLE_CHECKPOINT_FRAMES", "IdleCheckpoint"]

_log = logging.getLogger(__name__)

IDLE_CHECKPOINT_FRAMES: Final = 1000
"""Frames not yet copied into the log file at which the idle writer checkpoints (SQLite's
default ``wal_autocheckpoint``)."""
BACKSTOP_FRAMES: Final = 4000
"""``wal_autocheckpoint`` of the writer's connection: SQLite's own checkpoint, on the
commit path, only for a writer that stays busy past four times the idle threshold."""

_MX_FRAME_OFFSET: Final = 16
"""``WalIndexHdr.mxFrame``: the last valid frame of the WAL."""
_BACKFILL_OFFSET: Final = 96
"""``WalCkptInfo.nBackfill``: the frames already copied into the database file."""


class IdleCheckpoint:
    """The writer connection's checkpoints, run when its queue is empty."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._shm = Path(f"{path}-shm")
        self._fd: int | None = None
        conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_FRAMES}")

    def waiting_frames(self) -> int | None:
        """Frames committed to the WAL and not yet in the log file (None: unreadable)."""
        try:
            if self._fd is None:
                self._fd = os.open(self._shm, os.O_RDONLY)
            header = os.pread(self._fd, _BACKFILL_OFFSET + 4, 0)
        except OSError:
            return None
        if len(header) < _BACKFILL_OFFSET + 4:
            return None
        order = sys.byteorder
        last = int.from_bytes(header[_MX_FRAME_OFFSET : _MX_FRAME_OFFSET + 4], order)
        copied = int.from_bytes(header[_BACKFILL_OFFSET:], order)
        return max(last - copied, 0)

    def run_if_due(self) -> bool:
        """Checkpoint (PASSIVE: readers are never waited for) when enough frames wait;
        True if it ran. A failure is logged, never raised: the entries are durable
        already, and SQLite's own checkpoint remains."""
        waiting = self.waiting_frames()
        if waiting is None or waiting < IDLE_CHECKPOINT_FRAMES:
            return False
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            _log.warning("message log: checkpoint of %d WAL frames failed: %s", waiting, exc)
            return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
