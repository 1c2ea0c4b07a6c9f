"""The node's durable message log, written with group commit.

A security server may only report an exchange as successful once its log entry is on
disk: the log is the evidence both parties rely on later. ``append`` therefore returns
only after the SQLite transaction holding the entry has committed with
``synchronous=FULL`` in WAL mode, and raises instead if that cannot be guaranteed.

An fsync per request would cap throughput at the disk's sync rate, so one writer thread
collects whatever units are waiting and commits them together in a single transaction
(group commit): every caller still waits for its own durable commit, but many callers
share one fsync. The event loop never touches SQLite on this path; it only queues work
and awaits a future the writer resolves.

Every entry is also a leaf of an RFC 9162 Merkle tree (docs/message-log.md): the writer
computes the leaf hash, stores it with the entry and extends the tree's compact frontier
in the same transaction, so the tree can never disagree with the entries on disk. Tree
heads timestamped by the TSA (``gateway.messagelog.timestamper``) are stored through the same
writer thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import queue
import secrets
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel, create_engine

import gateway.messagelog.sqlite_writes as side
from gateway.core.datasubject import check_subject
from gateway.core.encoding import format_time
from gateway.core.logtree import SUBJECTS_SALT_SIZE, LoggedEntry, entry_leaf, subjects_commitment
from gateway.core.merkle import CompactTree, MerkleError, leaf_hash
from gateway.messagelog.schema import KINDS, ROLES, schema_tables
from gateway.messagelog.sqlite import SqliteLogStore
from gateway.messagelog.store import (
    CosignatureRow,
    LogRecord,
    LogStats,
    MessageLogError,
    OpRecord,
    ReplayError,
    SignedHeadRecord,
    StoredStatus,
    TimestampBacklog,
    TreeHeadRecord,
    TreeSnapshot,
)

__all__ = [
    "LogRecord",
    "LogStats",
    "MessageLog",
    "MessageLogError",
    "ReplayError",
    "SignedHeadRecord",
    "TimestampBacklog",
    "TreeHeadRecord",
    "TreeSnapshot",
]

_log = logging.getLogger(__name__)

_BUSY_TIMEOUT_S: Final = 5.0
"""How long the writer waits for a lock held by another connection before failing."""

_INSERT_ENTRY: Final = (
    "INSERT INTO message_log (logged_at, role, kind, message_id, xroad_id, client, service,"
    " created, header, body, signature, cert_ref, ocsp_ref, leaf_index, leaf_hash,"
    " body_sha256, body_omitted, subjects_salt, subjects_sha256)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SAVE_TREE: Final = (
    "UPDATE log_tree_state SET tree_size = ?, last_entry_id = ?, frontier = ? WHERE id = 1"
)
_INSERT_TREE_HEAD: Final = (
    "INSERT INTO tree_head (tree_size, root_hash, last_entry_id, document, gen_time, token,"
    " tsa_name, tsa_cert_ref, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TSA_CERT: Final = "INSERT OR IGNORE INTO tsa_certificate (cert_ref, der) VALUES (?, ?)"
_FIRST_AFTER: Final = "SELECT logged_at FROM message_log WHERE id > ? ORDER BY id LIMIT 1"
_UPGRADE_COLUMNS: Final = (
    # Columns added after the first release, so an older log file can still be opened;
    # leaf_index and leaf_hash are then filled in by the tree rebuild at start-up.
    ("ocsp_ref", "TEXT NOT NULL DEFAULT ''"),
    ("leaf_index", "INTEGER"),
    ("leaf_hash", "BLOB"),
    ("body_sha256", "TEXT"),
    ("body_omitted", "TEXT NOT NULL DEFAULT ''"),
    # NULL in entries logged before subject commitments: their leaves stay version 1.
    ("subjects_salt", "TEXT"),
    ("subjects_sha256", "TEXT"),
)
_INSERT_OCSP: Final = "INSERT OR IGNORE INTO ocsp_response (ocsp_ref, der) VALUES (?, ?)"
_INSERT_CERT: Final = (
    "INSERT OR IGNORE INTO signer_certificate (cert_ref, der, jws_header) VALUES (?, ?, ?)"
)
_INSERT_SEEN: Final = (
    "INSERT OR IGNORE INTO seen_request (client, message_id, created) VALUES (?, ?, ?)"
)
_INSERT_SUBJECT: Final = "INSERT OR IGNORE INTO data_subject (entry_id, subject) VALUES (?, ?)"


@dataclass(slots=True)
class _Unit:
    """One ``append`` call on its way to the writer thread."""

    records: tuple[LogRecord, ...]
    certs: tuple[tuple[str, bytes, str], ...]
    ocsp: tuple[tuple[str, bytes], ...]
    replay_key: tuple[str, str, str] | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[int]]
    operational: tuple[OpRecord, ...] = ()
    """Operational monitoring records committed with the entries."""


@dataclass(slots=True)
class _HeadUnit:
    """One ``append_tree_head`` call on its way to the writer thread."""

    head: TreeHeadRecord
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[int]


@dataclass(slots=True)
class _WriteUnit:
    """One ``write`` call: a small transaction of another component, run by the writer."""

    work: Callable[[sqlite3.Connection], object]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[object]


@dataclass(slots=True)
class _Stop:
    """Queue sentinel: everything queued before it is written, then the writer exits."""


_Outcome = list[int] | BaseException


@dataclass(slots=True)
class _Counters:
    commits: int = 0
    units: int = 0
    rows: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


_LEAF_TEXT_FIELDS: Final = (
    "message_id",
    "xroad_id",
    "client",
    "service",
    "created",
    "signature",
    "cert_ref",
    "ocsp_ref",
)


def _check_record(record: LogRecord) -> None:
    # Checked before queuing: a value the schema rejects would otherwise fail the whole
    # batch, taking other callers' appends down with it.
    if record.role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {record.role!r}")
    if record.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {record.kind!r}")
    for subject in record.subjects:
        check_subject(subject)
    if not isinstance(record.header, bytes) or not isinstance(record.body, bytes):
        # sqlite would silently store a str as TEXT and the signed bytes would be lost.
        raise TypeError("header and body must be bytes")
    for name in _LEAF_TEXT_FIELDS:
        value = getattr(record, name)
        # The writer encodes these into the entry's Merkle leaf (UTF-8 JSON); a value
        # that cannot be encoded must fail this caller, not the batch it would join.
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{name} is not valid Unicode text") from None


def _check_certs(certs: Mapping[str, tuple[bytes, str]]) -> tuple[tuple[str, bytes, str], ...]:
    checked = []
    for ref, (der, jws_header) in certs.items():
        if hashlib.sha256(der).hexdigest() != ref:
            raise ValueError(f"cert_ref {ref!r} is not the SHA-256 of the certificate DER")
        checked.append((ref, bytes(der), jws_header))
    return tuple(checked)


def _check_ocsp(ocsp: Mapping[str, bytes]) -> tuple[tuple[str, bytes], ...]:
    checked = []
    for ref, der in ocsp.items():
        if hashlib.sha256(der).hexdigest() != ref:
            raise ValueError(f"ocsp_ref {ref!r} is not the SHA-256 of the OCSP response DER")
        checked.append((ref, bytes(der)))
    return tuple(checked)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _upgrade_columns(conn: sqlite3.Connection) -> bool:
    """Add columns an older log file lacks; True if any was added (the tree is rebuilt)."""
    present = {str(row[1]) for row in conn.execute("PRAGMA table_info(message_log)")}
    missing = [(name, ddl) for name, ddl in _UPGRADE_COLUMNS if name not in present]
    for name, ddl in missing:
        _log.warning("message log: adding column %s to an older log file", name)
        conn.execute(f"ALTER TABLE message_log ADD COLUMN {name} {ddl}")
    return bool(missing)


_SELECT_ENTRIES: Final = (
    "SELECT id, logged_at, role, kind, message_id, xroad_id, client, service, created, header,"
    " body, signature, cert_ref, ocsp_ref, leaf_index, leaf_hash, body_sha256, body_omitted,"
    " subjects_sha256 FROM message_log"
)


def logged_entry(row: Sequence[object]) -> LoggedEntry:
    """The leaf-relevant fields of a ``_SELECT_ENTRIES`` row (the id is row[0]), for the
    start-up rebuild; readers use ``StoredEntry.leaf_entry``."""
    header, body = row[9], row[10]
    if not isinstance(header, bytes) or not isinstance(body, bytes):
        raise MessageLogError(f"entry {row[0]}: header and body must be stored as BLOBs")
    return LoggedEntry(
        role=str(row[2]),
        kind=str(row[3]),
        message_id=str(row[4]),
        xroad_id=str(row[5]),
        client=str(row[6]),
        service=str(row[7]),
        created=str(row[8]),
        logged_at=str(row[1]),
        header=header,
        body=body,
        signature=str(row[11]),
        cert_ref=str(row[12]),
        ocsp_ref=str(row[13]),
        # Digest-only entries (docs/message-log.md section 1.1) commit to the stored digest.
        body_digest=str(row[16]) if row[17] else None,
        subjects_sha256=None if row[18] is None else str(row[18]),
    )


def _rebuild_tree(conn: sqlite3.Connection, path: Path) -> tuple[CompactTree, int]:
    """Rehash every entry into a new tree, fill in missing leaves, save the frontier.

    Refuses (``MessageLogError``) when an entry no longer matches the leaf hash stored
    for it or a timestamped tree head no longer matches the entries: the log was altered
    after it was written, and extending it would hide that.
    """
    rows = conn.execute("SELECT tree_size, root_hash FROM tree_head").fetchall()
    heads = {int(size): bytes(root) for size, root in rows}
    tree = CompactTree()
    last_id = 0
    fill: list[tuple[int, bytes, int]] = []
    for row in conn.execute(_SELECT_ENTRIES + " ORDER BY id"):
        entry_id, stored_index, stored_leaf = int(row[0]), row[14], row[15]
        if row[17] == "archived" and stored_leaf is not None:
            # Its header, body and signature live in an archive bundle now
            # (gateway/audit/archive.py); the stored leaf still chains to the heads.
            if row[9] or row[10] or row[11]:
                raise MessageLogError(
                    f"{path}: entry {entry_id} is marked archived but still holds content; "
                    "the log was altered after it was written"
                )
            leaf = bytes(stored_leaf)
        else:
            leaf = leaf_hash(entry_leaf(logged_entry(row)))
        if stored_leaf is not None and bytes(stored_leaf) != leaf:
            raise MessageLogError(
                f"{path}: entry {entry_id} no longer matches its leaf hash; the log was "
                "altered after it was written"
            )
        if stored_index is not None and stored_index != tree.size:
            raise MessageLogError(
                f"{path}: entry {entry_id} has leaf index {stored_index}, expected "
                f"{tree.size}; entries were removed or reordered"
            )
        if stored_leaf is None or stored_index is None:
            fill.append((tree.size, leaf, entry_id))
        tree.append(leaf)
        last_id = entry_id
        expected = heads.get(tree.size)
        if expected is not None and expected != tree.root():
            raise MessageLogError(
                f"{path}: the entries no longer match the timestamped tree head of size "
                f"{tree.size}; the log was altered after it was timestamped"
            )
    beyond = [size for size in heads if size > tree.size]
    if beyond:
        raise MessageLogError(
            f"{path}: tree heads of size {max(beyond)} cover entries that are not in the log"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("UPDATE message_log SET leaf_index = ?, leaf_hash = ? WHERE id = ?", fill)
        conn.execute(
            "INSERT OR REPLACE INTO log_tree_state (id, tree_size, last_entry_id, frontier)"
            " VALUES (1, ?, ?, ?)",
            (tree.size, last_id, tree.to_bytes()),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    _log.info("%s: Merkle tree rebuilt over %d entries", path, tree.size)
    return tree, last_id


def _store_signed_head(conn: sqlite3.Connection, size: int, signed: SignedHeadRecord) -> None:
    """Insert a tree head's signature and its evidence (inside the head's transaction)."""
    conn.execute(_INSERT_CERT, (signed.cert_ref, signed.cert_der, signed.jws_header))
    if signed.ocsp_ref:
        conn.execute(_INSERT_OCSP, (signed.ocsp_ref, signed.ocsp_der))
    conn.execute(
        "INSERT INTO signed_tree_head (tree_size, document, signature, cert_ref, ocsp_ref)"
        " VALUES (?, ?, ?, ?, ?)",
        (size, signed.document, signed.signature, signed.cert_ref, signed.ocsp_ref),
    )


def _engine(path: Path) -> Engine:
    return create_engine(f"sqlite:///{path}")


def _failure(reason: str, cause: BaseException) -> MessageLogError:
    error = MessageLogError(reason)
    error.__cause__ = cause
    return error


def _rewrite_user_version(conn: sqlite3.Connection) -> None:
    """The probe's write (:meth:`MessageLog.probe`): a real page write, no content change."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    conn.execute(f"PRAGMA user_version = {int(version)}")


