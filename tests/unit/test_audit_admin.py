"""Admin records in an audit bundle: exported with the exchanges, verified offline, and
no record can be altered or removed without the verifier naming where.

The log is the bench's real one (``gateway.sandbox.bench.audit.build_log``): entries
really signed, OCSP responses and TSA tokens real, with an admin record signed by the
node owner's key after every few exchanges through ``MessageLog.append_admin``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.audit.bundle import Bundle
from gateway.audit.bundle_read import read_bundle
from gateway.audit.export import ExportError, Selection, export_bundle
from gateway.audit.parallel import verify_file
from gateway.audit.verify import AuditError, AuditFailure, verify_bundle
from gateway.core.adminrecord import AdminRecord
from gateway.core.logtree import entry_leaf, tree_head_document
from gateway.core.merkle import leaf_hash
from gateway.core.roles import ApiRole, key_actor
from gateway.messagelog import MessageLog, SqliteLogStore, TreeHeadRecord
from gateway.sandbox.bench.audit import NODE, SERVICE, START, SyntheticLog, build_log, stamp

EXCHANGE_ENTRIES = 20
ADMIN_EVERY = 5
HEAD_EVERY = 8
ADMIN_ENTRIES = EXCHANGE_ENTRIES // ADMIN_EVERY


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> SyntheticLog:
    return build_log(
        tmp_path_factory.mktemp("adminlog"),
        EXCHANGE_ENTRIES,
        head_every=HEAD_EVERY,
        admin_every=ADMIN_EVERY,
    )


@pytest.fixture(scope="module")
def bundle_file(log: SyntheticLog) -> Path:
    out = log.db.parent / "all.jsonl"
    export_bundle(log.db, out, Selection(all=True), now=START + timedelta(days=1))
    return out


@pytest.fixture(scope="module")
def pristine(bundle_file: Path) -> Bundle:
    with bundle_file.open("rb") as handle:
        return read_bundle(handle)


def refused(bundle: Bundle, log: SyntheticLog) -> AuditError:
    with pytest.raises(AuditError) as caught:
        verify_bundle(bundle, log.anchor)
    return caught.value


def admin_positions(bundle: Bundle) -> list[int]:
    return [i for i, e in enumerate(bundle.entries) if e.kind == "admin"]


def test_admin_records_are_exported_and_verified(pristine: Bundle, log: SyntheticLog) -> None:
    report = verify_bundle(pristine, log.anchor)
    assert report.entries == EXCHANGE_ENTRIES + ADMIN_ENTRIES
    assert report.admin_records == ADMIN_ENTRIES
    assert report.signatures == report.entries
    admins = [pristine.entries[i] for i in admin_positions(pristine)]
    assert len(admins) == ADMIN_ENTRIES
    # interleaved with the exchanges, not after them
    assert admin_positions(pristine)[0] < len(pristine.entries) - ADMIN_ENTRIES
    records = [AdminRecord.from_bytes(e.header) for e in admins]
    assert [r.action for r in records] == ["access.grant", "access.revoke"] * 2
    # each names the node's kept OCSP answer for its signing key, which the bundle carries
    assert all(e.role == "node" and e.ocsp_ref for e in admins)
    assert {e.ocsp_ref for e in admins} <= {r.ref for r in pristine.ocsp}
    # and the tree heads' signer (the node's owner) signed them
    owner_refs = {h.signed.cert_ref for h in pristine.heads if h.signed is not None}
    assert {e.cert_ref for e in admins} == owner_refs


def test_chunks_in_worker_processes_count_the_same_admin_records(
    bundle_file: Path, pristine: Bundle, log: SyntheticLog
) -> None:
    assert verify_file(bundle_file, log.anchor, jobs=2, chunk=6) == verify_bundle(
        pristine, log.anchor
    )


def test_a_flipped_byte_in_an_exported_admin_record_is_named(
    bundle_file: Path, pristine: Bundle, log: SyntheticLog, tmp_path: Path
) -> None:
    lines = bundle_file.read_bytes().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if b'"kind":"admin"' in line)
    item = json.loads(lines[index])
    header = bytearray(base64.b64decode(item["header"]))
    at = header.index(b"access.grant") + 7  # "access.grant" -> "access.grbnt"
    header[at] ^= 0x03
    item["header"] = base64.b64encode(bytes(header)).decode("ascii")
    lines[index] = json.dumps(item, separators=(",", ":")).encode() + b"\n"
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b"".join(lines))
    with damaged.open("rb") as handle:
        error = refused(read_bundle(handle), log)
    assert error.reason is AuditFailure.LEAF_MISMATCH
    assert error.piece.startswith(f"entry {item['id']} (leaf {item['leaf_index']}, admin admin-")


def test_an_admin_record_rewritten_with_its_leaf_is_not_included(
    pristine: Bundle, log: SyntheticLog
) -> None:
    # The forger recomputes the leaf hash too: the tree heads still hold the old one.
    position = admin_positions(pristine)[1]
    original = pristine.entries[position]
    record = AdminRecord.from_bytes(original.header)
    forged_header = dataclasses.replace(record, after={"subjects": []}).to_bytes()
    forged = dataclasses.replace(original, header=forged_header)
    forged = dataclasses.replace(forged, leaf_hash=leaf_hash(entry_leaf(forged.logged_entry())))
    bad = dataclasses.replace(pristine, entries=list(pristine.entries))
    bad.entries[position] = forged
    error = refused(bad, log)
    assert error.reason is AuditFailure.NOT_INCLUDED
    assert error.piece.startswith(f"entry {original.id} ")


def test_a_deleted_admin_record_leaves_a_gap(pristine: Bundle, log: SyntheticLog) -> None:
    position = admin_positions(pristine)[0]
    gone = pristine.entries[position]
    bad = dataclasses.replace(pristine, entries=list(pristine.entries))
    del bad.entries[position]
    error = refused(bad, log)
    assert error.reason is AuditFailure.MANIFEST_MISMATCH
    following = pristine.entries[position + 1]
    assert error.piece == f"entry {following.id} (leaf {following.leaf_index})"
    assert f"leaf {gone.leaf_index}" in error.detail
    # a manifest edited to match is refused as incomplete: the tree heads cover the leaf
    last = pristine.entries[-1].leaf_index
    bad.manifest = dataclasses.replace(
        bad.manifest, entries=((0, gone.leaf_index - 1), (gone.leaf_index + 1, last))
    )
    assert refused(bad, log).reason is AuditFailure.INCOMPLETE


def test_an_admin_row_deleted_from_the_log_is_found(log: SyntheticLog, tmp_path: Path) -> None:
    copy = tmp_path / "gap.sqlite"
    with sqlite3.connect(log.db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
        (leaf,) = target.execute(
            "SELECT leaf_index FROM message_log WHERE kind = 'admin' ORDER BY id LIMIT 1"
        ).fetchone()
        target.execute("DELETE FROM message_log WHERE kind = 'admin' AND leaf_index = ?", (leaf,))
    with pytest.raises(ExportError, match=f"leaf {leaf} is missing"):
        export_bundle(copy, tmp_path / "x.jsonl", Selection(all=True), now=START)


def test_a_time_range_of_admin_records_verifies(
    log: SyntheticLog, pristine: Bundle, tmp_path: Path
) -> None:
    since = START + timedelta(milliseconds=40)
    out = tmp_path / "range.jsonl"
    export_bundle(log.db, out, Selection(since=since), now=START, bodies=False)
    with out.open("rb") as handle:
        bundle = read_bundle(handle)
    cutoff = "2025-06-01T08:00:00.040Z"
    expected = [e.id for e in pristine.entries if e.kind == "admin" and e.logged_at >= cutoff]
    assert 0 < len(expected) < ADMIN_ENTRIES
    assert [e.id for e in bundle.entries if e.kind == "admin"] == expected
    assert verify_bundle(bundle, log.anchor).admin_records == len(expected)


# -- what only an admin entry's own checks catch ---------------------------------------------

LATER = START + timedelta(seconds=30)
"""When the extra admin records below are made: after the log's last tree head, while
the owner's OCSP answer is still fresh."""


