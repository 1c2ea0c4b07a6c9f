"""The node's durable message log, written with group commit.

A security server may only report an exchange as successful once its log entry is on
disk: the log is the evidence both parties rely on later. ``append`` therefore returns
only after the transaction holding the entry has committed (SQLite with
``synchronous=FULL`` in WAL mode, or PostgreSQL with ``synchronous_commit = on``), and
raises instead if that cannot be guaranteed. The database work of either backend is
behind a ``WriterDb`` (``sqlite_writer.py``, ``postgres_commit.py``); this module is the
same group commit on both.

An fsync per request would cap throughput at the disk's sync rate, so one writer thread
collects whatever units are waiting and commits them together in a single transaction
(group commit): every caller still waits for its own durable commit, but many callers
share one fsync. The event loop queues work and awaits a future the writer resolves;
only an append that is alone commits on the loop's thread (``inline_commit.py``).

Every entry is also a leaf of an RFC 9162 Merkle tree (docs/message-log.md): the writer
computes the leaf hash, stores it with the entry and extends the tree's compact frontier
in the same transaction, so the tree can never disagree with the entries on disk. Tree
heads timestamped by the TSA (``gateway.messagelog.timestamper``) are stored through the same
writer thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import gateway.messagelog.sqlite_commit as commit
from gateway.core.adminrecord import AdminRecord
from gateway.core.encoding import format_time
from gateway.core.jws import Signer
from gateway.core.logtree import SUBJECTS_SALT_SIZE
from gateway.core.merkle import CompactTree
from gateway.messagelog.admission import Append, admin_append
from gateway.messagelog.backend import open_backend
from gateway.messagelog.inline_commit import CommitGate, WriterBusy
from gateway.messagelog.records import (
    AdminReceipt,
    LogRecord,
    LogStats,
    MessageLogError,
    OpRecord,
    TimestampBacklog,
    TreeHeadRecord,
    TreeSnapshot,
)
from gateway.messagelog.sealing import DataKey
from gateway.messagelog.sqlite_bodies import DEFAULT_THRESHOLD, SEGMENT_BYTES
from gateway.messagelog.sqlite_commit import BatchResult, Outcome
from gateway.messagelog.sqlite_writer import SqliteWriterDb
from gateway.messagelog.store import LogStore
from gateway.messagelog.writer_queue import (
    Counters,
    HeadUnit,
    Idle,
    Stop,
    Unit,
    WriterDb,
    WriteUnit,
    remember_refs,
    resolve,
    resolve_head,
)
from gateway.messagelog.writer_side import SideWrites

__all__ = ["MessageLog"]

_log = logging.getLogger(__name__)


def _failure(reason: str, cause: BaseException) -> MessageLogError:
    error = MessageLogError(reason)
    error.__cause__ = cause
    return error


class MessageLog(SideWrites):
    """Append-only durable log of signed messages for one node.

    Create it, ``start()`` it (or use ``async with``), ``await append(...)`` from the event
    loop, and ``await close()`` at shutdown. ``location`` is the SQLite file, or a
    ``postgresql://`` URL. On SQLite one instance owns the file's only writer connection;
    on PostgreSQL several instances (the processes of a node cluster) may write one
    database, the database ordering their batches. Readers may read at any time.
    """

    def __init__(
        self,
        location: Path | str,
        *,
        clock: Callable[[], datetime],
        max_batch: int = 512,
        body_policy: Callable[[LogRecord], str] | None = None,
        salts: Callable[[], bytes] | None = None,
        data_key: DataKey | None = None,
        inline_commit: bool = True,
        body_file_bytes: int = DEFAULT_THRESHOLD,
        body_segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        """``inline_commit``: may a lone append commit on its caller's thread (SQLite
        only; a node's ``[logging] inline_commit``; ``inline_commit.py``).
        ``body_file_bytes``: bodies this large go to segment files (SQLite only; 0: none;
        a node's ``[logging] body_file_bytes``; ``sqlite_bodies.py``)."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._salts = salts or (lambda: secrets.token_bytes(SUBJECTS_SALT_SIZE))
        """Draws each entry's data-subject salt; injectable so tests can compare leaves."""
        self._body_policy = body_policy
        """Returns why a record's body is logged as its digest only ("" keeps it):
        ``gateway.messagelog.policy``."""
        self._db: WriterDb
        self._store: LogStore
        # The backend, its new exchange rows sealed under ``data_key`` if given (ADR 0048).
        self._path, self._db, self._store = open_backend(
            location, data_key, body_file_bytes, body_segment_bytes
        )
        self._clock = clock
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Unit | HeadUnit | WriteUnit | Idle | Stop]
        self._queue = queue.SimpleQueue()
        db = self._db
        self._inline = db if inline_commit and isinstance(db, SqliteWriterDb) else None
        self._gate = CommitGate(self._inline is not None, self._queue.put)
        self._counters = Counters()
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Merkle tree and timestamping state. ``_tree`` belongs to the writer thread; what
        # other threads may read is published under ``_tree_lock`` after each commit.
        self._tree_lock = threading.Lock()
        self._tree = CompactTree()
        self._published: tuple[int, tuple[bytes, ...], int] = (0, (), 0)
        self._snapshots: dict[int, tuple[bytes, int]] = {}
        self._stamped_size = 0
        self._stamped_last_id = 0
        self._last_stamp: datetime | None = None
        self._oldest_pending: datetime | None = None
        self._pending_threshold = 0
        self._pending_callback: Callable[[], None] | None = None
        self._pending_signalled = False
        try:
            self._journal_mode, self._synchronous = self._db.durability
            # Stored references a batch skips; not preloaded, bounded (remember_refs).
            self._stored_certs: set[str] = set()
            self._stored_ocsp: set[str] = set()
            self._open_tree()
        except BaseException:
            self._db.close()
            raise

    # -- Merkle tree state ----------------------------------------------------------------

    def _open_tree(self) -> None:
        """Take over the tree and timestamping state checked (or rebuilt) at start-up."""
        state = self._db.open_tree()
        self._tree = state.tree
        with self._tree_lock:
            self._published = (state.tree.size, state.tree.hashes, state.last_id)
            self._stamped_size, self._stamped_last_id = state.stamped_size, state.stamped_last_id
            self._last_stamp, self._oldest_pending = state.last_stamp, state.oldest_pending

    async def follow(self) -> None:
        """Take up the tree and tree heads every writer of a shared database committed,
        so a cluster's leader stamps the whole log, not only its own process's share."""
        await self.write(lambda _conn: self._open_tree())

    def tree_snapshot(self) -> TreeSnapshot:
        """The tree over every committed entry (never over an uncommitted one)."""
        with self._tree_lock:
            size, hashes, last_id = self._published
            root = CompactTree(size, hashes).root()
            # Remembered so that a tree head stored later can be checked against it.
            self._snapshots[size] = (root, last_id)
            while len(self._snapshots) > 16:
                del self._snapshots[next(iter(self._snapshots))]
        return TreeSnapshot(size, root, last_id)

    def backlog(self) -> TimestampBacklog:
        """Committed entries versus entries covered by the latest timestamped tree head."""
        with self._tree_lock:
            return TimestampBacklog(
                self._published[0], self._stamped_size, self._oldest_pending, self._last_stamp
            )

    def notify_when_pending(self, threshold: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the writer thread) once ``threshold`` entries await a
        tree head; again only after the next tree head is stored. Set before ``start()``.
        """
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        with self._tree_lock:
            self._pending_threshold = threshold
            self._pending_callback = callback
            self._pending_signalled = False

    def _signal_if_pending(self) -> None:
        """Writer thread, after a commit: tell the timestamper a batch is full."""
        with self._tree_lock:
            callback = self._pending_callback
            due = (
                callback is not None
                and not self._pending_signalled
                and self._published[0] - self._stamped_size >= self._pending_threshold
            )
            if due:
                self._pending_signalled = True
        if due and callback is not None:
            try:
                callback()
            except Exception:
                _log.exception("pending-entries callback failed")

    @property
    def path(self) -> Path:
        """The SQLite file (for a PostgreSQL log: its URL without the password)."""
        return self._path

    @property
    def location(self) -> str:
        """Where the log is, for messages (a PostgreSQL URL without its password)."""
        return self._store.location

    @property
    def store(self) -> LogStore:
        """The read side of this log (its own read-only connections, never the writer's)."""
        return self._store

    @property
    def queue_depth(self) -> int:
        """Units waiting for the writer thread (approximate; for the node's metrics)."""
        return self._queue.qsize()

    @property
    def journal_mode(self) -> str:
        """The writer connection's journal mode, as read back after setting it."""
        return self._journal_mode

    @property
    def synchronous(self) -> int:
        """The writer connection's ``PRAGMA synchronous`` level (2 is FULL)."""
        return self._synchronous

    @property
    def stats(self) -> LogStats:
        c = self._counters
        with c.lock:
            return LogStats(c.commits, c.units, c.rows, c.largest_batch, c.failed_batches, c.inline)

    def seen_since(self, created_after: str) -> list[tuple[str, str, str]]:
        """Requests received (client, message id, created) created after a time.

        Read before ``start()``, to rebuild the in-memory replay guard after a restart.
        """
        with self._state_lock:
            if self._thread is not None:
                raise MessageLogError("seen_since is only available before start()")
        return self._db.seen_since(created_after)

    def start(self) -> None:
        """Start the writer thread; appends are refused until this has been called."""
        with self._state_lock:
            if self._closed:
                raise MessageLogError("the message log is closed")
            if self._thread is not None:
                raise RuntimeError("the message log is already started")
            self._thread = threading.Thread(
                target=self._run, name=f"messagelog-writer:{self._path.name}", daemon=True
            )
            self._thread.start()

    async def close(self) -> None:
        """Stop accepting appends, finish every one already queued, then close the file.

        Appends that were accepted before ``close`` are committed (or failed) before it
        returns, so no caller is left waiting on a log that has gone away.
        """
        with self._state_lock:
            first, self._closed, thread = not self._closed, True, self._thread
        while self._gate.deciding:  # a lone append accepted before, one turn from its path
            await asyncio.sleep(0.001)
        if first and thread is not None:
            self._queue.put(Stop())
        if thread is None:
            self._db.close()
            return
        await asyncio.to_thread(thread.join)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _enter_lobby(self, unit: Unit) -> bool:
        with self._state_lock:
            self._check_running()
            return self._gate.enter(unit)

    def _enqueue(self, unit: Unit | HeadUnit | WriteUnit | Idle) -> None:
        """Hand ``unit`` to the writer thread, or refuse if the log is not running."""
        with self._state_lock:
            self._check_running()
            self._gate.queue(unit)  # counted: no inline commit overtakes it

    def _check_running(self) -> None:
        if self._closed:
            raise MessageLogError("the message log is closed")
        if self._thread is None:
            raise MessageLogError("the message log is not started")

    async def append(
        self,
        records: Sequence[LogRecord],
        *,
        certs: Mapping[str, tuple[bytes, str]] | None = None,
        ocsp: Mapping[str, bytes] | None = None,
        replay_key: tuple[str, str, str] | None = None,
        operational: Sequence[OpRecord] = (),
    ) -> list[int]:
        """Log ``records`` durably and return their new ids, in order.

        Returns only after the transaction holding them has committed to disk, so the
        caller may report success exactly when this returns. ``replay_key`` is
        ``(client, message_id, created)``; it is recorded in the same transaction, and if
        the pair was seen before nothing is written and ``ReplayError`` is raised.
        ``operational`` are the exchange's operational monitoring records, written in
        the same transaction (so they exist exactly when the entries do).
        ``certs`` maps cert_ref to ``(der, jws_header)`` for the signers the records
        refer to, ``ocsp`` maps ocsp_ref to the DER of the OCSP responses they rely on.
        Raises ``MessageLogError`` if the entry could not be made durable.

        If the awaiting task is cancelled, the unit is still written: it may already be
        part of a transaction in progress. An append alone commits on this thread
        (``inline_commit.py``), the same transaction the writer would run.
        """
        checked = Append.checked(records, certs, ocsp, replay_key, operational)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int]] = loop.create_future()
        return await self._gate.append(Unit(checked, loop, future), self)

    def _commit_inline(self, unit: Unit) -> Outcome | None:
        """The caller's thread, holding the gate's ``writing`` lock: ``unit`` alone, in
        its own transaction; None (nothing begun) if another connection holds the
        file's write lock: then the writer takes it."""
        if self._inline is None:
            return None
        try:
            outcome = self._commit_batch([unit], self._inline.try_insert_batch)[0]
        except WriterBusy:
            return None
        with self._counters.lock:
            self._counters.inline += 1
        if self._inline.idle_due():
            with contextlib.suppress(MessageLogError):  # closed meanwhile: no upkeep
                self._enqueue(Idle())
        return outcome

    async def append_admin(
        self,
        record: AdminRecord,
        signer: Signer,
        settings: bytes | None = None,
        base: int | None = None,
    ) -> AdminReceipt:
        """Log one admin change as its own leaf, signed by ``signer`` (the node owner's
        signing key), and store ``settings`` as the node's new settings version in the
        same transaction; return once both are durable.

        The entry's header is ``record.to_bytes()``, its signature a detached JWS over
        it, like a message's; it names the OCSP response the node kept for the signing
        certificate (``keep_own_status``), if any, as its evidence that the key was good.
        It shares the group commit with exchanges, so it costs them no extra fsync.
        Raises ``MessageLogError`` if the change could not be made durable: the caller
        must then not apply it (docs/message-log.md 13); ``SettingsConflict`` when
        ``base``, the version ``settings`` was derived from, is no longer the newest.
        """
        checked = admin_append(record, signer, settings, base)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int]] = loop.create_future()
        self._enqueue(Unit(checked, loop, future))
        ids = await future
        return AdminReceipt(ids[0], ids[1], ids[2] if settings is not None else None)

    async def append_tree_head(self, head: TreeHeadRecord) -> int:
        """Store a timestamped tree head durably (through the writer) and return its id.

        The head must extend the latest stored one and come from a recent
        :meth:`tree_snapshot` of this log; anything else raises ``MessageLogError``.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._enqueue(HeadUnit(head, loop, future))
        return await future

    async def write(self, work: Callable[[Any], object]) -> object:
        """Run ``work`` in its own transaction on the writer thread; return its result.

        For the log's side tables (configuration history, own OCSP answers, witness
        co-signatures and alerts; the typed methods of ``writer_side`` and ``sqlite_writes``):
        they get the same durability as entries and never compete with the writer for the
        database lock. ``work`` receives the writer's connection of the backend (sqlite3
        or psycopg): the backend's own tool, not part of the ``LogWriter`` protocol.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        self._enqueue(WriteUnit(work, loop, future))
        return await future

    async def probe(self) -> None:
        """Commit one write the way an exchange's entries are committed, or raise.

        The node's readiness check (``gateway/node/health.py``) asks the log itself
        rather than guessing from the file: the probe goes through :meth:`write`, so it
        meets the same refusals an ``append`` meets (closed, not started) and the same
        writer thread, ``BEGIN IMMEDIATE``, ``COMMIT`` and fsync. It rewrites the
        database header's ``user_version`` with its own value, so no entry, tree or side
        table changes. Raises ``MessageLogError`` when that cannot be made durable.
        """
        await self.write(self._db.probe_work())

    def _commit_write(self, unit: WriteUnit) -> object:
        """Writer thread: one ``write`` unit in its own transaction."""
        try:
            result = self._db.run(unit.work)
        except Exception as exc:
            self._rollback()
            return _failure(f"message log side write failed: {type(exc).__name__}: {exc}", exc)
        return result

    # -- writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if isinstance(first, Stop):
                    break
                items = [first]
                while len(items) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, Stop):
                        stopping = True
                        break
                    items.append(item)
                with self._gate.writing:  # an inline commit's transaction is over
                    settled = self._write(items)
                self._gate.settled(len(items) - settled)
        finally:
            with self._gate.writing:
                self._db.close()

    def _write(self, items: list[Unit | HeadUnit | WriteUnit | Idle]) -> int:
        """Write ``items``; returns how many it already counted as settled (the batch's
        units, before their callers resume, so a caller's next lone append is not
        counted behind a batch that is over)."""
        batch = [u for u in items if isinstance(u, Unit)]
        if batch:
            outcomes = self._commit_batch(batch)
            self._gate.settled(len(batch))
            self._deliver(batch, outcomes)
        # Tree heads and side writes are rare and get their own transaction each,
        # so a refused one can never fail the exchanges queued with it.
        for item in items:
            outcome: object
            if isinstance(item, HeadUnit):
                outcome = self._commit_head(item.head)
            elif isinstance(item, WriteUnit):
                outcome = self._commit_write(item)
            else:
                continue
            with contextlib.suppress(RuntimeError):  # that loop is closed
                item.loop.call_soon_threadsafe(resolve_head, item.future, outcome)
        if self._queue.empty():
            self._db.idle()  # e.g. SQLite's checkpoint, after the callers resumed
        return len(batch)

    def _commit_batch(
        self, batch: list[Unit], insert: Callable[..., BatchResult] | None = None
    ) -> list[Outcome]:
        """Writer thread (or an inline commit): one batch in one transaction; publish the
        tree only once it is durable, restore it if the transaction rolls back."""
        tree = self._tree
        before = tree.copy()  # O(log n): restored if the transaction rolls back
        try:
            logged_at = format_time(self._clock())
            done = (insert or self._db.insert_batch)(
                [unit.append for unit in batch],
                tree=tree,
                last_id=self._published[2],
                logged_at=logged_at,
                stored_certs=self._stored_certs,
                stored_ocsp=self._stored_ocsp,
                body_policy=self._body_policy,
                salts=self._salts,
            )
        except WriterBusy:
            raise  # nothing was begun: the writer thread takes the batch
        except Exception as exc:
            self._rollback()
            self._tree = before
            with self._counters.lock:
                self._counters.failed_batches += 1
            reason = (
                f"message log write failed, {len(batch)} unit(s) rolled back: "
                f"{type(exc).__name__}: {exc}"
            )
            _log.error("%s", reason)
            # One exception object per caller: each is raised in a different task.
            return [_failure(reason, exc) for _ in batch]
        # Only now are the certificates known to be on disk; remembering them earlier
        # would skip them forever after a rolled-back batch.
        self._stored_certs = remember_refs(self._stored_certs, done.new_certs)
        self._stored_ocsp = remember_refs(self._stored_ocsp, done.new_ocsp)
        tree = self._tree = done.tree  # another writer of a shared database may have appended
        if tree.size != before.size:
            with self._tree_lock:
                if before.size == self._stamped_size:  # the first entry waiting for a stamp
                    self._oldest_pending = commit.parse_time(logged_at)
                self._published = (tree.size, tree.hashes, done.last_id)
            self._signal_if_pending()
        written = [
            len(unit.append.records)
            for unit, outcome in zip(batch, done.outcomes, strict=True)
            if not isinstance(outcome, BaseException)
        ]
        c = self._counters
        with c.lock:
            c.commits += 1
            c.units += len(written)
            c.rows += sum(written)
            c.largest_batch = max(c.largest_batch, len(batch))
        return done.outcomes

    def _commit_head(self, head: TreeHeadRecord) -> int | BaseException:
        """Writer thread: store one timestamped tree head in its own transaction."""
        with self._tree_lock:
            snapshot = self._snapshots.get(head.tree_size)
        if head.tree_size <= self._stamped_size:
            return MessageLogError(
                f"a tree head of size {head.tree_size} does not extend the stored one of "
                f"size {self._stamped_size}"
            )
        if snapshot != (head.root_hash, head.last_entry_id) or head.tree_size > self._tree.size:
            return MessageLogError(
                f"the tree head of size {head.tree_size} is not a snapshot of this log"
            )
        try:
            head_id, oldest = self._db.insert_tree_head(
                head, stored_at=format_time(self._clock()), tree_size=self._tree.size
            )
        except Exception as exc:
            self._rollback()
            reason = f"could not store the tree head of size {head.tree_size}: {exc}"
            _log.error("%s", reason)
            return _failure(reason, exc)
        with self._tree_lock:
            self._stamped_size = head.tree_size
            self._stamped_last_id = head.last_entry_id
            self._last_stamp = head.gen_time
            self._oldest_pending = oldest
            self._pending_signalled = False
        self._signal_if_pending()
        return head_id

    def _rollback(self) -> None:
        self._db.rollback()

    @staticmethod
    def _deliver(batch: list[Unit], outcomes: list[Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[int]], Outcome]]]
        by_loop = {}
        for unit, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(unit.loop, []).append((unit.future, outcome))
        for loop, pairs in by_loop.items():
            # One wake-up per loop per batch, not per unit.
            with contextlib.suppress(RuntimeError):  # that loop is already closed
                loop.call_soon_threadsafe(resolve, pairs)
