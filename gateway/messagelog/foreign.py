"""The foreign configuration history: each federated instance's configuration version
the node applied, kept beside the own history (docs/message-log.md 8.1).

The own history (``configuration_version``) is what the node's own entries are judged
against and what audit bundles carry; an exchange with a member of a federated instance
was also judged against that instance's configuration (its nodes, CAs and groups). These
rows say which: the instance, serial, expiry, root fingerprint and signed files of every
foreign version, written durably before the node acts on it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.messagelog.location import is_postgres_url
from gateway.messagelog.records import (
    ForeignVersion,
    LogNotFoundError,
    LogStoreError,
    StoredForeignVersion,
    StoredVersion,
)
from gateway.messagelog.sqlite_foreign import read_foreign_versions, record_foreign_version
from gateway.messagelog.writer import MessageLog

__all__ = [
    "ForeignVersion",
    "StoredForeignVersion",
    "configuration_history",
    "foreign_versions",
    "record_foreign",
]


async def record_foreign(log: MessageLog, version: ForeignVersion, applied_at: str) -> bool:
    """Durably add ``version`` to the foreign history unless it is the one recorded last
    for its instance; True if a row was added (``MessageLogError`` if not durable)."""

    def work(conn: Any) -> bool:
        if isinstance(conn, sqlite3.Connection):
            return record_foreign_version(conn, version, applied_at)
        # Only a PostgreSQL log loads psycopg (docs/architecture.md, messagelog/).
        from gateway.messagelog.postgres_foreign import record_foreign_version as pg_record

        return pg_record(conn, version, applied_at)

    return bool(await log.write(work))


def foreign_versions(location: Path | str) -> list[StoredForeignVersion]:
    """The foreign history of the log at ``location`` (a SQLite file or a PostgreSQL
    URL), in the order applied."""
    if is_postgres_url(location):
        from gateway.messagelog.postgres_foreign import read_foreign_versions as pg_read
        from gateway.messagelog.postgres_schema import connect

        with connect(str(location)) as pg:
            return pg_read(pg)
    path = Path(location)
    if not path.exists():
        raise LogNotFoundError(f"{path} does not exist")
    lite = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return read_foreign_versions(lite)
    except sqlite3.DatabaseError as exc:
        raise LogStoreError(f"{path}: {exc}") from None
    finally:
        lite.close()


def configuration_history(
    own: Sequence[StoredVersion], foreign: Sequence[StoredForeignVersion]
) -> list[dict[str, object]]:
    """Both histories as one list in the order applied (own before foreign at the same
    instant, as the node writes them): what ``gateway log configurations`` and the
    node's admin API show an auditor."""
    rows: list[dict[str, object]] = []
    for version in own:
        document = dict(version.files)["globalconf.json"]
        rows.append(
            {
                "instance": json.loads(document).get("instance"),
                "own": True,
                "serial": version.serial,
                "applied_at": version.applied_at,
                "document_sha256": hashlib.sha256(document).hexdigest(),
            }
        )
    for row in foreign:
        rows.append(
            {
                "instance": row.version.instance,
                "own": False,
                "serial": row.version.serial,
                "applied_at": row.applied_at,
                "document_sha256": row.document_sha256,
                "expires": row.version.expires,
                "root_sha256": row.version.root_sha256,
            }
        )
    return sorted(rows, key=lambda r: str(r["applied_at"]))
