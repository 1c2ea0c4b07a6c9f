"""The Merkle tree's perfect subtrees, so proofs read O(log n) rows (docs/adr/0043).

The rows of a log written before this revision are computed once from its stored leaf
hashes when the node (or ``gateway db upgrade`` followed by the node's start) next opens
the log: the writer checks them against the saved frontier first.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table("merkle_subtree"):
        op.create_table(
            "merkle_subtree",
            sa.Column("level", sa.Integer(), nullable=False),
            sa.Column("position", sa.Integer(), nullable=False),
            sa.Column("hash", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint("level", "position"),
        )


def downgrade() -> None:
    raise NotImplementedError("the message log is evidence: its schema is never downgraded")
