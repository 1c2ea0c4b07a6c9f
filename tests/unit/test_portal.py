"""The portal's pages against a stand-in gateway (httpx transport): errors, escaping,
confirmation binding. The real path through nodes is tests/integration/test_portal_browser.py.
"""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime
from pathlib import Path

import httpx

from gateway.core.ids import ServiceId, SubsystemId
from registries.portal.app import PortalSettings, create_app

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PERSON = {
    "familienname": "Schmidt",
    "vornamen": "Anna",
    "doktorgrad": None,
    "geschlecht": "w",
    "geburtsdatum": "1988-03-14",
    "geburtsort": "Soest",
    "geburtsstaat": None,
    "anschrift": {
        "strasse": "Lange Straße",
        "hausnummer": "12",
        "postleitzahl": "59555",
        "wohnort": "Lippstadt",
        "gemeindeschluessel": "05974028",
    },
}
ANTRAG = {
    "geschaeftsbezeichnung": "<script>alert(1)</script>",
    "strasse": "Markt",
    "hausnummer": "5",
    "plz": "59494",
    "ort": "Soest",
    "taetigkeit": "Friseursalon",
    "wz": "96021",
    "betriebArt": "handwerk",
    "beginn": "2026-04-01",
    "vollzeit": "1",
    "teilzeit": "0",
}


ANNA_IDNR = "52693074139"
LIPPSTADT_TRACKER = ServiceId.parse("DE-NRW/GOV/05974028/melderegister/findUsage")
ISERLOHN_TRACKER = ServiceId.parse("DE-NRW/GOV/05962024/melderegister/findUsage")


def portal(
    tmp_path: Path, handler: httpx.MockTransport, trackers: tuple[ServiceId, ...] = ()
) -> TestClient:
    settings = PortalSettings(
        db_path=tmp_path / "portal.sqlite",
        consumer_url="http://soest.invalid",
        client=SubsystemId.parse("DE-NRW/GOV/05974040/gewerbeamt"),
        melderegister_service=ServiceId.parse("DE-NRW/GOV/05974028/melderegister/einfacheAuskunft"),
        gewerberegister_url="http://gewerberegister.invalid",
        tracker_services=trackers,
        clock=lambda: NOW,
        transport=handler,
    )
    client = TestClient(create_app(settings))
    signed_in = client.post(
        "/anmelden",
        data={k: PERSON[k] for k in ("familienname", "vornamen")}
        | {"geburtsdatum": "1988-03-14", "idnr": ANNA_IDNR},
    )
    assert "Angemeldet" in signed_in.text
    return client


def csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/antrag").text)
    assert found is not None
    return found.group(1)


def test_a_gateway_refusal_is_shown_with_its_code(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403,
            headers={"X-Road-Error": "server.serverproxy.access_denied"},
            json={
                "type": "server.serverproxy.access_denied",
                "message": "no access",
                "detail": "x",
            },
        )

    client = portal(tmp_path, httpx.MockTransport(refuse))
    page = client.post("/antrag", data={**ANTRAG, "csrf": csrf(client)})
    assert page.status_code == 409
    assert "server.serverproxy.access_denied" in page.text
    assert "no access" in page.text


