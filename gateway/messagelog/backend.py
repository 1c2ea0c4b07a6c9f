"""Which backend a log location names, opened with the codec that seals its rows.

The one place the writer's database and its store are chosen for a location: a
``postgresql://`` URL or a SQLite file, both given the same ``Sealer`` so what the
writer seals its store opens (docs/adr/0035-postgresql-backend.md,
docs/adr/0048-personal-data-sealed-at-rest.md).
"""

from __future__ import annotations

from pathlib import Path

from gateway.core.atrest import DataKey
from gateway.messagelog.location import is_postgres_url
from gateway.messagelog.sealing import Sealer
from gateway.messagelog.sqlite import SqliteLogStore
from gateway.messagelog.sqlite_bodies import DEFAULT_THRESHOLD, SEGMENT_BYTES
from gateway.messagelog.sqlite_writer import SqliteWriterDb
from gateway.messagelog.store import LogStore
from gateway.messagelog.writer_queue import WriterDb

__all__ = ["open_backend"]


def open_backend(
    location: Path | str,
    data_key: DataKey | None,
    body_file_bytes: int = DEFAULT_THRESHOLD,
    segment_bytes: int = SEGMENT_BYTES,
) -> tuple[Path, WriterDb, LogStore]:
    """``(path for messages, writer database, store)`` of the log at ``location``; new
    exchange rows are sealed under ``data_key`` when there is one. On SQLite, bodies of
    ``body_file_bytes`` or more go to segment files (``sqlite_bodies``); PostgreSQL
    keeps every body in its row."""
    sealer = Sealer(data_key)
    if is_postgres_url(location):
        from gateway.messagelog.postgres import PostgresLogStore
        from gateway.messagelog.postgres_commit import PostgresWriterDb

        url = str(location)
        path = Path(PostgresLogStore(url).location)
        return path, PostgresWriterDb(url, sealer), PostgresLogStore(url, sealer)
    path = Path(location)
    writer = SqliteWriterDb(path, sealer, body_file_bytes, segment_bytes)
    return path, writer, SqliteLogStore(path, sealer)
