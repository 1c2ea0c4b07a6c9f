"""Tests for the sample Gewerberegister Soest (Gewerbeanzeigen after XGewerbeanzeige).

The app runs in-process through Starlette's TestClient on its own SQLite file, with the
clock pinned so date rules ("not more than a year ahead") are deterministic.
"""

import sqlite3
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.net.guard import GuardSettings
from registries.gewerberegister import __main__ as gewerberegister_main
from registries.gewerberegister.app import create_app
from registries.gewerberegister.outbox import IhkTarget
from registries.serving import DEFAULT_LIMITS

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning
    )
    from fastapi.testclient import TestClient

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

PERSON: dict[str, Any] = {
    "art": "natuerlichePerson",
    "familienname": "Demir",
    "vorname": "Ayşe",
    "geburtsdatum": "1985-02-17",
    "geburtsort": "Iserlohn",
    "anschrift": {
        "strasse": "Mendener Straße",
        "hausNrVon": "8",
        "plz": "58636",
        "ort": "Iserlohn",
    },
}
GMBH: dict[str, Any] = {
    "art": "juristischePerson",
    "eingetragenerName": "Börde Solar GmbH",
    "rechtsform": "gmbh",
    "eintragungArt": "HRB",
    "eintragungNr": "9876",
    "eintragungOrt": "Amtsgericht Arnsberg",
    "anschrift": {"strasse": "Walburger Straße", "hausNrVon": "2", "plz": "59494", "ort": "Soest"},
}
ANMELDUNG: dict[str, Any] = {
    "anzeigeart": "anmeldung",
    "gueltigAb": "2026-12-01",
    "grundAnmeldungSchluessel": "neugruendung",
    "betriebsinhaber": PERSON,
    "geschaeftsbezeichnung": "Demir Änderungsschneiderei",
    "betriebsstaette": {
        "anschrift": {"strasse": "Markt", "hausNrVon": "9", "plz": "59494", "ort": "Soest"}
    },
    "taetigkeit": {"beschreibung": "Änderungsschneiderei", "taetigkeitSchluessel": "95290"},
    "betriebArt": "handwerk",
    "anzahlTeilzeitBeschaeftigte": 1,
}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gewerberegister.db"


