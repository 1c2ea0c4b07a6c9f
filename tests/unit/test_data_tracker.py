"""Data subjects: the header format, durable recording with the log entry, findUsage
over a real message log, and purpose binding on the signed header."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.audit.subjects import check_subjects
from gateway.core.datasubject import (
    MAX_SUBJECTS,
    DataSubjectError,
    parse_data_subjects,
    split_data_subjects,
)
from gateway.core.encoding import format_time
from gateway.core.envelope import RequestHeader, ResponseHeader, request_hash
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ClientId, MemberId, ServiceId, parse_client
from gateway.core.logtree import LoggedEntry, entry_leaf, subjects_commitment
from gateway.core.merkle import leaf_hash
from gateway.messagelog import Kind, LogRecord, MessageLog, open_store, read_entries
from gateway.messagelog.tracker import Tracker, check_purpose, required_headers
from gateway.node.config import ServiceSection, TrackerSection

NOW = datetime(2026, 5, 4, 9, 30, 0, tzinfo=UTC)
PROVIDER = "DE-NRW/GOV/05974028/melderegister"
SERVICE = ServiceId.parse(f"{PROVIDER}/einfacheAuskunft")
OTHER_SUBSYSTEM = ServiceId.parse("DE-NRW/GOV/05974028/kfz/halter")
GEWERBEAMT = parse_client("DE-NRW/GOV/05974040/gewerbeamt")
POLIZEI = parse_client("DE-NRW/GOV/05962024/polizei")
ANNA = "3f0e1c9a-6b7d-4a53-9a55-0c6f1b2d8e41"
BERND = "9a8b7c6d-0000-4000-8000-000000000002"


def clock() -> datetime:
    return NOW


# ---------------------------------------------------------------------- header format


def test_parse_single_list_and_several_fields() -> None:
    assert parse_data_subjects([]) == ()
    assert parse_data_subjects([ANNA]) == (ANNA,)
    assert parse_data_subjects([f"{ANNA}, {BERND}"]) == (ANNA, BERND)
    assert parse_data_subjects([ANNA, f"{BERND},{ANNA}"]) == (ANNA, BERND)  # distinct, ordered


@pytest.mark.parametrize(
    "value",
    ["", " ", f"{ANNA},", f"{ANNA},,{BERND}", "Anna Schmidt", "a/b", "ä", "x" * 129, "a;b"],
)
def test_malformed_values_are_refused_as_a_whole(value: str) -> None:
    with pytest.raises(DataSubjectError):
        parse_data_subjects([value])


def test_too_many_subjects_are_refused() -> None:
    ids = ",".join(f"p{i}" for i in range(MAX_SUBJECTS))
    assert len(parse_data_subjects([ids])) == MAX_SUBJECTS
    with pytest.raises(DataSubjectError):
        parse_data_subjects([ids + ",one-more"])


def test_split_removes_the_header_in_any_case() -> None:
    headers = [
        ("Content-Type", "application/json"),
        ("x-data-subject", ANNA),
        ("X-DATA-SUBJECT", BERND),
        ("Cache-Control", "no-store"),
    ]
    kept, subjects = split_data_subjects(headers)
    assert kept == [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    assert subjects == (ANNA, BERND)


# ---------------------------------------------------------------------- purpose binding


def section(**flags: bool) -> ServiceSection:
    return ServiceSection(id=str(SERVICE), url="http://127.0.0.1:1/personen", **flags)


def request_header(
    client: ClientId = GEWERBEAMT,
    service: ServiceId = SERVICE,
    *,
    user_id: str | None = "clerk-07",
    issue: str | None = "GEW-2026-0815",
    query: str = "familienname=Schmidt",
) -> RequestHeader:
    return RequestHeader(
        message_id=str(uuid.uuid4()),
        xroad_id=f"DE-NRW-{uuid.uuid4()}",
        client=client,
        service=service,
        method="GET",
        path="",
        query=query,
        headers=(),
        user_id=user_id,
        issue=issue,
        created=format_time(NOW),
        body_sha256="47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
        body_length=0,
    )


def test_purpose_binding_refuses_missing_or_blank_values() -> None:
    check_purpose(section(), request_header(user_id=None, issue=None))
    both = section(require_issue=True, require_user_id=True)
    check_purpose(both, request_header())
    for header, code in [
        (request_header(issue=None), Code.SP_MISSING_ISSUE),
        (request_header(issue="  "), Code.SP_MISSING_ISSUE),
        (request_header(user_id=None), Code.SP_MISSING_USER_ID),
        (request_header(user_id=""), Code.SP_MISSING_USER_ID),
    ]:
        with pytest.raises(GatewayError) as caught:
            check_purpose(both, header)
        assert caught.value.code is code
    check_purpose(section(require_issue=True), request_header(user_id=None))
    assert required_headers(both) == ["X-Road-Issue", "X-Road-UserId"]
    assert required_headers(section()) == []


# ---------------------------------------------------------------------- log and tracker


def exchange(
    request: RequestHeader, subjects: tuple[str, ...], status: int = 200
) -> list[LogRecord]:
    """The two provider-side records of one exchange, as the node writes them."""
    request_bytes = request.to_bytes()
    response = ResponseHeader(
        message_id=request.message_id,
        xroad_id=request.xroad_id,
        client=request.client,
        service=request.service,
        request_hash=request_hash(request_bytes),
        status=status,
        headers=(("content-type", "application/json"),),
        created=format_time(NOW),
        body_sha256="47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
        body_length=0,
    )
    common = {
        "role": "provider",
        "message_id": request.message_id,
        "xroad_id": request.xroad_id,
        "client": str(request.client),
        "service": str(request.service),
        "body": b"",
        "signature": "sig",
        "cert_ref": "",
    }
    return [
        LogRecord(kind=Kind.REQUEST, created=request.created, header=request_bytes, **common),  # type: ignore[arg-type]
        LogRecord(
            kind=Kind.RESPONSE,
            created=response.created,
            header=response.to_bytes(),
            subjects=subjects,
            **common,  # type: ignore[arg-type]
        ),
    ]


def write(path: Path | str, exchanges: list[list[LogRecord]]) -> None:
    async def scenario() -> None:
        async with MessageLog(path, clock=clock) as log:
            for records in exchanges:
                await log.append(records)

    asyncio.run(scenario())


def test_subjects_are_stored_with_the_response_entry(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    records = exchange(request_header(), (ANNA, BERND))
    write(path, [records])
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT m.kind, m.message_id, d.subject FROM data_subject d"
            " JOIN message_log m ON m.id = d.entry_id ORDER BY d.subject"
        ).fetchall()
    assert rows == [
        ("response", records[0].message_id, ANNA),
        ("response", records[0].message_id, BERND),
    ]


def test_an_invalid_subject_fails_only_its_caller(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"

    async def scenario() -> None:
        async with MessageLog(path, clock=clock) as log:
            with pytest.raises(DataSubjectError):
                await log.append(exchange(request_header(), ("not valid",)))
            await log.append(exchange(request_header(), (ANNA,)))

    asyncio.run(scenario())
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM message_log").fetchone() == (2,)
        assert conn.execute("SELECT subject FROM data_subject").fetchall() == [(ANNA,)]


def test_find_usage_shows_exactly_the_reads_of_one_subject(log_location: Path | str) -> None:
    path = open_store(log_location)
    location = log_location
    first = request_header()
    second = request_header(user_id=None, issue="GEW-2026-0999", query="familienname=Kr%C3%BCger")
    hidden = request_header(client=POLIZEI, issue="Ermittlung 17")
    elsewhere = request_header(service=OTHER_SUBSYSTEM)
    nobody = request_header()
    write(
        location,
        [
            exchange(first, (ANNA,)),
            exchange(second, (BERND, ANNA), status=200),
            exchange(hidden, (ANNA,)),
            exchange(elsewhere, (ANNA,)),
            exchange(nobody, (), status=404),
        ],
    )
    tracker = Tracker(path, [str(POLIZEI.member)])
    provider = SERVICE.provider
    usage = tracker.find_usage(provider, ANNA)
    assert [u.message_id for u in usage] == [first.message_id, second.message_id]
    one = usage[0]
    assert (one.client, one.service, one.method, one.path, one.status) == (
        str(GEWERBEAMT),
        str(SERVICE),
        "GET",
        "/",
        200,
    )
    assert (one.user_id, one.issue, one.xroad_id) == ("clerk-07", "GEW-2026-0815", first.xroad_id)
    assert one.time == "2026-05-04T09:30:00.000Z"
    assert (usage[1].user_id, usage[1].issue) == (None, "GEW-2026-0999")
    assert [u.message_id for u in tracker.find_usage(provider, BERND)] == [second.message_id]
    assert tracker.find_usage(provider, "unknown-person") == []
    # Without the hiding policy the security authority's read is there.
    everything = Tracker(path, []).find_usage(provider, ANNA)
    assert [u.client for u in everything] == [str(GEWERBEAMT)] * 2 + [str(POLIZEI)]
    assert [u.message_id for u in Tracker(path, []).find_usage(OTHER_SUBSYSTEM.provider, ANNA)] == [
        elsewhere.message_id
    ]


def test_hidden_clients_match_subsystem_or_member() -> None:
    tracker = Tracker(Path("unused.sqlite"), [str(POLIZEI), "DE-NRW/GOV/05958004"])
    assert tracker.is_hidden(POLIZEI)
    assert not tracker.is_hidden(POLIZEI.member)  # a subsystem entry does not hide its member
    assert tracker.is_hidden(parse_client("DE-NRW/GOV/05958004/lka"))
    assert tracker.is_hidden(MemberId.parse("DE-NRW/GOV/05958004"))
    assert not tracker.is_hidden(GEWERBEAMT)


def test_find_usage_answer_document_and_bad_input(log_location: Path | str) -> None:
    path = open_store(log_location)
    location = log_location
    read = request_header()
    write(location, [exchange(read, (ANNA,))])
    tracker = Tracker(path, [])
    call = request_header(
        client=parse_client("DE-NRW/GOV/05974040/portal"),
        service=SERVICE.provider.service("findUsage"),
        query=f"subject={ANNA}",
    )
    status, headers, body = asyncio.run(tracker.answer(call))
    assert status == 200 and headers == [("content-type", "application/json")]
    document = json.loads(body)
    assert document["subject"] == ANNA and document["provider"] == PROVIDER
    assert document["usage"] == [
        {
            "time": "2026-05-04T09:30:00.000Z",
            "client": str(GEWERBEAMT),
            "service": str(SERVICE),
            "method": "GET",
            "path": "/",
            "status": 200,
            "user_id": "clerk-07",
            "issue": "GEW-2026-0815",
            "message_id": read.message_id,
            "xroad_id": read.xroad_id,
            "leaf_index": 1,
            "archived": False,
            "deleted": False,
        }
    ]
    for query in ["", "subject=a&subject=b", "subject=Anna%20Schmidt", f"subject={ANNA}&x=1"]:
        status, _, body = asyncio.run(tracker.answer(replace(call, query=query)))
        assert status == 400, query
        assert json.loads(body)["error"] == "bad_request"


def test_tracker_config_refuses_an_invalid_client_id() -> None:
    assert TrackerSection().hidden_clients == []
    assert TrackerSection(hidden_clients=[str(POLIZEI)]).hidden_clients == [str(POLIZEI)]
    with pytest.raises(ValidationError):
        TrackerSection(hidden_clients=["DE-NRW/GOV"])
    with pytest.raises(ValidationError):
        ServiceSection(id=str(SERVICE), url="http://127.0.0.1:1", require_issue="sometimes")


# ---------------------------------------------------------------------- tamper evidence


def test_each_entry_commits_to_its_subjects_in_its_leaf(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    write(path, [exchange(request_header(), (ANNA, BERND)), exchange(request_header(), ())])
    entries = read_entries(path)
    salts = {e.subjects_salt for e in entries}
    assert None not in salts and len(salts) == len(entries)  # one fresh salt per entry
    for e, named in zip(entries, [(), (BERND, ANNA), (), ()], strict=True):
        assert e.subjects_salt is not None
        assert e.subjects_sha256 == subjects_commitment(bytes.fromhex(e.subjects_salt), named)
        fields = LoggedEntry(
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
        assert e.leaf_hash == leaf_hash(entry_leaf(fields))
        assert b'"type":"gateway-log-leaf/v2"' in entry_leaf(fields)


def tampered_log(tmp_path: Path) -> tuple[Path, list[list[LogRecord]]]:
    path = tmp_path / "log.sqlite"
    exchanges = [
        exchange(request_header(), (ANNA, BERND)),
        exchange(request_header(), (ANNA,)),
        exchange(request_header(), (), status=404),
    ]
    write(path, exchanges)
    return path, exchanges


def sql(path: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(statement, args)


def test_check_subjects_is_clean_on_an_untouched_log(tmp_path: Path) -> None:
    path, _ = tampered_log(tmp_path)
    report = check_subjects(path)
    assert report.clean and report.checked == 6 and report.with_subjects == 2
    assert report.unchecked_rows == 0


@pytest.mark.parametrize(
    ("statement", "value", "entry_id", "reason", "rows"),
    [
        # A read hidden from Anna's tracker: her row of the second answer deleted.
        ("DELETE FROM data_subject WHERE entry_id = 4 AND subject = ?", ANNA, 4, "rows", 0),
        # One of two subjects removed, or swapped for someone else.
        ("DELETE FROM data_subject WHERE entry_id = 2 AND subject = ?", BERND, 2, "rows", 1),
        ("UPDATE data_subject SET subject = 'someone' WHERE subject = ?", BERND, 2, "rows", 2),
        # A read invented for an answer that named nobody.
        ("INSERT INTO data_subject (entry_id, subject) VALUES (6, ?)", ANNA, 6, "rows", 1),
        # Covering up by changing the salt or the digest: caught by the salt and the leaf.
        ("UPDATE message_log SET subjects_salt = ? WHERE id = 2", "zz", 2, "salt", 2),
        (
            "UPDATE message_log SET subjects_sha256 = ? WHERE id = 4",
            "0" * 64,
            4,
            "rows",
            1,
        ),
        # Rows that point at no entry at all.
        ("INSERT INTO data_subject (entry_id, subject) VALUES (99, ?)", ANNA, 99, "orphan", 1),
        # The details the tracker shows once the headers are archived, altered or removed
        # while the signed headers can still tell.
        ("UPDATE data_subject_read SET issue = ? WHERE entry_id = 4", "other case", 4, "read", 1),
        ("DELETE FROM data_subject_read WHERE entry_id = 2 AND method = ?", "GET", 2, "read", 2),
    ],
)
def test_check_subjects_finds_removed_and_altered_rows(
    tmp_path: Path, statement: str, value: str, entry_id: int, reason: str, rows: int
) -> None:
    path, exchanges = tampered_log(tmp_path)
    sql(path, statement, value)
    report = check_subjects(path)
    assert [(m.entry_id, m.reason, m.rows) for m in report.mismatches] == [(entry_id, reason, rows)]
    if reason != "orphan":
        assert report.mismatches[0].leaf_index == entry_id - 1
        assert report.mismatches[0].message_id in {r[0].message_id for r in exchanges}


def test_check_subjects_catches_a_digest_recomputed_to_cover_a_deletion(tmp_path: Path) -> None:
    path, _ = tampered_log(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM data_subject WHERE entry_id = 4 AND subject = ?", (ANNA,))
        (salt,) = conn.execute("SELECT subjects_salt FROM message_log WHERE id = 4").fetchone()
        forged = subjects_commitment(bytes.fromhex(salt), [])
        conn.execute("UPDATE message_log SET subjects_sha256 = ? WHERE id = 4", (forged,))
    assert [(m.entry_id, m.reason) for m in check_subjects(path).mismatches] == [(4, "leaf")]


def test_check_subjects_counts_rows_of_older_entries_as_unchecked(tmp_path: Path) -> None:
    path, _ = tampered_log(tmp_path)
    sql(path, "UPDATE message_log SET subjects_salt = NULL, subjects_sha256 = NULL WHERE id < 4")
    report = check_subjects(path)
    assert report.clean and report.checked == 3 and report.unchecked_rows == 2


def test_the_check_subjects_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    path, _ = tampered_log(tmp_path)
    main(["log", "check-subjects", "--db", str(path)])
    captured = capsys.readouterr()
    assert captured.out == "" and "checked 6 entries (2 with data subjects), 0 mismatching" in (
        captured.err
    )
    sql(path, "DELETE FROM data_subject WHERE entry_id = 4 AND subject = ?", ANNA)
    with pytest.raises(SystemExit) as exit_status:
        main(["log", "check-subjects", "--db", str(path)])
    assert exit_status.value.code == 1
    line = json.loads(capsys.readouterr().out)
    assert (line["entry_id"], line["leaf_index"], line["reason"]) == (4, 3, "rows")
    with pytest.raises(SystemExit) as exit_status:
        main(["log", "check-subjects", "--db", str(tmp_path / "missing.sqlite")])
    assert exit_status.value.code == 2


# ---------------------------------------------------------------------- archiving


def archived_log(tmp_path: Path) -> tuple[Path, int]:
    """A signed, timestamped log of 6 reads of ``bench.SUBJECT`` by a clerk, the first 3
    archived with ``gateway log archive``'s function; returns the file and the count."""
    from gateway.audit.archive import archive_before
    from gateway.sandbox.bench.audit import START, build_log

    log = build_log(tmp_path / "log", 12, head_every=2, user_id="clerk-07", issue="GEW-2026-0815")
    with sqlite3.connect(log.db) as conn:
        (cut,) = conn.execute("SELECT logged_at FROM message_log WHERE id = 7").fetchone()
    result = archive_before(
        log.db,
        datetime.fromisoformat(cut.replace("Z", "+00:00")),
        tmp_path / "archive.jsonl",
        now=START + timedelta(days=1),
        anchor=log.anchor,
    )
    return log.db, result.entries


