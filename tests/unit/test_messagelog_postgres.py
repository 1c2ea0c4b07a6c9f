"""The message log on PostgreSQL: one gap-free tree under several writers, the shared
replay guard, durable commits, the schema made by ``gateway db upgrade`` (Alembic), and
a SQLite log file from before migrations adopted unchanged.

Runs against a real throwaway cluster (``tests/pg.py``). The backend-independent tests
of the log (``test_messagelog.py``, ``test_log_tree.py``, ...) run on both backends
through the ``log_location`` fixture.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import sqlite3
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.cli import main
from gateway.core.logtree import entry_leaf
from gateway.core.merkle import leaf_hash, tree_hash
from gateway.messagelog import (
    Kind,
    LogRecord,
    MessageLog,
    MessageLogError,
    ReplayError,
    Role,
    StoredEntry,
    open_log,
    open_store,
    read_entries,
    upgrade_schema,
)
from gateway.messagelog.migrations import HEAD
from tests.pg import PgCluster

NOW = datetime(2026, 5, 4, 9, 30, 0, 123000, tzinfo=UTC)
CERT_DER = b"0\x82\x01\x0afake-der"
CERT_REF = hashlib.sha256(CERT_DER).hexdigest()


def clock() -> datetime:
    return NOW


def record(tag: str, message_id: str | None = None) -> LogRecord:
    return LogRecord(
        role=Role.PROVIDER,
        kind=Kind.REQUEST,
        message_id=message_id or str(uuid.uuid4()),
        xroad_id=f"{tag}/{uuid.uuid4()}",
        client="DE-NRW/GOV/05974040/gewerbeamt",
        service="DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
        created="2026-05-04T09:30:00.000Z",
        header=b'{"alg":"ES256"}\x00\xff',
        body=tag.encode(),
        signature="c2ln",
        cert_ref=CERT_REF,
    )


def verified_sequence(entries: list[StoredEntry]) -> bytes:
    """Check the entries are one gap-free sequence of leaves that match their content;
    the tree's root over them."""
    assert [e.leaf_index for e in entries] == list(range(len(entries)))
    leaves = [leaf_hash(entry_leaf(e.leaf_entry())) for e in entries]
    assert [e.leaf_hash for e in entries] == leaves
    return tree_hash(leaves)


def sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


# ---------------------------------------------------------------- several writers


def _writer_process(url: str, tag: str, rounds: int, barrier: Any) -> int:
    """One node process: open the log, wait until the other has opened it too (so
    both start from the same stale view of the tree), then append in batches."""

    async def scenario() -> int:
        log = MessageLog(url, clock=clock)
        barrier.wait(timeout=60)
        log.start()
        written = 0
        try:
            for _ in range(rounds):
                batch = await asyncio.gather(*(log.append([record(tag)]) for _ in range(10)))
                written += sum(len(ids) for ids in batch)
        finally:
            await log.close()
        return written

    return asyncio.run(scenario())