def _copy(log: SyntheticLog, tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    copy = tmp_path / "messagelog.sqlite"
    with sqlite3.connect(log.db) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return copy


def _stamp_and_export(log: SyntheticLog, db: Path, out: Path) -> Bundle:
    """Time-stamp the copy's tree as it is now (the TSA of the log), export it whole."""

    async def stamp_head() -> None:
        async with MessageLog(db, clock=lambda: LATER) as writer:
            snapshot = writer.tree_snapshot()
            document = tree_head_document(NODE, snapshot.tree_size, snapshot.root_hash)
            await writer.append_tree_head(
                TreeHeadRecord(
                    snapshot.tree_size,
                    snapshot.root_hash,
                    snapshot.last_entry_id,
                    document,
                    LATER,
                    stamp(document, log.tsa_cert, log.tsa_key, LATER, 99),
                    "Audit Bench TSA",
                    log.tsa_cert.public_bytes(Encoding.DER),
                )
            )

    asyncio.run(stamp_head())
    export_bundle(db, out, Selection(all=True), now=LATER)
    with out.open("rb") as handle:
        return read_bundle(handle)


def _late_change() -> AdminRecord:
    return AdminRecord(
        at=LATER,
        actor=key_actor("0123456789ab", "mallory"),
        role=ApiRole.SYSTEM_ADMINISTRATOR.value,
        action="access.grant",
        target=SERVICE,
        before=None,
        after={"subjects": ["DE-NRW/GOV/05974040/gewerbeamt"]},
    )


def test_an_admin_record_must_be_signed_by_the_nodes_owner(
    log: SyntheticLog, tmp_path: Path
) -> None:
    db = _copy(log, tmp_path)
    assert log.consumer is not None  # a member in good standing, but not this node's owner

    async def log_change() -> int:
        async with MessageLog(db, clock=lambda: LATER) as writer:
            assert log.consumer is not None
            return (await writer.append_admin(_late_change(), log.consumer)).entry_id

    entry_id = asyncio.run(log_change())
    bundle = _stamp_and_export(log, db, tmp_path / "foreign.jsonl")
    error = refused(bundle, log)
    assert error.reason is AuditFailure.SIGNER
    assert error.piece.startswith(f"entry {entry_id} ")
    assert "DE-NRW/GOV/05974028" in error.detail


def test_an_admin_entry_must_carry_its_records_fields(log: SyntheticLog, tmp_path: Path) -> None:
    # A node that wrote the entry's columns other than its signed record says: the leaf
    # and the tree are consistent with the row, only the record contradicts it.
    db = _copy(log, tmp_path)

    async def log_change() -> int:
        async with MessageLog(db, clock=lambda: LATER) as writer:
            assert log.owner is not None
            return (await writer.append_admin(_late_change(), log.owner)).entry_id

    entry_id = asyncio.run(log_change())
    entry = SqliteLogStore(db).entry(entry_id)
    assert entry is not None
    claimed = dataclasses.replace(entry, service="DE-NRW/GOV/05974028/other/service")
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE message_log SET service = ?, leaf_hash = ? WHERE id = ?",
            (claimed.service, leaf_hash(entry_leaf(claimed.leaf_entry())), entry_id),
        )
        conn.execute("DELETE FROM log_tree_state")  # the node rebuilds its tree at start
    bundle = _stamp_and_export(log, db, tmp_path / "claimed.jsonl")
    error = refused(bundle, log)
    assert error.reason is AuditFailure.HEADER_MISMATCH
    assert error.piece.startswith(f"entry {entry_id} ")
    assert "service" in error.detail
    # the same change as the node really logged it verifies, with its OCSP answer
    honest = _copy(log, tmp_path / "honest")

    async def log_honestly() -> None:
        async with MessageLog(honest, clock=lambda: LATER) as writer:
            assert log.owner is not None
            await writer.append_admin(_late_change(), log.owner)

    asyncio.run(log_honestly())
    report = verify_bundle(_stamp_and_export(log, honest, tmp_path / "honest.jsonl"), log.anchor)
    assert report.admin_records == ADMIN_ENTRIES + 1
