"""The throwaway PostgreSQL cluster for the tests: ``gateway/sandbox/pgcluster.py``,
one home for the tests and the fault harness's ``--postgres``.

Each test gets a database of its own, cloned from a template that already holds the
log's schema (``CREATE DATABASE ... TEMPLATE``), which costs milliseconds.
"""

from __future__ import annotations

import pytest

from gateway.sandbox.pgcluster import PgCluster, server_binaries

__all__ = ["CENTRAL_BACKENDS", "PgCluster", "central_database", "server_binaries"]

CENTRAL_BACKENDS = ("sqlite", "postgresql")
"""The params of a fixture that makes a central authority, once per registry backend."""


def central_database(request: pytest.FixtureRequest) -> str | None:
    """For a fixture parametrized by :data:`CENTRAL_BACKENDS`: None (the central keeps its
    registry in ``central.sqlite``) or a new empty PostgreSQL database, which ``gateway
    central init --database-url`` migrates."""
    if request.param == "sqlite":
        return None
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.fresh_database(empty=True)
