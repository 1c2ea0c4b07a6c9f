"""The message log's tables as the first release of the PostgreSQL backend has them.

Revision 0001, written from ``gateway.messagelog.schema`` and frozen: a later change of
the schema is a new revision. A table (or index) that already exists is left as it is,
so a SQLite log file made by a node before migrations existed is adopted unchanged.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _table(name: str, *columns: Any, **options: Any) -> None:
    if not sa.inspect(op.get_bind()).has_table(name):
        op.create_table(name, *columns, **options)


def _index(name: str, table: str, columns: list[str], *, unique: bool) -> None:
    existing = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes(table)}
    if name not in existing:
        op.create_index(name, table, columns, unique=unique)


def upgrade() -> None:
    _table(
        "message_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("logged_at", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("xroad_id", sa.String(), nullable=False),
        sa.Column("client", sa.String(), nullable=False),
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("created", sa.String(), nullable=False),
        sa.Column("header", sa.LargeBinary(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.String(), nullable=False),
        sa.Column("cert_ref", sa.String(), nullable=False),
        sa.Column("ocsp_ref", sa.String(), nullable=False),
        sa.Column("leaf_index", sa.Integer(), nullable=True),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=True),
        sa.Column("body_sha256", sa.String(), nullable=True),
        sa.Column("body_omitted", sa.String(), nullable=False),
        sa.Column("subjects_salt", sa.String(), nullable=True),
        sa.Column("subjects_sha256", sa.String(), nullable=True),
        sa.CheckConstraint("kind IN ('request', 'response', 'admin')", name="ck_message_log_kind"),
        sa.CheckConstraint("role IN ('consumer', 'provider', 'node')", name="ck_message_log_role"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    _index("ix_message_log_message_id", "message_log", ["message_id"], unique=False)
    _table(
        "signer_certificate",
        sa.Column("cert_ref", sa.String(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("jws_header", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("cert_ref"),
    )
    _table(
        "ocsp_response",
        sa.Column("ocsp_ref", sa.String(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("ocsp_ref"),
    )
    _table(
        "seen_request",
        sa.Column("client", sa.String(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("created", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("client", "message_id"),
    )
    _table(
        "log_tree_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("last_entry_id", sa.Integer(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _table(
        "tree_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("last_entry_id", sa.Integer(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("gen_time", sa.String(), nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("tsa_name", sa.String(), nullable=False),
        sa.Column("tsa_cert_ref", sa.String(), nullable=False),
        sa.Column("stored_at", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tree_size"),
        sqlite_autoincrement=True,
    )
    _table(
        "tsa_certificate",
        sa.Column("cert_ref", sa.String(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("cert_ref"),
    )
    _table(
        "signed_tree_head",
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.String(), nullable=False),
        sa.Column("cert_ref", sa.String(), nullable=False),
        sa.Column("ocsp_ref", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size"),
    )
    _table(
        "cosignature",
        sa.Column("log_node", sa.String(), nullable=False),
        sa.Column("witness", sa.String(), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.String(), nullable=False),
        sa.Column("cosignature", sa.String(), nullable=False),
        sa.Column("cert_ref", sa.String(), nullable=False),
        sa.Column("ocsp_ref", sa.String(), nullable=False),
        sa.Column("stored_at", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("log_node", "witness", "tree_size"),
    )
    _table(
        "witness_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("peer", sa.String(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("evidence", sa.String(), nullable=False),
        sa.Column("detected_at", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    _index("ix_witness_alert_peer", "witness_alert", ["peer"], unique=False)
    _table(
        "data_subject",
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["message_log.id"],
        ),
        sa.PrimaryKeyConstraint("entry_id", "subject"),
    )
    _index("ix_data_subject_subject", "data_subject", ["subject"], unique=False)
    _table(
        "data_subject_read",
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("issue", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["message_log.id"],
        ),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    _table(
        "configuration_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.Column("applied_at", sa.String(), nullable=False),
        sa.Column("document_sha256", sa.String(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("timestamp", sa.LargeBinary(), nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=False),
        sa.Column("targets", sa.LargeBinary(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    _index(
        "ix_configuration_version_document_sha256",
        "configuration_version",
        ["document_sha256"],
        unique=False,
    )
    _table(
        "own_ocsp_status",
        sa.Column("cert_ref", sa.String(), nullable=False),
        sa.Column("ocsp_ref", sa.String(), nullable=False),
        sa.Column("fetched_at", sa.String(), nullable=False),
        sa.Column("fetched_from", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("cert_ref"),
    )
    _table(
        "operational_data",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("peer_node", sa.String(), nullable=False),
        sa.Column("client", sa.String(), nullable=False),
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("xroad_id", sa.String(), nullable=False),
        sa.Column("request_in", sa.String(), nullable=False),
        sa.Column("response_out", sa.String(), nullable=False),
        sa.Column("request_size", sa.Integer(), nullable=False),
        sa.Column("response_size", sa.Integer(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("error_code", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    _index("ix_operational_data_client", "operational_data", ["client"], unique=False)
    _index("ix_operational_data_request_in", "operational_data", ["request_in"], unique=False)
    _table(
        "node_settings",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("changed_at", sa.String(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["message_log.id"],
        ),
        sa.PrimaryKeyConstraint("version"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    raise NotImplementedError("the message log is evidence: its schema is never downgraded")
