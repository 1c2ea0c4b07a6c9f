"""The central authority's registry on PostgreSQL (ADR 0047).

The schema both backends get from the central's own Alembic revisions is the one the
models declare; a PostgreSQL registry is refused until migrated; two ``Central`` objects
on one database (as two processes would be) take turns, so every change gets a serial of
its own and the published document holds them all; a SQLite central made before the
revisions existed is adopted by ``gateway central db upgrade`` and serves the same
configuration; and a federation whose central runs on PostgreSQL registers its nodes,
which then exchange.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData

from gateway.central import db, registry
from gateway.central.apikeys import init_central
from gateway.central.errors import CentralCode, CentralError
from gateway.central.service import DB_NAME, InitOptions, registry_tables
from gateway.central.service import Central as CentralService
from gateway.conf.anchor import load_anchor
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from gateway.trust.ca_store import init_ca
from tests.integration.conftest import RecordingRegistry
from tests.integration.test_central import GATEWAY, INSTANCE, Client, _free_port, gateway
from tests.integration.test_globalconf import (
    GEWERBEAMT,
    LIPPSTADT,
    SERVICE,
    SOEST,
    query,
    until,
)
from tests.pg import CENTRAL_BACKENDS, PgCluster

pytestmark = pytest.mark.integration


def _options(tmp_path: Path, public_url: str = "http://127.0.0.1:1") -> InitOptions:
    ca = init_ca(tmp_path / "ca", "Test CA", datetime.now(UTC))
    return InitOptions(
        instance=INSTANCE, ca_cert=ca, ocsp_urls=(), public_url=public_url, development=True
    )


@pytest.mark.parametrize("backend", CENTRAL_BACKENDS)
def test_the_revisions_make_the_tables_the_models_declare(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        location: Path | str = tmp_path / DB_NAME
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        location = cluster.fresh_database(empty=True)
    assert db.upgrade(location) == db.HEAD
    declared = MetaData()
    for table in registry_tables():
        table.to_metadata(declared)
    engine = db.open_engine(location)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": db.VERSION_TABLE, "compare_type": True}
            )
            assert compare_metadata(context, declared) == []
    finally:
        engine.dispose()
    assert db.upgrade(location) == db.HEAD  # a second run changes nothing


def test_a_postgresql_registry_is_refused_unless_at_the_revision(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    url = pg_cluster.fresh_database(empty=True)
    options = _options(tmp_path)
    central = init_central(tmp_path / "c", options, url)
    assert oct((tmp_path / "c" / db.URL_FILE).stat().st_mode & 0o777) == "0o600"
    assert not (tmp_path / "c" / DB_NAME).exists()
    assert CentralService(tmp_path / "c").current().serial == central.current().serial == 1
    with pytest.raises(CentralError) as taken:  # one registry per database
        init_central(tmp_path / "d", options, url)
    assert taken.value.code is CentralCode.CONFLICT
    with psycopg.connect(url, autocommit=True) as conn:  # as an older release left it
        conn.execute(f"UPDATE {db.VERSION_TABLE} SET version_num = '0000'")  # noqa: S608
    with pytest.raises(CentralError) as refused:
        CentralService(tmp_path / "c")
    assert refused.value.code is CentralCode.UNAVAILABLE
    assert "gateway central db upgrade" in refused.value.message


def test_two_centrals_on_one_database_take_turns(tmp_path: Path, pg_cluster: PgCluster) -> None:
    """Two ``Central`` objects, each with its own process lock, change one registry at
    once: the serial row's lock orders them, so no serial is used twice, and the
    document out at the end is the last serial, holding every member."""
    url = pg_cluster.fresh_database(empty=True)
    first = init_central(tmp_path / "c", _options(tmp_path), url)
    second = CentralService(tmp_path / "c")
    per_writer = 6
    errors: list[BaseException] = []

    def add(central: CentralService, prefix: str) -> None:
        try:
            for i in range(per_writer):
                registry.add_member(central, "test", f"{INSTANCE}/GOV/{prefix}{i}", prefix)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    writers = [
        threading.Thread(target=add, args=(first, "1000")),
        threading.Thread(target=add, args=(second, "2000")),
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert errors == []
    expected = 1 + 2 * per_writer  # init published serial 1
    assert first.int_setting("serial") == expected
    published = second.current()
    assert published.serial == expected
    assert len(published.members) == 2 * per_writer
    assert [e for e in first.audit(200) if e["action"] == "publish.failed"] == []


def test_a_sqlite_central_from_before_the_revisions_is_adopted(tmp_path: Path) -> None:
    """A SQLite central with the registry's tables but no revision recorded (as every
    central before this release): it keeps working, ``gateway central db upgrade``
    records revision 0001 without touching the data, and the served configuration is
    the one published before."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    directory = tmp_path / "c"
    init_ca(tmp_path / "ca", "Test CA", datetime.now(UTC))
    gateway(
        "central", "init", "--dir", str(directory), "--instance", INSTANCE,
        "--ca-cert", str(tmp_path / "ca" / "ca.pem"), "--url", url, "--insecure-plain-keys",
    )  # fmt: skip
    with sqlite3.connect(directory / DB_NAME) as conn:
        conn.execute(f"DROP TABLE {db.VERSION_TABLE}")
    before = CentralService(directory)
    assert db.current_revision(before.engine) is None
    published = before.current()
    out = gateway("central", "db", "upgrade", "--dir", str(directory))
    assert "revision 0001" in out
    assert db.current_revision(before.engine) == db.HEAD
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [*GATEWAY, "central", "serve", "--dir", str(directory), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/tuf/metadata/timestamp.json", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "central did not start"
                time.sleep(0.1)
        client = Client(load_anchor(directory / "anchor.json"), tmp_path / "node")
        assert client.fetch().to_bytes() == published.to_bytes()
        key = (directory / "admin.key").read_text().strip()
        r = httpx.post(
            f"{url}/admin/v1/members",
            json={"id": f"{INSTANCE}/GOV/05974040", "name": "Stadt Soest"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        assert client.fetch().serial == published.serial + 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_a_federation_whose_central_runs_on_postgresql(
    tmp_path: Path, registry: RecordingRegistry, pg_cluster: PgCluster
) -> None:
    """LocalNet with a real central on PostgreSQL: both cities join (registration,
    approval, publication) and Soest's query reaches Lippstadt's register."""
    url = pg_cluster.fresh_database(empty=True)
    now = datetime.now(UTC)
    net = LocalNet.create(tmp_path, [SOEST, LIPPSTADT], now, central=True)
    assert net.central is not None
    net.central.database_url = url
    net.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    try:
        net.start_trust()
        net.start_central()
        joined = [net.join(city.ags, datetime.now(UTC)) for city in (SOEST, LIPPSTADT)]
        net.write_configs(globalconf_refresh_seconds=1)
        net.start_node(SOEST.ags)
        net.start_node(LIPPSTADT.ags)
        calls = registry.count()
        answer = until(lambda: query(net, SOEST, str(GEWERBEAMT)), None, "Soest's query")
        assert answer.status_code == 200
        assert registry.count() > calls
    finally:
        net.stop()
    assert not (net.central.directory / DB_NAME).exists()
    with psycopg.connect(url) as conn:
        nodes = {row[0] for row in conn.execute("SELECT id FROM node")}
        decided = {row[0] for row in conn.execute("SELECT status FROM registration_request")}
        row = conn.execute("SELECT value FROM setting WHERE key = 'serial'").fetchone()
    assert row is not None
    (serial,) = row
    assert {n.split("/")[2] for n in nodes} == {SOEST.ags, LIPPSTADT.ags}
    assert decided == {"approved"}
    assert int(serial) == joined[-1].serial
