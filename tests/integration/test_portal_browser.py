"""The portal in a real federation: Soest's node, Lippstadt's and Iserlohn's nodes each with
its own Melderegister, the IHK's node, Soest's Gewerberegister and the portal, all as
processes on loopback.

One test drives the portal in headless Chromium (Playwright, Debian's chromium,
which `make test` installs); the others drive it by plain HTTP through
:func:`registries.portal.scenario.run_anna_scenario`, as the demo does.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gateway.messagelog import read_entries
from gateway.sandbox.cities import (
    IHK,
    ISERLOHN,
    ISERLOHN_MELDEREGISTER_SERVICE,
    LIPPSTADT,
    SOEST,
    TRACKERS,
    TRADE_OFFICE,
)
from gateway.sandbox.federation import (
    Portal,
    allow_tracker,
    ihk_service,
    melderegister_service,
    start_gewerberegister,
    start_ihk,
    start_iserlohn_melderegister,
    start_nodes,
    start_portal,
)
from gateway.sandbox.localnet import LocalNet, free_port
from registries.portal.scenario import ANNA, ANNA_IDNR, read_tracker, run_anna_scenario
from registries.portal.xroad import r1_path

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _beginn() -> str:
    return (date.today() + timedelta(days=30)).isoformat()


class Federation:
    def __init__(self, net: LocalNet, portal: Portal, ihk_url: str) -> None:
        self.net = net
        self.portal = portal
        self.ihk_url = ihk_url


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("portal")
    net = LocalNet.create(root, [SOEST, LIPPSTADT, ISERLOHN, IHK], datetime.now(UTC))
    mr_port, gr_port, ihk_port, portal_port = free_port(), free_port(), free_port(), free_port()
    iserlohn_port = free_port()
    net.add_service(melderegister_service(mr_port))
    net.add_service(melderegister_service(iserlohn_port, ISERLOHN))
    net.add_service(ihk_service(ihk_port))
    net.write_configs()
    for tracker in TRACKERS:
        allow_tracker(net, tracker)
    try:
        start_nodes(net, [SOEST.ags, LIPPSTADT.ags, ISERLOHN.ags, IHK.ags])
        net.start_melderegister(mr_port)
        start_iserlohn_melderegister(net, iserlohn_port)
        start_ihk(net, ihk_port)
        start_gewerberegister(net, gr_port)
        portal = start_portal(net, portal_port, gr_port, TRACKERS)
        yield Federation(net, portal, f"http://127.0.0.1:{ihk_port}")
    finally:
        net.stop()


def _ihk_notifications(fed: Federation, aktenzeichen: str) -> list[dict[str, object]]:
    """Poll the IHK inbox until the notification is there (delivery is asynchronous)."""
    deadline = time.monotonic() + 20
    while True:
        listing = httpx.get(
            f"{fed.ihk_url}/benachrichtigungen", params={"aktenzeichen": aktenzeichen}
        ).json()
        if listing["anzahl"] or time.monotonic() > deadline:
            entries: list[dict[str, object]] = listing["benachrichtigungen"]
            return entries
        time.sleep(0.1)


def test_anna_applies_through_the_gateway_and_the_ihk_is_notified(fed: Federation) -> None:
    story = run_anna_scenario(fed.portal.url, beginn=_beginn(), identity=ANNA)

    # The data on the review page came from Lippstadt's Melderegister, not from Anna.
    assert story.reviewed["Familienname"] == "Schmidt"
    assert story.reviewed["Geburtsdatum"] == "1988-03-14"
    assert "Lippstadt" in story.reviewed["Anschrift"]
    assert story.aktenzeichen.startswith("GEW-")
    assert story.case.startswith("GA-")

    # The read went through both nodes, logged with the case number and the portal.
    soest = [
        json.loads(e.header)
        for e in read_entries(fed.net.nodes[SOEST.ags].messagelog)
        if e.kind == "request"
    ]
    lippstadt = [
        json.loads(e.header)
        for e in read_entries(fed.net.nodes[LIPPSTADT.ags].messagelog)
        if e.kind == "request"
    ]
    reads = [h for h in lippstadt if h["issue"] == story.case]
    assert len(reads) == 1
    assert reads[0]["user_id"] == "portal-gewerbeamt-soest"
    assert any(h["issue"] == story.case for h in soest)

    # "Meine Daten" shows this case's read once, the cities named in words.
    mine = [row for row in story.tracker if row["Vorgang"] == story.case]
    assert len(mine) == 1, story.tracker
    assert mine[0]["Register"] == "Stadt Lippstadt"
    assert mine[0]["Wer"] == "Stadt Soest (gewerbeamt)"
    assert mine[0]["Welche Daten"] == (
        "Meldedaten: Name, Geburtsdaten, Anschrift (§ 38 BMG) "
        "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft"
    )
    assert mine[0]["Bearbeitung"] == "portal-gewerbeamt-soest"
    assert story.tracker_problems == ""

    # The Gewerberegister notified the IHK through Soest's and the IHK's nodes, once.
    received = _ihk_notifications(fed, story.aktenzeichen)
    assert len(received) == 1
    notification = received[0]["benachrichtigung"]
    assert isinstance(notification, dict)
    assert notification["anzeigeart"] == "anmeldung"
    assert notification["betriebsinhaber"]["familienname"] == "Schmidt"
    ihk_log = [
        json.loads(e.header)
        for e in read_entries(fed.net.nodes[IHK.ags].messagelog)
        if e.kind == "request"
    ]
    assert [h["issue"] for h in ihk_log].count(story.aktenzeichen) == 1


def test_an_unknown_person_gets_a_clear_message_and_nothing_is_filed(fed: Federation) -> None:
    with httpx.Client(base_url=fed.portal.url, follow_redirects=True, timeout=30) as http:
        http.post(
            "/anmelden",
            data={
                "familienname": "Niemand",
                "vornamen": "Nora",
                "geburtsdatum": "1990-01-01",
                "idnr": "49397162589",  # valid, but nobody's in the seeded registers
            },
        )
        form = http.get("/antrag").text
        csrf = form.split('name="csrf" value="')[1].split('"')[0]
        fields = {
            "geschaeftsbezeichnung": "",
            "strasse": "Markt",
            "hausnummer": "1",
            "plz": "59494",
            "ort": "Soest",
            "taetigkeit": "Kiosk",
            "wz": "47260",
            "betriebArt": "handel",
            "beginn": _beginn(),
            "vollzeit": "0",
            "teilzeit": "0",
            "csrf": csrf,
        }
        bad = http.post("/antrag", data={**fields, "plz": "5949"})
        assert bad.status_code == 422
        assert "Postleitzahl" in bad.text
        answer = http.post("/antrag", data=fields)
        assert answer.status_code == 409
        assert "keine Person" in answer.text
        assert "person_not_found" in answer.text
        forged = http.post("/antrag", data={**fields, "csrf": "forged"})
        assert forged.status_code == 400


def test_anna_in_a_real_browser(fed: Federation) -> None:
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(fed.portal.url)
            page.fill("#familienname", "Schmidt")
            page.fill("#vornamen", "Anna")
            page.fill("#geburtsdatum", "1988-03-14")
            page.fill("#idnr", "52693074138")  # one digit off: refused with the reason
            page.click("#anmelden button")
            assert "Prüfziffer" in page.inner_text("[role=alert]")
            page.fill("#idnr", ANNA_IDNR)
            page.click("#anmelden button")
            page.click("#neu")
            page.fill("#geschaeftsbezeichnung", "Haarwerk Anna")
            page.fill("#strasse", "Brüderstraße")
            page.fill("#hausnummer", "7")
            page.fill("#plz", "59494")
            page.fill("#taetigkeit", "Friseursalon")
            page.fill("#wz", "96021")
            page.select_option("#betriebArt", "handwerk")
            page.fill("#beginn", _beginn())
            page.click("#antrag button")
            # Review: the register's data, which Anna never typed.
            meldedaten = page.inner_text("#meldedaten")
            assert "Lange Straße 12, 59555 Lippstadt" in meldedaten
            assert "Soest" in meldedaten  # Geburtsort
            case = page.inner_text("#vorgang")
            # Submitting without ticking the box is refused and shows the review again.
            page.click("#bestaetigung button")
            assert "Bitte bestätigen" in page.inner_text("[role=alert]")
            page.check("#bestaetigt")
            page.click("#bestaetigung button")
            receipt = page.inner_text("#quittung")
            assert case in receipt
            assert "GEW-" in receipt
        finally:
            browser.close()
    db = fed.net.root / "registries" / "portal.sqlite"
    with sqlite3.connect(db) as conn:
        stand, bestaetigung = conn.execute(
            "SELECT stand, bestaetigung FROM vorgang WHERE nummer = ?", (case,)
        ).fetchone()
    assert stand == "eingereicht"
    confirmed = json.loads(bestaetigung)
    assert confirmed["meldedaten"]["strasse"] == "Lange Straße"
    assert len(confirmed["sha256"]) == 64


def _subject_reads(log: Path, subject: str) -> int:
    """How many answers the provider's node logged as disclosing ``subject``."""
    with closing(sqlite3.connect(log)) as conn:
        row = conn.execute("SELECT count(*) FROM data_subject WHERE subject = ?", (subject,))
        count: int = row.fetchone()[0]
    return count


