"""Large bodies of the SQLite log, written once into append-only segment files.

A body stored in a row is written into SQLite's WAL, fsynced, and copied again into the
database file at the checkpoint. At 1 MiB each way that was as much CPU per exchange as
the node's whole event loop. A body of at least :data:`DEFAULT_THRESHOLD` bytes (as the
row would store it: sealed if the log seals) is therefore appended to a segment file in
``<log file>.bodies/`` instead, and the row's ``body`` is empty; the ``body_file`` table
names where it lies (segment, start, length) and the SHA-256 of those bytes.

Why a committed row never names bytes that are not durable: the bytes are written while
the batch's transaction is open and every segment written is fsynced (once per batch)
before its ``COMMIT``. A crash in between leaves bytes no committed row names at a
segment's tail; the writer truncates them when it opens the log (:meth:`BodyFiles.open`).
Bytes a committed row names are never written again: the writer only appends, and only
to the newest segment. A segment no row names any more (retention, archiving) is
deleted, never the newest, the one the writer may be appending to
(docs/adr/0071-large-bodies-in-segment-files-beside-the-sqlite-log.md).

Every reader gets the bytes the row would have held (:class:`BodyReader`), checked
against the stored digest: missing or altered bytes are an error, never a wrong body.
PostgreSQL keeps its bodies in its rows.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

from gateway.messagelog.records import LogStoreError

__all__ = [
    "DEFAULT_THRESHOLD",
    "SEGMENT_BYTES",
    "BodyFiles",
    "BodyReader",
    "blank_and_free",
    "forget_bodies",
    "free_segments",
    "scrub",
    "segment_dir",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_THRESHOLD: Final = 64 * 1024
"""Bodies from this size on go to a segment file: below it the row's pages cost less
than a file's write and the bytes of a small body are not worth a second place."""

SEGMENT_BYTES: Final = 64 * 1024 * 1024
"""A segment is closed for appending once it holds this much; retention frees whole
segments, so this is the granularity at which body storage is given back."""

_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS body_file (entry_id INTEGER NOT NULL PRIMARY KEY,"
    " segment INTEGER NOT NULL, start INTEGER NOT NULL, length INTEGER NOT NULL,"
    " sha256 VARCHAR NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_body_file_segment ON body_file (segment)",
)
_HAS_TABLE: Final = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'body_file'"
_INSERT: Final = (
    "INSERT INTO body_file (entry_id, segment, start, length, sha256) VALUES (?, ?, ?, ?, ?)"
)
_SELECT: Final = "SELECT segment, start, length, sha256 FROM body_file WHERE entry_id = ?"
_ENDS: Final = "SELECT segment, MAX(start + length) FROM body_file GROUP BY segment"
_FORGOTTEN_DDL: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS forgotten_body"
    " (segment INTEGER NOT NULL, start INTEGER NOT NULL, length INTEGER NOT NULL)"
)
_FORGOTTEN_INSERT: Final = "INSERT INTO temp.forgotten_body VALUES (?, ?, ?)"
_HAS_FORGOTTEN: Final = "SELECT 1 FROM temp.sqlite_master WHERE name = 'forgotten_body'"
_FORGOTTEN: Final = "SELECT segment, start, length FROM temp.forgotten_body"
_SUFFIX: Final = ".seg"
_FADVISE: Final = hasattr(os, "posix_fadvise")  # Linux; elsewhere the pages stay cached


def segment_dir(db_path: Path) -> Path:
    """Where the segments of the log file ``db_path`` live: ``<file>.bodies``."""
    return db_path.with_name(db_path.name + ".bodies")


def _segment_path(directory: Path, segment: int) -> Path:
    return directory / f"{segment:08d}{_SUFFIX}"


def _segments(directory: Path) -> dict[int, Path]:
    if not directory.is_dir():
        return {}
    found: dict[int, Path] = {}
    for path in directory.iterdir():
        if path.suffix == _SUFFIX and path.stem.isdigit():
            found[int(path.stem)] = path
    return found


def _has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute(_HAS_TABLE).fetchone() is not None


