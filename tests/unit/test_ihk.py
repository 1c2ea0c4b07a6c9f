"""Tests for the IHK's Gewerbeanzeige inbox: validation, storage, idempotent retries."""

import sqlite3
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
from registries.gewerberegister.app import Gewerbemeldung, ihk_benachrichtigung
from registries.gewerberegister.app import create_app as create_gewerberegister
from registries.ihk import __main__ as ihk_main
from registries.ihk.app import create_app
from registries.serving import DEFAULT_LIMITS

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning
    )
    from fastapi.testclient import TestClient

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

MELDUNG: dict[str, Any] = {
    "aktenzeichen": "GEW-2026-000042",
    "anzeigeart": "anmeldung",
    "gemeindeSchluessel": "05974040",
    "gewerbebetriebID": "0b6f8a52-3f0c-4a8e-9d55-2f1c7a3e9b10",
    "datumMeldung": "2026-11-24",
    "gueltigAb": "2026-12-01",
    "grund": "neugruendung",
    "betriebsinhaber": {
        "art": "natuerlichePerson",
        "familienname": "Demir",
        "vorname": "Ayşe",
        "doktorgrad": None,
        "geburtsdatum": "1985-02-17",
        "anschrift": {
            "strasse": "Mendener Straße",
            "hausNrVon": "8",
            "plz": "58636",
            "ort": "Iserlohn",
        },
    },
    "geschaeftsbezeichnung": "Demir Änderungsschneiderei",
    "betriebsstaette": {
        "anschrift": {"strasse": "Markt", "hausNrVon": "9", "plz": "59494", "ort": "Soest"},
        "niederlassungArt": "hauptniederlassung",
    },
    "taetigkeit": {"beschreibung": "Änderungsschneiderei", "taetigkeitSchluessel": "95290"},
    "betriebArt": "handwerk",
    "anzahlVollzeitBeschaeftigte": 0,
    "anzahlTeilzeitBeschaeftigte": 1,
}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ihk.db"


@pytest.fixture
def client(db_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(db_path, clock=lambda: NOW)) as test_client:
        yield test_client


def _rows(db_path: Path) -> int:
    with closing(sqlite3.connect(db_path)) as conn:
        row = conn.execute("SELECT count(*) FROM benachrichtigung").fetchone()
    count: int = row[0]
    return count


def test_notification_is_stored_and_listed(client: TestClient) -> None:
    response = client.post("/benachrichtigungen", json=MELDUNG)

    assert response.status_code == 201
    assert response.json()["benachrichtigung"] == MELDUNG
    assert response.json()["empfangenAm"] == "2026-11-24T10:00:00Z"
    listed = client.get("/benachrichtigungen").json()
    assert listed["anzahl"] == 1
    assert listed["benachrichtigungen"][0] == response.json()


def test_retry_does_not_duplicate(client: TestClient, db_path: Path) -> None:
    first = client.post("/benachrichtigungen", json=MELDUNG)
    second = client.post("/benachrichtigungen", json=MELDUNG)
    # Key order does not make it a different notification.
    reordered = client.post("/benachrichtigungen", json=dict(reversed(list(MELDUNG.items()))))

    assert first.status_code == 201
    assert second.status_code == reordered.status_code == 200
    assert second.json() == reordered.json() == first.json()
    assert _rows(db_path) == 1


def test_same_aktenzeichen_other_anzeigeart_is_a_new_notification(
    client: TestClient, db_path: Path
) -> None:
    client.post("/benachrichtigungen", json=MELDUNG)
    other = client.post(
        "/benachrichtigungen", json={**MELDUNG, "anzeigeart": "ummeldung", "grund": "verlegung"}
    )

    assert other.status_code == 201
    assert _rows(db_path) == 2


def test_same_key_different_content_is_409_and_keeps_the_first(
    client: TestClient, db_path: Path
) -> None:
    client.post("/benachrichtigungen", json=MELDUNG)

    changed = client.post("/benachrichtigungen", json={**MELDUNG, "anzahlVollzeitBeschaeftigte": 9})

    assert changed.status_code == 409
    assert changed.json()["fehler"] == "abweichender_inhalt"
    stored = client.get("/benachrichtigungen").json()["benachrichtigungen"]
    assert [s["benachrichtigung"]["anzahlVollzeitBeschaeftigte"] for s in stored] == [0]


