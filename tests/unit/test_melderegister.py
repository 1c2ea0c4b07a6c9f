"""Tests for the sample Melderegister Lippstadt (BMG § 38 einfache Behördenauskunft).

Every test runs the app in-process through Starlette's TestClient against its own SQLite
file under ``tmp_path``; the client is always used as a context manager so the lifespan
runs and the engine is disposed (pytest turns unclosed-resource warnings into errors).
"""

import sqlite3
import unicodedata
import warnings
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, create_engine

from gateway.core.datasubject import parse_data_subjects
from gateway.net.guard import GuardSettings
from registries.melderegister import __main__ as melderegister_main
from registries.melderegister.app import (
    CITIES,
    GEMEINDESCHLUESSEL_ISERLOHN,
    GEMEINDESCHLUESSEL_LIPPSTADT,
    SEARCH_KEYS,
    Person,
    create_app,
    read_operator_token,
)
from registries.melderegister.idnr import is_idnr
from registries.serving import DEFAULT_LIMITS

with warnings.catch_warnings():
    # Starlette >= 1.x warns at import time when it finds ``httpx`` instead of ``httpx2``;
    # the project pins httpx and pytest runs with ``filterwarnings = error``.
    warnings.filterwarnings(
        "ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning
    )
    from fastapi.testclient import TestClient

ANNA = {"familienname": "Schmidt", "vornamen": "Anna", "geburtsdatum": "1988-03-14"}
BERND_BLOCKED = {"familienname": "Krüger", "vornamen": "Bernd", "geburtsdatum": "1975-07-02"}
NOBODY = {"familienname": "Niemand", "vornamen": "Norbert", "geburtsdatum": "1975-07-02"}
HOFFMANN = {"familienname": "Hoffmann", "vornamen": "Thomas", "geburtsdatum": "1962-11-23"}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "melderegister.db"


