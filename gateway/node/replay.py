"""The provider's replay guard: a (client, message id) is answered at most once.

The creation-time window bounds how long an id must be remembered, so the guard keeps
only ids whose message is still inside the window. It is rebuilt at start-up from the
log's durable ``seen_request`` rows, and every id is written there in the same
transaction as the exchange's log entries, whose unique key is the final word.
Checking in memory lets the provider refuse a replay before it calls the registry while
still writing the exchange with a single commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta


class ReplayGuard:
    """Remembers message ids until their creation time leaves the window."""

    def __init__(self, window: timedelta) -> None:
        self._window = window
        self._seen: dict[tuple[str, str], datetime] = {}
        self._next_purge: datetime | None = None

    def preload(self, entries: Iterable[tuple[str, str, datetime]]) -> None:
        for client, message_id, created in entries:
            self._seen[(client, message_id)] = created + self._window

    def claim(self, client: str, message_id: str, created: datetime, now: datetime) -> bool:
        """Record the id; ``False`` if it was seen before (a replay)."""
        if self._next_purge is None or now >= self._next_purge:
            self._seen = {k: v for k, v in self._seen.items() if v >= now}
            self._next_purge = now + self._window / 10
        key = (client, message_id)
        if key in self._seen:
            return False
        self._seen[key] = created + self._window
        return True

    def __len__(self) -> int:
        return len(self._seen)