def test_review_escapes_input_and_confirmation_binds_to_what_was_shown(tmp_path: Path) -> None:
    filed: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        if request.url.host == "soest.invalid":
            assert request.headers["X-Road-Issue"].startswith("GA-2026-")
            assert request.headers["X-Road-UserId"] == "portal-gewerbeamt-soest"
            return httpx.Response(200, json={"ergebnis": "gefunden", "person": PERSON})
        filed.append(request)
        return httpx.Response(
            201,
            json={
                "aktenzeichen": "GEW-2026-000009",
                "anzeigeart": "anmeldung",
                "gewerbebetriebID": "6f1c1d2e-0000-4000-8000-000000000001",
                "uuid": "6f1c1d2e-0000-4000-8000-000000000002",
                "eingegangenAm": "2026-03-02T09:00:00Z",
            },
        )

    client = portal(tmp_path, httpx.MockTransport(upstream))
    token = csrf(client)
    review = client.post("/antrag", data={**ANTRAG, "csrf": token})
    assert review.status_code == 200
    assert "<script>" not in review.text and "&lt;script&gt;" in review.text
    case = re.search(r'id="vorgang">([^<]+)<', review.text)
    assert case is not None
    url = f"/vorgaenge/{case.group(1)}/bestaetigung"

    stale = client.post(url, data={"csrf": token, "digest": "0" * 64, "bestaetigt": "ja"})
    assert stale.status_code == 409
    assert filed == []  # nothing filed on a confirmation of something else

    digest = re.search(r'name="digest" value="([0-9a-f]{64})"', review.text)
    assert digest is not None
    receipt = client.post(url, data={"csrf": token, "digest": digest.group(1), "bestaetigt": "ja"})
    assert receipt.status_code == 200
    assert "GEW-2026-000009" in receipt.text
    [request] = filed
    assert b'"familienname":"Schmidt"' in request.content.replace(b" ", b"")