def test_find_usage_still_answers_for_archived_reads(tmp_path: Path) -> None:
    from gateway.sandbox.bench.audit import SERVICE as BENCH_SERVICE
    from gateway.sandbox.bench.audit import SUBJECT

    db, archived = archived_log(tmp_path)
    assert archived == 6
    provider = ServiceId.parse(BENCH_SERVICE).provider
    usage = Tracker(db, []).find_usage(provider, SUBJECT)
    assert [u.leaf_index for u in usage] == [1, 3, 5, 7, 9, 11]
    assert [u.archived for u in usage] == [True] * 3 + [False] * 3
    # Who, when, which service, which case and user, and the result: the same for an
    # archived read as for one whose headers are still in the log.
    for u in usage:
        assert (u.method, u.path, u.status, u.user_id, u.issue) == (
            "GET",
            "/",
            200,
            "clerk-07",
            "GEW-2026-0815",
        )
        assert u.client == "DE-NRW/GOV/05974040/gewerbeamt" and u.service == BENCH_SERVICE
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT id, logged_at, message_id FROM message_log WHERE kind = 'response' ORDER BY id"
        ).fetchall()
        assert conn.execute(
            "SELECT count(*) FROM message_log WHERE body_omitted = 'archived' AND header = x''"
        ).fetchone() == (6,)
    assert [(u.time, u.message_id) for u in usage] == [(r[1], r[2]) for r in rows]
    # The answer says where the content went; the rows still match their commitments.
    call = request_header(
        client=parse_client("DE-NRW/GOV/05974040/portal"),
        service=provider.service("findUsage"),
        query=f"subject={SUBJECT}",
    )
    status, _, body = asyncio.run(Tracker(db, []).answer(call))
    assert status == 200
    assert [u["archived"] for u in json.loads(body)["usage"]] == [True] * 3 + [False] * 3
    assert check_subjects(db).clean


