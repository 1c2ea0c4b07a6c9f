"""What travels between the event loop and the message log's writer thread.

Each call on :class:`~gateway.messagelog.writer.MessageLog` becomes one unit on the
writer's queue, carrying the loop and the future its caller awaits; the writer commits
units in batches and resolves the futures from its thread through the loop. Kept apart
from the writer so the thread's protocol (unit types, counters, resolution) reads on
its own page.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any, Final, Protocol

from gateway.core.merkle import CompactTree
from gateway.messagelog.admission import Append
from gateway.messagelog.records import LogRecord, TreeHeadRecord
from gateway.messagelog.sqlite_commit import BatchResult, Outcome, TreeState

__all__ = [
    "KNOWN_REFS",
    "Counters",
    "HeadUnit",
    "Idle",
    "Stop",
    "Unit",
    "WriteUnit",
    "WriterDb",
    "remember_refs",
    "resolve",
    "resolve_head",
]


class WriterDb(Protocol):
    """What the writer thread does to its database, on either backend.

    ``SqliteWriterDb`` (``sqlite_writer.py``) and ``PostgresWriterDb``
    (``postgres_commit.py``) implement it; the writer holds one and never speaks SQL
    itself. Writing methods commit before they return or raise with the transaction
    open; the writer then calls ``rollback``. ``side`` is the backend's module of side
    writes (``sqlite_writes`` or ``postgres_writes``: the same functions).
    """

    @property
    def side(self) -> ModuleType: ...

    @property
    def durability(self) -> tuple[str, int]: ...

    @property
    def location(self) -> str: ...

    def seen_since(self, created_after: str) -> list[tuple[str, str, str]]: ...

    def open_tree(self) -> TreeState: ...

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
    ) -> BatchResult: ...

    def insert_tree_head(
        self, head: TreeHeadRecord, *, stored_at: str, tree_size: int
    ) -> tuple[int, datetime | None]: ...

    def run(self, work: Callable[[Any], object]) -> object: ...

    def probe_work(self) -> Callable[[Any], object]: ...

    def rollback(self) -> None: ...

    def idle(self) -> None:
        """Called with the queue empty, every caller answered: deferred upkeep."""

    def close(self) -> None: ...


@dataclass(slots=True)
class Unit:
    """One ``append`` call on its way to the writer thread."""

    append: Append
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[int]]


@dataclass(slots=True)
class HeadUnit:
    """One ``append_tree_head`` call on its way to the writer thread."""

    head: TreeHeadRecord
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[int]


@dataclass(slots=True)
class WriteUnit:
    """One ``write`` call: a small transaction of another component, run by the writer."""

    work: Callable[[Any], object]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[object]


@dataclass(slots=True)
class Idle:
    """Queue nudge after an inline commit: let the writer run its idle upkeep."""


@dataclass(slots=True)
class Stop:
    """Queue sentinel: everything queued before it is written, then the writer exits."""


@dataclass(slots=True)
class Counters:
    commits: int = 0
    units: int = 0
    rows: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    inline: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def resolve_head(future: asyncio.Future[Any], outcome: object) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def resolve(outcomes: list[tuple[asyncio.Future[list[int]], Outcome]]) -> None:
    for future, outcome in outcomes:
        if future.done():  # the awaiting task was cancelled; the entry is still durable
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


KNOWN_REFS: Final = 4096
"""How many stored certificate or OCSP references a writer remembers: a node signs with
a few certificates whose OCSP responses change a few times an hour."""


def remember_refs(known: set[str], new: set[str]) -> set[str]:
    """``known`` with ``new`` added, started over from ``new`` past ``KNOWN_REFS``.

    The writer does not preload the references a log holds (a large log holds many, and
    start-up would read them all); a reference it does not remember costs one idempotent
    insert, never a wrong skip.
    """
    known |= new
    return known if len(known) <= KNOWN_REFS else set(new)
