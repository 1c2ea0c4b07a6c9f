"""Revision 0006: fewer pages per log commit, the same rows and the same answers.

``seen_request`` and ``merkle_subtree`` become ``WITHOUT ROWID`` tables on SQLite and
``operational_data`` loses its index on ``client`` on both backends
(docs/adr/0072-fewer-pages-per-log-commit.md). A log used at revision 0005 is upgraded
to the layout a new file gets, keeps every row, and answers the replay check, the
replay guard's rebuild, proofs and the operational-data reads as before; the node goes
on writing it.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.encoding import format_time
from gateway.core.merkle import CompactTree, tree_hash, verify_consistency, verify_inclusion
from gateway.messagelog import (
    Kind,
    LogRecord,
    MessageLog,
    ReplayError,
    Role,
    open_store,
    read_entries,
)
from gateway.messagelog.leaves import subtree_key, subtree_rows
from gateway.messagelog.migrations import HEAD, upgrade
from gateway.messagelog.proofs import consistency, inclusion
from gateway.messagelog.records import OpRecord
from gateway.messagelog.sqlite_commit import create_tables
from gateway.messagelog.sqlite_layout import _KEY_FROM_COLUMNS
from tests.pg import PgCluster
from tests.unit.test_sqlite_ddl import describe

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
CLIENTS = ("DE-NRW/GOV/05974040/gewerbeamt", "DE-NRW/GOV/05974040/ordnungsamt")
SERVICE = "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft"
TABLES = ("seen_request", "merkle_subtree", "operational_data")


def _exchange(n: int) -> tuple[list[LogRecord], tuple[str, str, str], OpRecord]:
    client, mid = CLIENTS[n % 2], str(uuid.uuid4())
    created = format_time(NOW + timedelta(seconds=n))
    records = [
        LogRecord(
            role=Role.PROVIDER,
            kind=kind,
            message_id=mid,
            xroad_id=f"x/{mid}",
            client=client,
            service=SERVICE,
            created=created,
            header=b'{"h":%d}' % n,
            body=b"{}",
            signature="c2ln",
            cert_ref="",
        )
        for kind in (Kind.REQUEST, Kind.RESPONSE)
    ]
    op = OpRecord(
        side="provider",
        node="DE-NRW/GOV/05974028/ss1",
        peer_node="DE-NRW/GOV/05974040/ss1",
        client=client,
        service=SERVICE,
        message_id=mid,
        xroad_id=f"x/{mid}",
        # Not in the order of the ids: a refusal's record may be written later.
        request_in=format_time(NOW + timedelta(seconds=(n * 7) % 40)),
        response_out=created,
        request_size=n,
        response_size=2 * n,
        status=200,
        succeeded=True,
        error_code="",
    )
    return records, (client, mid, created), op


async def _write(path: Path | str, first: int, count: int) -> list[tuple[str, str, str]]:
    keys = []
    async with MessageLog(path, clock=lambda: NOW) as log:
        for n in range(first, first + count):
            records, key, op = _exchange(n)
            await log.append(records, replay_key=key, operational=[op])
            keys.append(key)
    return keys


_COLUMNS = {
    "seen_request": "client, message_id, created",
    "merkle_subtree": "level, position, hash",
    "operational_data": "*",
}


def _rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with closing(sqlite3.connect(path)) as conn:
        return {
            table: sorted(tuple(r) for r in conn.execute(f"SELECT {c} FROM {table}"))  # noqa: S608
            for table, c in _COLUMNS.items()
        }


def _older_file(tmp_path: Path, keys: list[tuple[str, str, str]]) -> Path:
    """A log at revision 0005 in its layout, holding what a node wrote: 40 exchanges,
    80 leaves, subtrees on seven levels (copied from a log written now, column by
    column, into a file ``gateway db upgrade`` made at 0005)."""
    written = tmp_path / "written.db"
    keys += asyncio.run(_write(written, 0, 40))
    older = tmp_path / "messagelog.db"
    assert upgrade(older, "0005") == "0005"
    with closing(sqlite3.connect(older, isolation_level=None)) as conn:
        conn.execute("ATTACH DATABASE ? AS written", (str(written),))
        tables = [
            str(name)
            for (name,) in conn.execute(
                "SELECT name FROM written.sqlite_master WHERE type = 'table'"
            )
        ]
        conn.execute("BEGIN")
        for table in tables:
            ours = {str(r[1]) for r in conn.execute(f"PRAGMA main.table_info({table})")}
            columns = ", ".join(
                str(r[1])
                for r in conn.execute(f"PRAGMA written.table_info({table})")
                if str(r[1]) in ours
            )
            conn.execute(f"DELETE FROM main.{table}")  # noqa: S608
            conn.execute(
                f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM written.{table}"  # noqa: S608
            )
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE written")
    return older


def _layout(path: Path) -> dict[str, object]:
    """What SQLite says of the three tables of revision 0006 and their indexes."""
    described = describe(path)
    master = described["sqlite_master"]
    assert isinstance(master, list)
    kept: dict[str, object] = {"sqlite_master": [r for r in master if r[2] in TABLES]}
    for key, value in described.items():
        if any(key.endswith(f" {t}") for t in TABLES) or key.startswith("index_info "):
            kept[key] = value
    kept = {k: v for k, v in kept.items() if "alembic" not in k}
    return kept


def _answers(path: Path, size: int) -> dict[str, object]:
    """The reads whose plan the revision changes, as the node and the operator see them."""
    store = open_store(path)
    since, until = format_time(NOW + timedelta(seconds=5)), format_time(NOW + timedelta(seconds=30))
    return {
        "by client": [
            store.operational_records(client=c, since=since, until=until) for c in CLIENTS
        ],
        "by client, no bounds": [store.operational_records(client=c) for c in CLIENTS],
        "by party": store.operational_records(party=CLIENTS[0], since=since),
        "all": store.operational_records(),
        "inclusion": [inclusion(path, i, size) for i in (0, size // 2, size - 1)],
        "consistency": [consistency(path, m, size) for m in (1, size // 3, size - 1)],
    }


@pytest.mark.parametrize("how", ["gateway db upgrade", "a node opens it"])
def test_a_used_log_at_0005_takes_the_new_layout_with_the_same_rows_and_answers(
    tmp_path: Path, how: str
) -> None:
    keys: list[tuple[str, str, str]] = []
    path = _older_file(tmp_path, keys)
    assert "WITHOUT ROWID" not in str(_layout(path)["sqlite_master"])
    rows, answers = _rows(path), _answers(path, 80)
    with closing(sqlite3.connect(path)) as conn:
        seen = sorted(conn.execute("SELECT * FROM seen_request WHERE created > ?", (keys[9][2],)))

    if how == "gateway db upgrade":
        assert upgrade(path) == HEAD
    else:
        asyncio.run(MessageLog(path, clock=lambda: NOW).close())
    fresh = tmp_path / "fresh.db"
    create_tables(fresh)
    assert _layout(path) == _layout(fresh)
    assert _rows(path) == rows
    with closing(sqlite3.connect(path)) as conn:
        for node, level, position in conn.execute(
            "SELECT node, level, position FROM merkle_subtree"
        ):
            assert node == subtree_key(level, position)
    assert _answers(path, 80) == answers
    by_client, everything = answers["by client"], answers["all"]
    assert isinstance(by_client, list) and isinstance(everything, list)
    assert by_client[0] and len(everything) == 40
    log = MessageLog(path, clock=lambda: NOW)
    try:
        assert sorted(log.seen_since(keys[9][2])) == seen
    finally:
        asyncio.run(log.close())
    assert upgrade(path) == HEAD and _rows(path) == rows  # a second pass changes nothing

    async def replay() -> None:
        async with MessageLog(path, clock=lambda: NOW) as log:
            records, _, _ = _exchange(3)
            with pytest.raises(ReplayError):
                await log.append(records, replay_key=keys[3])

    asyncio.run(replay())
    asyncio.run(_write(path, 40, 9))  # the node goes on writing the upgraded file
    entries = read_entries(path)
    assert [e.leaf_index for e in entries] == list(range(98))
    leaves = [e.leaf_hash for e in entries]
    for index in (0, 79, 80, 97):
        leaf, path_ = inclusion(path, index, 98)
        assert leaf == leaves[index]
        verify_inclusion(leaf, index, 98, path_, _root(leaves))
    verify_consistency(80, 98, _root(leaves[:80]), _root(leaves), consistency(path, 80, 98))


@given(st.integers(0, 56), st.integers(0, 2**56))
def test_the_key_a_node_gives_older_rows_is_the_key_it_writes(level: int, position: int) -> None:
    position = min(position, (1 << (57 - level)) - 2)  # below 2**57 leaves
    with closing(sqlite3.connect(":memory:")) as conn:
        ((node,),) = conn.execute(
            f"SELECT {_KEY_FROM_COLUMNS} FROM (SELECT ? AS position, ? AS level)",  # noqa: S608
            (position, level),
        ).fetchall()
    assert node == subtree_key(level, position) < 2**63
    assert (node & 63, ((node >> 6) >> level) - 1) == (level, position)


@given(st.integers(1, 600))
def test_a_subtree_key_is_unique_and_grows_as_the_log_grows(size: int) -> None:
    tree, keys = CompactTree(), []
    for i in range(size):
        rows = subtree_rows(tree.append(hashlib.sha256(b"%d" % i).digest()))
        keys += [node for node, _, _, _ in rows]
        assert all(node == subtree_key(lv, p) for node, lv, p, _ in rows)
    assert keys == sorted(set(keys))


def _root(leaves: list[bytes | None]) -> bytes:
    assert all(leaf is not None for leaf in leaves)
    return tree_hash([leaf for leaf in leaves if leaf is not None])


@pytest.fixture
def pg_at_0005(pg_cluster: PgCluster) -> Iterator[str]:
    url = pg_cluster.fresh_database(empty=True)
    assert upgrade(url, "0005") == "0005"
    yield url


def test_postgresql_keys_the_subtrees_drops_the_client_index_and_keeps_the_rows(
    pg_at_0005: str,
) -> None:
    url = pg_at_0005
    ops = [_exchange(n)[2] for n in range(6)]
    columns = list(OpRecord.__dataclass_fields__)
    tree, subtrees = CompactTree(), []
    for i in range(21):
        subtrees += tree.append(hashlib.sha256(b"%d" % i).digest())
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO merkle_subtree (level, position, hash) VALUES (%s, %s, %s)", subtrees
            )
        for op in ops:
            conn.execute(
                f"INSERT INTO operational_data ({', '.join(columns)})"  # noqa: S608
                f" VALUES ({', '.join(['%s'] * len(columns))})",
                [getattr(op, c) for c in columns],
            )
    assert upgrade(url) == HEAD
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = {
            str(name)
            for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'operational_data'"
            )
        }
        stored = sorted(conn.execute("SELECT node, level, position, hash FROM merkle_subtree"))
    assert stored == sorted(subtree_rows(subtrees))
    assert "ix_operational_data_client" not in indexes
    assert "ix_operational_data_request_in" in indexes
    store = open_store(url)
    by_client = store.operational_records(client=CLIENTS[1])
    assert by_client == sorted(
        (op for op in ops if op.client == CLIENTS[1]), key=lambda op: op.request_in
    )
    assert upgrade(url) == HEAD  # a second run changes nothing
