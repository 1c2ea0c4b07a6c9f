"""Fixtures shared by the unit and the integration tests: a throwaway PostgreSQL cluster.

``pg_cluster`` starts one cluster per test session (``tests/pg.py``) the first time a test
asks for it, so runs that never touch PostgreSQL never start it; ``pg_url`` is a fresh
database holding the log's schema for one test; ``log_backend`` runs a test of the log's
public API once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import PgCluster, server_binaries


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    binaries = server_binaries()
    if binaries is None:
        pytest.fail(
            "no PostgreSQL server binaries under /usr/lib/postgresql: run `make system-packages`"
        )
    cluster = PgCluster(binaries)
    try:
        cluster.start()
        cluster.prepare_template()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """A new database with the log's schema, for this test alone."""
    return pg_cluster.fresh_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def log_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's log lives: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "log" / "messagelog.db"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.fresh_database()
