"""Admin changes as their own signed leaves of the node's message log, with its settings.

Written through the node's own ``MessageLog`` (real SQLite, real group commit, real
Merkle tree), signed by a signing key a fresh CA certified; read back through the
store, next to exchanges that must not notice them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from cryptography import x509

from gateway.core.adminrecord import AdminRecord
from gateway.core.envelope import EnvelopeError
from gateway.core.ids import MemberId
from gateway.core.jws import SignatureVerifier, Signer
from gateway.core.logtree import entry_leaf
from gateway.core.merkle import leaf_hash, tree_hash, verify_inclusion
from gateway.core.roles import ApiRole, key_actor
from gateway.messagelog import (
    Kind,
    LogRecord,
    LogStoreError,
    MessageLog,
    MessageLogError,
    OpRecord,
    Role,
    SettingsConflict,
    SqliteLogStore,
    StoredStatus,
    inclusion,
    open_store,
    watch_settings,
)
from gateway.pki.ca import create_root_ca, issue_certificate, make_csr
from gateway.pki.keys import generate_key
from gateway.pki.profiles import CertKind
from tests.pg import PgCluster

NOW = datetime(2026, 5, 4, 9, 30, 0, 123000, tzinfo=UTC)
OWNER = MemberId.parse("DE-NRW/GOV/05974028")
CLIENT = "DE-NRW/GOV/05974040/gewerbeamt"
SERVICE = "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft"
OCSP_DER = b"0\x82\x01\x00a kept OCSP response"


@pytest.fixture(scope="module")
def pki() -> tuple[Signer, x509.Certificate]:
    ca_key = generate_key()
    ca = create_root_ca("Admin Log CA", ca_key, NOW - timedelta(days=2), days=3650)
    key = generate_key()
    cert = issue_certificate(
        make_csr(key, CertKind.SIGN, OWNER), CertKind.SIGN, ca_key, ca, NOW - timedelta(days=1)
    )
    return Signer(OWNER, key, [cert]), ca


@pytest.fixture
def signer(pki: tuple[Signer, x509.Certificate]) -> Signer:
    return pki[0]


def change(
    action: str = "access.grant", *, before: object = None, after: object = None
) -> AdminRecord:
    return AdminRecord(
        at=NOW,
        actor=key_actor("a1b2c3d4e5f6", "anna"),
        role=ApiRole.SERVICE_ADMINISTRATOR.value,
        action=action,
        target=SERVICE,
        before=before,
        after=after if after is not None else {"subjects": [CLIENT]},
    )


def exchange(kind: Kind, message_id: str, subjects: tuple[str, ...] = ()) -> LogRecord:
    return LogRecord(
        role=Role.PROVIDER,
        kind=kind,
        message_id=message_id,
        xroad_id="x-" + message_id[:8],
        client=CLIENT,
        service=SERVICE,
        created="2026-05-04T09:30:00.000Z",
        header=b'{"type":"' + kind.value.encode() + b'"}',
        body=b"{}",
        signature="sig",
        cert_ref="",
        subjects=subjects,
    )


def op_record(message_id: str) -> OpRecord:
    return OpRecord(
        "provider", "DE-NRW/GOV/05974028/ss1", "", CLIENT, SERVICE, message_id, "x",
        "2026-05-04T09:30:00.000Z", "2026-05-04T09:30:00.100Z", 10, 20, 200, True, "",
    )  # fmt: skip


def raw(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(sql, params))


def test_an_admin_change_is_durable_signed_and_read_back(
    tmp_path: Path, pki: tuple[Signer, x509.Certificate]
) -> None:
    signer, ca = pki
    path = tmp_path / "messagelog.sqlite"
    record = change(after={"subjects": [CLIENT]})

    async def scenario() -> None:
        async with MessageLog(path, clock=lambda: NOW) as log:
            receipt = await log.append_admin(record, signer, b'{"services":{}}')
            # Still open: the entry and the settings row must already be on disk.
            assert raw(path, "SELECT id, role, kind FROM message_log") == [
                (receipt.entry_id, "node", "admin")
            ]
            assert raw(path, "SELECT version, entry_id FROM node_settings") == [
                (receipt.settings_version, receipt.entry_id)
            ]
            assert (receipt.leaf_index, receipt.settings_version) == (0, 1)
            assert log.tree_snapshot().tree_size == 1

    asyncio.run(scenario())
    store = SqliteLogStore(path)
    (stored,) = store.admin_records()
    assert (stored.entry_id, stored.leaf_index, stored.logged_at) == (
        1,
        0,
        "2026-05-04T09:30:00.123Z",
    )
    assert stored.record == record and stored.cert_ref == signer.cert_ref
    settings = store.latest_settings()
    assert settings is not None
    assert (settings.version, settings.document, settings.entry_id) == (1, b'{"services":{}}', 1)
    assert settings.changed_at == stored.logged_at
    # The entry is signed like a message header: a detached JWS over the record's bytes.
    entry = store.entry(1)
    assert entry is not None
    assert entry.header == record.to_bytes()
    assert (entry.client, entry.service, entry.xroad_id) == (record.actor, SERVICE, "access.grant")
    assert entry.created == record.created and entry.body == b""
    verified = SignatureVerifier([ca]).verify(entry.signature, entry.header, NOW)
    assert verified.signer == OWNER and verified.cert_ref == entry.cert_ref
    with pytest.raises(EnvelopeError):
        SignatureVerifier([ca]).verify(entry.signature, entry.header + b" ", NOW)


def test_settings_versions_grow_and_a_change_without_settings_keeps_them(
    log_location: Path | str, signer: Signer
) -> None:
    path = log_location

    async def scenario() -> list[tuple[int, int, int | None]]:
        async with MessageLog(path, clock=lambda: NOW) as log:
            assert log.store.latest_settings() is None
            receipts = [
                await log.append_admin(change(), signer, b"v1"),
                await log.append_admin(change("maintenance.enter"), signer),
                await log.append_admin(change("access.revoke"), signer, b"v2"),
            ]
        return [(r.entry_id, r.leaf_index, r.settings_version) for r in receipts]

    assert asyncio.run(scenario()) == [(1, 0, 1), (2, 1, None), (3, 2, 2)]
    settings = open_store(path).latest_settings()
    assert settings is not None and (settings.version, settings.document) == (2, b"v2")
    assert settings.entry_id == 3


def test_a_version_derived_from_an_old_one_is_refused_and_writes_nothing(
    log_location: Path | str, signer: Signer
) -> None:
    """Two processes of a cluster changed version 1 at once: the database stores the
    first as version 2 and refuses the second, which would have undone the first."""
    path = log_location

    async def scenario() -> list[int | None]:
        async with MessageLog(path, clock=lambda: NOW) as log:
            first = await log.append_admin(change(), signer, b"v1", base=0)
            won = await log.append_admin(change(), signer, b"v1+grant", base=1)
            with pytest.raises(SettingsConflict, match="version 1 is no longer the newest"):
                await log.append_admin(change("access.revoke"), signer, b"v1-other", base=1)
            assert log.tree_snapshot().tree_size == 2  # no leaf for the refused one
            # Taken up again on top of version 2, it is version 3: no gap, no loss.
            again = await log.append_admin(change("access.revoke"), signer, b"both", base=2)
        return [first.settings_version, won.settings_version, again.settings_version]

    assert asyncio.run(scenario()) == [1, 2, 3]
    store = open_store(path)
    assert [r.record.action for r in store.admin_records()] == [
        "access.grant",
        "access.grant",
        "access.revoke",
    ]
    settings = store.latest_settings()
    assert settings is not None and (settings.version, settings.document) == (3, b"both")


def test_every_process_hears_of_a_new_version_even_when_its_notification_is_lost(
    pg_cluster: PgCluster, signer: Signer
) -> None:
    """The watch of another process of the cluster: the version a commit announces, and
    one stored while its listening connection was cut, which only the check finds."""
    url = pg_cluster.fresh_database()
    heard: list[int] = []
    news = threading.Condition()

    def on_version(version: int) -> None:
        with news:
            heard.append(version)
            news.notify_all()

    def until(version: int) -> None:
        with news:
            assert news.wait_for(lambda: version in heard, timeout=30), heard

    def record(document: bytes, base: int) -> None:
        async def write() -> None:
            async with MessageLog(url, clock=lambda: NOW) as log:
                await log.append_admin(change(), signer, document, base=base)

        asyncio.run(write())

    def cut_listener() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            cut = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        assert cut == [(True,)]

    record(b"v1", 0)
    slow = watch_settings(url, 3600, on_version)  # checks once at start, then hourly
    assert slow is not None
    slow.start()
    try:
        until(1)
        record(b"v2", 1)  # announced at commit: heard long before the next check
        until(2)
    finally:
        slow.stop()
    assert heard == [1, 2]

    heard.clear()
    quick = watch_settings(url, 0.2, on_version)
    assert quick is not None
    quick.start()
    try:
        until(2)
        cut_listener()
        record(b"v3", 2)  # its notification goes nowhere: nobody listens just now
        until(3)
    finally:
        quick.stop()
    assert heard == [2, 3]
    # A SQLite log has one process, which records every version itself: nothing to watch.
    assert watch_settings(Path("messagelog.sqlite"), 1, on_version) is None


def test_the_trail_reads_since_a_time_and_up_to_a_limit(
    log_location: Path | str, signer: Signer
) -> None:
    path = log_location
    clock = [NOW]

    async def scenario() -> None:
        async with MessageLog(path, clock=lambda: clock[0]) as log:
            for minute, action in enumerate(("service.add", "access.grant", "access.revoke")):
                clock[0] = NOW + timedelta(minutes=minute)
                await log.append_admin(change(action), signer)
                await log.append([exchange(Kind.REQUEST, str(uuid.uuid4()))])

    asyncio.run(scenario())
    store = open_store(path)
    assert [r.record.action for r in store.admin_records()] == [
        "service.add",
        "access.grant",
        "access.revoke",
    ]
    since = store.admin_records(since="2026-05-04T09:31:00.123Z")
    assert [(r.record.action, r.leaf_index) for r in since] == [
        ("access.grant", 2),
        ("access.revoke", 4),
    ]
    assert [r.record.action for r in store.admin_records(limit=1)] == ["service.add"]


def test_a_damaged_stored_record_fails_the_read_naming_the_entry(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "messagelog.sqlite"

    async def scenario() -> None:
        async with MessageLog(path, clock=lambda: NOW) as log:
            await log.append_admin(change(), signer)

    asyncio.run(scenario())
    raw(path, "UPDATE message_log SET header = CAST('{' AS BLOB) WHERE id = 1")
    with pytest.raises(LogStoreError, match="admin entry 1"):
        SqliteLogStore(path).admin_records()


def test_exchanges_do_not_notice_admin_leaves(log_location: Path | str, signer: Signer) -> None:
    path = log_location
    ids = [str(uuid.uuid4()) for _ in range(3)]

    async def scenario() -> list[int]:
        admin_leaves = []
        async with MessageLog(path, clock=lambda: NOW) as log:
            for message_id in ids:
                await log.append(
                    [
                        exchange(Kind.REQUEST, message_id),
                        exchange(Kind.RESPONSE, message_id, subjects=("52693074139",)),
                    ],
                    operational=[op_record(message_id)],
                )
                receipt = await log.append_admin(change(), signer, b"{}")
                admin_leaves.append(receipt.leaf_index)
            snapshot = log.tree_snapshot()
            assert snapshot.tree_size == 9
        return admin_leaves

    admin_leaves = asyncio.run(scenario())
    assert admin_leaves == [2, 5, 8]
    store = open_store(path)
    # The data tracker sees the reads, the operational records the exchanges, and a
    # party's view of the log (gateway log, the auditor API's client access) holds
    # its exchanges only, though the admin entries name its service as their target.
    assert [row.message_id for row in store.usage("52693074139")] == ids
    assert [r.message_id for r in store.operational_records()] == ids
    for party in (CLIENT, "DE-NRW/GOV/05974028/melderegister"):
        seen = store.entries(party=party)
        assert len(seen) == 6 and {e.kind for e in seen} == {"request", "response"}
    assert [e.kind for e in store.entries()].count(Kind.ADMIN) == 3
    # Inclusion proofs of an exchange's entry and of an admin entry, recomputed from the
    # stored bytes, lead to the same root.
    root = tree_hash([e.leaf_hash for e in store.entries() if e.leaf_hash is not None])
    for entry in (store.entries(message_id=ids[1])[1], store.entry(6)):
        assert entry is not None and entry.leaf_index is not None
        leaf, path_ = inclusion(store, entry.leaf_index, 9)
        assert leaf == leaf_hash(entry_leaf(entry.leaf_entry()))
        verify_inclusion(leaf, entry.leaf_index, 9, path_, root)
    sixth = store.entry(6)
    assert sixth is not None and sixth.kind == "admin"


def test_the_entry_names_the_ocsp_response_the_node_kept(
    log_location: Path | str, signer: Signer
) -> None:
    path = log_location

    async def scenario() -> None:
        async with MessageLog(path, clock=lambda: NOW) as log:
            await log.append_admin(change(), signer)
            await log.keep_own_status(
                signer.cert_ref, StoredStatus(signer.cert_ref, OCSP_DER, NOW, "http://ocsp")
            )
            await log.append_admin(change("access.revoke"), signer)

    asyncio.run(scenario())
    refs = [e.ocsp_ref for e in open_store(path).entries()]
    assert refs == ["", hashlib.sha256(OCSP_DER).hexdigest()]


def test_entry_and_settings_commit_together_or_not_at_all(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "messagelog.sqlite"

    async def scenario() -> None:
        async with MessageLog(path, clock=lambda: NOW) as log:
            await log.append_admin(change(), signer, b"v1")
            raw(
                path,
                "CREATE TRIGGER refuse BEFORE INSERT ON node_settings"
                " BEGIN SELECT RAISE(ABORT, 'disk says no'); END",
            )
            with pytest.raises(MessageLogError, match="disk says no"):
                await log.append_admin(change("access.revoke"), signer, b"v2")
            # Nothing of it stayed: no entry, no leaf, no settings row.
            assert raw(path, "SELECT COUNT(*) FROM message_log") == [(1,)]
            assert log.tree_snapshot().tree_size == 1
            raw(path, "DROP TRIGGER refuse")
            receipt = await log.append_admin(change("access.revoke"), signer, b"v2")
            assert (receipt.entry_id, receipt.leaf_index, receipt.settings_version) == (2, 1, 2)

    asyncio.run(scenario())


def test_append_refuses_admin_entries(tmp_path: Path) -> None:
    forged = dataclasses.replace(exchange(Kind.REQUEST, "m"), role=Role.NODE, kind=Kind.ADMIN)

    async def scenario() -> None:
        async with MessageLog(tmp_path / "log.sqlite", clock=lambda: NOW) as log:
            with pytest.raises(ValueError, match="append_admin"):
                await log.append([forged])

    asyncio.run(scenario())


def test_a_log_file_from_before_admin_entries_opens_and_takes_them(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "messagelog.sqlite"

    async def write_old() -> None:
        async with MessageLog(path, clock=lambda: NOW) as log:
            await log.append([exchange(Kind.REQUEST, "m-1"), exchange(Kind.RESPONSE, "m-1")])
            await log.append([exchange(Kind.REQUEST, "m-2")])

    asyncio.run(write_old())
    # Make it the file an older release wrote: its CHECK constraints know two roles and
    # two kinds, and the AUTOINCREMENT counter is past the last row (an id was used).
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute(
            "UPDATE sqlite_master SET sql = replace(replace(sql, ', ''node''', ''),"
            " ', ''admin''', '') WHERE name = 'message_log'"
        )
        conn.execute("UPDATE sqlite_sequence SET seq = 7 WHERE name = 'message_log'")
        conn.execute("DROP TABLE node_settings")
    with sqlite3.connect(path) as conn, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute(
            "INSERT INTO message_log (logged_at, role, kind, message_id, xroad_id, client,"
            " service, created, header, body, signature, cert_ref, ocsp_ref, body_omitted)"
            " VALUES ('', 'node', 'admin', '', '', '', '', '', x'', x'', '', '', '', '')"
        )
    before = [(e.id, e.leaf_index, e.leaf_hash) for e in SqliteLogStore(path).entries()]
    assert SqliteLogStore(path).latest_settings() is None

    async def reopen() -> tuple[int, int, int | None]:
        async with MessageLog(path, clock=lambda: NOW) as log:
            receipt = await log.append_admin(change(), signer, b"v1")
            await log.append([exchange(Kind.RESPONSE, "m-2")])
        return receipt.entry_id, receipt.leaf_index, receipt.settings_version

    assert asyncio.run(reopen()) == (8, 3, 1)
    store = SqliteLogStore(path)
    entries = store.entries()
    assert [(e.id, e.leaf_index, e.leaf_hash) for e in entries[:3]] == before
    assert [(e.id, e.leaf_index, e.kind) for e in entries[3:]] == [
        (8, 3, "admin"),
        (9, 4, "response"),
    ]
    assert [r.record for r in store.admin_records()] == [change()]
    # the index on message_id came back with the table
    assert raw(
        path, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'message_log'"
    )
    # and the upgraded file opens again, its tree checking out, and takes more
    assert asyncio.run(reopen()) == (10, 5, 2)


def test_gateway_log_show_lists_admin_entries_beside_exchanges(
    tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    path = tmp_path / "messagelog.sqlite"

    async def scenario() -> None:
        async with MessageLog(path, clock=lambda: NOW) as log:
            await log.append([exchange(Kind.REQUEST, "m-1")])
            await log.append_admin(change(), signer)

    asyncio.run(scenario())
    main(["log", "show", "--db", str(path)])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["role"], r["kind"]) for r in rows] == [("provider", "request"), ("node", "admin")]
    assert rows[1]["header"]["action"] == "access.grant"
    assert rows[1]["client"] == key_actor("a1b2c3d4e5f6", "anna")
