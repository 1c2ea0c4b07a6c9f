"""Hearing of a new settings version on PostgreSQL: ``LISTEN``, and a cheap check.

Every process of a node cluster keeps one connection of its own that listens on the
channel each settings version is announced on at commit (``postgres_admin``'s
``insert_settings``), and asks for the newest version's number every poll interval as
well: a notification sent while the connection was down is never delivered again, the
check finds the version anyway (docs/adr/0050).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

import psycopg

from gateway.messagelog.postgres_admin import SETTINGS_CHANNEL, newest_settings_version
from gateway.messagelog.postgres_schema import redacted

__all__ = ["PostgresSettingsWatch"]

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S: Final = 5
_WAKE_S: Final = 0.5
"""The longest the thread waits for a notification before it looks at its stop flag."""


class PostgresSettingsWatch:
    """A thread that calls ``on_version`` with the newest settings version's number
    whenever it learns of one it had not reported (from the thread: hand it over)."""

    def __init__(self, url: str, poll_seconds: float, on_version: Callable[[int], None]) -> None:
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self._url = url
        self._poll = poll_seconds
        self._on_version = on_version
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported = -1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="settings-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Blocks until the thread ended (within about half a second)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_CONNECT_TIMEOUT_S + 2 * _WAKE_S)

    def _report(self, version: int) -> None:
        if version > self._reported:
            self._reported = version
            self._on_version(version)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except (psycopg.Error, ValueError) as exc:
                log.warning(
                    "settings watch on %s: %s; checking again in %s s",
                    redacted(self._url),
                    exc,
                    self._poll,
                )
                self._stop.wait(self._poll)

    def _listen(self) -> None:
        with psycopg.connect(
            self._url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
        ) as conn:
            conn.execute(f"LISTEN {SETTINGS_CHANNEL}")
            due = 0.0
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= due:  # the fallback: a notification may have been missed
                    self._report(newest_settings_version(conn))
                    due = now + self._poll
                for note in conn.notifies(timeout=min(_WAKE_S, self._poll), stop_after=1):
                    self._report(int(note.payload))