@pytest.fixture
def client(db_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(db_path, clock=lambda: NOW)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for property tests, which hypothesis runs many times per test function."""
    db = tmp_path_factory.mktemp("gewerberegister") / "gewerberegister.db"
    with TestClient(create_app(db, clock=lambda: NOW)) as test_client:
        yield test_client


def _count(db_path: Path, table: str) -> int:
    with closing(sqlite3.connect(db_path)) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    count: int = row[0]
    return count


def _file(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/gewerbeanzeigen", json=body)
    assert response.status_code == 201, response.text
    receipt: dict[str, Any] = response.json()
    return receipt


def _locs(response: Any) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["detail"]]


# --------------------------------------------------------------------------- filing


def test_anmeldung_returns_receipt_and_stored_satz(client: TestClient) -> None:
    response = client.post("/gewerbeanzeigen", json=ANMELDUNG)

    assert response.status_code == 201
    receipt = response.json()
    assert set(receipt) == {
        "aktenzeichen",
        "anzeigeart",
        "gewerbebetriebID",
        "uuid",
        "eingegangenAm",
    }
    assert receipt["aktenzeichen"].startswith("GEW-2026-")
    assert receipt["anzeigeart"] == "anmeldung"
    assert receipt["eingegangenAm"] == "2026-11-24T10:00:00Z"
    assert response.headers["location"] == f"/gewerbeanzeigen/{receipt['aktenzeichen']}"
    assert "X-Data-Subject" not in response.headers  # the receipt names nobody

    satz = client.get(response.headers["location"])
    assert satz.status_code == 200
    body = satz.json()
    assert body["aktenzeichen"] == receipt["aktenzeichen"]
    assert body["gewerbebetriebID"] == receipt["gewerbebetriebID"]
    assert body["gemeindeSchluessel"] == "05974040"
    assert body["datumMeldung"] == "2026-11-24"
    assert body["status"] == "aktiv"
    assert body["anzeige"]["grundAnmeldungSchluessel"] == "neugruendung"
    assert body["betrieb"]["betriebsinhaber"]["familienname"] == "Demir"
    assert body["betrieb"]["taetigkeit"]["taetigkeitSchluessel"] == "95290"
    kennung = satz.headers["X-Data-Subject"]
    assert str(uuid.UUID(kennung)) == kennung


def test_same_person_keeps_one_pseudonym_legal_person_has_none(client: TestClient) -> None:
    first = _file(client, ANMELDUNG)
    second = _file(client, {**ANMELDUNG, "geschaeftsbezeichnung": "Demir Reinigung"})
    gmbh = _file(client, {**ANMELDUNG, "betriebsinhaber": GMBH})

    a = client.get(f"/gewerbeanzeigen/{first['aktenzeichen']}")
    b = client.get(f"/gewerbeanzeigen/{second['aktenzeichen']}")
    c = client.get(f"/gewerbeanzeigen/{gmbh['aktenzeichen']}")

    assert a.headers["X-Data-Subject"] == b.headers["X-Data-Subject"]
    assert first["gewerbebetriebID"] != second["gewerbebetriebID"]
    assert c.status_code == 200
    assert "X-Data-Subject" not in c.headers
    assert "Demir" not in a.headers["X-Data-Subject"]


def test_ummeldung_changes_the_betrieb_and_keeps_the_rest(client: TestClient) -> None:
    receipt = _file(client, ANMELDUNG)
    neue_anschrift = {"strasse": "Grandweg", "hausNrVon": "17", "plz": "59494", "ort": "Soest"}

    um = _file(
        client,
        {
            "anzeigeart": "ummeldung",
            "gewerbebetriebID": receipt["gewerbebetriebID"],
            "gueltigAb": "2027-02-01",
            "grundUmmeldungSchluessel": ["verlegung"],
            "betriebsstaette": {"anschrift": neue_anschrift},
        },
    )

    assert um["gewerbebetriebID"] == receipt["gewerbebetriebID"]
    found = client.get("/betriebe", params={"gewerbebetriebID": receipt["gewerbebetriebID"]})
    eintrag = found.json()["betriebe"][0]
    assert eintrag["betrieb"]["betriebsstaette"]["anschrift"] == neue_anschrift
    assert eintrag["betrieb"]["geschaeftsbezeichnung"] == ANMELDUNG["geschaeftsbezeichnung"]
    assert eintrag["aktenzeichen"] == [receipt["aktenzeichen"], um["aktenzeichen"]]
    # The first Satz still shows the Betrieb as it was then.
    first = client.get(f"/gewerbeanzeigen/{receipt['aktenzeichen']}").json()
    assert first["betrieb"]["betriebsstaette"]["anschrift"]["strasse"] == "Markt"


def test_ummeldung_of_unknown_betrieb_is_refused_and_stores_nothing(
    client: TestClient, db_path: Path
) -> None:
    before = _count(db_path, "anzeige")

    response = client.post(
        "/gewerbeanzeigen",
        json={
            "anzeigeart": "ummeldung",
            "gewerbebetriebID": str(uuid.uuid4()),
            "gueltigAb": "2026-12-01",
            "grundUmmeldungSchluessel": ["sonstige"],
            "anzahlVollzeitBeschaeftigte": 3,
        },
    )

    assert response.status_code == 422
    assert _locs(response) == [["body", "ummeldung", "gewerbebetriebID"]]
    assert "kein Betrieb" in response.json()["detail"][0]["msg"]
    assert _count(db_path, "anzeige") == before


def test_abmeldung_ends_the_betrieb_and_blocks_further_anzeigen(client: TestClient) -> None:
    receipt = _file(client, ANMELDUNG)
    ab = {
        "anzeigeart": "abmeldung",
        "gewerbebetriebID": receipt["gewerbebetriebID"],
        "gueltigAb": "2027-06-30",
        "grundAbmeldungSchluessel": "vollstaendigeAufgabe",
        "ursacheAbmeldungSchluessel": "alter",
    }
    _file(client, ab)

    again = client.post("/gewerbeanzeigen", json=ab)
    um = client.post(
        "/gewerbeanzeigen",
        json={
            "anzeigeart": "ummeldung",
            "gewerbebetriebID": receipt["gewerbebetriebID"],
            "gueltigAb": "2027-07-01",
            "grundUmmeldungSchluessel": ["sonstige"],
            "anzahlVollzeitBeschaeftigte": 1,
        },
    )
    found = client.get("/betriebe", params={"gewerbebetriebID": receipt["gewerbebetriebID"]})

    assert again.status_code == um.status_code == 409
    assert again.json()["fehler"] == "betrieb_abgemeldet"
    eintrag = found.json()["betriebe"][0]
    assert (eintrag["status"], eintrag["aufgabe"]) == ("abgemeldet", "2027-06-30")


def test_dates_may_not_run_backwards(client: TestClient) -> None:
    receipt = _file(client, ANMELDUNG)

    response = client.post(
        "/gewerbeanzeigen",
        json={
            "anzeigeart": "abmeldung",
            "gewerbebetriebID": receipt["gewerbebetriebID"],
            "gueltigAb": "2026-11-30",
            "grundAbmeldungSchluessel": "uebergabe",
        },
    )

    assert response.status_code == 422
    assert _locs(response) == [["body", "abmeldung", "gueltigAb"]]
    assert "2026-12-01" in response.json()["detail"][0]["msg"]


def _with(path: str, value: Any) -> dict[str, Any]:
    """ANMELDUNG with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    body: dict[str, Any] = {
        **ANMELDUNG,
        "betriebsinhaber": {**PERSON, "anschrift": dict(PERSON["anschrift"])},
    }
    body["betriebsstaette"] = {"anschrift": dict(ANMELDUNG["betriebsstaette"]["anschrift"])}
    body["taetigkeit"] = dict(ANMELDUNG["taetigkeit"])
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return body


@pytest.mark.parametrize(
    ("body", "loc_suffix"),
    [
        (_with("anzeigeart", "umzug"), None),
        (_with("anzeigeart", ...), None),
        (_with("gueltigAb", "1.12.2026"), "gueltigAb"),
        (_with("gueltigAb", 20261201), "gueltigAb"),
        (_with("gueltigAb", "2026-02-30"), "gueltigAb"),
        (_with("gueltigAb", "2028-01-01"), "gueltigAb"),  # more than a year ahead
        (_with("gueltigAb", "1899-12-31"), "gueltigAb"),
        (_with("grundAnmeldungSchluessel", "spass"), "grundAnmeldungSchluessel"),
        (_with("taetigkeit.taetigkeitSchluessel", "04123"), "taetigkeitSchluessel"),
        (_with("taetigkeit.taetigkeitSchluessel", "96.02.1"), "taetigkeitSchluessel"),
        (_with("betriebsstaette.anschrift.plz", "5949"), "plz"),
        (_with("betriebsinhaber.geburtsdatum", "2027-01-01"), None),  # after Beginn
        (_with("betriebsinhaber.familienname", "   "), "familienname"),
        (_with("betriebsinhaber.art", "verein"), None),
        (_with("betriebsinhaber.steuernummer", "123"), "steuernummer"),
        (_with("anzahlVollzeitBeschaeftigte", -1), "anzahlVollzeitBeschaeftigte"),
        (_with("anzahlVollzeitBeschaeftigte", "3"), "anzahlVollzeitBeschaeftigte"),
        (_with("betriebArt", ...), "betriebArt"),
        (_with("gewerbebetriebID", str(uuid.uuid4())), "gewerbebetriebID"),
    ],
)
def test_invalid_anmeldung_is_422_at_the_field(
    client: TestClient, db_path: Path, body: dict[str, Any], loc_suffix: str | None
) -> None:
    before = _count(db_path, "anzeige")

    response = client.post("/gewerbeanzeigen", json=body)

    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert all(error["loc"][0] == "body" and error["msg"] for error in errors)
    if loc_suffix is not None:
        assert [e["loc"][-1] for e in errors] == [loc_suffix]
    assert _count(db_path, "anzeige") == before


def test_future_birth_date_is_422(client: TestClient) -> None:
    body = _with("betriebsinhaber.geburtsdatum", "2026-11-25")
    body["gueltigAb"] = "2026-11-26"

    response = client.post("/gewerbeanzeigen", json=body)

    assert response.status_code == 422
    assert _locs(response)[0][-1] == "geburtsdatum"


@pytest.mark.parametrize(
    ("inhaber", "message"),
    [
        ({**GMBH, "eintragungNr": None}, "nur zusammen"),
        ({**GMBH, "rechtsform": "ohg"}, None),
    ],
)
def test_invalid_juristische_person_is_422(
    client: TestClient, inhaber: dict[str, Any], message: str | None
) -> None:
    response = client.post("/gewerbeanzeigen", json={**ANMELDUNG, "betriebsinhaber": inhaber})

    assert response.status_code == 422
    if message is not None:
        assert message in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"grundUmmeldungSchluessel": ["verlegung"]}, "betriebsstaette"),
        ({"grundUmmeldungSchluessel": []}, None),
        ({"grundUmmeldungSchluessel": ["sonstige"]}, "ohne geänderte Angaben"),
        (
            {"grundUmmeldungSchluessel": ["sonstige", "sonstige"], "betriebArt": "handel"},
            "doppelt",
        ),
        ({"grundUmmeldungSchluessel": ["sonstige"], "betriebsinhaber": PERSON}, None),
    ],
)
def test_invalid_ummeldung_is_422(
    client: TestClient, changes: dict[str, Any], message: str | None
) -> None:
    receipt = _file(client, ANMELDUNG)
    body = {
        "anzeigeart": "ummeldung",
        "gewerbebetriebID": receipt["gewerbebetriebID"],
        "gueltigAb": "2027-01-01",
        **changes,
    }

    response = client.post("/gewerbeanzeigen", json=body)

    assert response.status_code == 422
    if message is not None:
        assert message in response.json()["detail"][0]["msg"]


