"""Alembic's environment for the central's registry: always run with the connection
:func:`gateway.central.db.upgrade` hands over (no ``alembic.ini``), recording the revision
in a version table of its own so it can share a database with a node's log."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from gateway.central.db import VERSION_TABLE

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the registry's migrations with `gateway central db upgrade`")
context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
