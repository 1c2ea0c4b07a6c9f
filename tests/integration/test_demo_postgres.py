"""``gateway demo --database-url URL``: the same story with every node's log in PostgreSQL.

The demo makes one database per node on the throwaway cluster's server
(``tests/pg.py``), tells the story to the end with exit status 0, and drops its
databases again.
"""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from tests.pg import PgCluster

pytestmark = pytest.mark.integration


def demo_databases(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'gateway_demo_%'"
        ).fetchall()
    return {str(name) for (name,) in rows}


@pytest.mark.timeout(900)  # the whole demo, started and told
def test_the_demo_tells_its_story_on_postgresql(pg_cluster: PgCluster) -> None:
    url = pg_cluster.url("postgres")
    before = demo_databases(url)
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "message logs in PostgreSQL: databases gateway_demo_" in done.stdout
    for city in ("05974040", "05974028", "05962024"):
        assert f"gateway_demo_{city}_" in done.stdout, city
    assert "result: OK" in done.stdout
    assert "--db postgresql://" in done.stdout  # the audit read the log from its database
    assert demo_databases(url) == before  # its own databases are dropped again