def test_ursache_only_with_vollstaendige_aufgabe(client: TestClient) -> None:
    receipt = _file(client, ANMELDUNG)

    response = client.post(
        "/gewerbeanzeigen",
        json={
            "anzeigeart": "abmeldung",
            "gewerbebetriebID": receipt["gewerbebetriebID"],
            "gueltigAb": "2027-01-01",
            "grundAbmeldungSchluessel": "uebergabe",
            "ursacheAbmeldungSchluessel": "insolvenz",
        },
    )

    assert response.status_code == 422
    assert "vollstaendigeAufgabe" in response.json()["detail"][0]["msg"]


# --------------------------------------------------------------------------- reading


def test_unknown_aktenzeichen_is_404_without_subject(client: TestClient) -> None:
    missing = client.get("/gewerbeanzeigen/GEW-2026-999999")
    malformed = client.get("/gewerbeanzeigen/..%2Fetc")

    assert missing.status_code == 404
    assert missing.json()["fehler"] == "nicht_gefunden"
    assert "X-Data-Subject" not in missing.headers
    assert malformed.status_code in {404, 422}


def test_seeded_register_covers_all_three_anzeigen(client: TestClient) -> None:
    everything = client.get("/betriebe", params={"ort": "Soest"}).json()["betriebe"]

    arten = [
        client.get(f"/gewerbeanzeigen/{az}").json()["anzeige"]["anzeigeart"]
        for eintrag in everything
        for az in eintrag["aktenzeichen"]
    ]
    assert sorted(set(arten)) == ["abmeldung", "anmeldung", "ummeldung"]
    inhaber = {e["betrieb"]["betriebsinhaber"]["art"] for e in everything}
    assert inhaber == {"natuerlichePerson", "juristischePerson"}


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"name": "salon"}, ["Salon Anna"]),
        ({"name": "anna schmidt"}, ["Salon Anna"]),
        ({"taetigkeitSchluessel": "96"}, ["Salon Anna"]),
        ({"status": "abgemeldet"}, ["Kiosk am Bahnhof"]),
        ({"inhaberFamilienname": "wagner"}, ["Kiosk am Bahnhof"]),
        ({"plz": "59494", "status": "aktiv", "name": "backstube"}, [None]),
        ({"plz": "12345"}, []),
    ],
)
def test_search_betriebe(client: TestClient, params: dict[str, str], names: list[str]) -> None:
    response = client.get("/betriebe", params=params)

    assert response.status_code == 200
    body = response.json()
    assert [b["betrieb"]["geschaeftsbezeichnung"] for b in body["betriebe"]] == names
    assert body["anzahl"] == len(names)


