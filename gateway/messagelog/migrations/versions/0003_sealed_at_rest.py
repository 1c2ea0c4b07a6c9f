"""Personal data sealed at rest: the entry's flag and the data subject's sealed value.

``message_log.sealed`` (0: stored as it is, 1: header and body sealed under the node's
data key) and ``data_subject.sealed`` (the identifier sealed, ``subject`` then holding
its keyed hash). Existing rows keep 0 and NULL and read as before
(docs/adr/0048-personal-data-sealed-at-rest.md). A column that exists already (a SQLite
file a node upgraded at start-up) is left as it is.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _add(table: str, column: sa.Column[object]) -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}
    if column.name not in present:
        op.add_column(table, column)


def upgrade() -> None:
    _add("message_log", sa.Column("sealed", sa.Integer(), nullable=False, server_default="0"))
    _add("data_subject", sa.Column("sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("data_subject", "sealed")
    op.drop_column("message_log", "sealed")
