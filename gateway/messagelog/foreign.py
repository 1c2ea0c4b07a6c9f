"""The foreign configuration history: each federated instance's configuration version
the node applied, kept beside the own history (docs/message-log.md 8.1).

The own history (``configuration_version``) is what the node's own entries are judged
against and what audit bundles carry; an exchange with a member of a federated instance
was also judged against that instance's configuration (its nodes, CAs and groups). These
rows say which: the instance, serial, expiry, root fingerprint and signed files of every
foreign version, written durably before the node acts on it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from gateway.messagelog import postgres_foreign, sqlite_foreign
from gateway.messagelog.postgres_schema import connect, is_postgres_url
from gateway.messagelog.records import (
    ForeignVersion,
    LogNotFoundError,
    LogStoreError,
    StoredForeignVersion,
)
from gateway.messagelog.writer import MessageLog

__all__ = ["ForeignVersion", "StoredForeignVersion", "foreign_versions", "record_foreign"]


async def record_foreign(log: MessageLog, version: ForeignVersion, applied_at: str) -> bool:
    """Durably add ``version`` to the foreign history unless it is the one recorded last
    for its instance; True if a row was added (``MessageLogError`` if not durable)."""

    def work(conn: Any) -> bool:
        if isinstance(conn, sqlite3.Connection):
            return sqlite_foreign.record_foreign_version(conn, version, applied_at)
        return postgres_foreign.record_foreign_version(conn, version, applied_at)

    return bool(await log.write(work))


def foreign_versions(location: Path | str) -> list[StoredForeignVersion]:
    """The foreign history of the log at ``location`` (a SQLite file or a PostgreSQL
    URL), in the order applied."""
    if is_postgres_url(location):
        with connect(str(location)) as pg:
            return postgres_foreign.read_foreign_versions(pg)
    path = Path(location)
    if not path.exists():
        raise LogNotFoundError(f"{path} does not exist")
    lite = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return sqlite_foreign.read_foreign_versions(lite)
    except sqlite3.DatabaseError as exc:
        raise LogStoreError(f"{path}: {exc}") from None
    finally:
        lite.close()
