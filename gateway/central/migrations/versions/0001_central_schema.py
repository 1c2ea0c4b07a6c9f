"""The central registry's tables as ``gateway.central.models`` declared them when the
registry first ran on PostgreSQL.

Revision 0001, frozen: a later change of the models is a new revision. A table or index
that already exists is left as it is, so a SQLite central directory made before
migrations existed is adopted unchanged.

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


def _text(name: str, *, primary_key: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(), nullable=False, primary_key=primary_key)


def upgrade() -> None:
    _table("member_class", _text("code", primary_key=True), _text("description"))
    _table("member", _text("id", primary_key=True), _text("name"))
    _table("subsystem", _text("id", primary_key=True), _text("member_id"))
    _index("ix_subsystem_member_id", "subsystem", ["member_id"], unique=False)
    _table(
        "node",
        _text("id", primary_key=True),
        _text("address"),
        sa.Column("enabled", sa.Boolean(), nullable=False),
    )
    _table("node_cert", _text("fingerprint", primary_key=True), _text("node_id"), _text("pem"))
    _index("ix_node_cert_node_id", "node_cert", ["node_id"], unique=False)
    _table("node_client", _text("node_id", primary_key=True), _text("client_id", primary_key=True))
    _table("global_group", _text("id", primary_key=True), _text("description"))
    _table(
        "group_member", _text("group_id", primary_key=True), _text("client_id", primary_key=True)
    )
    _table(
        "approved_ca",
        _text("fingerprint", primary_key=True),
        _text("cert_pem"),
        _text("ocsp_urls"),
    )
    _table("approved_tsa", _text("name", primary_key=True), _text("url"), _text("cert_pem"))
    _table("setting", _text("key", primary_key=True), _text("value"))
    _table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False, primary_key=True),
        _text("at"),
        _text("actor"),
        _text("action"),
        _text("object"),
        _text("before"),
        _text("after"),
        sqlite_autoincrement=True,
    )
    _table(
        "registration_request",
        _text("id", primary_key=True),
        _text("kind"),
        _text("status"),
        _text("created"),
        _text("node_id"),
        _text("client_id"),
        _text("address"),
        _text("auth_cert_pem"),
        _text("document"),
        _text("reason"),
        _text("decided_at"),
    )
    _table(
        "api_key",
        _text("id", primary_key=True),
        _text("name"),
        _text("role"),
        _text("digest"),
        _text("created"),
        _text("created_by"),
        _text("expires"),
        _text("revoked"),
    )
    _index("ix_api_key_digest", "api_key", ["digest"], unique=True)


def downgrade() -> None:
    raise NotImplementedError("the central's first schema is not downgraded")