def _sync_dir(directory: Path) -> None:
    """A file created or deleted in ``directory`` is durable only with the directory."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BodyFiles:
    """The writer's side: appends large bodies to the newest segment, fsyncs what a
    batch wrote before its ``COMMIT``, and repairs a crash's tail when it opens."""

    def __init__(self, db_path: Path, threshold: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.threshold = threshold
        self._dir = segment_dir(db_path)
        self._segment_bytes = segment_bytes
        self._segment = 0
        self._fd: int | None = None
        self._end = 0
        self._unsynced: list[int] = []
        self._pending: tuple[int, int, int, str] | None = None

    @property
    def directory(self) -> Path:
        return self._dir

    def open(self, conn: sqlite3.Connection) -> None:
        """Cut each segment back to the end of the last bytes a committed row names (a
        crash between a segment's write and its batch's ``COMMIT`` leaves the rest),
        delete older segments no row names. The ``body_file`` table is created by the
        first large body's transaction: a log without one looks as it always did."""
        conn.execute("BEGIN IMMEDIATE")  # archiving's or retention's freeing waits
        try:
            self._repair(conn)
        finally:
            conn.execute("ROLLBACK")

    def _repair(self, conn: sqlite3.Connection) -> None:
        ends = {int(s): int(e) for s, e in conn.execute(_ENDS)} if _has_table(conn) else {}
        files = _segments(self._dir)
        newest = max([*files, *ends], default=0)
        fresh = False
        for segment, path in sorted(files.items()):
            end = ends.get(segment)
            size = path.stat().st_size
            if end is None and segment != newest:
                _log.warning("message log: deleting %s, which no entry names", path)
                path.unlink(missing_ok=True)
                _sync_dir(self._dir)
            elif size > (end or 0):
                _log.warning(
                    "message log: %s holds %d bytes after the last body an entry names"
                    " (an interrupted commit); truncating it to %d",
                    path,
                    size - (end or 0),
                    end or 0,
                )
                with path.open("r+b") as f:
                    f.truncate(end or 0)
                    os.fsync(f.fileno())
            elif end is not None and size < end:
                _log.error(
                    "message log: %s ends at %d bytes but entries name bytes up to %d;"
                    " reading those entries will fail",
                    path,
                    size,
                    end,
                )
                fresh = segment == newest  # never append where rows name missing bytes
        if newest in ends and newest not in files:
            fresh = True
        self._segment = newest + 1 if fresh or newest == 0 else newest

    def put(self, body: bytes, digest: str | None) -> bool:
        """Append ``body`` (as the row would store it; ``digest`` its SHA-256 if known,
        the plaintext's, else it is taken here) if it is at least the threshold; True if
        it went to a segment (the row then stores an empty body, :meth:`link` names it)."""
        if len(body) < self.threshold:
            return False
        if digest is None:  # sealed: the digest of the bytes as stored
            digest = hashlib.sha256(body).hexdigest()
        if self._fd is None or self._end >= self._segment_bytes:
            self._next_segment()
        fd = self._fd
        assert fd is not None
        view = memoryview(body)
        written = 0
        while written < len(body):
            written += os.pwrite(fd, view[written:], self._end + written)
        self._pending = (self._segment, self._end, len(body), digest)
        # Never moved back, not even when the batch rolls back: a failed COMMIT may
        # still be found committed, so bytes once written are never written over.
        self._end += len(body)
        if fd not in self._unsynced:
            self._unsynced.append(fd)
        return True

    def link(self, conn: sqlite3.Connection, entry_id: int) -> None:
        """Name the body :meth:`put` just wrote as ``entry_id``'s, in its transaction."""
        assert self._pending is not None
        for statement in _DDL:  # a no-op once the table exists; rolled back with the batch
            conn.execute(statement)
        conn.execute(_INSERT, (entry_id, *self._pending))
        self._pending = None

    def sync(self) -> None:
        """Before the batch's ``COMMIT``: make every byte it wrote durable (one
        ``fdatasync`` per segment written; a closed segment's file is then closed)."""
        for fd in self._unsynced:
            os.fdatasync(fd)
            # Written once, rarely read again: give the clean pages back now, so the
            # next body is written into pages just freed instead of new ones.
            if _FADVISE:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            if fd != self._fd:
                os.close(fd)
        self._unsynced.clear()

    def _next_segment(self) -> None:
        if self._fd is not None:
            if self._fd not in self._unsynced:
                os.close(self._fd)
            self._fd = None
            self._segment += 1
        if not self._dir.is_dir():
            self._dir.mkdir(mode=0o700)
            _sync_dir(self._dir.parent)
        path = _segment_path(self._dir, self._segment)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        self._end = os.fstat(fd).st_size
        self._fd = fd
        _sync_dir(self._dir)  # the new file's name survives a crash with its bytes
        if self._end >= self._segment_bytes:
            self._next_segment()

    def close(self) -> None:
        for fd in {*self._unsynced, *([] if self._fd is None else [self._fd])}:
            os.close(fd)
        self._unsynced.clear()
        self._fd = None


class BodyReader:
    """A reader's side: the body of a row whose ``body`` is empty, from its segment,
    checked against its digest. One per connection; the table is looked for once."""

    def __init__(self, conn: sqlite3.Connection, db_path: Path) -> None:
        self._conn = conn
        self._dir = segment_dir(db_path)
        self._present: bool | None = None

    def body(self, entry_id: int) -> bytes | None:
        """The stored bytes of ``entry_id``'s body if a segment holds them, else None."""
        if self._present is None:
            self._present = _has_table(self._conn)
        if not self._present:
            return None
        row = self._conn.execute(_SELECT, (entry_id,)).fetchone()
        if row is None:
            return None
        segment, start, length, digest = int(row[0]), int(row[1]), int(row[2]), str(row[3])
        path = _segment_path(self._dir, segment)
        try:
            with path.open("rb") as f:
                f.seek(start)
                data = f.read(length)
        except OSError as exc:
            raise LogStoreError(
                f"entry {entry_id}: its body in {path} cannot be read ({exc.strerror})"
            ) from None
        if len(data) != length:
            raise LogStoreError(
                f"entry {entry_id}: {path} ends before the body's {length} bytes at {start}"
            )
        if hashlib.sha256(data).hexdigest() != digest:
            raise LogStoreError(
                f"entry {entry_id}: the body read from {path} does not match its digest"
            )
        return data

    def rows(self, rows: Iterable[Any]) -> Iterator[Any]:
        """Entry rows (id first, body at 10) with each body a segment holds filled in."""
        for row in rows:
            if row[10] == b"":
                data = self.body(int(str(row[0])))
                if data is not None:
                    row = (*row[:10], data, *row[11:])
            yield row


def forget_bodies(conn: sqlite3.Connection, entry_ids: Iterable[int]) -> list[tuple[int, int, int]]:
    """Drop the segment references of entries whose content was blanked or moved back
    into the row, in the caller's transaction (:func:`free_segments` after its commit
    gives the bytes back); the ``(segment, start, length)`` each named."""
    if not _has_table(conn):
        return []
    ranges = []
    for entry_id in entry_ids:
        row = conn.execute(_SELECT, (entry_id,)).fetchone()
        if row is not None:
            ranges.append((int(row[0]), int(row[1]), int(row[2])))
            conn.execute("DELETE FROM body_file WHERE entry_id = ?", (entry_id,))
    # Noted on the connection, in its transaction (a rollback forgets them too), for
    # blank_and_free to zero once the rows that named them are gone for good.
    conn.execute(_FORGOTTEN_DDL)
    conn.executemany(_FORGOTTEN_INSERT, ranges)
    return ranges


def scrub(db_path: Path, ranges: Iterable[tuple[int, int, int]]) -> None:
    """Overwrite with zeros the bytes of bodies no row names any more (their plaintext
    after ``gateway log encrypt`` moved them, sealed, into their rows). Only bytes before
    a segment's committed end are touched, which the writer never writes again."""
    directory = segment_dir(db_path)
    for segment, start, length in ranges:
        path = _segment_path(directory, segment)
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            continue
        try:
            os.pwrite(fd, bytes(length), start)
            os.fsync(fd)
        finally:
            os.close(fd)


def blank_and_free(db_path: Path, blank: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``blank`` (archiving's or retention's pass, which blanks entries' content and
    calls :func:`forget_bodies`) in one transaction of its own connection beside a
    running node, then zero the bytes of the bodies it blanked (:func:`scrub`) and give
    back the segments it left unnamed (:func:`free_segments`)."""
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = blank(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        # A blanked body must be gone from the disk as its row's content is (secure
        # delete), not only once its whole segment is freed: zero it now.
        if conn.execute(_HAS_FORGOTTEN).fetchone() is not None:
            scrub(db_path, [(int(a), int(b), int(c)) for a, b, c in conn.execute(_FORGOTTEN)])
        free_segments(conn, db_path)
    finally:
        conn.close()
    return result


def free_segments(conn: sqlite3.Connection, db_path: Path) -> list[int]:
    """Delete every segment no committed row names, except the newest (the writer may be
    appending to it). Holds the file's write lock meanwhile: bytes the writer appended
    in a transaction not yet committed are named by no row that can be seen, and no
    transaction of the writer's is open while this one is. Returns the segments freed."""
    directory = segment_dir(db_path)
    if not _segments(directory) or not _has_table(conn):
        return []
    conn.execute("BEGIN IMMEDIATE")
    try:
        files = _segments(directory)
        named = {int(s) for (s,) in conn.execute("SELECT DISTINCT segment FROM body_file")}
        newest = max([*files, *named])
        freed = [s for s in sorted(files) if s not in named and s != newest]
        for segment in freed:
            files[segment].unlink(missing_ok=True)
        if freed:
            _sync_dir(directory)
    finally:
        conn.execute("ROLLBACK")  # nothing was written: only the lock was wanted
    return freed