@pytest.fixture
def client(db_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(db_path)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for property tests, which hypothesis runs many times per test function."""
    db = tmp_path_factory.mktemp("melderegister") / "melderegister.db"
    with TestClient(create_app(db)) as test_client:
        yield test_client


def _count_persons(db_path: Path) -> int:
    """Count rows with plain sqlite3, independently of the app's ORM layer."""
    with closing(sqlite3.connect(db_path)) as conn:
        row = conn.execute("SELECT count(*) FROM person").fetchone()
    count: int = row[0]
    return count


def _insert(db_path: Path, *persons: Person) -> None:
    engine = create_engine(f"sqlite:///{db_path}")
    try:
        with Session(engine) as session:
            session.add_all(persons)
            session.commit()
    finally:
        engine.dispose()


def _person(*, idnr: str, vornamen: str, strasse: str, auskunftssperre: bool) -> Person:
    return Person(
        idnr=idnr,
        familienname="Lehmann",
        vornamen=vornamen,
        geburtsdatum=date(1980, 6, 6),
        geburtsort="Lippstadt",
        geschlecht="w",
        strasse=strasse,
        hausnummer="1",
        postleitzahl="59555",
        wohnort="Lippstadt",
        einzugsdatum=date(2010, 1, 1),
        auskunftssperre=auskunftssperre,
    )


def test_anna_found_with_address_and_only_section_38_fields(client: TestClient) -> None:
    response = client.get("/personen", params=ANNA)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    # Exact equality: also proves that no Sperre flag, id or Einzugsdatum leaks out.
    assert response.json() == {
        "ergebnis": "gefunden",
        "person": {
            "familienname": "Schmidt",
            "fruehereNamen": [],
            "vornamen": "Anna",
            "gebraeuchlicherVorname": None,
            "ordensname": None,
            "kuenstlername": None,
            "doktorgrad": None,
            "geburtsdatum": "1988-03-14",
            "geburtsort": "Soest",
            "geburtsstaat": None,
            "geschlecht": "w",
            "anschrift": {
                "strasse": "Lange Straße",
                "hausnummer": "12",
                "postleitzahl": "59555",
                "wohnort": "Lippstadt",
                "gemeindeschluessel": GEMEINDESCHLUESSEL_LIPPSTADT,
            },
            "wohnungsstatus": "hauptwohnung",
            "wegzugsanschrift": False,
            "sterbedatum": None,
            "sterbeort": None,
            "bedingterSperrvermerk": False,
        },
    }
    assert GEMEINDESCHLUESSEL_LIPPSTADT == "05974028"


def test_vornamen_match_is_case_insensitive(client: TestClient) -> None:
    response = client.get("/personen", params={**ANNA, "vornamen": "aNNA"})

    assert response.status_code == 200
    assert response.json()["person"]["familienname"] == "Schmidt"


def test_doktorgrad_is_returned(client: TestClient) -> None:
    response = client.get("/personen", params=HOFFMANN)

    assert response.status_code == 200
    assert response.json()["person"]["doktorgrad"] == "Dr. med."


def test_unknown_person_is_404(client: TestClient) -> None:
    response = client.get("/personen", params=NOBODY)

    assert response.status_code == 404
    assert response.json() == {"ergebnis": "nicht_gefunden"}


@pytest.mark.parametrize(
    "params",
    [
        {**ANNA, "familienname": "Schmitt"},
        {**ANNA, "geburtsdatum": "1988-03-15"},
        {**ANNA, "vornamen": "Anne"},
    ],
    ids=["familienname", "geburtsdatum", "vornamen"],
)
def test_each_search_key_must_match(client: TestClient, params: dict[str, str]) -> None:
    assert client.get("/personen", params=params).status_code == 404


def test_blocked_person_answers_exactly_like_unknown_person(
    client: TestClient, db_path: Path
) -> None:
    # Guard against a vacuous pass: Bernd must really be in the register, blocked.
    with closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute(
            "SELECT auskunftssperre FROM person WHERE familienname = ? AND geburtsdatum = ?",
            (BERND_BLOCKED["familienname"], BERND_BLOCKED["geburtsdatum"]),
        ).fetchall()
    assert rows == [(1,)]

    blocked = client.get("/personen", params=BERND_BLOCKED)
    unknown = client.get("/personen", params=NOBODY)

    def headers(response: Any) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")

    assert blocked.status_code == unknown.status_code == 404
    assert blocked.content == unknown.content
    assert headers(blocked) == headers(unknown)


def test_blocked_namesake_neither_leaks_nor_makes_the_hit_ambiguous(db_path: Path) -> None:
    """A blocked person sharing the search keys must not turn a unique hit into a 409."""
    app = create_app(db_path, seed=False)
    _insert(
        db_path,
        _person(
            idnr="63847520515", vornamen="Julia", strasse="Cappelstraße", auskunftssperre=False
        ),
        _person(idnr="35765824099", vornamen="Julia", strasse="Poststraße", auskunftssperre=True),
    )
    params = {"familienname": "Lehmann", "vornamen": "Julia", "geburtsdatum": "1980-06-06"}

    with TestClient(app) as client:
        response = client.get("/personen", params=params)

    assert response.status_code == 200
    assert response.json()["person"]["anschrift"]["strasse"] == "Cappelstraße"


def test_two_disclosable_matches_are_409_without_hit_list(client: TestClient) -> None:
    params = {"familienname": "Müller", "vornamen": "Peter", "geburtsdatum": "1970-01-01"}

    response = client.get("/personen", params=params)

    assert response.status_code == 409
    assert response.json() == {"ergebnis": "nicht_eindeutig"}


def test_names_are_unicode_normalised(client: TestClient) -> None:
    """A decomposed "ü" (u + combining diaeresis) must find the stored precomposed one."""
    decomposed = unicodedata.normalize("NFD", "Müller")
    assert decomposed != "Müller"
    params = {"familienname": decomposed, "vornamen": "Peter", "geburtsdatum": "1970-01-01"}

    # Both seeded Peter Müllers are found, hence ambiguous rather than not found.
    assert client.get("/personen", params=params).status_code == 409


def test_first_given_name_or_all_given_names_match(client: TestClient) -> None:
    first = client.get("/personen", params=HOFFMANN)
    all_names = client.get("/personen", params={**HOFFMANN, "vornamen": "thomas  JOHANNES"})
    second_only = client.get("/personen", params={**HOFFMANN, "vornamen": "Johannes"})

    assert first.status_code == 200
    assert first.json()["person"]["vornamen"] == "Thomas Johannes"
    assert all_names.status_code == 200
    assert all_names.json() == first.json()
    assert second_only.status_code == 404


@pytest.mark.parametrize(
    "geburtsdatum",
    ["1988-02-30", "14.03.1988", "19880314", "0", "1988-03-14T00:00:00", "", "1988-3-14"],
)
def test_invalid_date_is_422(client: TestClient, geburtsdatum: str) -> None:
    response = client.get("/personen", params={**ANNA, "geburtsdatum": geburtsdatum})

    assert response.status_code == 422
    locations = [error["loc"] for error in response.json()["detail"]]
    assert locations == [["query", "geburtsdatum"]]


@pytest.mark.parametrize("missing", ["familienname", "vornamen", "geburtsdatum"])
def test_missing_param_is_422(client: TestClient, missing: str) -> None:
    params = {k: v for k, v in ANNA.items() if k != missing}

    response = client.get("/personen", params=params)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", missing]


@pytest.mark.parametrize("value", ["", "   ", "x" * 101])
@pytest.mark.parametrize("field", ["familienname", "vornamen"])
def test_empty_blank_or_overlong_name_is_422(client: TestClient, field: str, value: str) -> None:
    response = client.get("/personen", params={**ANNA, field: value})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_name_of_exactly_100_chars_is_accepted(client: TestClient) -> None:
    response = client.get("/personen", params={**ANNA, "familienname": "x" * 100})

    assert response.status_code == 404


def test_seeding_happens_once(db_path: Path) -> None:
    with TestClient(create_app(db_path)):
        pass
    seeded = _count_persons(db_path)
    assert seeded >= 6

    with TestClient(create_app(db_path)) as client:
        response = client.get("/personen", params=ANNA)

    assert _count_persons(db_path) == seeded
    assert response.status_code == 200  # still exactly one Anna, not a 409


def test_seed_false_leaves_database_empty(db_path: Path) -> None:
    with TestClient(create_app(db_path, seed=False)) as client:
        response = client.get("/personen", params=ANNA)

    assert response.status_code == 404
    assert _count_persons(db_path) == 0


def test_seeded_persons_live_in_lippstadt(client: TestClient, db_path: Path) -> None:
    with closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute(
            "SELECT wohnort, postleitzahl, gemeindeschluessel, auskunftssperre, doktorgrad "
            "FROM person"
        ).fetchall()

    # Everyone lives in Lippstadt except Lukas Brandt, whose Wegzugsanschrift is in Iserlohn.
    assert {(r[0], r[2]) for r in rows} == {("Lippstadt", "05974028"), ("Iserlohn", "05962024")}
    assert {r[1] for r in rows} <= {"59555", "59557", "58636"}
    assert any(r[3] for r in rows), "at least one person with Auskunftssperre"
    assert any(r[4] for r in rows), "at least one person with Doktorgrad"


def test_openapi_document_describes_personen(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    assert document["info"]["title"] == "Melderegister Lippstadt"
    assert "§ 38" in document["info"]["description"]
    operation = document["paths"]["/personen"]["get"]
    assert {p["name"] for p in operation["parameters"] if p["required"]} == {
        "familienname",
        "vornamen",
        "geburtsdatum",
    }
    assert {"200", "404", "409", "422"} <= set(operation["responses"])
    assert "X-Data-Subject" in operation["responses"]["200"]["headers"]
    # The probe is not a service the gateway should publish.
    assert "/health" not in document["paths"]


def test_health(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_main_passes_arguments_to_serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[Path, str, int, str, Path | None]] = []
    received: list[GuardSettings | None] = []

    def fake_serve(
        db_path: Path,
        host: str,
        port: int,
        city: str,
        token_file: Path | None,
        *,
        limits: GuardSettings | None = None,
    ) -> None:
        calls.append((db_path, host, port, city, token_file))
        received.append(limits)

    monkeypatch.setattr(melderegister_main, "serve", fake_serve)

    melderegister_main.main(["--db", str(tmp_path / "a.db")])
    melderegister_main.main(
        [
            *("--db", "b.db", "--host", "127.0.0.2", "--port", "9001", "--city", "iserlohn"),
            *("--operator-token-file", "token"),
        ]
    )

    assert calls == [
        (tmp_path / "a.db", "127.0.0.1", 8001, "lippstadt", None),
        (Path("b.db"), "127.0.0.2", 9001, "iserlohn", Path("token")),
    ]
    assert received == [DEFAULT_LIMITS, DEFAULT_LIMITS]
    with pytest.raises(SystemExit):
        melderegister_main.main(["--db", "c.db", "--city", "soest"])


# --------------------------------------------------------------------------- § 38 vs § 34

UEBERMITTLUNG = "/datenuebermittlung/personen"
MIA = {"familienname": "Schmidt", "vornamen": "Mia", "geburtsdatum": "2015-06-20"}
PAUL = {"familienname": "Winter", "vornamen": "Paul", "geburtsdatum": "2017-02-02"}
CLAUDIA_BLOCKED = {"familienname": "Winter", "vornamen": "Claudia", "geburtsdatum": "1984-10-05"}
HEINRICH = {"familienname": "Lange", "vornamen": "Heinrich", "geburtsdatum": "1931-02-11"}
LUKAS = {"familienname": "Brandt", "vornamen": "Lukas", "geburtsdatum": "1990-04-18"}
MARIA_GEBURTSNAME = {"familienname": "Schulte", "vornamen": "Maria", "geburtsdatum": "1954-05-30"}

SECTION_38_FIELDS = {
    "familienname",
    "fruehereNamen",
    "vornamen",
    "gebraeuchlicherVorname",
    "ordensname",
    "kuenstlername",
    "geburtsdatum",
    "geburtsort",
    "geburtsstaat",
    "doktorgrad",
    "geschlecht",
    "anschrift",
    "wohnungsstatus",
    "wegzugsanschrift",
    "sterbedatum",
    "sterbeort",
    "bedingterSperrvermerk",
}
SECTION_34_EXTRA = {
    "fruehereAnschriften",
    "einzugsdatum",
    "wegzugsdatum",
    "gesetzlicheVertreter",
    "staatsangehoerigkeiten",
    "familienstand",
    "eheschliessungDatum",
    "eheschliessungOrt",
}


def _schema(client: TestClient, name: str) -> dict[str, Any]:
    schema: dict[str, Any] = client.get("/openapi.json").json()["components"]["schemas"][name]
    return schema


def test_section_38_answer_has_exactly_the_documented_fields(client: TestClient) -> None:
    schema = _schema(client, "PersonAuskunft")
    documented = set(schema["properties"])

    for params in (ANNA, HOFFMANN, HEINRICH, LUKAS, MIA):
        response = client.get("/personen", params=params)
        assert response.status_code == 200, params
        assert set(response.json()["person"]) == documented == SECTION_38_FIELDS
    for name, prop in schema["properties"].items():
        assert prop["description"].startswith("§ 38 Abs. 1 Nr. "), name


def test_section_34_answer_has_exactly_the_documented_fields(client: TestClient) -> None:
    schema = _schema(client, "PersonUebermittlung")
    documented = set(schema["properties"])

    assert documented == SECTION_38_FIELDS | SECTION_34_EXTRA
    for params in (ANNA, HOFFMANN, HEINRICH, LUKAS, MIA):
        response = client.get(UEBERMITTLUNG, params=params)
        assert response.status_code == 200, params
        assert set(response.json()["person"]) == documented
    for name in SECTION_34_EXTRA:
        assert schema["properties"][name]["description"].startswith("§ 34 Abs. 1 Nr. "), name
    vertreter = _schema(client, "Vertreter")["properties"]
    assert all(p["description"].startswith("§ 34 Abs. 1 Nr. 10") for p in vertreter.values())


def test_both_operations_are_documented_with_their_paragraph(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    assert "§ 38" in document["paths"]["/personen"]["get"]["summary"]
    assert "§ 34" in document["paths"][UEBERMITTLUNG]["get"]["summary"]
    assert "X-Data-Subject" in document["info"]["description"]
    assert (
        "X-Data-Subject" in document["paths"][UEBERMITTLUNG]["get"]["responses"]["200"]["headers"]
    )


def test_minor_gets_gesetzliche_vertreterin_only_under_section_34(client: TestClient) -> None:
    einfach = client.get("/personen", params=MIA).json()["person"]
    erweitert = client.get(UEBERMITTLUNG, params=MIA).json()["person"]

    assert "gesetzlicheVertreter" not in einfach
    assert erweitert["gesetzlicheVertreter"] == [
        {
            "familienname": "Schmidt",
            "vornamen": "Anna",
            "doktorgrad": None,
            "anschrift": einfach["anschrift"],
            "geburtsdatum": "1988-03-14",
            "sterbedatum": None,
            "bedingterSperrvermerk": False,
        }
    ]
    assert erweitert["gebraeuchlicherVorname"] == "Mia"
    assert {k: erweitert[k] for k in SECTION_38_FIELDS} == einfach


def test_deceased_person_reports_sterbedatum_and_sterbeort(client: TestClient) -> None:
    person = client.get("/personen", params=HEINRICH).json()["person"]

    assert (person["sterbedatum"], person["sterbeort"]) == ("2025-12-03", "Lippstadt")


def test_moved_person_has_iserlohn_wegzugsanschrift_and_former_address(
    client: TestClient,
) -> None:
    einfach = client.get("/personen", params=LUKAS).json()["person"]
    erweitert = client.get(UEBERMITTLUNG, params=LUKAS).json()["person"]

    assert einfach["wegzugsanschrift"] is True
    assert einfach["anschrift"]["wohnort"] == "Iserlohn"
    assert einfach["anschrift"]["gemeindeschluessel"] == GEMEINDESCHLUESSEL_ISERLOHN
    assert erweitert["wegzugsdatum"] == "2024-09-30"
    assert [a["strasse"] for a in erweitert["fruehereAnschriften"]] == ["Bahnhofstraße"]
    assert erweitert["fruehereAnschriften"][0]["auszugsdatum"] == "2024-09-30"


def test_section_34_adds_familienstand_and_staatsangehoerigkeiten(client: TestClient) -> None:
    hoffmann = client.get(UEBERMITTLUNG, params=HOFFMANN).json()["person"]
    leyla = client.get(
        UEBERMITTLUNG,
        params={"familienname": "Yılmaz", "vornamen": "Leyla", "geburtsdatum": "1993-01-27"},  # noqa: RUF001
    ).json()["person"]

    assert hoffmann["familienstand"] == "verheiratet"
    assert hoffmann["eheschliessungDatum"] == "1990-05-12"
    assert leyla["staatsangehoerigkeiten"] == ["DE", "TR"]


@pytest.mark.parametrize(
    ("params", "expected_street"),
    [
        (MARIA_GEBURTSNAME, "Südstraße"),  # früherer Name is a § 38(4) key
        ({**LUKAS, "strasse": "Bahnhofstraße"}, "Theodor-Heuss-Ring"),  # former address
        ({**LUKAS, "postleitzahl": "58636", "wohnort": "iserlohn"}, "Theodor-Heuss-Ring"),
        (
            {
                "familienname": "Müller",
                "vornamen": "Peter",
                "geburtsdatum": "1970-01-01",
                "geburtsort": "Erwitte",
            },
            "Südstraße",
        ),
        ({**ANNA, "geschlecht": "w"}, "Lange Straße"),
    ],
    ids=["frueherer-name", "fruehere-anschrift", "plz-wohnort", "geburtsort", "geschlecht"],
)
def test_optional_section_38_4_keys_find_and_narrow(
    client: TestClient, params: dict[str, str], expected_street: str
) -> None:
    for path in ("/personen", UEBERMITTLUNG):
        response = client.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["person"]["anschrift"]["strasse"] == expected_street


@pytest.mark.parametrize(
    "extra",
    [{"geschlecht": "m"}, {"geburtsort": "Lippstadt"}, {"strasse": "Poststraße"}],
)
def test_optional_keys_must_match_too(client: TestClient, extra: dict[str, str]) -> None:
    assert client.get("/personen", params={**ANNA, **extra}).status_code == 404


@pytest.mark.parametrize("path", ["/personen", UEBERMITTLUNG])
def test_non_search_key_parameter_is_422(client: TestClient, path: str) -> None:
    response = client.get(path, params={**ANNA, "staatsangehoerigkeit": "DE"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "staatsangehoerigkeit"]
    assert "X-Data-Subject" not in response.headers


def test_repeated_search_key_is_422(client: TestClient) -> None:
    response = client.get(
        "/personen?familienname=Schmidt&familienname=Krüger&vornamen=Anna&geburtsdatum=1988-03-14"
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "familienname"]


def _headers(response: Any) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")


@pytest.mark.parametrize("path", ["/personen", UEBERMITTLUNG])
@pytest.mark.parametrize(
    "blocked",
    [BERND_BLOCKED, CLAUDIA_BLOCKED, PAUL],
    ids=["gesperrt", "gesperrt-vertreterin", "vertreterin-gesperrt"],
)
def test_every_block_is_byte_identical_to_unknown(
    client: TestClient, path: str, blocked: dict[str, str]
) -> None:
    """Also for Paul, whose Vertreterin's block would otherwise leak through § 34 Nr. 10."""
    answer = client.get(path, params=blocked)
    unknown = client.get(path, params=NOBODY)

    assert answer.status_code == unknown.status_code == 404
    assert answer.content == unknown.content
    assert _headers(answer) == _headers(unknown)
    assert "x-data-subject" not in {k for k, _ in _headers(answer)}


ANNA_IDNR = "52693074139"
"""Anna's fictional IDNr in the seed of both registers."""


def test_data_subject_header_is_the_persons_idnr(db_path: Path) -> None:
    with TestClient(create_app(db_path)) as client:
        anna = client.get("/personen", params=ANNA)
        anna_34 = client.get(UEBERMITTLUNG, params=ANNA)
        hoffmann = client.get("/personen", params=HOFFMANN)
    with TestClient(create_app(db_path)) as client:
        anna_again = client.get("/personen", params=ANNA)

    idnr = anna.headers["X-Data-Subject"]
    assert idnr == ANNA_IDNR and is_idnr(idnr)
    assert parse_data_subjects([idnr]) == (idnr,)  # the node's header format accepts it
    assert anna_34.headers["X-Data-Subject"] == anna_again.headers["X-Data-Subject"] == idnr
    assert is_idnr(hoffmann.headers["X-Data-Subject"])
    assert hoffmann.headers["X-Data-Subject"] != idnr
    # Neither § 38(1) nor § 34(1) lists the IDNr: it is a header for the node, never data.
    assert idnr not in anna.text and idnr not in anna_34.text
    assert "idnr" not in anna_34.text.lower()


def test_every_seeded_resident_has_a_valid_unique_idnr(tmp_path: Path) -> None:
    by_city: dict[str, dict[tuple[str, str, str], str]] = {}
    for city in CITIES:
        db = tmp_path / f"{city}.db"
        with TestClient(create_app(db, city=city)):
            pass
        with closing(sqlite3.connect(db)) as conn:
            rows = conn.execute("SELECT idnr, familienname, vornamen, geburtsdatum FROM person")
            by_city[city] = {(f, v, g): i for i, f, v, g in rows}
        idnrs = list(by_city[city].values())
        assert all(is_idnr(i) for i in idnrs), idnrs
        assert len(set(idnrs)) == len(idnrs)
    lippstadt, iserlohn = by_city["lippstadt"], by_city["iserlohn"]
    # A person in both registers has the same IDNr there; different people never share one.
    shared = lippstadt.keys() & iserlohn.keys()
    assert ("Schmidt", "Anna", "1988-03-14") in shared
    assert all(lippstadt[k] == iserlohn[k] for k in shared)
    only = {lippstadt[k] for k in lippstadt.keys() - shared}
    assert only.isdisjoint(iserlohn[k] for k in iserlohn.keys() - shared)


def test_the_database_refuses_a_malformed_idnr(db_path: Path) -> None:
    with TestClient(create_app(db_path, seed=False)):
        pass
    bad = _person(idnr="1234567890", vornamen="Eva", strasse="Markt", auskunftssperre=False)
    with pytest.raises(IntegrityError):
        _insert(db_path, bad)


def test_iserlohn_has_its_own_residents_and_anna_moved_out(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path / "iserlohn.db", city="iserlohn")) as client:
        document = client.get("/openapi.json").json()
        anna = client.get("/personen", params=ANNA)
        anna_34 = client.get(UEBERMITTLUNG, params=ANNA)
        lukas = client.get("/personen", params=LUKAS)
        hoffmann = client.get("/personen", params=HOFFMANN)
        greta_blocked = client.get(
            "/personen",
            params={"familienname": "Schulz", "vornamen": "Greta", "geburtsdatum": "2000-12-24"},
        )

    assert document["info"]["title"] == "Melderegister Iserlohn"
    assert "Iserlohn (AGS 05962024)" in document["info"]["description"]
    assert hoffmann.status_code == 404  # a Lippstadt resident, unknown here
    assert greta_blocked.status_code == 404
    # Anna: moved out of Iserlohn to Lippstadt; the answer is the Wegzugsanschrift.
    assert anna.status_code == 200
    person = anna.json()["person"]
    assert person["wegzugsanschrift"] is True
    assert person["anschrift"]["wohnort"] == "Lippstadt"
    assert person["anschrift"]["gemeindeschluessel"] == GEMEINDESCHLUESSEL_LIPPSTADT
    assert anna.headers["X-Data-Subject"] == ANNA_IDNR
    former = anna_34.json()["person"]["fruehereAnschriften"]
    assert [a["gemeindeschluessel"] for a in former] == [GEMEINDESCHLUESSEL_ISERLOHN]
    assert anna_34.json()["person"]["wegzugsdatum"] == "2012-03-31"
    # Lukas moved the other way: in Iserlohn he is a current resident.
    assert lukas.json()["person"]["wegzugsanschrift"] is False
    assert lukas.json()["person"]["anschrift"]["wohnort"] == "Iserlohn"


def test_unknown_city_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown city"):
        create_app(tmp_path / "x.db", city="soest")


@pytest.mark.parametrize(
    ("params", "status"),
    [
        (NOBODY, 404),
        ({**ANNA, "geburtsdatum": "x"}, 422),
        ({"familienname": "Müller", "vornamen": "Peter", "geburtsdatum": "1970-01-01"}, 409),
    ],
)
def test_no_data_subject_header_without_a_person(
    client: TestClient, params: dict[str, str], status: int
) -> None:
    for path in ("/personen", UEBERMITTLUNG):
        response = client.get(path, params=params)
        assert response.status_code == status
        assert "X-Data-Subject" not in response.headers


_query_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=120
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=st.dictionaries(
        st.sampled_from(sorted(SEARCH_KEYS | {"x", "familienname[]"})), _query_text, max_size=6
    ),
    path=st.sampled_from(["/personen", UEBERMITTLUNG]),
)
def test_arbitrary_queries_never_500_and_header_iff_person(
    params: dict[str, str], path: str, shared_client: TestClient
) -> None:
    response = shared_client.get(path, params=params)

    assert response.status_code in {200, 404, 409, 422}
    assert ("X-Data-Subject" in response.headers) == (response.status_code == 200)


# --------------------------------------------------------------------------- Abrufprotokoll

OPERATOR_TOKEN = "betreiber-token-0123456789"
AM = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)
XROAD = {
    "X-Road-Client": "DE-NRW/GOV/05974040/gewerbeamt",
    "X-Road-Id": "soest-gewerbe-0007",
    "X-Road-Request-Id": "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e",
    "X-Road-UserId": "sachbearbeiterin-3",
    "X-Road-Issue": "GA-2026/0815",
    "X-Road-Represented-Party": "COM/HRB4711",
}


@pytest.fixture
def operated(db_path: Path) -> Iterator[TestClient]:
    """The register with an operator token and a fixed clock."""
    app = create_app(db_path, operator_token=OPERATOR_TOKEN, clock=lambda: AM)
    with TestClient(app) as test_client:
        yield test_client


def _protokoll(client: TestClient) -> list[dict[str, Any]]:
    answer = client.get("/protokoll", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert answer.status_code == 200, answer.text
    eintraege: list[dict[str, Any]] = answer.json()["eintraege"]
    return eintraege


def test_every_automated_retrieval_is_protocolled_with_the_xroad_headers(
    operated: TestClient,
) -> None:
    assert operated.get("/personen", params=ANNA, headers=XROAD).status_code == 200
    assert operated.get(UEBERMITTLUNG, params=NOBODY, headers=XROAD).status_code == 404
    assert operated.get("/personen", params=BERND_BLOCKED).status_code == 404
    eintraege = _protokoll(operated)
    assert eintraege[0] == {
        "id": 1,
        "zeitpunkt": "2026-03-02T09:30:15.123Z",
        "rechtsgrundlage": "§ 38 BMG",
        "abrufendeStelle": "DE-NRW/GOV/05974040/gewerbeamt",
        "aktenzeichen": "GA-2026/0815",
        "benutzer": "sachbearbeiterin-3",
        "vertreteneStelle": "COM/HRB4711",
        "nachrichtenId": "soest-gewerbe-0007",
        "anfrageId": "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e",
        "ergebnis": "gefunden",
        "idnr": "52693074139",
    }
    assert (eintraege[1]["rechtsgrundlage"], eintraege[1]["ergebnis"]) == (
        "§ 34 BMG",
        "nicht_gefunden",
    )
    assert eintraege[1]["idnr"] is None
    # A blocked person is protocolled like a miss, and a call without X-Road headers
    # (the operator's own test) keeps them empty.
    assert eintraege[2]["ergebnis"] == "nicht_gefunden"
    assert eintraege[2]["idnr"] is None
    assert eintraege[2]["abrufendeStelle"] is None
    assert len(eintraege) == 3


def test_the_protocol_is_for_the_operator_only(operated: TestClient, db_path: Path) -> None:
    for headers in ({}, {"Authorization": "Bearer falsch"}, {"Authorization": OPERATOR_TOKEN}):
        answer = operated.get("/protokoll", headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.json()["fehler"] == "nicht_angemeldet"
    assert "/protokoll" not in operated.get("/openapi.json").json()["paths"]


def test_without_a_token_the_protocol_answers_nobody(client: TestClient) -> None:
    client.get("/personen", params=ANNA, headers=XROAD)
    answer = client.get("/protokoll", headers={"Authorization": "Bearer "})
    assert answer.status_code == 403
    assert answer.json()["fehler"] == "kein_betreiberzugang"


def test_operator_token_file_must_hold_a_real_token(tmp_path: Path) -> None:
    good, short = tmp_path / "good", tmp_path / "short"
    good.write_text(f"  {OPERATOR_TOKEN}\n", "utf-8")
    short.write_text("kurz\n", "utf-8")
    assert read_operator_token(good) == OPERATOR_TOKEN
    with pytest.raises(ValueError, match="at least 16"):
        read_operator_token(short)