def test_search_names_each_natural_person_in_the_header(client: TestClient) -> None:
    soest = client.get("/betriebe", params={"ort": "Soest"})
    gmbh = client.get("/betriebe", params={"name": "Backstube"})
    none = client.get("/betriebe", params={"plz": "12345"})
    anna = client.get("/betriebe", params={"name": "Salon"})

    subjects = soest.headers["X-Data-Subject"].split(", ")
    assert len(subjects) == 2 == len(set(subjects))  # Anna and Jonas; the GmbH is nobody
    assert anna.headers["X-Data-Subject"] in subjects
    assert "X-Data-Subject" not in gmbh.headers
    assert "X-Data-Subject" not in none.headers


@pytest.mark.parametrize(
    "params",
    [{}, {"farbe": "blau"}, {"plz": "1"}, {"status": "ruhend"}, {"gewerbebetriebID": "x"}],
)
def test_bad_search_is_422(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/betriebe", params=params)

    assert response.status_code == 422
    assert "X-Data-Subject" not in response.headers


def test_openapi_and_health(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    assert document["info"]["title"] == "Gewerberegister Soest"
    assert {"/gewerbeanzeigen", "/gewerbeanzeigen/{aktenzeichen}", "/betriebe"} == set(
        document["paths"]
    )
    assert "X-Data-Subject" in document["info"]["description"]
    lesen = document["paths"]["/gewerbeanzeigen/{aktenzeichen}"]["get"]
    assert "X-Data-Subject" in lesen["responses"]["200"]["headers"]
    assert client.get("/health").json() == {"status": "ok"}


def test_seeding_happens_once(db_path: Path) -> None:
    with TestClient(create_app(db_path)):
        pass
    seeded = _count(db_path, "anzeige")
    with TestClient(create_app(db_path)):
        pass

    assert seeded == 5
    assert _count(db_path, "anzeige") == seeded


def test_main_passes_arguments_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Path, str, int, object]] = []

    def fake_serve(
        db_path: Path,
        host: str,
        port: int,
        ihk: object = None,
        *,
        limits: GuardSettings | None = None,
    ) -> None:
        calls.append((db_path, host, port, ihk))
        assert limits == DEFAULT_LIMITS

    monkeypatch.setattr(gewerberegister_main, "serve", fake_serve)

    gewerberegister_main.main(["--db", "g.db", "--port", "9002"])
    gewerberegister_main.main(["--db", "g.db", "--ihk-consumer-url", "http://127.0.0.1:8080"])

    assert calls[0] == (Path("g.db"), "127.0.0.1", 9002, None)  # no IHK: nothing queued
    target = calls[1][3]
    assert isinstance(target, IhkTarget)
    assert target.consumer_url == "http://127.0.0.1:8080"
    assert str(target.service) == "DE-NRW/GOV/IHK-ARNSBERG/kammer/gewerbemeldungen"


