"""Alembic's environment for the log: always run with the connection
:func:`gateway.messagelog.migrations.upgrade` hands over (no ``alembic.ini``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the log's migrations with `gateway db upgrade`")
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
