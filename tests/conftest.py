"""Fixtures shared by the unit and the integration tests: a throwaway PostgreSQL cluster.

``pg_cluster`` starts one cluster per test session (``tests/pg.py``) the first time a test
asks for it, so runs that never touch PostgreSQL never start it; ``pg_url`` is a fresh
database holding the log's schema for one test; ``log_backend`` runs a test of the log's
public API once on SQLite and once on PostgreSQL.

``_one_default_tls_context`` makes every httpx client of the test process share one
default TLS context (ADR 0056).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import PgCluster, server_binaries


@pytest.fixture(scope="session", autouse=True)
def _one_default_tls_context() -> Iterator[None]:
    """One default TLS context (``verify=True``: the usual roots) for every httpx client
    the tests make, instead of one per client.

    ``httpx.get(...)`` builds a client, and each client parsed the roots' bundle anew:
    about 20 ms of CPU, more than the request to a loopback port itself. The tests make
    such calls by the thousand (polling a port until it answers, one call per role and
    route), on a machine with two cores. The context is shared read-only: no test asks
    for HTTP/2, so the ALPN httpcore sets on it at each connection is always the same.
    Clients given their own context, ``verify=False`` or a client certificate are left
    as they are."""
    import httpx
    from httpx._transports import default as transports

    original = httpx.create_ssl_context  # what the transports call, by this name
    shared: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}

    def create_ssl_context(
        verify: ssl.SSLContext | str | bool = True,
        cert: object = None,
        trust_env: bool = True,
    ) -> ssl.SSLContext:
        if verify is not True or cert is not None:
            return original(verify=verify, cert=cert, trust_env=trust_env)  # type: ignore[arg-type]
        # The roots httpx reads: SSL_CERT_FILE or SSL_CERT_DIR if trusted, else certifi's.
        roots = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if roots not in shared:
            shared[roots] = original(verify=True, trust_env=trust_env)
        return shared[roots]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transports, "create_ssl_context", create_ssl_context)
        yield


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
