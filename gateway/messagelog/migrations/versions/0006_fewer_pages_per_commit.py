"""Fewer B-tree pages written per commit (docs/adr/0072-fewer-pages-per-log-commit.md).

- ``merkle_subtree`` is keyed by ``node``, the leaf count that completes a subtree times
  64 plus its level (``gateway.messagelog.leaves.subtree_key``), on both backends: a
  commit's subtrees are then the table's last keys, where the key ``(level, position)``
  put each level's rows on a page of their own. ``level`` and ``position`` stay as
  columns; every existing row gets its key.
- ``ix_operational_data_client`` is dropped, on both backends: every exchange wrote it,
  and the one read that could use it (the admin API's and ``gateway node opdata``'s
  ``client`` filter) reads the ``request_in`` range instead, with the same rows.
- On SQLite, ``seen_request`` becomes a ``WITHOUT ROWID`` table: its rows live in their
  primary key's B-tree, so the replay check's insert no longer writes a rowid table
  besides. PostgreSQL has no rowid table to drop; its table stays.

Rows and column values stay as they are: each SQLite table is created anew as a new file
gets it and its rows copied, in the upgrade's one transaction. What has
the new layout already (a node took it up when it opened the file,
``gateway.messagelog.sqlite_layout``) is left as it is.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_CLIENT_INDEX = "ix_operational_data_client"
_SEEN_INDEX = "ix_seen_request_created"


def _seen_request_columns() -> list[sa.Column[str]]:
    return [
        sa.Column("client", sa.String(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("created", sa.String(), nullable=False),
    ]


def _node(table: sa.TableClause) -> sa.ColumnElement[int]:
    """``gateway.messagelog.leaves.subtree_key`` over a table's level and position."""
    count = (sa.cast(table.c.position, sa.BigInteger()) + 1).op("<<")(table.c.level)
    return count.op("<<")(sa.literal_column("6")).op("|")(table.c.level)


def _subtrees(name: str) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("node", sa.BigInteger()),
        sa.column("level", sa.Integer()),
        sa.column("position", sa.Integer()),
        sa.column("hash", sa.LargeBinary()),
    )


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if _CLIENT_INDEX in {i["name"] for i in inspector.get_indexes("operational_data")}:
        op.drop_index(_CLIENT_INDEX, table_name="operational_data")
    keyed = "node" in {c["name"] for c in inspector.get_columns("merkle_subtree")}
    if bind.dialect.name != "sqlite":
        if not keyed:
            _key_subtrees_on_postgresql(inspector)
        return
    if inspector.get_table_options("seen_request").get("sqlite_with_rowid", True):
        _seen_request_without_rowid(inspector)
    if not keyed:
        _key_subtrees_on_sqlite()


def _seen_request_without_rowid(inspector: sa.Inspector) -> None:
    if _SEEN_INDEX in {i["name"] for i in inspector.get_indexes("seen_request")}:
        op.drop_index(_SEEN_INDEX, table_name="seen_request")
    op.rename_table("seen_request", "seen_request_0005")
    new = op.create_table(
        "seen_request",
        *_seen_request_columns(),
        sa.PrimaryKeyConstraint("client", "message_id"),
        sqlite_with_rowid=False,
    )
    old = sa.table("seen_request_0005", *(sa.column(c.name) for c in _seen_request_columns()))
    names = [c.name for c in _seen_request_columns()]
    op.execute(sa.insert(new).from_select(names, sa.select(*(old.c[n] for n in names))))
    op.drop_table("seen_request_0005")
    op.create_index(_SEEN_INDEX, "seen_request", ["created"], unique=False)


def _key_subtrees_on_sqlite() -> None:
    op.rename_table("merkle_subtree", "merkle_subtree_0005")
    op.create_table(
        "merkle_subtree",
        sa.Column("node", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("node"),
    )
    new, old = _subtrees("merkle_subtree"), _subtrees("merkle_subtree_0005")
    names = ["node", "level", "position", "hash"]
    select = sa.select(_node(old), old.c.level, old.c.position, old.c.hash)
    op.execute(sa.insert(new).from_select(names, select))
    op.drop_table("merkle_subtree_0005")


def _key_subtrees_on_postgresql(inspector: sa.Inspector) -> None:
    op.add_column("merkle_subtree", sa.Column("node", sa.BigInteger(), nullable=True))
    table = _subtrees("merkle_subtree")
    op.execute(sa.update(table).values(node=_node(table)))
    op.alter_column("merkle_subtree", "node", nullable=False)
    primary = inspector.get_pk_constraint("merkle_subtree")["name"] or "merkle_subtree_pkey"
    op.drop_constraint(primary, "merkle_subtree", type_="primary")
    op.create_primary_key("merkle_subtree_pkey", "merkle_subtree", ["node"])


def downgrade() -> None:
    raise NotImplementedError("the message log is evidence: its schema is never downgraded")