def test_two_writer_processes_keep_one_gap_free_tree(pg_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(2)
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            futures = [pool.submit(_writer_process, pg_url, tag, 8, barrier) for tag in "ab"]
            assert [f.result(timeout=120) for f in futures] == [80, 80]

    entries = read_entries(pg_url)
    assert sorted(e.body for e in entries) == [b"a"] * 80 + [b"b"] * 80
    root = verified_sequence(entries)
    ((size, last_id),) = sql(pg_url, "SELECT tree_size, last_entry_id FROM log_tree_state")
    assert (size, last_id) == (160, entries[-1].id)
    # A third process opens the log: the frontier matches the entries, and it extends it.
    reopened = MessageLog(pg_url, clock=clock)
    assert reopened.tree_snapshot().root_hash == root
    asyncio.run(reopened.close())


def test_writers_in_one_process_share_the_tree_and_the_replay_guard(pg_url: str) -> None:
    message_id = str(uuid.uuid4())
    key = ("DE-NRW/GOV/05974040/gewerbeamt", message_id, "2026-05-04T09:30:00.000Z")

    async def scenario() -> None:
        async with MessageLog(pg_url, clock=clock) as a, MessageLog(pg_url, clock=clock) as b:
            results = await asyncio.gather(
                a.append([record("a", message_id)], replay_key=key),
                b.append([record("b", message_id)], replay_key=key),
                *(log.append([record(tag)]) for log, tag in [(a, "a"), (b, "b")] * 20),
                return_exceptions=True,
            )
            assert sum(isinstance(r, ReplayError) for r in results[:2]) == 1
            assert all(isinstance(r, list) for r in results[2:])
            # Each writer's view catches up with the other's at its next commit.
            await a.append([record("a")])
            assert a.tree_snapshot().tree_size == 42

    asyncio.run(scenario())
    entries = read_entries(pg_url)
    assert len(entries) == 42
    verified_sequence(entries)
    assert len(read_entries(pg_url, message_id=message_id)) == 1


def test_a_tree_head_must_extend_the_latest_any_writer_stored(pg_url: str) -> None:
    from gateway.messagelog import TreeHeadRecord

    def head(log: MessageLog) -> TreeHeadRecord:
        snapshot = log.tree_snapshot()
        return TreeHeadRecord(
            tree_size=snapshot.tree_size,
            root_hash=snapshot.root_hash,
            last_entry_id=snapshot.last_entry_id,
            document=b"doc",
            gen_time=NOW,
            token=b"token",
            tsa_name="TSA",
            tsa_cert_der=b"tsa-der",
        )

    async def scenario() -> None:
        async with MessageLog(pg_url, clock=clock) as a, MessageLog(pg_url, clock=clock) as b:
            await a.append([record("a"), record("a")])
            old = head(a)
            await b.append([record("b")])
            await b.append_tree_head(head(b))  # size 3, stored by the other writer
            with pytest.raises(MessageLogError, match="does not extend"):
                await a.append_tree_head(old)

    asyncio.run(scenario())
    assert [h.tree_size for h in open_store(pg_url).tree_heads()] == [3]


# ---------------------------------------------------------------- durability and schema


def test_commits_wait_for_the_wal_flush_whatever_the_database_default(pg_url: str) -> None:
    database = psycopg.conninfo.conninfo_to_dict(pg_url)["dbname"]
    sql(pg_url, f"ALTER DATABASE {database} SET synchronous_commit = off")
    assert sql(pg_url, "SHOW synchronous_commit") == [("off",)]

    async def scenario() -> object:
        async with MessageLog(pg_url, clock=clock) as log:
            await log.append([record("a")])
            return await log.write(lambda conn: conn.execute("SHOW synchronous_commit").fetchone())

    assert asyncio.run(scenario()) == ("on",)


def test_a_database_without_the_schema_is_refused_until_upgraded(
    pg_cluster: PgCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_cluster.fresh_database(empty=True)
    with pytest.raises(MessageLogError, match="gateway db upgrade"):
        open_log(url, clock=clock)
    # The commands say so in one line rather than a trace.
    for command in (["log", "show", "--db", url], ["db", "upgrade", pg_cluster.url("nowhere")]):
        args = command if command[0] == "log" else ["db", "upgrade", "--database-url", command[2]]
        with pytest.raises(SystemExit) as exited:
            main(args)
        assert exited.value.code == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("gateway: error: ")
        assert "holds no message log" in line or 'database "nowhere" does not exist' in line
    main(["db", "upgrade", "--database-url", url])
    assert capsys.readouterr().out.strip() == f"message log schema at revision {HEAD}"
    assert upgrade_schema(url) == HEAD  # a second run changes nothing

    async def scenario() -> list[int]:
        async with open_log(url, clock=clock) as log:
            return await log.append([record("a")])

    assert asyncio.run(scenario()) == [1]
    sql(url, "UPDATE alembic_version SET version_num = '0000'")
    with pytest.raises(MessageLogError, match="revision 0000"):
        open_log(url, clock=clock)


def test_an_altered_frontier_stops_the_writer(pg_url: str) -> None:
    async def scenario() -> None:
        async with MessageLog(pg_url, clock=clock) as log:
            await log.append([record("a"), record("a")])

    asyncio.run(scenario())
    sql(pg_url, "DELETE FROM message_log WHERE leaf_index = 1")
    with pytest.raises(MessageLogError, match="altered outside the node"):
        MessageLog(pg_url, clock=clock)


def test_a_sqlite_log_from_before_migrations_upgrades_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "messagelog.db"

    async def write(count: int) -> None:
        async with MessageLog(path, clock=clock) as log:
            for _ in range(count):
                await log.append([record("a")], certs={CERT_REF: (CERT_DER, "")})

    asyncio.run(write(3))
    before = read_entries(path)
    main(["db", "upgrade", "--database-url", f"sqlite:///{path}"])
    assert upgrade_schema(path) == HEAD
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    assert read_entries(path) == before
    asyncio.run(write(1))  # and the node goes on writing it
    entries = read_entries(path)
    assert len(entries) == 4
    verified_sequence(entries)


def test_upgrade_makes_the_same_tables_on_both_backends(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    upgrade_schema(path)
    with closing(sqlite3.connect(path)) as conn:
        lite = {
            (table, column)
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for (_, column, *_rest) in conn.execute(f"PRAGMA table_info({table})")
        }
    pg = set(
        sql(
            pg_url,
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'",
        )
    )
    assert {t for t, _ in pg} >= {"message_log", "log_tree_state", "seen_request"}
    assert lite - {("sqlite_sequence", "name"), ("sqlite_sequence", "seq")} == pg


def test_a_lost_connection_fails_the_batch_and_the_writer_reconnects(pg_url: str) -> None:
    async def scenario() -> None:
        async with MessageLog(pg_url, clock=clock) as log:
            await log.append([record("a")])
            row = await log.write(lambda conn: conn.execute("SELECT pg_backend_pid()").fetchone())
            assert isinstance(row, tuple)
            sql(pg_url, f"SELECT pg_terminate_backend({int(row[0])})")
            with pytest.raises(MessageLogError):
                await log.append([record("lost")])
            assert len(await log.append([record("b")])) == 1
            # The server refuses new connections for a while: appends fail meanwhile,
            # and the writer carries on once it accepts them again.
            database = psycopg.conninfo.conninfo_to_dict(pg_url)["dbname"]
            row = await log.write(lambda conn: conn.execute("SELECT pg_backend_pid()").fetchone())
            assert isinstance(row, tuple)
            admin = pg_url.replace(f"/{database}?", "/postgres?")
            sql(admin, f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
            sql(admin, f"SELECT pg_terminate_backend({int(row[0])})")
            for _ in range(3):
                with pytest.raises(MessageLogError):
                    await log.append([record("refused")])
            sql(
                admin,
                f"ALTER DATABASE {database} ALLOW_CONNECTIONS true",
            )
            assert len(await log.append([record("c")])) == 1

    asyncio.run(scenario())
    entries = read_entries(pg_url)
    assert [e.body for e in entries] == [b"a", b"b", b"c"]
    verified_sequence(entries)


def test_a_log_in_postgresql_exports_verifies_and_archives(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.audit.archive import archive_before
    from gateway.audit.export import Selection, export_bundle
    from gateway.audit.parallel import verify_file
    from gateway.messagelog import NotProvableError, prove_entry
    from gateway.sandbox.bench.audit import START, build_log

    log = build_log(tmp_path / "log", 24, head_every=6, database_url=pg_url)
    store = open_store(pg_url)
    assert not log.db.exists()  # every row went to PostgreSQL
    whole = tmp_path / "whole.jsonl"
    export_bundle(store, whole, Selection(all=True), now=START + timedelta(days=1))
    assert verify_file(whole, log.anchor).entries == 24
    # The commands take the database's URL where they take a log file.
    main(["log", "show", "--db", pg_url])
    assert len(capsys.readouterr().out.splitlines()) == 24
    by_cli = tmp_path / "cli.jsonl"
    main(["audit", "export", "--db", pg_url, "--all", "--out", str(by_cli)])
    assert verify_file(by_cli, log.anchor).entries == 24

    cut = store.entries(message_id=None)[12].logged_at
    before = datetime.fromisoformat(cut.replace("Z", "+00:00"))
    archive = tmp_path / "archive.jsonl"
    result = archive_before(
        store, before, archive, now=START + timedelta(days=1), anchor=log.anchor
    )
    assert result.verified and result.first_leaf == 0 and result.entries >= 1
    pruned = store.entries()[: result.entries]
    assert {(e.body_omitted, e.header, e.body) for e in pruned} == {("archived", b"", b"")}
    rest = tmp_path / "rest.jsonl"
    exported = export_bundle(store, rest, Selection(all=True), now=START + timedelta(days=1))
    assert exported.archived == result.entries
    assert verify_file(rest, log.anchor).entries == 24 - result.entries
    with pytest.raises(NotProvableError, match="archived"):
        prove_entry(store, pruned[0].id, log.tsa_cert)
    proof, _ = prove_entry(store, store.entries()[-1].id, log.tsa_cert)
    assert proof.leaf_index == 23
    asyncio.run(MessageLog(pg_url, clock=clock).close())  # the node still starts on it


def test_the_node_names_its_log_by_file_or_by_database_url() -> None:
    from pydantic import ValidationError

    from gateway.node.config import NodeConfig

    node = {"id": "DE-NRW/GOV/05974028/ss1", "auth_cert": "a.pem", "auth_key": "a.key"}

    def config(**log: str) -> NodeConfig:
        return NodeConfig.model_validate(
            {"node": {**node, **log}, "signing": [], "globalconf": {"anchor": "anchor.json"}}
        )

    url = "postgresql://gateway@db.example.org/lippstadt"
    assert config(database_url=url).node.log_location == url
    assert config(messagelog="log.sqlite").node.log_location == Path("log.sqlite")
    for wrong in ({}, {"messagelog": "log.sqlite", "database_url": url}):
        with pytest.raises(ValidationError, match="exactly one of messagelog"):
            config(**wrong)
    with pytest.raises(ValidationError, match="postgresql://"):
        config(database_url="mysql://db/lippstadt")
