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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from sqlalchemy import Engine, func
from sqlmodel import Session, SQLModel, col, create_engine, select

from gateway.store.models import KINDS, ROLES, LogEntry, schema_tables

__all__ = [
    "LogRecord",
    "LogStats",
    "MessageLog",
    "MessageLogError",
    "ReplayError",
    "count_entries",
    "read_entries",
]

_log = logging.getLogger(__name__)

_BUSY_TIMEOUT_S: Final = 5.0
"""How long the writer waits for a lock held by another connection before failing."""

_INSERT_ENTRY: Final = (
    "INSERT INTO message_log (logged_at, role, kind, message_id, xroad_id, client, service,"
    " created, header, body, signature, cert_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CERT: Final = (
    "INSERT OR IGNORE INTO signer_certificate (cert_ref, der, jws_header) VALUES (?, ?, ?)"
)
_INSERT_SEEN: Final = (
    "INSERT OR IGNORE INTO seen_request (client, message_id, created) VALUES (?, ?, ?)"
)


class MessageLogError(Exception):
    """The log entry could not be made durable, so the exchange must not succeed."""


class ReplayError(Exception):
    """The client already sent a request with this id; nothing was written for it."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One message to log: a ``LogEntry`` without the fields the log assigns itself."""

    role: str
    kind: str
    message_id: str
    xroad_id: str
    client: str
    service: str
    created: str
    header: bytes
    body: bytes
    signature: str
    cert_ref: str


@dataclass(frozen=True, slots=True)
class LogStats:
    """Counters that show whether group commit is actually sharing commits.

    ``units`` counts appends whose records were committed (replays excluded);
    ``largest_batch`` is the most units handled in one transaction.
    """

    commits: int = 0
    units: int = 0
    rows: int = 0
    largest_batch: int = 0
    failed_batches: int = 0


@dataclass(slots=True)
class _Unit:
    """One ``append`` call on its way to the writer thread."""

    records: tuple[LogRecord, ...]
    certs: tuple[tuple[str, bytes, str], ...]
    replay_key: tuple[str, str, str] | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[int]]


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


def _rfc3339_ms(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the log clock returned a naive datetime; it must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_record(record: LogRecord) -> None:
    # Checked before queuing: a value the schema rejects would otherwise fail the whole
    # batch, taking other callers' appends down with it.
    if record.role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {record.role!r}")
    if record.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {record.kind!r}")
    if not isinstance(record.header, bytes) or not isinstance(record.body, bytes):
        # sqlite would silently store a str as TEXT and the signed bytes would be lost.
        raise TypeError("header and body must be bytes")


def _check_certs(certs: Mapping[str, tuple[bytes, str]]) -> tuple[tuple[str, bytes, str], ...]:
    checked = []
    for ref, (der, jws_header) in certs.items():
        if hashlib.sha256(der).hexdigest() != ref:
            raise ValueError(f"cert_ref {ref!r} is not the SHA-256 of the certificate DER")
        checked.append((ref, bytes(der), jws_header))
    return tuple(checked)


def _engine(path: Path) -> Engine:
    return create_engine(f"sqlite:///{path}")


def _failure(reason: str, cause: BaseException) -> MessageLogError:
    error = MessageLogError(reason)
    error.__cause__ = cause
    return error


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

    def __init__(self, path: Path, *, clock: Callable[[], datetime], max_batch: int = 512) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._path = path
        self._clock = clock
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Unit | _Stop] = queue.SimpleQueue()
        self._counters = _Counters()
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

        path.parent.mkdir(parents=True, exist_ok=True)
        engine = _engine(path)
        try:
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
        except BaseException:
            conn.close()
            raise
        self._conn = conn

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

    async def append(
        self,
        records: Sequence[LogRecord],
        *,
        certs: Mapping[str, tuple[bytes, str]] | None = None,
        replay_key: tuple[str, str, str] | None = None,
    ) -> list[int]:
        """Log ``records`` durably and return their new ids, in order.

        Returns only after the transaction holding them has committed to disk, so the
        caller may report success exactly when this returns. ``replay_key`` is
        ``(client, message_id, created)``; it is recorded in the same transaction, and if
        the pair was seen before nothing is written and ``ReplayError`` is raised.
        ``certs`` maps cert_ref to ``(der, jws_header)`` for the signers the records
        refer to. Raises ``MessageLogError`` if the entry could not be made durable.

        If the awaiting task is cancelled, the unit is still written: it may already be
        part of a transaction in progress.
        """
        for record in records:
            _check_record(record)
        checked_certs = _check_certs(certs) if certs else ()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int]] = loop.create_future()
        unit = _Unit(tuple(records), checked_certs, replay_key, loop, future)
        with self._state_lock:
            if self._closed:
                raise MessageLogError("the message log is closed")
            if self._thread is None:
                raise MessageLogError("the message log is not started")
            self._queue.put(unit)
        return await future

    # -- writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if isinstance(first, _Stop):
                    break
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, _Stop):
                        stopping = True
                        break
                    batch.append(item)
                self._deliver(batch, self._commit_batch(batch))
        finally:
            self._conn.close()

    def _commit_batch(self, batch: list[_Unit]) -> list[_Outcome]:
        conn = self._conn
        new_certs: set[str] = set()
        outcomes: list[_Outcome] = []
        try:
            logged_at = _rfc3339_ms(self._clock())
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
                ids: list[int] = []
                for r in unit.records:
                    cur = conn.execute(
                        _INSERT_ENTRY,
                        (
                            logged_at,
                            r.role,
                            r.kind,
                            r.message_id,
                            r.xroad_id,
                            r.client,
                            r.service,
                            r.created,
                            r.header,
                            r.body,
                            r.signature,
                            r.cert_ref,
                        ),
                    )
                    assert cur.lastrowid is not None
                    ids.append(cur.lastrowid)
                outcomes.append(ids)
            conn.execute("COMMIT")
        except Exception as exc:
            self._rollback()
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
        written = [o for o in outcomes if not isinstance(o, BaseException)]
        c = self._counters
        with c.lock:
            c.commits += 1
            c.units += len(written)
            c.rows += sum(len(ids) for ids in written)
            c.largest_batch = max(c.largest_batch, len(batch))
        return outcomes

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


# -- read side (off the hot path) ---------------------------------------------------------


def read_entries(path: Path, *, message_id: str | None = None) -> list[LogEntry]:
    """Log entries in the order they were written, optionally for one exchange."""
    if not path.exists():
        raise FileNotFoundError(path)
    engine = _engine(path)
    try:
        with Session(engine) as session:
            query = select(LogEntry).order_by(col(LogEntry.id))
            if message_id is not None:
                query = query.where(col(LogEntry.message_id) == message_id)
            return list(session.exec(query).all())
    finally:
        engine.dispose()


def count_entries(path: Path) -> int:
    """How many log entries the file holds."""
    if not path.exists():
        raise FileNotFoundError(path)
    engine = _engine(path)
    try:
        with Session(engine) as session:
            return session.exec(select(func.count()).select_from(LogEntry)).one()
    finally:
        engine.dispose()