# --------------------------------------------------------------------------- properties

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
_fields = sorted(set(ANMELDUNG) | {"gewerbebetriebID", "grundUmmeldungSchluessel", "x"})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    anzeigeart=st.sampled_from(["anmeldung", "ummeldung", "abmeldung", "?"]),
    field=st.sampled_from(_fields),
    value=_json_values,
)
def test_mutated_anzeigen_never_500(
    shared_client: TestClient, anzeigeart: str, field: str, value: Any
) -> None:
    """Any single-field mutation of a valid Anzeige is filed, refused (422) or a conflict."""
    body = {**ANMELDUNG, "anzeigeart": anzeigeart, field: value}

    response = shared_client.post("/gewerbeanzeigen", json=body)

    assert response.status_code in {201, 409, 422}, response.text
    assert "X-Data-Subject" not in response.headers


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_json_values)
def test_arbitrary_json_never_500(shared_client: TestClient, body: Any) -> None:
    response = shared_client.post("/gewerbeanzeigen", json=body)

    assert response.status_code == 422


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=st.dictionaries(
        st.sampled_from(["name", "plz", "ort", "taetigkeitSchluessel", "status", "x"]),
        st.text(max_size=30),
        max_size=4,
    )
)
def test_arbitrary_search_never_500(shared_client: TestClient, params: dict[str, str]) -> None:
    response = shared_client.get("/betriebe", params=params)

    assert response.status_code in {200, 422}


def test_concurrent_ummeldungen_lose_no_update(client: TestClient) -> None:
    """Each Ummeldung merges into the stored state; parallel ones must not overwrite."""
    receipt = _file(client, ANMELDUNG)
    bodies = [
        {
            "anzeigeart": "ummeldung",
            "gewerbebetriebID": receipt["gewerbebetriebID"],
            "gueltigAb": "2027-01-01",
            "grundUmmeldungSchluessel": ["sonstige"],
            field: count,
        }
        for field, count in [("anzahlVollzeitBeschaeftigte", 7), ("anzahlTeilzeitBeschaeftigte", 9)]
    ]

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = list(pool.map(lambda b: client.post("/gewerbeanzeigen", json=b), bodies))

    assert [s.status_code for s in statuses] == [201, 201]
    found = client.get("/betriebe", params={"gewerbebetriebID": receipt["gewerbebetriebID"]})
    betrieb = found.json()["betriebe"][0]["betrieb"]
    assert (betrieb["anzahlVollzeitBeschaeftigte"], betrieb["anzahlTeilzeitBeschaeftigte"]) == (
        7,
        9,
    )
