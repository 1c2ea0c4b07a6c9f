"""The names and values of the log's schema that a running node needs, without the
schema's declarations.

``gateway.messagelog.schema`` declares the tables with SQLModel, and importing it loads
SQLAlchemy and pydantic's models: about half a CPU second that every node process paid
at start-up for a SQLite log whose tables already exist, where the hot path is plain
``sqlite3``. What the records, the admission checks and the SQLite backend need at run
time lives here instead; ``schema`` re-exports it, so it stays the one place that
defines the layout (``tests/unit/test_node_imports.py`` checks that the names agree).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["INDEX_NAMES", "KINDS", "ROLES", "TABLE_NAMES", "Kind", "Role"]


class Role(StrEnum):
    """Which side of an exchange this node played; ``node`` for the node's own records
    (its admin audit trail), which belong to no exchange."""

    CONSUMER = "consumer"
    PROVIDER = "provider"
    NODE = "node"


class Kind(StrEnum):
    """Which half of an exchange a log entry records, or ``admin``: a change to the
    node's settings (``gateway.core.adminrecord``, docs/message-log.md 13)."""

    REQUEST = "request"
    RESPONSE = "response"
    ADMIN = "admin"


ROLES: tuple[str, ...] = tuple(role.value for role in Role)
"""The stored values of ``Role``, for the table's CHECK constraint."""

KINDS: tuple[str, ...] = tuple(kind.value for kind in Kind)
"""The stored values of ``Kind``, for the table's CHECK constraint."""

TABLE_NAMES: Final = frozenset(
    {
        "message_log",
        "signer_certificate",
        "ocsp_response",
        "seen_request",
        "log_tree_state",
        "merkle_subtree",
        "tree_head",
        "tsa_certificate",
        "signed_tree_head",
        "cosignature",
        "witness_alert",
        "data_subject",
        "data_subject_read",
        "configuration_version",
        "foreign_configuration_version",
        "own_ocsp_status",
        "operational_data",
        "node_settings",
    }
)
"""The tables of ``schema.schema_tables()``."""

INDEX_NAMES: Final = frozenset(
    {
        "ix_configuration_version_document_sha256",
        "ix_data_subject_subject",
        "ix_foreign_configuration_version_instance",
        "ix_message_log_message_id",
        "ix_operational_data_request_in",
        "ix_seen_request_created",
        "ix_witness_alert_peer",
    }
)
"""The indexes of those tables. A SQLite file that has every table and index needs
nothing created, so a node opens it without loading SQLAlchemy."""
