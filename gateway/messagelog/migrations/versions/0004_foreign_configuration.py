"""The configuration versions of federated instances the node applied.

``foreign_configuration_version``: per federated instance, each verified version the
node acted on, with its signed files, its expiry and its root's fingerprint
(docs/message-log.md 8.1, docs/adr/0051-foreign-configuration-versions-in-the-log.md).
A table that exists already (a SQLite file a node opened after this revision) is left
as it is.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_TABLE = "foreign_configuration_version"


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table(_TABLE):
        return
    op.create_table(
        _TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance", sa.String(), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.Column("applied_at", sa.String(), nullable=False),
        sa.Column("expires", sa.String(), nullable=False),
        sa.Column("root_sha256", sa.String(), nullable=False),
        sa.Column("document_sha256", sa.String(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("timestamp", sa.LargeBinary(), nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=False),
        sa.Column("targets", sa.LargeBinary(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_foreign_configuration_version_instance", _TABLE, ["instance"], unique=False)


def downgrade() -> None:
    raise NotImplementedError("the message log is evidence: its schema is never downgraded")
