"""Personal data sealed at rest: the data key, the log's sealed rows on both backends,
an older plaintext log that keeps working, and audit bundles sealed to recipients.

The checks on the stored bytes read the database file (and its WAL) or the raw rows
directly: nothing of a body, a data subject, a user id or a case number may be there.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.audit.archive import ArchiveError, archive_before, seal_bundle_file
from gateway.audit.bundle import BundleFormatError
from gateway.audit.export import Selection, export_bundle
from gateway.audit.parallel import verify_file
from gateway.cli import main
from gateway.core.atrest import AtRestError, DataKey, is_subject_tag
from gateway.core.ids import ServiceId
from gateway.core.logtree import entry_leaf
from gateway.core.merkle import leaf_hash
from gateway.keys.datakey import DataKeyError, create_data_key, load_data_key, read_passphrase
from gateway.keys.recipients import (
    load_recipient_key,
    load_recipient_public_key,
    write_recipient_key,
)
from gateway.messagelog import LogStoreError, MessageLog, is_database_url, open_store
from gateway.messagelog.tracker import Tracker
from gateway.sandbox.bench.audit import SERVICE, START, SUBJECT, SyntheticLog, build_log
from tests.unit.test_data_tracker import exchange, request_header

KEY = DataKey(bytes(range(32)))
OTHER_KEY = DataKey(bytes(32))
BODY = b'{"familienname":"Tannenbaum-Sealtest","vornamen":"Anna"}'
USER = "clerk-sealtest-4711"
ISSUE = "GEW-SEALTEST-0815"
SECRETS = (b"Tannenbaum-Sealtest", SUBJECT.encode(), USER.encode(), ISSUE.encode())
PROVIDER = ServiceId.parse(SERVICE).provider


def sealed_log(tmp_path: Path, location: Path | str, key: DataKey | None = KEY) -> SyntheticLog:
    """Six signed, timestamped reads of ``SUBJECT`` with ``BODY``, sealed under ``key``."""
    return build_log(
        tmp_path / "log",
        12,
        head_every=4,
        body=BODY,
        user_id=USER,
        issue=ISSUE,
        data_key=key,
        database_url=str(location) if is_database_url(location) else None,
    )


def location_of(log: SyntheticLog) -> Path | str:
    return log.database_url or log.db


def stored_bytes(location: Path | str) -> bytes:
    """Every byte the log holds of exchanges and subjects: the SQLite file and its WAL,
    or the raw columns of the PostgreSQL tables."""
    if not is_database_url(location):
        path = Path(location)
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    with psycopg.connect(str(location)) as conn:
        rows = conn.execute(
            "SELECT header, body FROM message_log UNION ALL"
            " SELECT convert_to(subject, 'UTF8'), coalesce(sealed, ''::bytea) FROM data_subject"
            " UNION ALL SELECT convert_to(path || coalesce(user_id, '') || coalesce(issue, ''),"
            " 'UTF8'), ''::bytea FROM data_subject_read"
        ).fetchall()
    return b"".join(bytes(a) + bytes(b) for a, b in rows)


# ---------------------------------------------------------------------- the key


def test_a_sealed_value_opens_only_under_its_key_and_purpose() -> None:
    sealed = KEY.seal(BODY, "message_log.body")
    assert BODY not in sealed and KEY.open(sealed, "message_log.body") == BODY
    assert KEY.seal(BODY, "message_log.body") != sealed  # a fresh nonce each time
    with pytest.raises(AtRestError, match=f"does not open under data key {OTHER_KEY.key_id}"):
        OTHER_KEY.open(sealed, "message_log.body")
    with pytest.raises(AtRestError):
        KEY.open(sealed, "message_log.header")  # a body is not a header
    with pytest.raises(AtRestError):
        KEY.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), "message_log.body")


def test_subject_tags_are_keyed_and_never_an_identifier() -> None:
    tag = KEY.subject_tag(SUBJECT)
    assert tag == KEY.subject_tag(SUBJECT) and is_subject_tag(tag)
    assert SUBJECT not in tag and tag != OTHER_KEY.subject_tag(SUBJECT)
    assert not is_subject_tag(SUBJECT)


def test_the_data_key_file_is_wrapped_under_its_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "data.key"
    key = create_data_key(path, b"correct horse")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_data_key(path, b"correct horse").key_id == key.key_id
    sealed = key.seal(b"x", "p")
    assert load_data_key(path, b"correct horse").open(sealed, "p") == b"x"
    with pytest.raises(DataKeyError, match="wrong passphrase"):
        load_data_key(path, b"wrong horse")
    with pytest.raises(DataKeyError, match="never overwritten"):
        create_data_key(path, b"correct horse")
    (tmp_path / "junk").write_bytes(b"{}")
    with pytest.raises(DataKeyError, match="not a data key file"):
        load_data_key(tmp_path / "junk", b"x")
    passphrase = tmp_path / "pass"
    passphrase.write_text("from a file\n")
    # A passphrase file others may read is refused, as for the key files' passphrase.
    with pytest.raises(DataKeyError, match="chmod 600"):
        read_passphrase(passphrase)
    passphrase.chmod(0o600)
    assert read_passphrase(passphrase) == b"from a file"


# ---------------------------------------------------------------------- the sealed log


def test_a_sealed_log_holds_no_personal_data_and_answers_with_the_key(
    tmp_path: Path, log_location: Path | str
) -> None:
    log = sealed_log(tmp_path, log_location)
    location = location_of(log)
    raw = stored_bytes(location)
    for secret in SECRETS:
        assert secret not in raw, secret
    store = open_store(location, KEY)
    entries = [e for e in store.entries() if e.kind != "admin"]
    assert len(entries) == 12
    assert [e.body for e in entries] == [b"", BODY] * 6  # a GET's request has no body
    assert all(USER.encode() in e.header for e in entries if e.kind == "request")
    # The leaves are over the plaintext: recomputed from the opened rows they match.
    assert all(leaf_hash(entry_leaf(e.leaf_entry())) == e.leaf_hash for e in entries)
    usage = Tracker(store, []).find_usage(PROVIDER, SUBJECT)
    assert len(usage) == 6
    assert {(u.user_id, u.issue, u.status) for u in usage} == {(USER, ISSUE, 200)}
    assert store.data_subjects() == {e.id: [SUBJECT] for e in entries if e.kind == "response"}
    assert set(store.data_subject_reads() or {}) == {u for u in store.data_subjects()}
    assert {(d.user_id, d.issue) for d in (store.data_subject_reads() or {}).values()} == {
        (USER, ISSUE)
    }
    # Without the key, or with another one: an error that says so, never ciphertext.
    with pytest.raises(LogStoreError, match="sealed at rest"):
        open_store(location).entries()
    with pytest.raises(LogStoreError, match="sealed at rest"):
        Tracker(open_store(location), []).find_usage(PROVIDER, SUBJECT)
    with pytest.raises(LogStoreError, match="does not open under data key"):
        open_store(location, OTHER_KEY).entries()


def test_a_plaintext_log_opens_with_a_key_and_mixes_old_and_new_rows(
    tmp_path: Path, log_location: Path | str
) -> None:
    log = sealed_log(tmp_path, log_location, key=None)
    location = location_of(log)
    assert b"Tannenbaum-Sealtest" in stored_bytes(location)
    if not is_database_url(location):
        # A file from before sealing existed: it lacks the columns, and reads as it is.
        with sqlite3.connect(location) as conn:
            conn.execute("ALTER TABLE message_log DROP COLUMN sealed")
            conn.execute("ALTER TABLE data_subject DROP COLUMN sealed")
        assert len(open_store(location).entries()) == 12
        assert len(Tracker(open_store(location), []).find_usage(PROVIDER, SUBJECT)) == 6
    new = request_header(user_id="clerk-new-0001", issue="GEW-NEW-0001")

    async def append_sealed() -> None:
        exchange_id = request_header(user_id="clerk-new-0001", issue="GEW-NEW-0001")
        async with MessageLog(location, clock=lambda: START + timedelta(days=1), data_key=KEY) as w:
            await w.append(exchange(exchange_id, (SUBJECT,)))

    asyncio.run(append_sealed())
    assert b"clerk-new-0001" not in stored_bytes(location)
    store = open_store(location, KEY)
    entries = store.entries()
    assert len(entries) == 14
    assert all(leaf_hash(entry_leaf(e.leaf_entry())) == e.leaf_hash for e in entries)
    assert b"clerk-new-0001" in entries[-2].header and entries[1].body == BODY
    providers = {PROVIDER, new.service.provider}

    def readers() -> list[str]:
        tracker = Tracker(open_store(location, KEY), [])
        return sorted(u.user_id or "" for p in providers for u in tracker.find_usage(p, SUBJECT))

    assert readers() == sorted(["clerk-new-0001"] + [USER] * 6)
    # A second sealed append after a restart: the writer checks its tree against the
    # mixed rows again, and a new exchange is found beside the old ones.
    asyncio.run(append_sealed())
    assert readers() == sorted(["clerk-new-0001"] * 2 + [USER] * 6)


# ---------------------------------------------------------------------- sealed bundles


def test_an_exported_bundle_sealed_to_a_recipient_verifies_with_its_key(
    tmp_path: Path, log_location: Path | str
) -> None:
    log = sealed_log(tmp_path, log_location)
    store = open_store(location_of(log), KEY)
    write_recipient_key(tmp_path / "archivar.key", tmp_path / "archivar.pub")
    write_recipient_key(tmp_path / "other.key", tmp_path / "other.pub")
    recipient = load_recipient_public_key(tmp_path / "archivar.pub")
    out = tmp_path / "bundle.sealed"
    result = export_bundle(
        store, out, Selection(all=True), now=START + timedelta(days=1), recipients=[recipient]
    )
    assert result.entries == 12
    data = out.read_bytes()
    for secret in SECRETS:
        assert secret not in data, secret
    plain = tmp_path / "bundle.jsonl"
    export_bundle(store, plain, Selection(all=True), now=START + timedelta(days=1))
    key = load_recipient_key(tmp_path / "archivar.key")
    assert verify_file(out, log.anchor, decrypt_key=key) == verify_file(plain, log.anchor)
    with pytest.raises(BundleFormatError, match="sealed: give a recipient's --decrypt-key"):
        verify_file(out, log.anchor)
    with pytest.raises(BundleFormatError, match="not one of its recipients"):
        verify_file(out, log.anchor, decrypt_key=load_recipient_key(tmp_path / "other.key"))
    # A bundle already on disk (a retention pass's) is sealed in place to the same effect.
    seal_bundle_file(plain, [recipient])
    assert SUBJECT.encode() not in plain.read_bytes()
    assert verify_file(plain, log.anchor, decrypt_key=key) == verify_file(
        out, log.anchor, decrypt_key=key
    )
    damaged = tmp_path / "damaged"
    damaged.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(BundleFormatError, match="altered after sealing"):
        verify_file(damaged, log.anchor, decrypt_key=key)


def test_a_sealed_archive_prunes_and_the_tracker_still_answers(tmp_path: Path) -> None:
    log = sealed_log(tmp_path, tmp_path / "unused")
    store = open_store(log.db, KEY)
    write_recipient_key(tmp_path / "archivar.key", tmp_path / "archivar.pub")
    recipient = load_recipient_public_key(tmp_path / "archivar.pub")
    key = load_recipient_key(tmp_path / "archivar.key")
    cut = START + timedelta(days=1)
    with pytest.raises(ArchiveError, match="decryption key"):
        archive_before(
            store, cut, tmp_path / "a", now=cut, anchor=log.anchor, recipients=[recipient]
        )
    result = archive_before(
        store,
        cut,
        tmp_path / "archive.sealed",
        now=cut,
        anchor=log.anchor,
        recipients=[recipient],
        decrypt_key=key,
    )
    assert result.entries == 12 and result.verified
    assert SUBJECT.encode() not in (tmp_path / "archive.sealed").read_bytes()
    usage = Tracker(store, []).find_usage(PROVIDER, SUBJECT)
    assert [(u.archived, u.user_id, u.issue) for u in usage] == [(True, USER, ISSUE)] * 6
    for secret in SECRETS:
        assert secret not in stored_bytes(log.db), secret


# ---------------------------------------------------------------------- the commands


def test_the_commands_read_a_sealed_log_with_the_data_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_DATA_KEY_PASSPHRASE", "node passphrase")
    key_file = tmp_path / "data.key"
    main(["node", "data-key", "--out", str(key_file)])
    key = load_data_key(key_file, b"node passphrase")
    log = sealed_log(tmp_path, tmp_path / "unused", key=key)
    capsys.readouterr()
    main(["log", "show", "--db", str(log.db), "--data-key", str(key_file)])
    shown = capsys.readouterr().out
    assert USER in shown and ISSUE in shown
    with pytest.raises(SystemExit) as exit_status:
        main(["log", "show", "--db", str(log.db)])
    assert exit_status.value.code == 2
    assert "sealed at rest" in capsys.readouterr().err
    monkeypatch.setenv("GATEWAY_DATA_KEY_PASSPHRASE", "not it")
    with pytest.raises(SystemExit):
        main(["log", "show", "--db", str(log.db), "--data-key", str(key_file)])
    assert "wrong passphrase" in capsys.readouterr().err
    monkeypatch.setenv("GATEWAY_DATA_KEY_PASSPHRASE", "node passphrase")
    tsa = tmp_path / "tsa.pem"
    tsa.write_bytes(log.tsa_cert.public_bytes(Encoding.PEM))
    prove = ["log", "prove", "--db", str(log.db), "--id", "2", "--tsa-cert", str(tsa)]
    main([*prove, "--data-key", str(key_file)])
    assert "entry 2 existed at" in capsys.readouterr().out
    main(["audit", "recipient-key", "--out", str(tmp_path / "auditor")])
    bundle = tmp_path / "bundle.sealed"
    export = ["audit", "export", "--db", str(log.db), "--out", str(bundle), "--all"]
    main([*export, "--data-key", str(key_file), "--encrypt-to", str(tmp_path / "auditor.pub")])
    assert SUBJECT.encode() not in bundle.read_bytes()
    capsys.readouterr()
    verify = ["audit", "verify", str(bundle), "--anchor", str(log.anchor_path)]
    main([*verify, "--decrypt-key", str(tmp_path / "auditor.key")])
    assert "12" in capsys.readouterr().out
    assert os.environ["GATEWAY_DATA_KEY_PASSPHRASE"] == "node passphrase"


def test_log_encrypt_seals_an_older_log_in_place_and_its_proofs_stay(
    tmp_path: Path, log_location: Path | str
) -> None:
    log = sealed_log(tmp_path, log_location, key=None)
    location = location_of(log)
    plain = tmp_path / "before.jsonl"
    export_bundle(open_store(location), plain, Selection(all=True), now=START + timedelta(days=1))
    before = [(e.id, e.leaf_index, e.leaf_hash) for e in open_store(location).entries()]
    with pytest.raises(LogStoreError, match="needs the node's data key"):
        open_store(location).seal_rows()
    assert open_store(location, KEY).seal_rows() == 12
    assert open_store(location, KEY).seal_rows() == 0  # nothing left in the clear
    raw = stored_bytes(location)
    for secret in SECRETS:
        assert secret not in raw, secret
    store = open_store(location, KEY)
    assert [(e.id, e.leaf_index, e.leaf_hash) for e in store.entries()] == before
    assert len(Tracker(store, []).find_usage(PROVIDER, SUBJECT)) == 6
    after = tmp_path / "after.jsonl"
    export_bundle(store, after, Selection(all=True), now=START + timedelta(days=1))
    assert verify_file(after, log.anchor) == verify_file(plain, log.anchor)

    async def reopen() -> None:  # the writer's start-up check of the tree still passes
        async with MessageLog(location, clock=lambda: START + timedelta(days=2), data_key=KEY):
            pass

    asyncio.run(reopen())


def test_a_retention_pass_seals_its_bundle_to_the_archive_recipients(
    tmp_path: Path, log_location: Path | str
) -> None:
    from prometheus_client import CollectorRegistry

    from gateway.node.config import ConfigError, RetentionSection
    from gateway.node.retention import RetentionJob, archive_sealer

    log = sealed_log(tmp_path, log_location)
    write_recipient_key(tmp_path / "archivar.key", tmp_path / "archivar.pub")
    with pytest.raises(ConfigError, match="archive_recipients"):
        archive_sealer([tmp_path / "archivar.key"])  # a private key is no recipient
    assert archive_sealer([]) is None
    later = START + timedelta(days=60)

    class Fixed:
        def now(self) -> datetime:
            return later

    store = open_store(location_of(log), KEY)
    job = RetentionJob(
        "ss1",
        Fixed(),
        store,
        RetentionSection(archive_every_hours=6),
        tmp_path / "archive",
        CollectorRegistry(),
        seal=archive_sealer([tmp_path / "archivar.pub"]),
    )
    done = job.run_once(later)
    assert done.bundle is not None and done.archived == 12
    data = done.bundle.read_bytes()
    for secret in SECRETS:
        assert secret not in data, secret
    key = load_recipient_key(tmp_path / "archivar.key")
    assert verify_file(done.bundle, log.anchor, decrypt_key=key).entries == 12
    usage = Tracker(store, []).find_usage(PROVIDER, SUBJECT)
    assert [(u.archived, u.user_id) for u in usage] == [(True, USER)] * 6
