"""Hearing of the settings versions other processes of a node cluster record.

On PostgreSQL several processes serve one node (docs/adr/0035, 0042) and each keeps the
settings in force in its memory; a version recorded by one of them must reach the
others. :func:`watch_settings` gives the watch of a log's location: on PostgreSQL a
``LISTEN`` connection with a periodic check of the newest version
(``postgres_notify``); on SQLite none, as a SQLite log has one process, which records
every version itself (docs/adr/0050).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from gateway.messagelog.postgres_schema import is_postgres_url

__all__ = ["SettingsWatch", "watch_settings"]


class SettingsWatch(Protocol):
    """Reports the newest settings version's number from a thread of its own."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def watch_settings(
    location: Path | str, poll_seconds: float, on_version: Callable[[int], None]
) -> SettingsWatch | None:
    """The watch for the log at ``location`` (not started), or None on SQLite."""
    if not is_postgres_url(location):
        return None
    from gateway.messagelog.postgres_notify import PostgresSettingsWatch

    return PostgresSettingsWatch(str(location), poll_seconds, on_version)
