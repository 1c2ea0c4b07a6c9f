"""An index on ``seen_request.created``, for the replay guard's rebuild.

A node rebuilds its replay guard at start-up from the ``seen_request`` rows created
inside the message window (``WHERE created > ?``). Without an index that read scans one
row per exchange ever answered, so start-up grew with the log; with it the read is a
range of the window's rows (docs/performance.md). An index that exists already (a
SQLite file a node opened after this revision) is left as it is.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_INDEX = "ix_seen_request_created"


def upgrade() -> None:
    present = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("seen_request")}
    if _INDEX not in present:
        op.create_index(_INDEX, "seen_request", ["created"], unique=False)


def downgrade() -> None:
    raise NotImplementedError("the message log is evidence: its schema is never downgraded")
