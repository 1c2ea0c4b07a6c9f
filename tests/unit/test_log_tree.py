"""The message log's Merkle tree: leaves in log order, a frontier that survives restarts
and rollbacks, the leaf and tree-head encodings pinned byte for byte, and tree heads
accepted only when they describe this log."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import uuid
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.core.canonical import canonical_json
from gateway.core.logtree import (
    SUBJECTS_SALT_SIZE,
    LoggedEntry,
    ProofError,
    encode_leaf,
    entry_leaf,
    parse_tree_head_document,
    subjects_commitment,
    tree_head_document,
)
from gateway.core.merkle import CompactTree, leaf_hash, tree_hash
from gateway.messagelog import (
    Kind,
    LogRecord,
    MessageLog,
    MessageLogError,
    ReplayError,
    Role,
    TreeHeadRecord,
    open_store,
    read_entries,
)

NOW = datetime(2025, 6, 1, 8, 0, 0, 123456, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def record(kind: str = "request", body: bytes = b"{}") -> LogRecord:
    return LogRecord(
        role=Role.CONSUMER,
        kind=Kind(kind),
        message_id=str(uuid.uuid4()),
        xroad_id=f"DE-NRW-{uuid.uuid4()}",
        client="DE-NRW/GOV/05974040/gewerbeamt",
        service="DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
        created="2025-06-01T08:00:00.000Z",
        header=b'{"h":1}',
        body=body,
        signature="eyJ9..c2ln",
        cert_ref=hashlib.sha256(b"cert").hexdigest(),
        ocsp_ref=hashlib.sha256(b"ocsp").hexdigest(),
    )


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return list(conn.execute(sql))


def execute(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for sql in statements:
            conn.execute(sql)


def recomputed_leaves(path: Path | str) -> list[bytes]:
    """Leaf hashes recomputed from the stored entries, independently of the writer."""
    return [
        leaf_hash(
            entry_leaf(
                LoggedEntry(
                    e.role,
                    e.kind,
                    e.message_id,
                    e.xroad_id,
                    e.client,
                    e.service,
                    e.created,
                    e.logged_at,
                    e.header,
                    e.body,
                    e.signature,
                    e.cert_ref,
                    e.ocsp_ref,
                    subjects_sha256=e.subjects_sha256,
                )
            )
        )
        for e in read_entries(path)
    ]


async def append_all(path: Path | str, batches: list[list[LogRecord]]) -> MessageLog:
    log = MessageLog(path, clock=clock)
    log.start()
    try:
        await asyncio.gather(*(log.append(b) for b in batches))
    finally:
        await log.close()
    return log


def reopened(path: Path | str) -> MessageLog:
    """Open the log as a restarted node would, and close it again (state stays readable)."""
    log = MessageLog(path, clock=clock)
    asyncio.run(log.close())
    return log


# ---------------------------------------------------------------- encodings


def test_leaf_encoding_is_pinned() -> None:
    # docs/message-log.md shows this example; changing the encoding breaks every proof.
    entry = LoggedEntry(
        role="provider",
        kind="request",
        message_id="0b5e1d7e-3b7a-4c1e-9d6f-2f1c7a9e8b11",
        xroad_id="DE-NRW-5c7e",
        client="DE-NRW/GOV/05974040/gewerbeamt",
        service="DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
        created="2025-06-01T08:00:00.000Z",
        logged_at="2025-06-01T08:00:00.123Z",
        header=b'{"h":1}',
        body=b"",
        signature="eyJ9..c2ln",
        cert_ref="ab" * 32,
        ocsp_ref="",
    )
    data = entry_leaf(entry)
    assert data == (
        b'{"body_sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",'
        b'"cert_ref":"' + b"ab" * 32 + b'",'
        b'"client":"DE-NRW/GOV/05974040/gewerbeamt",'
        b'"created":"2025-06-01T08:00:00.000Z",'
        b'"header_sha256":"' + hashlib.sha256(b'{"h":1}').hexdigest().encode() + b'",'
        b'"kind":"request",'
        b'"logged_at":"2025-06-01T08:00:00.123Z",'
        b'"message_id":"0b5e1d7e-3b7a-4c1e-9d6f-2f1c7a9e8b11",'
        b'"ocsp_ref":"",'
        b'"role":"provider",'
        b'"service":"DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",'
        b'"signature_sha256":"' + hashlib.sha256(b"eyJ9..c2ln").hexdigest().encode() + b'",'
        b'"type":"gateway-log-leaf/v1",'
        b'"xroad_id":"DE-NRW-5c7e"}'
    )


def test_version_2_leaf_and_subjects_commitment_are_pinned() -> None:
    # docs/message-log.md shows this example too.
    salt = bytes(range(SUBJECTS_SALT_SIZE))
    commitment = subjects_commitment(salt, ["52693074139", "3f0e1c9a"])
    assert (
        commitment
        == hashlib.sha256(
            b'{"salt":"000102030405060708090a0b0c0d0e0f",'
            b'"subjects":["3f0e1c9a","52693074139"],"type":"gateway-log-subjects/v1"}'
        ).hexdigest()
    )
    entry = LoggedEntry(
        role="provider",
        kind="response",
        message_id="m",
        xroad_id="x",
        client="c",
        service="s",
        created="t0",
        logged_at="t1",
        header=b"h",
        body=b"b",
        signature="sig",
        cert_ref="ab" * 32,
        ocsp_ref="",
        subjects_sha256=commitment,
    )
    data = entry_leaf(entry)
    assert data.startswith(b'{"body_sha256":')
    assert b'"subjects_sha256":"' + commitment.encode() + b'","type":"gateway-log-leaf/v2"' in data
    # Without a commitment the same entry has its version 1 leaf: the field is absent.
    v1 = entry_leaf(replace(entry, subjects_sha256=None))
    assert b"subjects_sha256" not in v1 and b'"type":"gateway-log-leaf/v1"' in v1


@pytest.mark.parametrize("subjects", [None, "cd" * 32])
def test_leaf_of_any_text_is_its_canonical_json(subjects: str | None) -> None:
    # The leaf is filled into a fixed template: values that JSON must escape, that
    # are not ASCII or that look like the template's own placeholders come out as
    # canonical_json writes them, and no value can add or move a field.
    tricky = ['"q" \\ /', "tab\tnl\n\x00\x1f\x7f", "Groß-Köln ☃ 𝄞", "%s %d %%", "\u2028"]
    fields = {
        "role": tricky[0],
        "kind": tricky[1],
        "message_id": tricky[2],
        "xroad_id": tricky[3],
        "client": tricky[4],
        "service": '","type":"x',
        "created": "",
        "logged_at": tricky[2],
        "header_sha256": "ab" * 32,
        "body_sha256": tricky[3],
        "signature_sha256": tricky[0],
        "cert_ref": tricky[1],
        "ocsp_ref": tricky[4],
    }
    leaf_type = "gateway-log-leaf/v1" if subjects is None else "gateway-log-leaf/v2"
    expected = {**fields, "type": leaf_type}
    if subjects is not None:
        expected["subjects_sha256"] = subjects
    assert encode_leaf(**fields, subjects_sha256=subjects) == canonical_json(expected)


def test_subjects_commitment_is_a_set_hidden_by_its_salt() -> None:
    salt, other = b"\x01" * SUBJECTS_SALT_SIZE, b"\x02" * SUBJECTS_SALT_SIZE
    both = subjects_commitment(salt, ["b", "a"])
    assert both == subjects_commitment(salt, ["a", "b", "a"])  # order and repeats
    assert both != subjects_commitment(salt, ["a"])  # one removed
    assert both != subjects_commitment(salt, ["a", "c"])  # one altered
    assert both != subjects_commitment(other, ["a", "b"])  # the salt matters
    # No subjects: well defined, and still salted (an auditor cannot tell it apart).
    assert subjects_commitment(salt, []) == subjects_commitment(salt, ())
    assert subjects_commitment(salt, []) != subjects_commitment(other, [])
    with pytest.raises(ValueError, match="salt"):
        subjects_commitment(b"short", ["a"])


def test_tree_head_document_is_pinned_and_parsed_strictly() -> None:
    root = bytes(range(32))
    document = tree_head_document("DE-NRW/GOV/05974028/ss1", 42, root)
    assert document == (
        b'{"node":"DE-NRW/GOV/05974028/ss1","root_hash":"' + root.hex().encode() + b'",'
        b'"tree_size":42,"type":"gateway-tree-head/v1"}'
    )
    parsed = parse_tree_head_document(document)
    assert (parsed.node, parsed.tree_size, parsed.root_hash) == (
        "DE-NRW/GOV/05974028/ss1",
        42,
        root,
    )
    for bad in (
        document.replace(b"gateway-tree-head/v1", b"gateway-log-leaf/v1"),
        document.replace(b"42", b"-1"),
        document.replace(root.hex().encode(), root.hex().upper().encode()),
        document.replace(b"{", b"{ ", 1),
        document[:-1] + b',"extra":1}',
    ):
        with pytest.raises(ProofError):
            parse_tree_head_document(bad)


# ---------------------------------------------------------------- leaves in log order


def test_leaves_are_contiguous_in_id_order_and_match_the_entries(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = asyncio.run(
        append_all(path, [[record(), record("response")] for _ in range(20)] + [[record()]])
    )
    stored = rows(path, "SELECT id, leaf_index, leaf_hash FROM message_log ORDER BY id")
    assert [index for _, index, _ in stored] == list(range(41))
    leaves = recomputed_leaves(path)
    assert [bytes(h) for _, _, h in stored if isinstance(h, bytes)] == leaves
    assert log.tree_snapshot().root_hash == tree_hash(leaves)
    ((size, last_id, frontier),) = rows(
        path, "SELECT tree_size, last_entry_id, frontier FROM log_tree_state"
    )
    assert (size, last_id) == (41, stored[-1][0])
    assert isinstance(frontier, bytes)
    assert CompactTree.from_bytes(frontier).root() == tree_hash(leaves)


def test_replays_and_failed_batches_take_no_leaf(tmp_path: Path) -> None:
    path = tmp_path / "log.db"

    async def scenario() -> None:
        async with MessageLog(path, clock=clock) as log:
            await log.append([record()], replay_key=("c", "m1", "t"))
            with pytest.raises(ReplayError):
                await log.append([record()], replay_key=("c", "m1", "t"))
            execute(
                path,
                "CREATE TRIGGER fail BEFORE INSERT ON message_log "
                "WHEN NEW.kind = 'response' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
            )
            with pytest.raises(MessageLogError):
                await log.append([record(), record("response")])
            execute(path, "DROP TRIGGER fail")
            await log.append([record(), record("response")])
            snapshot = log.tree_snapshot()
            assert snapshot.tree_size == 3

    asyncio.run(scenario())
    indexes = [i for (i,) in rows(path, "SELECT leaf_index FROM message_log ORDER BY id")]
    assert indexes == [0, 1, 2]
    assert reopened(path).tree_snapshot().root_hash == tree_hash(recomputed_leaves(path))


def test_frontier_survives_a_restart(log_location: Path | str) -> None:
    path = log_location
    asyncio.run(append_all(path, [[record()] for _ in range(5)]))
    again = asyncio.run(append_all(path, [[record(), record("response")] for _ in range(3)]))
    assert again.tree_snapshot().tree_size == 11
    assert again.tree_snapshot().root_hash == tree_hash(recomputed_leaves(path))


def test_lost_frontier_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "log.db"
    first = asyncio.run(append_all(path, [[record()] for _ in range(7)]))
    root = first.tree_snapshot().root_hash
    execute(path, "UPDATE log_tree_state SET frontier = x'00', tree_size = 3")
    with caplog.at_level(logging.WARNING):
        reopened = MessageLog(path, clock=clock)
    assert "rebuilding" in caplog.text
    assert reopened.tree_snapshot().root_hash == root
    asyncio.run(reopened.close())


def test_an_older_log_gets_its_leaves(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    first = asyncio.run(append_all(path, [[record(), record("response")] for _ in range(4)]))
    root = first.tree_snapshot().root_hash
    # As a log file written before the Merkle tree existed.
    execute(
        path,
        "ALTER TABLE message_log DROP COLUMN leaf_index",
        "ALTER TABLE message_log DROP COLUMN leaf_hash",
        "DROP TABLE log_tree_state",
    )
    again = asyncio.run(append_all(path, [[record()]]))
    assert again.tree_snapshot().tree_size == 9
    indexes = [i for (i,) in rows(path, "SELECT leaf_index FROM message_log ORDER BY id")]
    assert indexes == list(range(9))
    leaves = recomputed_leaves(path)
    assert tree_hash(leaves[:8]) == root
    assert again.tree_snapshot().root_hash == tree_hash(leaves)


def test_entries_from_before_subject_commitments_keep_their_leaves(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    asyncio.run(append_all(path, [[record(), record("response")] for _ in range(3)]))
    # As a log file written before subject commitments (and the tree) existed.
    execute(
        path,
        "ALTER TABLE message_log DROP COLUMN subjects_salt",
        "ALTER TABLE message_log DROP COLUMN subjects_sha256",
        "ALTER TABLE message_log DROP COLUMN leaf_index",
        "ALTER TABLE message_log DROP COLUMN leaf_hash",
        "DROP TABLE log_tree_state",
    )
    upgraded = asyncio.run(append_all(path, [[record()]]))  # rebuilds: version 1 leaves
    stored = rows(path, "SELECT leaf_hash FROM message_log ORDER BY id")
    leaves = [h for (h,) in stored if isinstance(h, bytes)]
    assert len(leaves) == len(stored) == 7
    old = read_entries(path)[:6]
    assert all(e.subjects_salt is None and e.subjects_sha256 is None for e in old)
    assert read_entries(path)[6].subjects_sha256 is not None  # the new entry: version 2
    assert leaves == recomputed_leaves(path)
    assert b'"type":"gateway-log-leaf/v1"' in entry_leaf(
        LoggedEntry(*[getattr(old[0], f) for f in LEAF_FIELDS])
    )
    # A restart with a lost frontier rehashes both kinds and accepts them.
    execute(path, "DELETE FROM log_tree_state")
    again = reopened(path)
    assert again.tree_snapshot().root_hash == upgraded.tree_snapshot().root_hash
    assert again.tree_snapshot().root_hash == tree_hash(leaves)
    # Passing a new entry off as an old one (dropping its commitment) is refused.
    execute(
        path,
        "UPDATE message_log SET subjects_salt = NULL, subjects_sha256 = NULL WHERE id = 7",
        "DELETE FROM log_tree_state",
    )
    with pytest.raises(MessageLogError, match="no longer matches its leaf hash"):
        reopened(path)


LEAF_FIELDS = (
    "role",
    "kind",
    "message_id",
    "xroad_id",
    "client",
    "service",
    "created",
    "logged_at",
    "header",
    "body",
    "signature",
    "cert_ref",
    "ocsp_ref",
)


def test_an_altered_entry_stops_a_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    asyncio.run(append_all(path, [[record()] for _ in range(3)]))
    execute(
        path,
        "UPDATE message_log SET body = x'01' WHERE id = 2",
        "DELETE FROM log_tree_state",
    )
    with pytest.raises(MessageLogError, match="entry 2 no longer matches its leaf hash"):
        MessageLog(path, clock=clock)


# ---------------------------------------------------------------- tree heads


def head_of(log: MessageLog, **changes: object) -> TreeHeadRecord:
    snapshot = log.tree_snapshot()
    fields: dict[str, object] = {
        "tree_size": snapshot.tree_size,
        "root_hash": snapshot.root_hash,
        "last_entry_id": snapshot.last_entry_id,
        "document": tree_head_document("n", snapshot.tree_size, snapshot.root_hash),
        "gen_time": NOW,
        "token": b"token",
        "tsa_name": "TSA",
        "tsa_cert_der": b"cert",
    }
    fields.update(changes)
    return TreeHeadRecord(**fields)  # type: ignore[arg-type]


def test_tree_heads_must_describe_this_log_and_grow(log_location: Path | str) -> None:
    path = log_location

    async def scenario() -> None:
        async with MessageLog(path, clock=clock) as log:
            await log.append([record(), record()])
            good = head_of(log)
            with pytest.raises(MessageLogError, match="not a snapshot"):
                await log.append_tree_head(head_of(log, root_hash=b"\x00" * 32))
            with pytest.raises(MessageLogError, match="not a snapshot"):
                await log.append_tree_head(head_of(log, tree_size=5))
            await log.append_tree_head(good)
            backlog = log.backlog()
            assert (backlog.stamped_size, backlog.pending, backlog.oldest_pending) == (2, 0, None)
            assert backlog.last_stamp == NOW
            with pytest.raises(MessageLogError, match="does not extend"):
                await log.append_tree_head(good)
            await log.append([record()])
            backlog = log.backlog()
            assert backlog.pending == 1
            assert backlog.oldest_pending == datetime(2025, 6, 1, 8, 0, 0, 123000, tzinfo=UTC)

    asyncio.run(scenario())
    assert [(h.tree_size, h.tsa_name, h.gen_time) for h in open_store(path).tree_heads()] == [
        (2, "TSA", "2025-06-01T08:00:00.123456Z")
    ]
    # Reopened: the timestamping state is read back from the file.
    backlog = reopened(path).backlog()
    assert (backlog.tree_size, backlog.stamped_size, backlog.pending) == (3, 2, 1)
