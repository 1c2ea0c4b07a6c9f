"""The provider's replay guard: a (client, message id) is answered at most once.

The creation-time window bounds how long an id must be remembered, so the guard keeps
only ids whose message is still inside the window. It is rebuilt at start-up from the
log's durable ``seen_request`` rows, and every id is written there in the same
transaction as the exchange's log entries, whose unique key is the final word.
Checking in memory lets the provider refuse a replay before it calls the registry while
still writing the exchange with a single commit.

Memory is bounded by construction (ADR 0058): each id is kept as a 16-byte BLAKE2b
digest in the bucket of the time slice its window ends in, and a slice's bucket is
dropped whole once that slice is past. So the guard holds the ids accepted in one window
plus one slice (two windows and a slice at worst, if every message were dated as far
ahead as the time check allows), at about 136 bytes each, and forgetting costs one
``del`` per slice instead of a sweep over every id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta

SLICES = 10
"""Buckets per window: an id is forgotten at most one slice (window / 10) after its
window ends, never before."""


def replay_key(client: str, message_id: str) -> bytes:
    """The id's digest; the length prefix keeps ``("a", "bc")`` and ``("ab", "c")`` apart.

    128 bits make a collision (which would refuse a fresh message as a replay) as unlikely
    as a forged signature, at a fifth of the memory of the two strings in a tuple."""
    data = f"{len(client)}:{client}{message_id}".encode()
    return hashlib.blake2b(data, digest_size=16).digest()


class ReplayGuard:
    """Remembers message ids until their creation time leaves the window."""

    def __init__(self, window: timedelta) -> None:
        self._window_s = window.total_seconds()
        self._slice_s = self._window_s / SLICES
        self._buckets: dict[int, set[bytes]] = {}
        """Slice number in which an id's window ends -> the digests of those ids."""
        self._current = -1
        """The slice of ``now`` at the last purge; a purge runs when it advances."""

    def _slice_of_expiry(self, created: datetime) -> int:
        return int((created.timestamp() + self._window_s) // self._slice_s)

    def _remember(self, key: bytes, created: datetime) -> None:
        self._buckets.setdefault(self._slice_of_expiry(created), set()).add(key)

    def preload(self, entries: Iterable[tuple[str, str, datetime]]) -> None:
        for client, message_id, created in entries:
            self._remember(replay_key(client, message_id), created)

    def claim(self, client: str, message_id: str, created: datetime, now: datetime) -> bool:
        """Record the id; ``False`` if it was seen before (a replay)."""
        current = int(now.timestamp() // self._slice_s)
        if current > self._current:
            # A bucket whose slice ended before ``now``'s slice began holds only ids
            # whose window is over: the time check refuses such messages anyway.
            for past in [n for n in self._buckets if n < current]:
                del self._buckets[past]
            self._current = current
        key = replay_key(client, message_id)
        for bucket in self._buckets.values():
            if key in bucket:
                return False
        self._remember(key, created)
        return True

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())

    @property
    def buckets(self) -> int:
        """How many slices hold ids: ``SLICES`` + 2 at most for messages dated when sent,
        twice that if they are dated as far ahead as the window allows."""
        return len(self._buckets)
