"""``gateway bench --workers 2 --database-url URL``: the comparison of one node by log
backend and worker processes runs end to end, every counted success is in both logs, and
workers on SQLite are reported as refused.

No figure is asserted here: speed is measured by ``make bench``, never in a test.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from gateway.sandbox.bench.runner import check_logs, drive
from gateway.sandbox.bench.workers import run_workers
from tests.pg import PgCluster

pytestmark = pytest.mark.integration


def sandbox_databases(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'gateway_demo_%'"
        ).fetchall()
    return {str(name) for (name,) in rows}


@pytest.mark.timeout(600)  # four pairs of nodes started one after another
def test_one_node_by_backend_and_workers_every_success_logged(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    server = pg_cluster.url("postgres")
    before = sandbox_databases(server)
    section = run_workers(
        tmp_path,
        drive=drive,
        check_logs=check_logs,
        workers=2,
        database_url=server,
        concurrency=4,
        duration=0.5,
        repeats=1,
        body_bytes=1024,
    )
    configurations = section["configurations"]
    assert set(configurations) == {"sqlite x1", "sqlite x2", "postgresql x1", "postgresql x2"}
    assert "one writer process" in configurations["sqlite x2"]["refused"]
    assert configurations["sqlite x1"]["ratio_to_sqlite_x1"] == 1.0
    for name in ("sqlite x1", "postgresql x1", "postgresql x2"):
        figures = configurations[name]
        assert figures["errors"] == 0, name
        assert figures["ratio_to_sqlite_x1"] > 0, name
        check = figures["log_check"]
        assert check["successes_counted"] > 0, name
        assert (check["consumer_missing"], check["provider_missing"]) == (0, 0), name
    assert sandbox_databases(server) == before  # the section's databases are dropped
