"""Lippstadt's Melderegister behind its node: data subjects recorded and stripped, purpose
binding, the data tracker (findUsage), access rights, and Auskunftssperre through the
gateway. Real node processes, the real Melderegister app, loopback only."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from gateway.audit.subjects import check_subjects
from gateway.conf.directory import TrustParameters
from gateway.core.envelope import RequestHeader, ResponseHeader
from gateway.messagelog import read_entries
from gateway.messagelog.proofs import timestamp_status
from gateway.sandbox.cities import City
from gateway.sandbox.localnet import LocalNet, ServiceSpec, free_port
from registries.melderegister.idnr import is_idnr

pytestmark = pytest.mark.integration

SOEST = City("Stadt Soest", "05974040", ("gewerbeamt", "ordnungsamt", "portal", "bibliothek"))
LIPPSTADT = City("Stadt Lippstadt", "05974028", ("melderegister",))
MELDEREGISTER = LIPPSTADT.subsystem("melderegister")
AUSKUNFT = MELDEREGISTER.service("einfacheAuskunft")
FIND_USAGE = MELDEREGISTER.service("findUsage")
BROKEN = MELDEREGISTER.service("kaputt")
"""Served by a registry that names its data subject wrongly (a name, not an identifier)."""
GEWERBEAMT = SOEST.subsystem("gewerbeamt")
ORDNUNGSAMT = SOEST.subsystem("ordnungsamt")
"""A security authority in this test: its reads are hidden from the tracker."""
PORTAL = SOEST.subsystem("portal")
"""The only client allowed to call findUsage."""
BIBLIOTHEK = SOEST.subsystem("bibliothek")
"""A subsystem without any access right."""

ANNA = {"familienname": "Schmidt", "vornamen": "Anna", "geburtsdatum": "1988-03-14"}
HOFFMANN = {"familienname": "Hoffmann", "vornamen": "Thomas", "geburtsdatum": "1962-11-23"}
BLOCKED = {"familienname": "Krüger", "vornamen": "Bernd", "geburtsdatum": "1975-07-02"}
UNKNOWN = {"familienname": "Krüger", "vornamen": "Bernd", "geburtsdatum": "1975-07-03"}
ANNA_IDNR = "52693074139"
UNKNOWN_IDNR = "49397162589"
"""A valid IDNr that no seeded resident has."""


@dataclass
class Federation:
    net: LocalNet
    registry_url: str

    def idnr(self, person: dict[str, str]) -> str:
        """The person's IDNr as the register names them (asked directly, not via a node)."""
        answer = httpx.get(f"{self.registry_url}/personen", params=person, timeout=10)
        assert answer.status_code == 200, answer.text
        subject = answer.headers["X-Data-Subject"]
        assert is_idnr(subject), subject
        return subject

    @property
    def provider_log(self) -> Path:
        return self.net.nodes[LIPPSTADT.ags].messagelog

    @property
    def consumer_log(self) -> Path:
        return self.net.nodes[SOEST.ags].messagelog