def _no_gateway(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected call {request.url}")


def test_sign_in_refuses_an_idnr_with_a_wrong_check_digit(tmp_path: Path) -> None:
    client = TestClient(
        create_app(
            PortalSettings(
                db_path=tmp_path / "portal.sqlite",
                consumer_url="http://soest.invalid",
                client=SubsystemId.parse("DE-NRW/GOV/05974040/gewerbeamt"),
                melderegister_service=ServiceId.parse(
                    "DE-NRW/GOV/05974028/melderegister/einfacheAuskunft"
                ),
                gewerberegister_url="http://gewerberegister.invalid",
                clock=lambda: NOW,
                transport=httpx.MockTransport(_no_gateway),
            )
        )
    )
    identity = {"familienname": "Schmidt", "vornamen": "Anna", "geburtsdatum": "1988-03-14"}
    typo = client.post("/anmelden", data={**identity, "idnr": "52693074138"})
    assert typo.status_code == 422
    assert "Steuerliche Identifikationsnummer: bitte prüfen" in typo.text
    assert "Prüfziffer stimmt nicht" in typo.text
    assert 'value="52693074138"' in typo.text  # kept in the form, to correct it
    missing = client.post("/anmelden", data=identity)
    assert missing.status_code == 422 and "Identifikationsnummer" in missing.text
    short = client.post("/anmelden", data={**identity, "idnr": "5269307413"})
    assert short.status_code == 422 and "elf Ziffern" in short.text
    assert client.get("/meine-daten").status_code == 200  # still not signed in: sign-in page
    assert "Angemeldet" not in client.get("/").text
    # Printed with spaces, as on the tax office's letter: accepted and stored without them.
    grouped = client.post("/anmelden", data={**identity, "idnr": "52 693 074 139"})
    assert "Angemeldet" in grouped.text
    # The sign-in page offers the demo identity with its fictional IDNr.
    client.cookies.clear()
    assert ANNA_IDNR in client.get("/").text


def _usage(
    time: str, issue: str, client: str = "DE-NRW/GOV/05974040/gewerbeamt"
) -> dict[str, object]:
    return {
        "time": time,
        "client": client,
        "service": "x",
        "issue": issue,
        "user_id": "portal-gewerbeamt-soest",
        "message_id": issue.lower(),
    }


LIST_CLIENTS = {
    "member": [
        {
            "id": {
                "member_class": "GOV",
                "member_code": code,
                "object_type": "MEMBER",
                "xroad_instance": "DE-NRW",
            },
            "name": name,
        }
        for code, name in (
            ("05974040", "Stadt Soest"),
            ("05974028", "Stadt Lippstadt"),
            ("05962024", "Stadt Iserlohn"),
        )
    ]
}


def test_meine_daten_merges_every_city_by_time_and_names_them(tmp_path: Path) -> None:
    asked: list[tuple[str, str]] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/listClients":
            return httpx.Response(200, json=LIST_CLIENTS)
        asked.append((request.url.path, request.url.params["subject"]))
        if "05974028" in request.url.path:
            usage = [
                _usage("2026-03-01 10:00:00+00:00", "GA-1"),
                _usage("2026-03-02 08:00:00+00:00", "GA-3"),
            ]
        else:  # 10:30+01:00 is 09:30 UTC: the earliest, though last as text.
            usage = [_usage("2026-03-01T10:30:00+01:00", "GA-2", "DE-NRW/GOV/IHK/kammer")]
        return httpx.Response(200, json={"subject": ANNA_IDNR, "provider": "p", "usage": usage})

    client = portal(tmp_path, httpx.MockTransport(gateway), (LIPPSTADT_TRACKER, ISERLOHN_TRACKER))
    page = client.get("/meine-daten").text

    assert sorted(asked) == sorted(
        [
            ("/r1/DE-NRW/GOV/05974028/melderegister/findUsage", ANNA_IDNR),
            ("/r1/DE-NRW/GOV/05962024/melderegister/findUsage", ANNA_IDNR),
        ]
    )
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", page)
    assert [(register, who) for _, register, who in rows] == [
        ("Stadt Iserlohn", "DE-NRW/GOV/IHK/kammer"),  # no registered name: the id, not a guess
        ("Stadt Lippstadt", "Stadt Soest (gewerbeamt)"),
        ("Stadt Lippstadt", "Stadt Soest (gewerbeamt)"),
    ]
    assert "unvollständig" not in page


def test_meine_daten_says_which_city_could_not_be_asked(tmp_path: Path) -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/listClients":
            return httpx.Response(200, json=LIST_CLIENTS)
        if "05962024" in request.url.path:
            return httpx.Response(
                502,
                headers={"X-Road-Error": "server.clientproxy.network_error"},
                json={"type": "x", "message": "Iserlohn's node does not answer", "detail": "d"},
            )
        usage = [_usage("2026-03-01 10:00:00+00:00", "GA-1")]
        return httpx.Response(200, json={"subject": ANNA_IDNR, "provider": "p", "usage": usage})

    client = portal(tmp_path, httpx.MockTransport(gateway), (LIPPSTADT_TRACKER, ISERLOHN_TRACKER))
    page = client.get("/meine-daten").text

    alert = re.search(r'role="alert">(.*?)</div>', page, re.S)
    assert alert is not None
    assert "unvollständig" in alert.group(1)
    assert "Stadt Iserlohn: nicht erreichbar" in alert.group(1)
    assert "server.clientproxy.network_error" in alert.group(1)
    assert "GA-1" in page  # Lippstadt's answer still shows
    assert 'data-status="fehlt">Stadt Iserlohn' in page


def test_meine_daten_without_any_answer_is_not_an_empty_all_clear(tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = portal(tmp_path, httpx.MockTransport(down), (LIPPSTADT_TRACKER,))
    page = client.get("/meine-daten").text
    assert "unvollständig" in page
    assert "Keine Zugriffe gemeldet von den erreichbaren Registern" in page
    # No names from listClients either: the member id stands in, nothing is invented.
    assert "DE-NRW/GOV/05974028: nicht erreichbar" in page


def test_meine_daten_names_known_services_in_words_and_keeps_the_id() -> None:
    from registries.portal.pages import _what

    known = _what("DE-NRW/GOV/05974028/melderegister/einfacheAuskunft")
    assert known.startswith("Meldedaten: Name, Geburtsdaten, Anschrift (§ 38 BMG)<br>")
    assert "<code>DE-NRW/GOV/05974028/melderegister/einfacheAuskunft</code>" in known
    # An unknown service is shown by its id alone, escaped, never guessed at.
    unknown = _what("DE-NRW/GOV/1/x/<b>")
    assert unknown == "<small><code>DE-NRW/GOV/1/x/&lt;b&gt;</code></small>"
