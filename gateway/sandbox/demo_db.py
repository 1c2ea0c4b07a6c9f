"""``gateway demo --database-url URL``: the demo's nodes keep their logs in PostgreSQL.

Each node gets a database of its own on the server ``URL`` names (``CREATE DATABASE``
needs that right; the URL's own database is only used to issue it), with the log's
schema made as ``gateway db upgrade`` makes it. The databases are dropped when the demo
ends (with ``--serve``, when the federation is stopped).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from gateway.messagelog import upgrade_schema
from gateway.sandbox.localnet import LocalNet

__all__ = ["create_databases", "drop_databases", "place_logs", "release_logs"]


def _with_database(url: str, name: str) -> str:
    """``url`` (a ``postgresql://`` URL) naming database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_databases(url: str, keys: Iterable[str]) -> dict[str, str]:
    """One new database per node key (``gateway_demo_<key>_<random>``), migrated; their
    connection strings by key."""
    suffix = secrets.token_hex(3)
    made: dict[str, str] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for key in keys:
            name = f"gateway_demo_{key.replace('-', '_')}_{suffix}"
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            made[key] = _with_database(url, name)
    for location in made.values():
        upgrade_schema(location)
    return made


def drop_databases(url: str, locations: Iterable[str]) -> None:
    """Drop the demo's databases (after its nodes stopped)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for location in locations:
            name = psycopg.conninfo.conninfo_to_dict(location)["dbname"]
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(str(name))))


def place_logs(net: LocalNet, url: str | None) -> None:
    """Give every node of ``net`` a log database on ``url``'s server, before its
    ``node.toml`` is written; say where they are. Without ``url``: SQLite files."""
    if url is None:
        return
    for key, location in create_databases(url, net.nodes).items():
        net.nodes[key].database_url = location
    names = ", ".join(
        str(psycopg.conninfo.conninfo_to_dict(f.database_url)["dbname"])
        for f in net.nodes.values()
        if f.database_url
    )
    print(f"message logs in PostgreSQL: databases {names}", flush=True)


def release_logs(net: LocalNet, url: str | None) -> None:
    """Drop the databases ``place_logs`` made (the nodes have stopped)."""
    if url is None:
        return
    drop_databases(url, [f.database_url for f in net.nodes.values() if f.database_url])