def test_concurrent_deliveries_store_one_row(db_path: Path) -> None:
    with TestClient(create_app(db_path)) as client, ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(
                lambda _: client.post("/benachrichtigungen", json=MELDUNG).status_code,
                range(16),
            )
        )

    assert sorted(set(statuses)) in ([200, 201], [201])
    assert statuses.count(201) == 1
    assert _rows(db_path) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"geburtsort": "Iserlohn"}, "geburtsort"),  # more than the chamber may get
        ({"aktenzeichen": "42"}, "aktenzeichen"),
        ({"anzeigeart": "loeschung"}, "anzeigeart"),
        ({"gewerbebetriebID": "nicht-uuid"}, "gewerbebetriebID"),
        ({"gueltigAb": "01.12.2026"}, "gueltigAb"),
        ({"gemeindeSchluessel": "5974040"}, "gemeindeSchluessel"),
        ({"anzahlVollzeitBeschaeftigte": -2}, "anzahlVollzeitBeschaeftigte"),
        ({"taetigkeit": {"beschreibung": "x", "taetigkeitSchluessel": "95290"}}, "beschreibung"),
    ],
)
def test_invalid_notification_is_422(
    client: TestClient, db_path: Path, change: dict[str, Any], field: str
) -> None:
    response = client.post("/benachrichtigungen", json={**MELDUNG, **change})

    assert response.status_code == 422
    assert [e["loc"][-1] for e in response.json()["detail"]] == [field]
    assert _rows(db_path) == 0


def test_inhaber_fields_beyond_the_subset_are_refused(client: TestClient) -> None:
    inhaber = {**MELDUNG["betriebsinhaber"], "staatsangehoerigkeiten": ["DE"]}

    response = client.post("/benachrichtigungen", json={**MELDUNG, "betriebsinhaber": inhaber})

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "extra_forbidden"


def test_list_filters(client: TestClient) -> None:
    client.post("/benachrichtigungen", json=MELDUNG)
    client.post(
        "/benachrichtigungen",
        json={**MELDUNG, "aktenzeichen": "GEW-2026-000043", "anzeigeart": "abmeldung"},
    )

    by_art = client.get("/benachrichtigungen", params={"anzeigeart": "abmeldung"}).json()
    by_az = client.get("/benachrichtigungen", params={"aktenzeichen": "GEW-2026-000042"}).json()
    by_id = client.get(
        "/benachrichtigungen", params={"gewerbebetriebID": MELDUNG["gewerbebetriebID"]}
    ).json()

    assert [b["benachrichtigung"]["aktenzeichen"] for b in by_art["benachrichtigungen"]] == [
        "GEW-2026-000043"
    ]
    assert by_az["anzahl"] == 1
    assert by_id["anzahl"] == 2
    assert client.get("/benachrichtigungen", params={"anzeigeart": "x"}).status_code == 422


def test_gewerberegister_mapping_is_accepted(tmp_path: Path, client: TestClient) -> None:
    """Contract: every seeded Satz of the Gewerberegister, mapped for the IHK, is valid."""
    with TestClient(create_gewerberegister(tmp_path / "gewerbe.db")) as register:
        betriebe = register.get("/betriebe", params={"ort": "Soest"}).json()["betriebe"]
        saetze = [
            Gewerbemeldung.model_validate(register.get(f"/gewerbeanzeigen/{az}").json())
            for eintrag in betriebe
            for az in eintrag["aktenzeichen"]
        ]

    statuses = [
        client.post("/benachrichtigungen", json=ihk_benachrichtigung(s)).status_code for s in saetze
    ]

    assert statuses == [201] * len(saetze) == [201] * 5
    natural = [
        ihk_benachrichtigung(s)["betriebsinhaber"]
        for s in saetze
        if s.betrieb.betriebsinhaber.art == "natuerlichePerson"
    ]
    assert natural and all("geburtsort" not in p for p in natural)


def test_openapi_and_health(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    assert document["info"]["title"] == "IHK Benachrichtigungen"
    assert set(document["paths"]) == {"/benachrichtigungen"}
    assert set(document["paths"]["/benachrichtigungen"]) == {"get", "post"}
    assert client.get("/health").json() == {"status": "ok"}


def test_main_passes_arguments_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Path, str, int]] = []
    given: list[GuardSettings | None] = []

    def fake_serve(
        db_path: Path, host: str, port: int, *, limits: GuardSettings | None = None
    ) -> None:
        calls.append((db_path, host, port))
        given.append(limits)

    monkeypatch.setattr(ihk_main, "serve", fake_serve)

    ihk_main.main(["--db", "i.db"])
    ihk_main.main(["--db", "i.db", "--header-timeout", "3", "--max-connections-per-ip", "7"])

    assert calls == [(Path("i.db"), "127.0.0.1", 8003)] * 2
    assert given == [
        DEFAULT_LIMITS,
        GuardSettings(header_timeout=3, max_connections=256, max_connections_per_ip=7),
    ]


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("ihk") / "ihk.db"
    with TestClient(create_app(db, clock=lambda: NOW)) as test_client:
        yield test_client


_values: st.SearchStrategy[Any] = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=30) | st.just({})
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from([*sorted(MELDUNG), "extra"]), value=_values)
def test_mutated_notifications_never_500(shared_client: TestClient, field: str, value: Any) -> None:
    response = shared_client.post("/benachrichtigungen", json={**MELDUNG, field: value})

    assert response.status_code in {200, 201, 409, 422}
