"""Logging modes, the logged body size limit, and archiving with pruning.

The invariant behind all three: whether the log keeps a body, only its digest, or
(after archiving) nothing but the leaf hash, the Merkle tree is the same tree, so every
proof, tree head and audit bundle stays valid.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.audit.archive import archive_before
from gateway.audit.export import Selection, export_bundle
from gateway.audit.parallel import verify_file
from gateway.messagelog import Kind, LogRecord, MessageLog, MessageLogError, Role
from gateway.messagelog.policy import METADATA, SIZE, body_policy, local_subsystem
from gateway.messagelog.proofs import NotProvableError, prove_entry
from gateway.node.config import NodeConfig
from gateway.sandbox.bench.audit import START, SyntheticLog, build_log

ENTRIES = 24
HEAD_EVERY = 6
PROVIDER = "DE-NRW/GOV/05974028/melderegister"


def _rows(db: Path) -> list[tuple[int, bytes, bytes, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return [
            (int(i), bytes(b), bytes(h), str(o), str(d))
            for i, b, h, o, d in conn.execute(
                "SELECT id, CAST(body AS BLOB), CAST(leaf_hash AS BLOB), body_omitted,"
                " body_sha256 FROM message_log ORDER BY id"
            )
        ]
    finally:
        conn.close()


def _reopen(db: Path) -> None:
    """Start a log on the file with its saved frontier dropped: the start-up check then
    rehashes every entry and compares it with the stored leaves and tree heads."""
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM log_tree_state")
    conn.commit()
    conn.close()
    log = MessageLog(db, clock=lambda: START)
    log.start()
    import asyncio

    asyncio.run(log.close())


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> SyntheticLog:
    return build_log(tmp_path_factory.mktemp("full"), ENTRIES, head_every=HEAD_EVERY)


def _record(role: str, body: bytes, client: str = "DE-NRW/GOV/05974040/gewerbeamt") -> LogRecord:
    return LogRecord(
        role=Role(role),
        kind=Kind.REQUEST,
        message_id="m",
        xroad_id="x",
        client=client,
        service=f"{PROVIDER}/einfacheAuskunft",
        created="2025-06-01T08:00:00.000Z",
        header=b"{}",
        body=body,
        signature="s",
        cert_ref="0" * 64,
    )


def test_the_policy_applies_to_this_nodes_party_and_the_size_limit() -> None:
    policy = body_policy(frozenset({PROVIDER}), 10)
    assert policy is not None
    assert local_subsystem(_record("provider", b"x")) == PROVIDER
    assert policy(_record("provider", b"small")) == METADATA
    assert policy(_record("consumer", b"small")) == ""  # the client's node: its own mode
    assert policy(_record("consumer", b"x" * 11)) == SIZE
    assert policy(_record("consumer", b"x" * 10)) == ""
    assert body_policy(frozenset(), None) is None


def test_metadata_mode_keeps_the_same_tree_and_the_bundle_verifies(
    full: SyntheticLog, tmp_path: Path
) -> None:
    minimal = build_log(
        tmp_path / "minimal",
        ENTRIES,
        head_every=HEAD_EVERY,
        body_policy=body_policy(frozenset({PROVIDER}), None),
    )
    rows, full_rows = _rows(minimal.db), _rows(full.db)
    # Requests (GET) have no body; every response body is kept as its digest only.
    assert [(body, omitted) for _, body, _, omitted, _ in rows] == [
        (b"", METADATA if full_body else "") for _, full_body, _, _, _ in full_rows
    ]
    assert [r[4] for r in rows] == [r[4] for r in full_rows]
    _reopen(minimal.db)  # the start-up rehash accepts digest-only entries
    out = tmp_path / "minimal.jsonl"
    export_bundle(minimal.db, out, Selection(all=True), now=START + timedelta(days=1))
    report = verify_file(out, minimal.anchor)
    assert report.entries == ENTRIES
    lines = out.read_bytes().splitlines()
    bodies = [json.loads(line).get("body") for line in lines if b'"type":"entry"' in line]
    assert set(bodies) == {None, ""}, "digest-only bodies are absent, empty ones empty"
    proof, proven = prove_entry(minimal.db, 3, minimal.tsa_cert)
    assert proof.entry.body == b"" and proven.leaf_index == 2


def test_the_leaf_is_the_same_whether_the_body_is_kept_or_not(tmp_path: Path) -> None:
    import asyncio

    records = [_record("provider", b'{"name":"Anna"}'), _record("consumer", b"x" * 50)]

    async def write(db: Path, policy: Callable[[LogRecord], str] | None) -> list[bytes]:
        # Same salts in both logs, so only the body handling could make the leaves differ.
        async with MessageLog(
            db, clock=lambda: START, body_policy=policy, salts=lambda: bytes(16)
        ) as log:
            await log.append(records)
        return [r[2] for r in _rows(db)]

    kept = asyncio.run(write(tmp_path / "kept.sqlite", None))
    dropped = asyncio.run(
        write(tmp_path / "dropped.sqlite", body_policy(frozenset({PROVIDER}), 10))
    )
    assert kept == dropped
    assert [(r[1], r[3]) for r in _rows(tmp_path / "dropped.sqlite")] == [
        (b"", METADATA),
        (b"", SIZE),
    ]


def test_bodies_above_the_limit_are_logged_as_digest_with_a_marker(tmp_path: Path) -> None:
    limited = build_log(
        tmp_path / "limited",
        4,
        head_every=4,
        body=b"x" * 100,
        body_policy=body_policy(frozenset(), 99),
    )
    # Requests (GET) have no body; the 100-byte responses are logged as digests.
    assert [(body, omitted) for _, body, _, omitted, _ in _rows(limited.db)] == [
        (b"", ""),
        (b"", SIZE),
    ] * 2
    out = tmp_path / "limited.jsonl"
    export_bundle(limited.db, out, Selection(all=True), now=START + timedelta(days=1))
    assert verify_file(out, limited.anchor).entries == 4


def test_archiving_prunes_old_entries_and_every_later_proof_still_holds(tmp_path: Path) -> None:
    log = build_log(tmp_path / "log", ENTRIES, head_every=HEAD_EVERY)
    rows = _rows(log.db)
    conn = sqlite3.connect(log.db)
    (cut,) = conn.execute("SELECT logged_at FROM message_log WHERE id = 13").fetchone()
    conn.close()
    before = datetime.fromisoformat(cut.replace("Z", "+00:00"))
    archive = tmp_path / "archive.jsonl"
    result = archive_before(
        log.db, before, archive, now=START + timedelta(days=1), anchor=log.anchor
    )
    assert result.verified and result.first_leaf == 0 and result.entries >= 1
    archived = result.entries
    after = _rows(log.db)
    assert [r[2] for r in after] == [r[2] for r in rows], "leaf hashes are kept"
    assert {r[3] for r in after[:archived]} == {"archived"}
    assert {r[1] for r in after[:archived]} == {b""}
    assert {r[3] for r in after[archived:]} == {""}
    # The archive proves the archived entries on its own.
    assert verify_file(archive, log.anchor).entries == archived
    # The log still starts (rehash from scratch), proves later entries, refuses to
    # prove archived ones from the database, and exports a whole-log bundle that is
    # complete from the first unarchived leaf.
    _reopen(log.db)
    with pytest.raises(NotProvableError, match="archived"):
        prove_entry(log.db, 1, log.tsa_cert)
    proof, _ = prove_entry(log.db, ENTRIES, log.tsa_cert)
    assert proof.leaf_index == ENTRIES - 1
    rest = tmp_path / "rest.jsonl"
    exported = export_bundle(log.db, rest, Selection(all=True), now=START + timedelta(days=1))
    assert exported.archived == archived
    assert f'"archived_before_leaf":{archived}'.encode() in rest.read_bytes()
    assert verify_file(rest, log.anchor).entries == ENTRIES - archived
    # Archiving again before the same date finds nothing new.
    again = archive_before(log.db, before, tmp_path / "again.jsonl", now=START + timedelta(days=1))
    assert again.entries == 0 and not (tmp_path / "again.jsonl").exists()


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("metadata", "UPDATE message_log SET body_sha256 = ? WHERE id = ?"),
        ("metadata", "UPDATE message_log SET body_omitted = '' WHERE id = ?"),
        ("archived", "UPDATE message_log SET leaf_hash = ? WHERE id = ?"),
        ("", "UPDATE message_log SET body_omitted = 'archived' WHERE id = ?"),
    ],
    ids=["digest changed", "marker dropped", "archived leaf changed", "marked archived"],
)
def test_the_start_up_check_catches_tampering_with_the_new_columns(
    tmp_path: Path, where: str, change: str
) -> None:
    log = build_log(
        tmp_path / "log", 8, head_every=4, body_policy=body_policy(frozenset({PROVIDER}), None)
    )
    archive_before(
        log.db,
        START + timedelta(milliseconds=25),
        tmp_path / "a.jsonl",
        now=START + timedelta(days=1),
    )
    conn = sqlite3.connect(log.db)
    (victim,) = conn.execute(
        "SELECT id FROM message_log WHERE body_omitted = ? ORDER BY id DESC LIMIT 1", (where,)
    ).fetchone()
    params = (
        (victim,)
        if change.count("?") == 1
        else (b"\x01" * 32 if "leaf" in change else "0" * 64, victim)
    )
    conn.execute(change, params)
    conn.commit()
    conn.close()
    with pytest.raises(MessageLogError):
        _reopen(log.db)


def test_the_archive_command(tmp_path: Path) -> None:
    log = build_log(tmp_path / "log", 8, head_every=4)
    out = tmp_path / "old.jsonl"

    def archive(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "log",
                "archive",
                "--db",
                str(log.db),
                "--before",
                "2025-06-02T00:00:00Z",
                "--out",
                str(out),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    done = archive("--anchor", str(log.anchor_path))
    assert done.returncode == 0, done.stderr
    assert "archived 8 entries (leaves 0..7)" in done.stdout and "verified" in done.stdout
    assert {r[3] for r in _rows(log.db)} == {"archived"}
    again = archive()
    assert again.returncode != 0 and "never overwritten" in again.stderr


def test_logging_section_of_the_node_configuration() -> None:
    base = {
        "node": {
            "id": "DE-NRW/GOV/05974028/ss1",
            "messagelog": "log.sqlite",
            "auth_cert": "auth.pem",
            "auth_key": "auth.key",
        },
        "signing": [],
        "globalconf": {"anchor": "anchor.json"},
    }
    config = NodeConfig.model_validate(
        {
            **base,
            "logging": {
                "max_body_bytes": 1024,
                "subsystems": [
                    {"id": PROVIDER, "mode": "metadata"},
                    {"id": "DE-NRW/GOV/05974028/gewerbe", "mode": "full"},
                ],
            },
        }
    )
    assert config.logging.metadata_only() == frozenset({PROVIDER})
    assert config.logging.max_body_bytes == 1024
    assert NodeConfig.model_validate(base).logging.max_body_bytes is None
    for bad in ({"id": PROVIDER, "mode": "everything"}, {"id": "not an id"}):
        with pytest.raises(ValidationError):
            NodeConfig.model_validate({**base, "logging": {"subsystems": [bad]}})


def test_time_zone_required() -> None:
    with pytest.raises(ValueError):
        archive_before(Path("x"), datetime(2025, 1, 1), Path("y"), now=datetime.now(UTC))
