"""The SQLite backend as the group-commit writer drives it: one connection, its
transactions and its durability settings.

``gateway.messagelog.writer.MessageLog`` is the same thread, queue and published tree on
either backend; it talks to the database only through an object with this class's
methods (``PostgresWriterDb`` is the other one). This one wraps the functions of
``gateway.messagelog.sqlite_commit`` and ``sqlite_writes`` on the node's log file.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import gateway.messagelog.sqlite_commit as commit
import gateway.messagelog.sqlite_writes as side
from gateway.core.merkle import CompactTree
from gateway.messagelog.admission import Append
from gateway.messagelog.inline_commit import WriterBusy
from gateway.messagelog.records import LogRecord, TreeHeadRecord
from gateway.messagelog.sealing import Sealer
from gateway.messagelog.sqlite_bodies import DEFAULT_THRESHOLD, SEGMENT_BYTES, BodyFiles
from gateway.messagelog.sqlite_checkpoint import IDLE_CHECKPOINT_FRAMES, IdleCheckpoint
from gateway.messagelog.sqlite_commit import BatchResult, TreeState

__all__ = ["SqliteWriterDb"]

_log = logging.getLogger(__name__)

_BUSY_TIMEOUT_S: Final = 5.0
"""How long the writer waits for a lock held by another connection before failing."""


class SqliteWriterDb:
    """The writer thread's only connection to the log file (WAL, ``synchronous=FULL``)."""

    side = side
    """The side writes (``MessageLog.write`` units) of this backend."""

    def __init__(
        self,
        path: Path,
        sealer: Sealer,
        body_file_bytes: int = DEFAULT_THRESHOLD,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        """Bodies of ``body_file_bytes`` or more (0: none) go to segment files of about
        ``segment_bytes`` beside the log (``sqlite_bodies``)."""
        self._path = path
        self._sealer = sealer
        path.parent.mkdir(parents=True, exist_ok=True)
        self._older_reads = commit.create_tables(path)
        # isolation_level=None: the writer issues BEGIN/COMMIT itself, so a batch is
        # exactly one transaction and nothing is committed behind its back.
        conn = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            self._durability = commit.configure(conn)
            self._checkpoint = IdleCheckpoint(conn, path)
            self._bodies: BodyFiles | None = None
            if body_file_bytes > 0:
                self._bodies = BodyFiles(path, body_file_bytes, segment_bytes)
                self._bodies.open(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @property
    def durability(self) -> tuple[str, int]:
        """The journal mode and ``PRAGMA synchronous`` level, as read back."""
        return self._durability

    @property
    def location(self) -> str:
        return str(self._path)

    def seen_since(self, created_after: str) -> list[tuple[str, str, str]]:
        return commit.seen_since(self._conn, created_after)

    def open_tree(self) -> TreeState:
        """Check (or rebuild) the tree; then give older reads their rows, once."""
        state = commit.open_tree(self._conn, self._path, self._sealer)
        if self._older_reads:
            commit.record_older_reads(self._conn, self._path, self._sealer)
        return state

    def insert_batch(
        self,
        appends: Sequence[Append],
        *,
        tree: CompactTree,
        last_id: int,
        logged_at: str,
        stored_certs: set[str],
        stored_ocsp: set[str],
        body_policy: Callable[[LogRecord], str] | None,
        salts: Callable[[], bytes],
    ) -> BatchResult:
        return commit.insert_batch(
            self._conn,
            appends,
            tree=tree,
            last_id=last_id,
            logged_at=logged_at,
            stored_certs=stored_certs,
            stored_ocsp=stored_ocsp,
            body_policy=body_policy,
            salts=salts,
            sealer=self._sealer,
            bodies=self._bodies,
        )

    def try_insert_batch(
        self,
        appends: Sequence[Append],
        *,
        tree: CompactTree,
        last_id: int,
        logged_at: str,
        stored_certs: set[str],
        stored_ocsp: set[str],
        body_policy: Callable[[LogRecord], str] | None,
        salts: Callable[[], bytes],
    ) -> BatchResult:
        """``insert_batch`` for an inline commit on the event loop's thread: the write
        lock is taken without waiting, and ``WriterBusy`` raised (nothing begun) if
        another connection holds it, so the loop never sits in SQLite's busy wait."""
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                raise WriterBusy(str(exc)) from exc
            raise
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        return commit.insert_batch(
            conn,
            appends,
            tree=tree,
            last_id=last_id,
            logged_at=logged_at,
            stored_certs=stored_certs,
            stored_ocsp=stored_ocsp,
            body_policy=body_policy,
            salts=salts,
            sealer=self._sealer,
            begun=True,
            bodies=self._bodies,
        )

    def insert_tree_head(
        self, head: TreeHeadRecord, *, stored_at: str, tree_size: int
    ) -> tuple[int, datetime | None]:
        return commit.insert_tree_head(self._conn, head, stored_at=stored_at, tree_size=tree_size)

    def run(self, work: Callable[[Any], object]) -> object:
        """One side write in its own transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``)."""
        self._conn.execute("BEGIN IMMEDIATE")
        result = work(self._conn)
        self._conn.execute("COMMIT")
        return result

    def probe_work(self) -> Callable[[Any], object]:
        return commit.rewrite_user_version

    def rollback(self) -> None:
        if self._conn.in_transaction:
            # sqlite may already have rolled back on its own (e.g. after an I/O error);
            # the batch is failed either way.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def idle(self) -> None:
        """The writer's queue is empty: copy the WAL into the file if it is due, off
        the path of any caller (``sqlite_checkpoint``). Never raises: the writer thread
        must go on, and SQLite's own checkpoint remains."""
        try:
            self._checkpoint.run_if_due()
        except Exception:
            _log.exception("message log: idle checkpoint failed")

    def idle_due(self) -> bool:
        """Whether ``idle`` would checkpoint now: after an inline commit, the writer
        thread is woken for it (it is not the caller's to wait for)."""
        waiting = self._checkpoint.waiting_frames()
        return waiting is not None and waiting >= IDLE_CHECKPOINT_FRAMES

    def close(self) -> None:
        self._checkpoint.close()
        if self._bodies is not None:
            self._bodies.close()
        self._conn.close()
