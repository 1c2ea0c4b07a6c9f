"""What travels between the event loop and the message log's writer thread.

Each call on :class:`~gateway.messagelog.writer.MessageLog` becomes one unit on the
writer's queue, carrying the loop and the future its caller awaits; the writer commits
units in batches and resolves the futures from its thread through the loop. Kept apart
from the writer so the thread's protocol (unit types, counters, resolution) reads on
its own page.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.messagelog.admission import Append
from gateway.messagelog.records import TreeHeadRecord
from gateway.messagelog.sqlite_commit import Outcome

__all__ = ["Counters", "HeadUnit", "Stop", "Unit", "WriteUnit", "resolve", "resolve_head"]


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

    work: Callable[[sqlite3.Connection], object]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[object]


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