def test_meine_daten_spans_both_cities_and_shows_exactly_the_reads(fed: Federation) -> None:
    """One read in Lippstadt for the case and none in Iserlohn; after one read of
    Iserlohn's register (where Anna is registered as moved out), that one too."""
    lippstadt_log = fed.net.nodes[LIPPSTADT.ags].messagelog
    iserlohn_log = fed.net.nodes[ISERLOHN.ags].messagelog
    story = run_anna_scenario(fed.portal.url, beginn=_beginn(), identity=ANNA)

    def by_register(rows: list[dict[str, str]], register: str) -> list[dict[str, str]]:
        return [r for r in rows if r["Register"] == register]

    assert [r["Vorgang"] for r in story.tracker].count(story.case) == 1
    # Every row is a logged disclosure of Anna and every such disclosure is a row
    # (other tests of this module may have read Anna in Lippstadt before).
    assert len(by_register(story.tracker, "Stadt Lippstadt")) == _subject_reads(
        lippstadt_log, ANNA_IDNR
    )
    assert by_register(story.tracker, "Stadt Iserlohn") == []
    assert _subject_reads(iserlohn_log, ANNA_IDNR) == 0

    issue = f"{story.case}-iserlohn"
    read = httpx.get(
        fed.net.nodes[SOEST.ags].consumer_url + r1_path(ISERLOHN_MELDEREGISTER_SERVICE),
        params={k: ANNA[k] for k in ("familienname", "vornamen", "geburtsdatum")},
        headers={
            "X-Road-Client": str(TRADE_OFFICE),
            "X-Road-Issue": issue,
            "X-Road-UserId": "sachbearbeiter-7",
        },
        timeout=30,
    )
    assert read.status_code == 200, read.text
    assert read.json()["person"]["wegzugsanschrift"] is True
    assert "X-Data-Subject" not in read.headers and ANNA_IDNR not in read.text

    with httpx.Client(base_url=fed.portal.url, timeout=30, follow_redirects=True) as http:
        http.post("/anmelden", data=ANNA)
        rows, problems = read_tracker(http)
    assert problems == ""
    iserlohn = by_register(rows, "Stadt Iserlohn")
    assert len(iserlohn) == 1 == _subject_reads(iserlohn_log, ANNA_IDNR)
    assert iserlohn[0]["Vorgang"] == issue
    assert iserlohn[0]["Wer"] == "Stadt Soest (gewerbeamt)"
    assert iserlohn[0]["Bearbeitung"] == "sachbearbeiter-7"
    assert iserlohn[0]["Welche Daten"].endswith(f" {ISERLOHN_MELDEREGISTER_SERVICE}")
    # Lippstadt's part did not change, and the merged view is in time order.
    assert by_register(rows, "Stadt Lippstadt") == by_register(story.tracker, "Stadt Lippstadt")
    times = [datetime.fromisoformat(r["Zeitpunkt"]) for r in rows]
    assert times == sorted(times)
    assert rows[-1] == iserlohn[0]


def test_meine_daten_names_a_city_whose_tracker_is_down(fed: Federation) -> None:
    """Iserlohn's node stopped: the view is marked incomplete and names Iserlohn."""
    fed.net.stop_node(ISERLOHN.ags)
    try:
        with httpx.Client(base_url=fed.portal.url, timeout=60, follow_redirects=True) as http:
            http.post("/anmelden", data=ANNA)
            rows, problems = read_tracker(http)
    finally:
        fed.net.start_node(ISERLOHN.ags)
    assert "unvollständig" in problems
    assert "Stadt Iserlohn: nicht erreichbar" in problems
    assert all(r["Register"] == "Stadt Lippstadt" for r in rows)