def _resolve_head(future: asyncio.Future[Any], outcome: object) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _resolve(outcomes: list[tuple[asyncio.Future[list[int]], _Outcome]]) -> None:
    for future, outcome in outcomes:
        if future.done():  # the awaiting task was cancelled; the entry is still durable
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class MessageLog:
    """Append-only durable log of signed messages for one node.

    Create it, ``start()`` it (or use ``async with``), ``await append(...)`` from the event
    loop, and ``await close()`` at shutdown. One instance owns the database's only writer
    connection; readers may open their own connections at any time (WAL lets them read
    while the writer commits).
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], datetime],
        max_batch: int = 512,
        body_policy: Callable[[LogRecord], str] | None = None,
        salts: Callable[[], bytes] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._salts = salts or (lambda: secrets.token_bytes(SUBJECTS_SALT_SIZE))
        """Draws each entry's data-subject salt; injectable so tests can compare leaves."""
        self._body_policy = body_policy
        """Returns why a record's body is logged as its digest only ("" keeps it):
        ``gateway.messagelog.policy``."""
        self._path = path
        self._store = SqliteLogStore(path)
        self._clock = clock
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Unit | _HeadUnit | _WriteUnit | _Stop] = queue.SimpleQueue()
        self._counters = _Counters()
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

        path.parent.mkdir(parents=True, exist_ok=True)
        engine = _engine(path)
        try:
            # A log file from before the tracker kept read details gets them filled in.
            older_reads = not inspect(engine).has_table("data_subject_read")
            SQLModel.metadata.create_all(engine, tables=schema_tables())
        finally:
            engine.dispose()

        # isolation_level=None: the writer issues BEGIN/COMMIT itself, so a batch is
        # exactly one transaction and nothing is committed behind its back.
        conn = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            self._journal_mode, self._synchronous = self._configure(conn)
            self._stored_certs: set[str] = {
                ref for (ref,) in conn.execute("SELECT cert_ref FROM signer_certificate")
            }
            self._stored_ocsp: set[str] = {
                ref for (ref,) in conn.execute("SELECT ocsp_ref FROM ocsp_response")
            }
            self._open_tree(conn)
            if older_reads:
                self._record_older_reads(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    # -- Merkle tree state ----------------------------------------------------------------

    def _open_tree(self, conn: sqlite3.Connection) -> None:
        """Load the tree's frontier and the timestamping state; rebuild the tree if needed.

        The frontier is saved in every batch's transaction, so normally it matches the
        last entry exactly (checked in O(log n)). A log from before the tree existed, or
        one whose saved state is missing or does not match, is rehashed from its entries.
        """
        upgraded = _upgrade_columns(conn)
        state = conn.execute(
            "SELECT tree_size, last_entry_id, frontier FROM log_tree_state WHERE id = 1"
        ).fetchone()
        last = conn.execute(
            "SELECT id, leaf_index FROM message_log ORDER BY id DESC LIMIT 1"
        ).fetchone()
        tree: CompactTree | None = None
        last_id = 0
        if state is not None and not upgraded:
            size, last_id, frontier = state
            try:
                tree = CompactTree.from_bytes(frontier)
            except MerkleError as exc:
                _log.warning("%s: saved Merkle frontier unreadable (%s)", self._path, exc)
            matches = (
                tree is not None
                and tree.size == size
                and (
                    (last is None and size == 0 and last_id == 0)
                    or (last is not None and tuple(last) == (last_id, size - 1))
                )
            )
            if not matches:
                _log.warning(
                    "%s: saved Merkle frontier (size %s, last entry %s) does not match the "
                    "log's last entry %s; rebuilding the tree from the entries",
                    self._path,
                    size,
                    last_id,
                    None if last is None else tuple(last),
                )
                tree = None
        if tree is None:
            tree, last_id = _rebuild_tree(conn, self._path)
        self._tree = tree
        self._published = (tree.size, tree.hashes, last_id)

        head = conn.execute(
            "SELECT tree_size, last_entry_id, gen_time FROM tree_head"
            " ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        if head is not None:
            self._stamped_size, self._stamped_last_id = int(head[0]), int(head[1])
            self._last_stamp = _parse_time(str(head[2]))
        self._oldest_pending = self._first_logged_after(conn, self._stamped_last_id)

    def _record_older_reads(self, conn: sqlite3.Connection) -> None:
        """Give every entry logged before ``data_subject_read`` existed its row, once.

        Entries archived before then have no headers left to take them from: the tracker
        shows those reads without the details (docs/data-tracker.md, section 3).
        """
        conn.execute("BEGIN IMMEDIATE")
        try:
            missing = side.record_missing_reads(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if missing:
            _log.warning(
                "%s: %d read(s) with data subjects have no headers left to record their"
                " details from (archived earlier)",
                self._path,
                len(missing),
            )

    @staticmethod
    def _first_logged_after(conn: sqlite3.Connection, entry_id: int) -> datetime | None:
        row = conn.execute(_FIRST_AFTER, (entry_id,)).fetchone()
        return None if row is None else _parse_time(str(row[0]))

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

    @staticmethod
    def _configure(conn: sqlite3.Connection) -> tuple[str, int]:
        # WAL lets readers (CLI, other processes) read while the writer commits, and with
        # synchronous=FULL every commit is fsynced before it is reported: the durability
        # promise of ``append`` depends on both, so refuse to run without them.
        (journal_mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if str(journal_mode).lower() != "wal":
            raise MessageLogError(f"could not enable WAL journal mode (got {journal_mode!r})")
        conn.execute("PRAGMA synchronous=FULL")
        (synchronous,) = conn.execute("PRAGMA synchronous").fetchone()
        if synchronous != 2:
            raise MessageLogError(f"could not set synchronous=FULL (got {synchronous!r})")
        return "wal", 2

    @property
    def path(self) -> Path:
        return self._path

    @property
    def store(self) -> SqliteLogStore:
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
            return LogStats(c.commits, c.units, c.rows, c.largest_batch, c.failed_batches)

    def seen_since(self, created_after: str) -> list[tuple[str, str, str]]:
        """Requests received (client, message id, created) created after a time.

        Read before ``start()``, to rebuild the in-memory replay guard after a restart.
        """
        with self._state_lock:
            if self._thread is not None:
                raise MessageLogError("seen_since is only available before start()")
        rows = self._conn.execute(
            "SELECT client, message_id, created FROM seen_request WHERE created > ?",
            (created_after,),
        ).fetchall()
        return [(str(c), str(m), str(t)) for c, m, t in rows]

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
            if self._closed:
                thread = self._thread
            else:
                self._closed = True
                thread = self._thread
                if thread is not None:
                    self._queue.put(_Stop())
        if thread is None:
            self._conn.close()
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

    def _enqueue(self, unit: _Unit | _HeadUnit | _WriteUnit) -> None:
        """Hand ``unit`` to the writer thread, or refuse if the log is not running."""
        with self._state_lock:
            if self._closed:
                raise MessageLogError("the message log is closed")
            if self._thread is None:
                raise MessageLogError("the message log is not started")
            self._queue.put(unit)

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
        part of a transaction in progress.
        """
        for record in records:
            _check_record(record)
        checked_certs = _check_certs(certs) if certs else ()
        checked_ocsp = _check_ocsp(ocsp) if ocsp else ()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int]] = loop.create_future()
        unit = _Unit(
            tuple(records),
            checked_certs,
            checked_ocsp,
            replay_key,
            loop,
            future,
            tuple(operational),
        )
        self._enqueue(unit)
        return await future

    async def append_tree_head(self, head: TreeHeadRecord) -> int:
        """Store a timestamped tree head durably (through the writer) and return its id.

        The head must extend the latest stored one and come from a recent
        :meth:`tree_snapshot` of this log; anything else raises ``MessageLogError``.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._enqueue(_HeadUnit(head, loop, future))
        return await future

    async def write(self, work: Callable[[sqlite3.Connection], object]) -> object:
        """Run ``work`` in its own transaction on the writer thread; return its result.

        For the log's side tables (configuration history, own OCSP answers, witness
        co-signatures and alerts; the typed methods above and ``gateway.messagelog.sqlite_writes``):
        they get the same durability as entries and never compete with the writer for the
        database lock. SQLite-specific: ``work`` receives the writer's connection.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        self._enqueue(_WriteUnit(work, loop, future))
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
        await self.write(_rewrite_user_version)

    async def record_configuration(
        self, files: Sequence[tuple[str, bytes]], serial: int, applied_at: str
    ) -> bool:
        """Durably add a configuration version to the log's history unless it is the one
        recorded last; True if it was added (docs/message-log.md 8.1)."""
        return bool(
            await self.write(
                functools.partial(
                    side.record_version, files=files, serial=serial, applied_at=applied_at
                )
            )
        )

    async def keep_own_status(self, ref: str, status: StoredStatus | None) -> None:
        """Keep a good OCSP answer for one of the node's own certificates for the next
        start-up, or forget the kept one (``None``: the certificate was revoked)."""
        await self.write(functools.partial(side.store_status, ref=ref, status=status))

    async def add_cosignature(
        self, row: CosignatureRow, cert: tuple[str, bytes, str], ocsp_der: bytes
    ) -> None:
        """Store a witness co-signature with the certificate ``(ref, DER, JWS header)``
        and OCSP response it relies on (ignored if that co-signature is already kept)."""
        await self.write(
            functools.partial(side.insert_cosignature, row=row, cert=cert, ocsp_der=ocsp_der)
        )

    async def add_witness_alert(
        self, peer: str, code: str, detail: str, evidence: str, detected_at: str
    ) -> None:
        """Record a peer's split view or refused tree head with its evidence."""
        await self.write(
            functools.partial(
                side.insert_alert,
                peer=peer,
                code=code,
                detail=detail,
                evidence=evidence,
                detected_at=detected_at,
            )
        )

    async def record_operational(self, records: Sequence[OpRecord]) -> None:
        """Write a batch of operational records (refusals: no entry to commit them with)."""
        await self.write(functools.partial(side.insert_operational, records=records))

    async def prune_operational(self, before: str) -> int:
        """Delete the operational records whose request came in before ``before``."""
        removed = await self.write(functools.partial(side.prune_operational, before=before))
        return removed if isinstance(removed, int) else 0

    def _commit_write(self, unit: _WriteUnit) -> object:
        """Writer thread: one ``write`` unit in its own transaction."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            result = unit.work(self._conn)
            self._conn.execute("COMMIT")
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
                if isinstance(first, _Stop):
                    break
                items = [first]
                while len(items) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, _Stop):
                        stopping = True
                        break
                    items.append(item)
                batch = [u for u in items if isinstance(u, _Unit)]
                if batch:
                    self._deliver(batch, self._commit_batch(batch))
                # Tree heads and side writes are rare and get their own transaction each,
                # so a refused one can never fail the exchanges queued with it.
                for item in items:
                    outcome: object
                    if isinstance(item, _HeadUnit):
                        outcome = self._commit_head(item.head)
                    elif isinstance(item, _WriteUnit):
                        outcome = self._commit_write(item)
                    else:
                        continue
                    with contextlib.suppress(RuntimeError):  # that loop is closed
                        item.loop.call_soon_threadsafe(_resolve_head, item.future, outcome)
        finally:
            self._conn.close()

    def _commit_batch(self, batch: list[_Unit]) -> list[_Outcome]:
        conn = self._conn
        new_certs: set[str] = set()
        new_ocsp: set[str] = set()
        outcomes: list[_Outcome] = []
        tree = self._tree
        before = tree.copy()  # O(log n): restored if the transaction rolls back
        last_id = self._published[2]
        try:
            logged_at = format_time(self._clock())
            # IMMEDIATE takes the write lock up front, so a competing writer shows up as a
            # bounded wait here rather than as a failure halfway through the batch.
            conn.execute("BEGIN IMMEDIATE")
            for unit in batch:
                if unit.replay_key is not None:
                    client, message_id, created = unit.replay_key
                    cur = conn.execute(_INSERT_SEEN, (client, message_id, created))
                    if cur.rowcount == 0:
                        # Seen before, possibly earlier in this very batch (the transaction
                        # sees its own inserts). Checked first, so a replay writes nothing.
                        outcomes.append(
                            ReplayError(
                                f"request {message_id!r} from {client!r} was already received"
                            )
                        )
                        continue
                for ref, der, jws_header in unit.certs:
                    if ref not in self._stored_certs and ref not in new_certs:
                        conn.execute(_INSERT_CERT, (ref, der, jws_header))
                        new_certs.add(ref)
                for ref, der in unit.ocsp:
                    if ref not in self._stored_ocsp and ref not in new_ocsp:
                        conn.execute(_INSERT_OCSP, (ref, der))
                        new_ocsp.add(ref)
                ids: list[int] = []
                for r in unit.records:
                    omitted = self._body_policy(r) if self._body_policy is not None else ""
                    digest = hashlib.sha256(r.body).hexdigest()
                    # Every new entry gets a salt, with subjects or without, so the leaf
                    # does not tell an auditor which entries disclosed a person.
                    salt = self._salts()
                    subjects_sha256 = subjects_commitment(salt, r.subjects)
                    # The entry's Merkle leaf, from the same bytes the row stores: one
                    # SHA-256 over header and body each, then O(log n) to extend the tree.
                    leaf = leaf_hash(
                        entry_leaf(
                            LoggedEntry(
                                str(r.role),
                                str(r.kind),
                                r.message_id,
                                r.xroad_id,
                                r.client,
                                r.service,
                                r.created,
                                logged_at,
                                r.header,
                                r.body,
                                r.signature,
                                r.cert_ref,
                                r.ocsp_ref,
                                digest,
                                subjects_sha256,
                            )
                        )
                    )
                    cur = conn.execute(
                        _INSERT_ENTRY,
                        (
                            logged_at,
                            str(r.role),
                            str(r.kind),
                            r.message_id,
                            r.xroad_id,
                            r.client,
                            r.service,
                            r.created,
                            r.header,
                            b"" if omitted else r.body,
                            r.signature,
                            r.cert_ref,
                            r.ocsp_ref,
                            tree.size,
                            leaf,
                            digest,
                            omitted,
                            salt.hex(),
                            subjects_sha256,
                        ),
                    )
                    assert cur.lastrowid is not None
                    ids.append(cur.lastrowid)
                    tree.append(leaf)
                    last_id = cur.lastrowid
                    if r.subjects:  # data tracker index, committed with the entry
                        conn.executemany(
                            _INSERT_SUBJECT, [(cur.lastrowid, subject) for subject in r.subjects]
                        )
                        # What the tracker must still show once the headers are archived.
                        if r.read is None:
                            side.record_read(conn, cur.lastrowid)
                        else:
                            side.store_read(conn, cur.lastrowid, r.read)
                if unit.operational:
                    side.insert_operational(conn, unit.operational)
                outcomes.append(ids)
            if tree.size != before.size:
                conn.execute(_SAVE_TREE, (tree.size, last_id, tree.to_bytes()))
            conn.execute("COMMIT")
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
        self._stored_certs |= new_certs
        self._stored_ocsp |= new_ocsp
        if tree.size != before.size:
            with self._tree_lock:
                if before.size == self._stamped_size:  # the first entry waiting for a stamp
                    self._oldest_pending = _parse_time(logged_at)
                self._published = (tree.size, tree.hashes, last_id)
            self._signal_if_pending()
        written = [o for o in outcomes if not isinstance(o, BaseException)]
        c = self._counters
        with c.lock:
            c.commits += 1
            c.units += len(written)
            c.rows += sum(len(ids) for ids in written)
            c.largest_batch = max(c.largest_batch, len(batch))
        return outcomes

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
        conn = self._conn
        try:
            cert_ref = hashlib.sha256(head.tsa_cert_der).hexdigest()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_INSERT_TSA_CERT, (cert_ref, head.tsa_cert_der))
            cur = conn.execute(
                _INSERT_TREE_HEAD,
                (
                    head.tree_size,
                    head.root_hash,
                    head.last_entry_id,
                    head.document,
                    format_time(head.gen_time, "auto"),
                    head.token,
                    head.tsa_name,
                    cert_ref,
                    format_time(self._clock()),
                ),
            )
            assert cur.lastrowid is not None
            head_id = cur.lastrowid
            if head.signed is not None:
                _store_signed_head(conn, head.tree_size, head.signed)
            oldest = (
                self._first_logged_after(conn, head.last_entry_id)
                if self._tree.size > head.tree_size
                else None
            )
            conn.execute("COMMIT")
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
        if self._conn.in_transaction:
            # sqlite may already have rolled back on its own (e.g. after an I/O error);
            # the batch is failed either way.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    @staticmethod
    def _deliver(batch: list[_Unit], outcomes: list[_Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[int]], _Outcome]]]
        by_loop = {}
        for unit, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(unit.loop, []).append((unit.future, outcome))
        for loop, pairs in by_loop.items():
            # One wake-up per loop per batch, not per unit.
            with contextlib.suppress(RuntimeError):  # that loop is already closed
                loop.call_soon_threadsafe(_resolve, pairs)