class _BrokenRegistry(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        payload = b'{"person": {"familienname": "Schmidt"}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Data-Subject", "Anna Schmidt")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def broken_registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, broken_registry: str) -> Iterator[Federation]:
    root: Path = tmp_path_factory.mktemp("registries")
    net = LocalNet.create(root, [SOEST, LIPPSTADT], datetime.now(UTC))
    net.add_service(
        ServiceSpec(id=BROKEN, url=broken_registry, openapi_url=None, allowed=(GEWERBEAMT,))
    )
    port = free_port()
    registry_url = f"http://127.0.0.1:{port}"
    net.add_service(
        ServiceSpec(
            id=AUSKUNFT,
            url=f"{registry_url}/personen",
            openapi_url=f"{registry_url}/openapi.json",
            allowed=(GEWERBEAMT, ORDNUNGSAMT),
            require_issue=True,
            require_user_id=True,
        )
    )
    # Tree heads every second, so the last test can archive what the others logged.
    net.write_configs(parameters=TrustParameters(timestamping_interval_seconds=1))
    # The tracker's provider policy: who may ask it, and whose reads it never shows.
    config = net.nodes[LIPPSTADT.ags].config
    config.write_text(
        config.read_text("utf-8")
        + "\n".join(
            [
                "",
                "[[access]]",
                f'service = "{FIND_USAGE}"',
                f'client = "{PORTAL}"',
                'methods = ["GET"]',
                "",
                "[tracker]",
                f'hidden_clients = ["{ORDNUNGSAMT}"]',
                "",
            ]
        ),
        "utf-8",
    )
    try:
        net.start_melderegister(port)
        net.start_node(SOEST.ags)
        net.start_node(LIPPSTADT.ags)
        yield Federation(net, registry_url)
    finally:
        net.stop()


def call(
    fed: Federation,
    client: str,
    service: str,
    query: dict[str, str] | None = None,
    *,
    user_id: str | None = "sachbearbeiterin-12",
    issue: str | None = "GEW-2026-0815",
) -> httpx.Response:
    headers = {"X-Road-Client": client}
    if user_id is not None:
        headers["X-Road-UserId"] = user_id
    if issue is not None:
        headers["X-Road-Issue"] = issue
    url = f"{fed.net.nodes[SOEST.ags].consumer_url}/r1/{service}"
    if query:
        url += "?" + urlencode(query)
    return httpx.get(url, headers=headers, timeout=30)


def assert_error(response: httpx.Response, code: str) -> None:
    assert response.status_code == 500, response.text
    assert response.headers["X-Road-Error"] == code
    assert response.json()["type"] == code


def subject_rows(path: Path) -> list[tuple[str, str]]:
    """(message id, subject) of every data subject the provider log holds."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT m.message_id, d.subject FROM data_subject d"
            " JOIN message_log m ON m.id = d.entry_id ORDER BY d.entry_id"
        ).fetchall()
    return [(str(m), str(s)) for m, s in rows]


def test_subject_recorded_at_provider_and_never_reaches_consumer(fed: Federation) -> None:
    idnr = fed.idnr(ANNA)
    assert idnr == ANNA_IDNR
    response = call(fed, str(GEWERBEAMT), str(AUSKUNFT), ANNA)
    assert response.status_code == 200, response.text
    assert response.json()["person"]["familienname"] == "Schmidt"
    assert "X-Data-Subject" not in response.headers
    assert idnr not in response.text
    message_id = response.headers["X-Road-Request-Id"]

    assert (message_id, idnr) in subject_rows(fed.provider_log)
    provider = read_entries(fed.provider_log, message_id=message_id)
    consumer = read_entries(fed.consumer_log, message_id=message_id)
    assert [e.kind for e in provider] == [e.kind for e in consumer] == ["request", "response"]
    # Not in what the provider signed, so in neither log's response entry either.
    for entries in (provider, consumer):
        signed = ResponseHeader.from_bytes(entries[1].header)
        assert all(name != "x-data-subject" for name, _ in signed.headers)
        assert idnr.encode() not in entries[1].header + entries[1].body
        request = RequestHeader.from_bytes(entries[0].header)
        assert (request.user_id, request.issue) == ("sachbearbeiterin-12", "GEW-2026-0815")
    # The consumer's node keeps no data subjects (its log has the table, but no rows).
    assert subject_rows(fed.consumer_log) == []
    # What the tracker needs once archiving empties the headers is kept with the entry.
    with sqlite3.connect(fed.provider_log) as conn:
        kept = conn.execute(
            "SELECT r.method, r.path, r.status, r.user_id, r.issue FROM data_subject_read r"
            " JOIN message_log m ON m.id = r.entry_id WHERE m.message_id = ?",
            (message_id,),
        ).fetchall()
    assert kept == [("GET", "/", 200, "sachbearbeiterin-12", "GEW-2026-0815")]


def test_the_melderegister_protocols_a_read_through_the_gateway(fed: Federation) -> None:
    """The register's Abrufprotokoll names the requesting authority, its case number,
    user and represented party, the time and the person, from the headers Lippstadt's
    node passed on; only the register's operator can read it."""
    url = f"{fed.net.nodes[SOEST.ags].consumer_url}/r1/{AUSKUNFT}?" + urlencode(ANNA)
    before = datetime.now(UTC)
    response = httpx.get(
        url,
        headers={
            "X-Road-Client": str(GEWERBEAMT),
            "X-Road-Id": "soest-gewerbe-protokoll-1",
            "X-Road-UserId": "sachbearbeiterin-12",
            "X-Road-Issue": "GEW-2026-0815",
            "X-Road-Represented-Party": "COM/HRB4711",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    message_id = response.headers["X-Road-Request-Id"]
    token = fed.net.melderegister_token_file().read_text("utf-8")
    assert httpx.get(f"{fed.registry_url}/protokoll", timeout=10).status_code == 401
    answer = httpx.get(
        f"{fed.registry_url}/protokoll",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    rows = [e for e in answer.json()["eintraege"] if e["anfrageId"] == message_id]
    assert len(rows) == 1
    row = rows[0]
    assert {k: v for k, v in row.items() if k not in ("id", "zeitpunkt")} == {
        "rechtsgrundlage": "§ 38 BMG",
        "abrufendeStelle": str(GEWERBEAMT),
        "aktenzeichen": "GEW-2026-0815",
        "benutzer": "sachbearbeiterin-12",
        "vertreteneStelle": "COM/HRB4711",
        "nachrichtenId": "soest-gewerbe-protokoll-1",
        "anfrageId": message_id,
        "ergebnis": "gefunden",
        "idnr": ANNA_IDNR,
    }
    moment = datetime.fromisoformat(row["zeitpunkt"])
    assert before - timedelta(seconds=1) <= moment <= datetime.now(UTC)


def test_purpose_binding_refuses_before_the_registry(fed: Federation) -> None:
    before = len(read_entries(fed.provider_log))
    refused = call(fed, str(GEWERBEAMT), str(AUSKUNFT), ANNA, issue=None)
    assert_error(refused, "server.serverproxy.missing_issue")
    # Both nodes log the refusal under the id the client got.
    detail = refused.json()["detail"]
    for ags in (SOEST.ags, LIPPSTADT.ags):
        node_log = (fed.net.root / "logs" / f"node-{ags}.log").read_text("utf-8")
        assert f"({detail})" in node_log, ags
    assert_error(
        call(fed, str(GEWERBEAMT), str(AUSKUNFT), ANNA, user_id=None),
        "server.serverproxy.missing_user_id",
    )
    assert_error(
        call(fed, str(GEWERBEAMT), str(AUSKUNFT), ANNA, issue=""),
        "server.serverproxy.missing_issue",
    )
    # Refused before the registry was called: nothing disclosed, nothing to log.
    assert len(read_entries(fed.provider_log)) == before
    # Advertised in the service metadata.
    listed = call(fed, str(GEWERBEAMT), f"{MELDEREGISTER}/listMethods")
    assert listed.status_code == 200, listed.text
    (entry,) = [s for s in listed.json()["service"] if s["service_code"] == "einfacheAuskunft"]
    assert entry["required_headers"] == ["X-Road-Issue", "X-Road-UserId"]


def test_subsystem_without_rights_cannot_read(fed: Federation) -> None:
    before = subject_rows(fed.provider_log)
    assert_error(
        call(fed, str(BIBLIOTHEK), str(AUSKUNFT), ANNA), "server.serverproxy.access_denied"
    )
    assert subject_rows(fed.provider_log) == before


def test_blocked_person_is_indistinguishable_from_unknown(fed: Federation) -> None:
    before = subject_rows(fed.provider_log)
    blocked = call(fed, str(GEWERBEAMT), str(AUSKUNFT), BLOCKED)
    unknown = call(fed, str(GEWERBEAMT), str(AUSKUNFT), UNKNOWN)
    assert blocked.status_code == unknown.status_code == 404
    assert blocked.content == unknown.content
    per_call = {"x-road-id", "x-road-request-id", "x-road-request-hash", "date"}
    assert {(k, v) for k, v in blocked.headers.items() if k not in per_call} == {
        (k, v) for k, v in unknown.headers.items() if k not in per_call
    }
    # Neither answer names anyone, so the tracker holds no record of the blocked person.
    assert subject_rows(fed.provider_log) == before


def test_tracker_shows_exactly_the_reads_that_happened(fed: Federation) -> None:
    idnr = fed.idnr(HOFFMANN)
    reads = []
    for issue in ("GEW-2026-1001", "GEW-2026-1002"):
        answer = call(fed, str(GEWERBEAMT), str(AUSKUNFT), HOFFMANN, issue=issue)
        assert answer.status_code == 200, answer.text
        reads.append((answer.headers["X-Road-Request-Id"], answer.headers["X-Road-Id"], issue))
    hidden = call(fed, str(ORDNUNGSAMT), str(AUSKUNFT), HOFFMANN, issue="OWI-17")
    assert hidden.status_code == 200, hidden.text
    assert_error(
        call(fed, str(BIBLIOTHEK), str(AUSKUNFT), HOFFMANN), "server.serverproxy.access_denied"
    )

    found = call(fed, str(PORTAL), str(FIND_USAGE), {"subject": idnr}, issue=None)
    assert found.status_code == 200, found.text
    document = found.json()
    assert document["subject"] == idnr
    assert document["provider"] == str(MELDEREGISTER)
    usage = document["usage"]
    assert len(usage) == len(reads)
    for entry, (message_id, xroad_id, issue) in zip(usage, reads, strict=True):
        assert entry["message_id"] == message_id
        assert entry["xroad_id"] == xroad_id
        assert entry["client"] == str(GEWERBEAMT)
        assert entry["service"] == str(AUSKUNFT)
        assert entry["issue"] == issue
        assert entry["user_id"] == "sachbearbeiterin-12"
        assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/", 200)
        leaf = [e.leaf_index for e in read_entries(fed.provider_log, message_id=message_id)]
        assert entry["leaf_index"] in leaf  # the provider's response entry, in its tree
        datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    # The hidden read is still in the provider's log, only not shown.
    hidden_id = hidden.headers["X-Road-Request-Id"]
    assert (hidden_id, idnr) in subject_rows(fed.provider_log)
    assert hidden_id not in json.dumps(document)

    # Only the portal may ask; bad input gets a clear 400 answer.
    assert_error(
        call(fed, str(GEWERBEAMT), str(FIND_USAGE), {"subject": idnr}),
        "server.serverproxy.access_denied",
    )
    bad = call(fed, str(PORTAL), str(FIND_USAGE), {"subject": "Thomas Hoffmann"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
    nobody = call(fed, str(PORTAL), str(FIND_USAGE), {"subject": UNKNOWN_IDNR})
    assert nobody.status_code == 200 and nobody.json()["usage"] == []
    # Every subject row the real exchanges wrote matches its entry's leaf commitment.
    report = check_subjects(fed.provider_log)
    assert report.clean and report.with_subjects >= len(reads) + 1


def test_malformed_data_subject_fails_closed(fed: Federation) -> None:
    before = [(e.kind, e.message_id) for e in read_entries(fed.provider_log)]
    response = call(fed, str(GEWERBEAMT), str(BROKEN))
    assert_error(response, "server.serverproxy.service_failed.invalid_data_subject")
    assert "Schmidt" not in response.text
    # The registry was called, so the request is logged; no response left the node.
    after = [(e.kind, e.message_id) for e in read_entries(fed.provider_log)]
    assert [kind for kind, _ in after[len(before) :]] == ["request"]


# ---------------------------------------------------------------------- getOpenAPI

GET_OPENAPI = MELDEREGISTER.service("getOpenAPI")


def get_openapi(fed: Federation, query: str, client: str = str(GEWERBEAMT)) -> httpx.Response:
    """``getOpenAPI`` through Soest's node, with a raw query (to send none, or two)."""
    url = f"{fed.net.nodes[SOEST.ags].consumer_url}/r1/{GET_OPENAPI}"
    if query:
        url += "?" + query
    return httpx.get(url, headers={"X-Road-Client": client}, timeout=30)


def test_get_openapi_returns_the_registrys_description(fed: Federation) -> None:
    response = get_openapi(fed, "serviceCode=einfacheAuskunft")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    own = httpx.get(f"{fed.registry_url}/openapi.json", timeout=10)
    assert own.status_code == 200
    assert response.json() == own.json()
    assert response.json()["openapi"].startswith("3.")
    # A signed exchange like any other, logged by both nodes under the id the client got.
    message_id = response.headers["X-Road-Request-Id"]
    for path in (fed.provider_log, fed.consumer_log):
        entries = read_entries(path, message_id=message_id)
        assert [(e.kind, e.service) for e in entries] == [
            ("request", str(GET_OPENAPI)),
            ("response", str(GET_OPENAPI)),
        ]


@pytest.mark.parametrize(
    "query",
    [
        "serviceCode=gibtEsNicht",  # no such service
        "",  # no serviceCode at all
        "serviceCode=einfacheAuskunft&serviceCode=einfacheAuskunft",  # not exactly one
        "serviceCode=",  # not a service code
        "serviceCode=kaputt",  # a service without an OpenAPI description
        "servicecode=einfacheAuskunft",  # parameter names are case-sensitive
    ],
)
def test_get_openapi_refuses_what_it_cannot_describe(fed: Federation, query: str) -> None:
    assert_error(get_openapi(fed, query), "server.serverproxy.unknown_service")


def test_get_openapi_needs_an_access_right_to_the_service(fed: Federation) -> None:
    refused = get_openapi(fed, "serviceCode=einfacheAuskunft", client=str(BIBLIOTHEK))
    assert_error(refused, "server.serverproxy.access_denied")


# ---------------------------------------------------------------------- archiving (last)


def test_the_tracker_still_shows_reads_after_the_log_is_archived(
    fed: Federation, tmp_path: Path
) -> None:
    """``gateway log archive`` next to the running provider node empties the entries'
    headers; Anna's tracker still lists every read with who, when, case and user, now
    marked as archived. Runs last: it archives what the other tests logged."""
    idnr = fed.idnr(ANNA)
    read = call(fed, str(GEWERBEAMT), str(AUSKUNFT), ANNA, issue="GEW-2026-2001")
    assert read.status_code == 200, read.text
    before = call(fed, str(PORTAL), str(FIND_USAGE), {"subject": idnr}, issue=None)
    assert before.status_code == 200, before.text
    shown = before.json()["usage"]
    assert shown[-1]["message_id"] == read.headers["X-Road-Request-Id"]
    assert not any(u["archived"] for u in shown)

    db = fed.provider_log
    deadline = time.monotonic() + 30
    while (status := timestamp_status(db)).pending or status.tree_size == 0:
        assert time.monotonic() < deadline, "no tree head covered Lippstadt's entries"
        time.sleep(0.1)
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(fed.net.ca_cert.read_bytes() + fed.net.trust.tsa_cert.read_bytes())
    archived = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "log",
            "archive",
            "--db",
            str(db),
            "--before",
            datetime.now(UTC).isoformat(),
            "--out",
            str(tmp_path / "archive.jsonl"),
            "--anchor",
            str(anchor),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert archived.returncode == 0, archived.stdout + archived.stderr
    assert "verified" in archived.stdout
    with sqlite3.connect(db) as conn:
        (emptied,) = conn.execute(
            "SELECT count(*) FROM message_log WHERE body_omitted = 'archived' AND header = x''"
            " AND message_id = ?",
            (read.headers["X-Road-Request-Id"],),
        ).fetchone()
    assert emptied == 2  # the read's request and response are gone from the log

    after = call(fed, str(PORTAL), str(FIND_USAGE), {"subject": idnr}, issue=None)
    assert after.status_code == 200, after.text
    usage = after.json()["usage"]
    assert [u["archived"] for u in usage] == [True] * len(shown)
    assert [{**u, "archived": False} for u in usage] == shown
    last = usage[-1]
    assert (last["issue"], last["user_id"], last["status"]) == (
        "GEW-2026-2001",
        "sachbearbeiterin-12",
        200,
    )
    assert check_subjects(db).clean
