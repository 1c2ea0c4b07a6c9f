"""Proofs from the stored Merkle subtrees: the same bytes as proofs from every leaf, on
both backends, for a log written before the subtrees were stored too, and one bounded
read per proof whatever the log's size (docs/adr/0043)."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import uuid
from collections.abc import Collection
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.merkle import (
    CompactTree,
    MerkleError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    tree_hash,
)
from gateway.core.merkle_nodes import (
    all_subtrees,
    consistency_from_subtrees,
    consistency_subtrees,
    inclusion_from_subtrees,
    inclusion_subtrees,
)
from gateway.messagelog import (
    Kind,
    LogRecord,
    MessageLog,
    NotProvableError,
    Role,
    consistency,
    inclusion,
    open_store,
)
from gateway.messagelog.store import LogStore

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(8, "big")) for i in range(n)]


def stored(hashes: list[bytes]) -> dict[tuple[int, int], bytes]:
    return {(level, position): h for level, position, h in all_subtrees(hashes)}


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2000), st.data())
def test_inclusion_from_subtrees_equals_inclusion_from_all_leaves(
    size: int, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, size - 1))
    hashes = leaves(size)
    table = stored(hashes)
    names = inclusion_subtrees(index, size)
    assert names <= table.keys()
    only = {name: table[name] for name in names}
    assert inclusion_from_subtrees(index, size, only) == (
        hashes[index],
        inclusion_proof(index, size, hashes),
    )


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2000), st.data())
def test_consistency_from_subtrees_equals_consistency_from_all_leaves(
    size: int, data: st.DataObject
) -> None:
    old = data.draw(st.integers(0, size))
    hashes = leaves(size)
    table = stored(hashes)
    only = {name: table[name] for name in consistency_subtrees(old, size)}
    assert consistency_from_subtrees(old, size, only) == consistency_proof(old, size, hashes)


def test_the_subtrees_a_proof_names_grow_with_log_n_not_n() -> None:
    for size in (10**3, 10**6, 10**9, 10**12):
        bound = 2 * size.bit_length() ** 2
        assert max(len(inclusion_subtrees(i, size)) for i in (0, size // 3, size - 1)) <= bound
        assert max(len(consistency_subtrees(m, size)) for m in (1, size // 3, size - 1)) <= bound


def test_a_missing_subtree_is_refused_not_guessed() -> None:
    table = stored(leaves(11))
    del table[(1, 4)]  # leaves 8 and 9
    with pytest.raises(MerkleError, match=r"\(1, 4\)"):
        inclusion_from_subtrees(10, 11, table)


def test_compact_tree_append_returns_the_subtrees_it_completes() -> None:
    tree = CompactTree()
    hashes = leaves(8)
    completed = [tree.append(h) for h in hashes]
    assert [[(lvl, pos) for lvl, pos, _ in done] for done in completed][-1] == [
        (0, 7),
        (1, 3),
        (2, 1),
        (3, 0),
    ]
    assert completed[-1][-1][2] == tree_hash(hashes) == tree.root()


# -- the log ---------------------------------------------------------------------------


def record(kind: str = "request") -> LogRecord:
    return LogRecord(
        role=Role.CONSUMER,
        kind=Kind(kind),
        message_id=str(uuid.uuid4()),
        xroad_id=f"DE-NRW-{uuid.uuid4()}",
        client="DE-NRW/GOV/05974040/gewerbeamt",
        service="DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
        created="2026-06-01T08:00:00.000Z",
        header=b'{"h":1}',
        body=b"{}",
        signature="eyJ9..c2ln",
        cert_ref=hashlib.sha256(b"cert").hexdigest(),
        ocsp_ref=hashlib.sha256(b"ocsp").hexdigest(),
    )


async def append_all(location: Path | str, batches: int) -> None:
    log = MessageLog(location, clock=lambda: NOW)
    log.start()
    try:
        await asyncio.gather(*(log.append([record(), record("response")]) for _ in range(batches)))
    finally:
        await log.close()


class CountingStore:
    """The real store, with its reads counted: how many calls, how many rows."""

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.calls: list[str] = []
        self.rows = 0

    def subtrees(self, names: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        self.calls.append("subtrees")
        found = self.store.subtrees(names)
        self.rows += len(found)
        return found

    def __getattr__(self, name: str) -> object:
        self.calls.append(name)
        return getattr(self.store, name)


def all_proofs_match(location: Path | str, size: int) -> None:
    hashes = open_store(location).leaf_hashes(size)
    for index in range(size):
        assert inclusion(location, index, size) == (
            hashes[index],
            inclusion_proof(index, size, hashes),
        )
    for old in range(size + 1):
        assert consistency(location, old, size) == consistency_proof(old, size, hashes)


def test_log_proofs_equal_proofs_from_every_leaf(log_location: Path | str) -> None:
    asyncio.run(append_all(log_location, 13))  # 26 leaves, written in several batches
    all_proofs_match(log_location, 26)
    with pytest.raises(NotProvableError, match="fewer than 27 leaves"):
        inclusion(log_location, 3, 27)
    with pytest.raises(NotProvableError, match="fewer than 30 leaves"):
        consistency(log_location, 3, 30)


def _forget_subtrees(location: Path | str) -> None:
    """Make the log one written before the subtrees were stored."""
    if isinstance(location, Path):
        with closing(sqlite3.connect(location, isolation_level=None)) as conn:
            conn.execute("DELETE FROM merkle_subtree")
    else:
        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute("DELETE FROM merkle_subtree")


def test_a_log_from_before_the_subtrees_gets_them_once_and_the_same_proofs(
    log_location: Path | str,
) -> None:
    asyncio.run(append_all(log_location, 9))
    _forget_subtrees(log_location)
    with pytest.raises(NotProvableError):
        inclusion(log_location, 0, 18)
    asyncio.run(append_all(log_location, 2))  # the node's next start stores them
    all_proofs_match(log_location, 22)


def test_a_proof_is_one_bounded_read_at_any_log_size(log_location: Path | str) -> None:
    asyncio.run(append_all(log_location, 150))  # 300 leaves
    for size in (2, 37, 300):
        for index in (0, size // 2, size - 1):
            store = CountingStore(open_store(log_location))
            inclusion(store, index, size)  # type: ignore[arg-type]
            assert store.calls == ["subtrees"]
            assert store.rows <= 2 * size.bit_length() ** 2
        store = CountingStore(open_store(log_location))
        consistency(store, size // 3, size)  # type: ignore[arg-type]
        assert store.calls == ["subtrees"]
        assert store.rows <= 2 * size.bit_length() ** 2


def test_the_log_bench_reads_log_n_rows_per_proof_and_n_the_old_way(tmp_path: Path) -> None:
    from gateway.sandbox.bench.logsize import run_log_bench

    results = run_log_bench(tmp_path / "log.db", [64, 1000], samples=3, progress=lambda _: None)
    for r in results:
        assert r.inclusion.rows <= 2 * r.entries.bit_length() ** 2
        assert r.consistency.rows <= 2 * r.entries.bit_length() ** 2
        assert r.inclusion_all_leaves is not None
        assert r.inclusion_all_leaves.rows == r.entries
        # Each request was logged with its replay key; all are inside the window.
        assert r.replay_preloaded == r.entries // 2


def test_an_older_file_not_opened_since_is_refused_with_the_remedy(tmp_path: Path) -> None:
    location = tmp_path / "log.db"
    asyncio.run(append_all(location, 3))
    with closing(sqlite3.connect(location, isolation_level=None)) as conn:
        conn.execute("DROP TABLE merkle_subtree")
    with pytest.raises(NotProvableError, match="node's next start"):
        inclusion(location, 1, 6)
    asyncio.run(append_all(location, 1))
    all_proofs_match(location, 8)
