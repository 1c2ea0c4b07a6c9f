"""The message log: the node's durable evidence of every exchange, in one package.

The modules, and what each may do (docs/message-log.md, section 0):

* ``schema``: the tables and the ``Role``/``Kind`` enums; the only definition of the
  layout;
* ``schema_names`` and ``location``: what a running node needs of the schema and of
  the choice of backend, without SQLAlchemy or psycopg (docs/adr/0061);
* ``store``: the storage boundary, the ``LogWriter`` and ``LogStore`` protocols and the
  records written and read back;
* ``sqlite`` (reads), ``sqlite_writes`` (side writes), ``sqlite_commit`` and
  ``sqlite_writer`` (the group commit's transactions): the SQLite backend;
  ``postgres``, ``postgres_writes``, ``postgres_commit`` and ``postgres_schema``: the
  PostgreSQL backend (docs/adr/0035-postgresql-backend.md); these are the only modules
  of ``gateway`` that speak SQL to the log; ``migrations``: the schema's Alembic
  revisions (``gateway db upgrade``);
* ``writer``: the group commit, the same on both backends;
* ``proofs``: tree heads, inclusion and consistency proofs, proofs of time;
* ``policy``: which bodies are logged as their digest only;
* ``timestamper``, ``witness``, ``auditor`` (the auditor API) and ``tracker`` (the data
  tracker): the log's services in the node, handed a small ``LogContext``
  (``gateway.messagelog.context``) rather than the node itself.

The node, ``gateway.audit`` and the CLI use what this module exports and those service
modules; :func:`open_log` and :func:`open_store` choose the backend, so another one
(PostgreSQL) plugs in here without touching them (docs/adr/0018-message-log-package.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from gateway.core.atrest import DataKey
from gateway.messagelog.foreign import (
    ForeignVersion,
    StoredForeignVersion,
    configuration_history,
    foreign_versions,
    record_foreign,
)
from gateway.messagelog.location import is_postgres_url
from gateway.messagelog.proofs import (
    EntryProof,
    consistency,
    entry_proof,
    inclusion,
    latest_signed_head,
    leaf_hashes,
    open_store,
    prove_entry,
    read_cosignatures,
    read_ocsp,
    read_tree_heads,
    read_witness_alerts,
    signed_heads,
    timestamp_status,
)
from gateway.messagelog.records import (
    ARCHIVED,
    DELETED,
    GONE,
    AdminReceipt,
    ArchivedEntry,
    CosignatureRow,
    EntrySelection,
    Expired,
    ExportEvidence,
    LogNotFoundError,
    LogRecord,
    LogStats,
    LogStoreError,
    MessageLogError,
    NotProvableError,
    OpRecord,
    ReadDetails,
    ReplayError,
    SettingsConflict,
    SignedHead,
    SignedHeadRecord,
    StoredAdminRecord,
    StoredEntry,
    StoredSettings,
    StoredStatus,
    StoredTreeHead,
    StoredVersion,
    TimestampBacklog,
    TimestampStatus,
    TreeHeadRecord,
    TreeSnapshot,
    UsageRow,
    WitnessAlertRow,
)
from gateway.messagelog.schema_names import Kind, Role
from gateway.messagelog.settings_watch import SettingsWatch, watch_settings
from gateway.messagelog.sqlite import SqliteLogStore
from gateway.messagelog.sqlite_admin import snapshot_file as snapshot_sqlite
from gateway.messagelog.sqlite_bodies import DEFAULT_THRESHOLD as DEFAULT_BODY_FILE_BYTES
from gateway.messagelog.sqlite_bodies import segment_dir as body_segment_dir
from gateway.messagelog.store import LogStore, LogWriter
from gateway.messagelog.writer import MessageLog

__all__ = [
    "ARCHIVED",
    "DELETED",
    "GONE",
    "AdminReceipt",
    "ArchivedEntry",
    "CosignatureRow",
    "EntryProof",
    "EntrySelection",
    "Expired",
    "ExportEvidence",
    "ForeignVersion",
    "Kind",
    "LogNotFoundError",
    "LogRecord",
    "LogStats",
    "LogStore",
    "LogStoreError",
    "LogWriter",
    "MessageLog",
    "MessageLogError",
    "NotProvableError",
    "OpRecord",
    "ReadDetails",
    "ReplayError",
    "Role",
    "SettingsConflict",
    "SettingsWatch",
    "SignedHead",
    "SignedHeadRecord",
    "SqliteLogStore",
    "StoredAdminRecord",
    "StoredEntry",
    "StoredForeignVersion",
    "StoredSettings",
    "StoredStatus",
    "StoredTreeHead",
    "StoredVersion",
    "TimestampBacklog",
    "TimestampStatus",
    "TreeHeadRecord",
    "TreeSnapshot",
    "UsageRow",
    "WitnessAlertRow",
    "body_segment_dir",
    "configuration_history",
    "consistency",
    "count_entries",
    "entry_proof",
    "foreign_versions",
    "inclusion",
    "is_database_url",
    "latest_signed_head",
    "leaf_hashes",
    "load_statuses",
    "log_source",
    "open_log",
    "open_store",
    "prove_entry",
    "read_cosignatures",
    "read_entries",
    "read_ocsp",
    "read_tree_heads",
    "read_witness_alerts",
    "record_foreign",
    "signed_heads",
    "snapshot_sqlite",
    "timestamp_status",
    "upgrade_schema",
    "watch_settings",
]


def open_log(
    location: Path | str,
    *,
    clock: Callable[[], datetime],
    body_policy: Callable[[LogRecord], str] | None = None,
    data_key: DataKey | None = None,
    inline_commit: bool = True,
    body_file_bytes: int = DEFAULT_BODY_FILE_BYTES,
) -> MessageLog:
    """The node's log writer (not started) over the log at ``location``: a SQLite file,
    or a PostgreSQL database given as a ``postgresql://`` URL (its schema made by
    ``gateway db upgrade``); its read side is ``.store``. The one place the node's
    backend is chosen: the node and its services use it as a ``LogWriter``. With a
    ``data_key``, new exchange entries and data subjects are sealed at rest
    (docs/message-log.md#at-rest). ``inline_commit``: ``[logging] inline_commit``
    (``gateway/messagelog/inline_commit.py``); ``body_file_bytes``: ``[logging]
    body_file_bytes`` (``gateway/messagelog/sqlite_bodies.py``)."""
    return MessageLog(
        location,
        clock=clock,
        body_policy=body_policy,
        data_key=data_key,
        inline_commit=inline_commit,
        body_file_bytes=body_file_bytes,
    )


def upgrade_schema(location: Path | str) -> str:
    """Create or upgrade the log's schema at ``location`` (``gateway db upgrade``); the
    revision it is at afterwards (docs/deployment.md)."""
    from gateway.messagelog.migrations import upgrade

    return upgrade(location)


def is_database_url(location: object) -> bool:
    """True if ``location`` names a PostgreSQL database rather than a SQLite file."""
    return is_postgres_url(location)


def log_source(text: str) -> Path | str:
    """What a command's ``--db`` names: a ``postgresql://`` URL as it is, else a file."""
    return text if is_postgres_url(text) else Path(text)


def read_entries(
    source: LogStore | Path | str, *, message_id: str | None = None
) -> list[StoredEntry]:
    """Log entries in the order they were written, optionally for one exchange."""
    return open_store(source).entries(message_id=message_id)


def count_entries(source: LogStore | Path | str) -> int:
    """How many log entries the log holds."""
    return open_store(source).count_entries()


def load_statuses(source: LogStore | Path | str) -> list[StoredStatus]:
    """The last good OCSP response kept for each of the node's own certificates."""
    return open_store(source).own_statuses()