def test_reads_archived_without_their_details_are_still_shown(tmp_path: Path) -> None:
    from gateway.sandbox.bench.audit import SERVICE as BENCH_SERVICE
    from gateway.sandbox.bench.audit import SUBJECT

    db, _ = archived_log(tmp_path)
    # As a log archived before the details were kept apart: the headers are gone and
    # there is no row to take them from.
    sql(db, "DELETE FROM data_subject_read")
    usage = Tracker(db, []).find_usage(ServiceId.parse(BENCH_SERVICE).provider, SUBJECT)
    assert len(usage) == 6
    for u in usage[:3]:
        assert u.archived and (u.method, u.path, u.status, u.user_id, u.issue) == (None,) * 5
        assert u.client == "DE-NRW/GOV/05974040/gewerbeamt" and u.service == BENCH_SERVICE
    assert [(u.archived, u.status, u.issue) for u in usage[3:]] == [
        (False, 200, "GEW-2026-0815")
    ] * 3


def test_an_older_log_gets_its_read_details_at_start_and_before_archiving(
    tmp_path: Path,
) -> None:
    from gateway.audit.archive import archive_before
    from gateway.sandbox.bench.audit import SERVICE as BENCH_SERVICE
    from gateway.sandbox.bench.audit import START, SUBJECT, build_log

    def details(db: Path) -> list[tuple[object, ...]]:
        with sqlite3.connect(db) as conn:
            return conn.execute(
                "SELECT entry_id, method, path, status, user_id, issue FROM data_subject_read"
                " ORDER BY entry_id"
            ).fetchall()

    expected = [(i, "GET", "/", 200, "clerk-07", None) for i in (2, 4, 6, 8)]
    # A log file written before the table existed: the node fills it in at start.
    started = build_log(tmp_path / "started", 8, head_every=4, user_id="clerk-07")
    assert details(started.db) == expected
    sql(started.db, "DROP TABLE data_subject_read")
    asyncio.run(MessageLog(started.db, clock=clock).close())
    assert details(started.db) == expected
    # Archived by an operator before any current node opened the file: archiving fills
    # it in before it blanks the headers.
    archived = build_log(tmp_path / "archived", 8, head_every=4, user_id="clerk-07")
    sql(archived.db, "DROP TABLE data_subject_read")
    result = archive_before(
        archived.db,
        START + timedelta(days=1),
        tmp_path / "all.jsonl",
        now=START + timedelta(days=1),
        anchor=archived.anchor,
    )
    assert result.entries == 8
    assert details(archived.db) == expected
    usage = Tracker(archived.db, []).find_usage(ServiceId.parse(BENCH_SERVICE).provider, SUBJECT)
    assert [(u.archived, u.user_id, u.status) for u in usage] == [(True, "clerk-07", 200)] * 4


def test_archiving_refuses_reads_whose_details_cannot_be_taken(tmp_path: Path) -> None:
    from gateway.audit.archive import ArchiveError, archive_before
    from gateway.sandbox.bench.audit import START, build_log

    log = build_log(tmp_path / "log", 4, head_every=4)
    sql(log.db, "DROP TABLE data_subject_read")
    # A request header that no longer parses: the read's details cannot be recorded, so
    # emptying the entries would lose them for good.
    sql(log.db, "UPDATE message_log SET header = ? WHERE id = 1", b"{}")
    with pytest.raises(ArchiveError, match=r"entries \[2\] cannot be recorded"):
        archive_before(
            log.db, START + timedelta(days=1), tmp_path / "all.jsonl", now=START + timedelta(days=1)
        )
    with sqlite3.connect(log.db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM message_log WHERE body_omitted = 'archived'"
        ).fetchone() == (0,)
