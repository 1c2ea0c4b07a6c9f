"""When an append commits on the event loop's own thread instead of the writer's.

Handing one append to the writer thread and back costs two wake-ups of a sleeping
thread (the writer's, then the loop's): some 70 µs of CPU on an idle machine, far more
in wall time when the scheduler of a loaded one runs something else first. At
concurrency 1 that is paid twice per exchange (the provider's commit, then the
consumer's) on the latency path. So an append that is *alone* commits inline, on the
caller's thread, with the very transaction the writer would have run for it
(docs/adr/0070-a-lone-append-commits-on-the-event-loop.md):

- alone means: no other append of this log is in flight in this process (counted from
  the call to its return, on any loop, after one turn of the caller's loop so that
  appends started together see each other), and no unit handed to the writer is
  waiting or being written. Under load there is nearly always one, and group commit
  stays the path; appends that arrive while an inline commit runs go to the writer,
  which takes them once the inline transaction is over;
- every transaction on the writer's connection runs holding :attr:`CommitGate.writing`,
  the writer thread's batches and the inline commits alike: one connection
  (``check_same_thread=False``), used by exactly one thread at a time. The Merkle
  frontier, the last id and the stored references belong to that connection's
  transactions, so a second connection would have had to share them anyway, and two
  writers of one file would wait on each other's lock instead of taking turns;
- the inline commit never waits for another connection: it takes the file's write
  lock without a busy timeout, and if a second writer (retention, archiving) holds it,
  the append goes to the writer thread, which waits for it as before;
- the caller resumes only after the ``COMMIT`` (``synchronous=FULL``: the fsync) has
  returned, exactly as it would after the writer's, and gets the same ids, refusal or
  failure;
- only the SQLite log does this. A PostgreSQL commit is a round trip to a server that
  other processes of a node cluster write too; its stalls would be the event loop's.

An append whose bodies come to :data:`INLINE_BODY_BYTES` or more is never alone in this
sense: it goes to the writer thread. Writing and syncing a megabyte body takes the disk
milliseconds of wall time (2 MiB appended and synced: about 3.4 ms here, 0.6 ms of it
CPU), which on the loop's thread would stall every other exchange of the process, while
the writer's thread waits for the disk with the GIL released and the loop goes on
reading, hashing and encrypting the others' bodies. Against those milliseconds the
hand-off's tens of microseconds do not count, at any concurrency
(docs/adr/0075-large-bodies-commit-off-the-loop-and-reuse-freed-pages.md).

``[logging] inline_commit = false`` in node.toml (``MessageLog(inline_commit=False)``)
sends every append to the writer thread (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Final, Protocol

from gateway.messagelog.sqlite_commit import Outcome
from gateway.messagelog.writer_queue import Unit

__all__ = [
    "INLINE_BODY_BYTES",
    "CommitGate",
    "InlineLog",
    "WriterBusy",
]


INLINE_BODY_BYTES: Final = 256 * 1024
"""An append whose records' bodies total this many bytes or more commits on the writer
thread, never inline: the loop does not wait out the disk's sync of a large body."""


def body_bytes(unit: Unit) -> int:
    """The bytes of body ``unit`` writes (as given; sealing adds a few bytes per body)."""
    return sum(len(record.body) for record in unit.append.records)


class WriterBusy(Exception):
    """Another connection holds the log file's write lock: nothing was begun, and the
    append goes to the writer thread, which may wait for the lock."""


class CommitGate:
    """Who runs the log's next transaction: the writer thread or a lone append's caller.

    ``writing`` is held by whoever runs a transaction on the writer's connection.
    ``_outstanding`` counts the units handed to the writer and not yet settled (raised
    as a unit is put on the queue, lowered once the writer has answered it), so an
    inline commit never overtakes a unit queued before it. A lone append waits its turn
    of the loop in ``_lobby``; any unit queued meanwhile puts it on the queue first, so
    units reach the writer in the order their calls were made, and the lone append,
    no longer alone, then awaits the writer like the rest.
    """

    def __init__(self, enabled: bool, put: Callable[[Any], None]) -> None:
        self.enabled = enabled
        self.writing = threading.Lock()
        self._put = put
        self._lock = threading.Lock()
        self._outstanding = 0
        self._lobby: Unit | None = None
        self._inline = False  # a lone append left the lobby to commit inline

    @property
    def deciding(self) -> bool:
        """A lone append accepted and not yet committed or queued: ``MessageLog.close``
        waits for it before it stops the writer."""
        return self._lobby is not None or self._inline

    def queue(self, unit: object) -> None:
        """Put ``unit`` on the writer's queue, after the lone append in the lobby."""
        with self._lock:
            if self._lobby is not None:
                self._outstanding += 1
                self._put(self._lobby)
                self._lobby = None
            self._outstanding += 1
            self._put(unit)

    def settled(self, units: int) -> None:
        """The writer has written and answered ``units`` units it took off its queue."""
        with self._lock:
            self._outstanding -= units

    def enter(self, unit: Unit) -> bool:
        """Put ``unit`` in the lobby if nothing is queued, written or deciding (called
        with the log's state checked under its lock, so ``close`` sees it)."""
        with self._lock:
            if self._lobby is not None or self._outstanding:
                return False
            self._lobby = unit
            return True

    def _leave(self, unit: Unit, *, inline: bool = True) -> bool:
        """True, holding ``writing``, if ``unit`` is still alone (and ``inline``); else
        it is queued."""
        with self._lock:
            if self._lobby is not unit:
                return False  # a later unit put it on the queue before itself
            self._lobby = None
            if inline and not self._outstanding and self.writing.acquire(blocking=False):
                self._inline = True
                return True
            self._outstanding += 1
            self._put(unit)
            return False

    async def append(self, unit: Unit, log: InlineLog) -> list[int]:
        """``unit``'s ids once durable: committed by ``log._commit_inline`` on this
        thread if the append is alone, else by the writer thread."""
        if not self.enabled or body_bytes(unit) >= INLINE_BODY_BYTES:
            log._enqueue(unit)
            return await unit.future
        if not log._enter_lobby(unit):
            log._enqueue(unit)
            return await unit.future
        # Accepted: written even if close() or a cancellation follows.
        try:
            # One turn of the loop: an append started in the same turn finds this one in
            # the lobby and queues both, to share the writer's commit.
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._leave(unit, inline=False)
            raise
        if self._leave(unit):
            try:
                try:
                    outcome = log._commit_inline(unit)
                finally:
                    self.writing.release()
                if outcome is None:  # another connection holds the write lock
                    self.queue(unit)  # the writer waits for it
            finally:
                self._inline = False
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome is not None:
                return outcome
        return await unit.future


class InlineLog(Protocol):
    """What :meth:`CommitGate.append` needs of ``MessageLog``."""

    def _enter_lobby(self, unit: Unit) -> bool:
        """``CommitGate.enter`` if the log runs; else the refusal ``_enqueue`` raises."""

    def _enqueue(self, unit: Unit) -> None:
        """Hand ``unit`` to the writer through ``CommitGate.queue``, or refuse."""

    def _commit_inline(self, unit: Unit) -> Outcome | None:
        """Run ``unit`` alone now, holding ``writing``; None if nothing was begun."""
