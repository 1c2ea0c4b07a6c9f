"""Melderegister Lippstadt: a sample population register answering BMG § 38 queries.

The app stands in for the municipality's real registration software (the *service provider
information system* in X-Road terms). The gateway node calls it over plain HTTP on
127.0.0.1, so it does no authentication, authorisation or § 40 logging itself: the node
decides who may ask and records every request in its message log.

Design choices, and why:

* **No module-level state.** :func:`create_app` builds the engine and the app per call, so
  tests (and a demo running several registries in one process) can each have their own
  database without leaking into each other.
* **Own SQLAlchemy registry.** The table model hangs off a private ``registry()`` instead
  of SQLModel's process-wide default, so another sample registry defining its own
  ``person`` table in the same process cannot clash with this one.
* **Only § 38 fields leave the app.** The response model is separate from the table model;
  the Auskunftssperre flag, the internal id and the move-in date are never serialised.
* **A block is indistinguishable from a miss** (§ 38(2)): blocked persons are filtered out
  in the same SQL query that finds candidates, and both outcomes return one shared,
  precomputed response body. Nothing in status, headers, body or code path differs.
"""

import re
import unicodedata
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Final, Literal

import uvicorn
from fastapi import FastAPI, Query, Response
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import CheckConstraint, Engine, func
from sqlalchemy.engine import URL
from sqlalchemy.orm import registry
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel, col, create_engine, select

__all__ = [
    "GEMEINDESCHLUESSEL_LIPPSTADT",
    "Anschrift",
    "Gefunden",
    "NichtEindeutig",
    "NichtGefunden",
    "Person",
    "PersonAuskunft",
    "create_app",
    "serve",
]

GEMEINDESCHLUESSEL_LIPPSTADT: Final = "05974028"
"""Amtlicher Gemeindeschlüssel (AGS) of Lippstadt, Kreis Soest, NRW."""

MAX_NAME_LENGTH: Final = 100
"""Upper bound for name query parameters and name columns; longer input is a client error."""

Geschlecht = Literal["m", "w", "d", "x"]
"""Sex as kept in the register: männlich, weiblich, divers, ohne Angabe (PStG § 22(3))."""

Wohnungsstatus = Literal["hauptwohnung", "nebenwohnung"]


# --------------------------------------------------------------------------- storage


class _MelderegisterBase(SQLModel, registry=registry()):
    """Abstract base binding the table models to this module's own metadata."""


class Person(_MelderegisterBase, table=True):
    """One registered resident with their current address (a tiny subset of BMG § 3(1)).

    ``vornamen`` is kept as one space-separated string in register order, because § 38
    queries match either all given names or the first one, never an arbitrary one.
    """

    __table_args__ = (
        CheckConstraint("geschlecht IN ('m', 'w', 'd', 'x')", name="ck_person_geschlecht"),
        CheckConstraint(
            "wohnungsstatus IN ('hauptwohnung', 'nebenwohnung')", name="ck_person_wohnungsstatus"
        ),
    )

    id: int | None = SQLField(default=None, primary_key=True)
    familienname: str = SQLField(index=True, max_length=MAX_NAME_LENGTH)
    vornamen: str = SQLField(max_length=MAX_NAME_LENGTH)
    geburtsdatum: date = SQLField(index=True)
    geburtsort: str = SQLField(max_length=MAX_NAME_LENGTH)
    geschlecht: str = SQLField(max_length=1)
    doktorgrad: str | None = SQLField(default=None, max_length=50)
    strasse: str = SQLField(max_length=MAX_NAME_LENGTH)
    hausnummer: str = SQLField(max_length=20)
    postleitzahl: str = SQLField(max_length=5)
    wohnort: str = SQLField(max_length=MAX_NAME_LENGTH)
    gemeindeschluessel: str = SQLField(default=GEMEINDESCHLUESSEL_LIPPSTADT, max_length=8)
    wohnungsstatus: str = SQLField(default="hauptwohnung", max_length=20)
    einzugsdatum: date
    auskunftssperre: bool = SQLField(default=False)
    sterbedatum: date | None = SQLField(default=None)


def _demo_persons() -> list[Person]:
    """The seeded residents of Lippstadt.

    Anna Schmidt is the demo's citizen. The set also covers the cases the query logic has
    to get right: a blocked person (Bernd Krüger), a Doktorgrad, several given names, a
    non-ASCII name, and two different Peter Müllers sharing a birth date (ambiguous hit).
    """
    return [
        Person(
            familienname="Schmidt",
            vornamen="Anna",
            geburtsdatum=date(1988, 3, 14),
            geburtsort="Soest",
            geschlecht="w",
            strasse="Lange Straße",
            hausnummer="12",
            postleitzahl="59555",
            wohnort="Lippstadt",
            einzugsdatum=date(2016, 8, 1),
        ),
        Person(
            familienname="Krüger",
            vornamen="Bernd",
            geburtsdatum=date(1975, 7, 2),
            geburtsort="Lippstadt",
            geschlecht="m",
            strasse="Cappelstraße",
            hausnummer="5",
            postleitzahl="59555",
            wohnort="Lippstadt",
            einzugsdatum=date(2009, 4, 15),
            auskunftssperre=True,
        ),
        Person(
            familienname="Hoffmann",
            vornamen="Thomas Johannes",
            doktorgrad="Dr. med.",
            geburtsdatum=date(1962, 11, 23),
            geburtsort="Paderborn",
            geschlecht="m",
            strasse="Poststraße",
            hausnummer="7",
            postleitzahl="59555",
            wohnort="Lippstadt",
            einzugsdatum=date(1994, 10, 1),
        ),
        Person(
            familienname="Becker",
            vornamen="Maria Elisabeth",
            geburtsdatum=date(1954, 5, 30),
            geburtsort="Lippstadt",
            geschlecht="w",
            strasse="Südstraße",
            hausnummer="41",
            postleitzahl="59557",
            wohnort="Lippstadt",
            einzugsdatum=date(1979, 6, 1),
        ),
        Person(
            familienname="Wagner",
            vornamen="Jonas",
            geburtsdatum=date(2001, 9, 9),
            geburtsort="Hamm",
            geschlecht="m",
            strasse="Cappelstraße",
            hausnummer="18a",
            postleitzahl="59555",
            wohnort="Lippstadt",
            einzugsdatum=date(2021, 10, 1),
        ),
        Person(
            familienname="Yılmaz",  # noqa: RUF001 (Turkish dotless i, on purpose)
            vornamen="Leyla Derya",
            geburtsdatum=date(1993, 1, 27),
            geburtsort="Iserlohn",
            geschlecht="w",
            strasse="Rathausplatz",
            hausnummer="3",
            postleitzahl="59555",
            wohnort="Lippstadt",
            einzugsdatum=date(2019, 3, 1),
        ),
        Person(
            familienname="Neumann",
            vornamen="Kim",
            geburtsdatum=date(1999, 12, 1),
            geburtsort="Lippstadt",
            geschlecht="d",
            strasse="Südstraße",
            hausnummer="8",
            postleitzahl="59557",
            wohnort="Lippstadt",
            einzugsdatum=date(2022, 2, 15),
        ),
        Person(
            familienname="Müller",
            vornamen="Peter",
            geburtsdatum=date(1970, 1, 1),
            geburtsort="Lippstadt",
            geschlecht="m",
            strasse="Lange Straße",
            hausnummer="40",
            postleitzahl="59555",
            wohnort="Lippstadt",
            einzugsdatum=date(1998, 5, 1),
        ),
        Person(
            familienname="Müller",
            vornamen="Peter",
            geburtsdatum=date(1970, 1, 1),
            geburtsort="Erwitte",
            geschlecht="m",
            strasse="Südstraße",
            hausnummer="102",
            postleitzahl="59557",
            wohnort="Lippstadt",
            einzugsdatum=date(2005, 7, 1),
        ),
    ]


def _create_engine(db_path: Path) -> Engine:
    """A SQLite engine for ``db_path``.

    ``check_same_thread`` is off because FastAPI runs sync endpoints in a thread pool; each
    request still uses its own pooled connection, never one shared across threads.
    """
    url = URL.create("sqlite", database=str(db_path))
    return create_engine(url, connect_args={"check_same_thread": False})


def _seed_if_empty(engine: Engine) -> None:
    """Insert the demo persons unless the table already holds anyone.

    Checking for emptiness (rather than for the demo rows) makes seeding idempotent across
    restarts and never touches a database someone has filled by other means.
    """
    with Session(engine) as session:
        count = session.exec(select(func.count()).select_from(Person)).one()
        if count == 0:
            session.add_all(_demo_persons())
            session.commit()


# --------------------------------------------------------------------------- API models


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Anschrift(_Frozen):
    """Current address (derzeitige Anschrift), as released by § 38(1)."""

    strasse: str
    hausnummer: str
    postleitzahl: str = Field(pattern=r"^[0-9]{5}$")
    wohnort: str
    gemeindeschluessel: str = Field(
        pattern=r"^[0-9]{8}$", description="Amtlicher Gemeindeschlüssel (AGS) des Wohnorts."
    )


class PersonAuskunft(_Frozen):
    """The § 38 data of one person; deliberately without any Sperrvermerk."""

    familienname: str
    vornamen: str = Field(description="Alle Vornamen in Registerreihenfolge, durch Leerzeichen.")
    doktorgrad: str | None
    geburtsdatum: date
    geburtsort: str
    geschlecht: Geschlecht = Field(
        description="m = männlich, w = weiblich, d = divers, x = ohne Angabe."
    )
    anschrift: Anschrift
    wohnungsstatus: Wohnungsstatus


class Gefunden(_Frozen):
    """Exactly one person matched."""

    ergebnis: Literal["gefunden"] = "gefunden"
    person: PersonAuskunft


class NichtGefunden(_Frozen):
    """No person may be disclosed; also the answer for a person with an Auskunftssperre."""

    ergebnis: Literal["nicht_gefunden"] = "nicht_gefunden"


class NichtEindeutig(_Frozen):
    """More than one disclosable person matched the search keys."""

    ergebnis: Literal["nicht_eindeutig"] = "nicht_eindeutig"


class Health(_Frozen):
    status: Literal["ok"] = "ok"


def _auskunft(person: Person) -> PersonAuskunft:
    """Project a stored person onto the § 38 fields, validating the stored enums."""
    return PersonAuskunft.model_validate(
        {
            "familienname": person.familienname,
            "vornamen": person.vornamen,
            "doktorgrad": person.doktorgrad,
            "geburtsdatum": person.geburtsdatum,
            "geburtsort": person.geburtsort,
            "geschlecht": person.geschlecht,
            "anschrift": {
                "strasse": person.strasse,
                "hausnummer": person.hausnummer,
                "postleitzahl": person.postleitzahl,
                "wohnort": person.wohnort,
                "gemeindeschluessel": person.gemeindeschluessel,
            },
            "wohnungsstatus": person.wohnungsstatus,
        }
    )


# --------------------------------------------------------------------------- responses

_JSON: Final = "application/json"
_NO_STORE: Final = {"Cache-Control": "no-store"}
"""Personal data must not linger in intermediary caches; sent on every /personen answer."""

_NOT_FOUND_BODY: Final = NichtGefunden().model_dump_json().encode()
_AMBIGUOUS_BODY: Final = NichtEindeutig().model_dump_json().encode()


def _not_found() -> Response:
    """The single not-found answer, shared by "nobody" and "blocked" (§ 38(2)).

    Built from one precomputed byte string so the two cases cannot drift apart.
    """
    return Response(_NOT_FOUND_BODY, status_code=404, media_type=_JSON, headers=_NO_STORE)


def _ambiguous() -> Response:
    return Response(_AMBIGUOUS_BODY, status_code=409, media_type=_JSON, headers=_NO_STORE)


def _found(person: Person) -> Response:
    body = Gefunden(person=_auskunft(person)).model_dump_json().encode()
    return Response(body, status_code=200, media_type=_JSON, headers=_NO_STORE)


# --------------------------------------------------------------------------- query input

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _require_iso_date(value: object) -> object:
    """Reject anything but ``YYYY-MM-DD`` before pydantic's lenient date parsing.

    Pydantic would otherwise accept ``0`` (the Unix epoch) or a full timestamp, and a
    register lookup must not silently reinterpret a malformed birth date.
    """
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("geburtsdatum muss ein Datum im Format YYYY-MM-DD sein")
    return value


def _normalise_name(value: str) -> str:
    """NFC-normalise, so "Krüger" typed with a combining umlaut still matches."""
    return unicodedata.normalize("NFC", value)


def _fold_vornamen(value: str) -> str:
    """Case- and whitespace-insensitive form of given names for comparison."""
    return " ".join(_normalise_name(value).split()).casefold()


def _vornamen_match(stored: str, queried: str) -> bool:
    """True if ``queried`` equals all stored given names or just the first one."""
    wanted = _fold_vornamen(queried)
    names = _fold_vornamen(stored)
    first = names.split(" ", 1)[0]
    return wanted in (names, first)


def _require_text(value: str) -> str:
    """Reject whitespace-only names: they are as good as missing, not a search for ""."""
    if not value.strip():
        raise ValueError("Name darf nicht nur aus Leerzeichen bestehen")
    return value


FamiliennameParam = Annotated[
    str,
    AfterValidator(_require_text),
    Query(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Familienname, exakt wie im Register (Groß-/Kleinschreibung zählt).",
        examples=["Schmidt"],
    ),
]
VornamenParam = Annotated[
    str,
    AfterValidator(_require_text),
    Query(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description=(
            "Alle Vornamen (durch Leerzeichen getrennt) oder nur der erste Vorname; "
            "Groß-/Kleinschreibung egal."
        ),
        examples=["Anna"],
    ),
]
GeburtsdatumParam = Annotated[
    date,
    BeforeValidator(_require_iso_date),
    Query(description="Geburtsdatum im Format YYYY-MM-DD.", examples=["1988-03-14"]),
]


# --------------------------------------------------------------------------- app

_DESCRIPTION: Final = """\
Einfache Behördenauskunft aus dem Melderegister der Stadt Lippstadt
(AGS 05974028) nach **§ 38 Bundesmeldegesetz**, als Dienst hinter dem
Once-only-Gateway.

* **Suchschlüssel:** Familienname (exakt), Vornamen (alle oder der erste,
  ohne Beachtung der Groß-/Kleinschreibung) und Geburtsdatum.
* **Ergebnis:** nur die Daten nach § 38 Abs. 1: Namen, Doktorgrad,
  Geburtsdatum und -ort, Geschlecht, derzeitige Anschrift und Wohnungsstatus.
* **Auskunftssperre:** Personen mit Auskunftssperre werden wie nicht
  gefundene behandelt; die Antwort ist byte-identisch (§ 38 Abs. 2).
* **Mehrdeutigkeit:** passen mehrere Personen, antwortet der Dienst mit 409
  statt mit einer Trefferliste.

Zugriffskontrolle und Protokollierung nach § 40 BMG übernimmt der
Gateway-Knoten, über den dieser Dienst ausschließlich erreichbar ist.
"""


def create_app(db_path: Path, *, seed: bool = True) -> FastAPI:
    """Build the Melderegister app on the SQLite database at ``db_path``.

    Creates the file and tables if needed and, when ``seed`` is true and the person table
    is empty, inserts the demo residents. The engine lives as long as the app: it is
    disposed when the ASGI lifespan ends.
    """
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = _create_engine(db_path)
    _MelderegisterBase.metadata.create_all(engine)
    if seed:
        _seed_if_empty(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="Melderegister Lippstadt",
        version="1.0.0",
        summary="Einfache Behördenauskunft nach § 38 BMG",
        description=_DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "Melderegister", "description": "Auskünfte aus dem Melderegister."},
        ],
    )

    @app.get(
        "/personen",
        tags=["Melderegister"],
        operation_id="einfacheBehoerdenauskunft",
        summary="Person suchen (einfache Behördenauskunft, § 38 BMG)",
        description=(
            "Sucht genau eine Person über Familienname, Vornamen und Geburtsdatum. "
            "Personen mit Auskunftssperre bleiben unsichtbar: die Antwort ist dieselbe "
            "wie bei einer unbekannten Person. Passen mehrere Personen, gibt es keine "
            "Trefferliste, sondern 409."
        ),
        response_model=Gefunden,
        responses={
            200: {"description": "Genau eine Person gefunden."},
            404: {
                "model": NichtGefunden,
                "description": (
                    "Keine Person gefunden, oder die Person hat eine Auskunftssperre "
                    "(nicht unterscheidbar)."
                ),
            },
            409: {
                "model": NichtEindeutig,
                "description": (
                    "Mehrere Personen passen; die Suchmerkmale reichen zur "
                    "Identifizierung nicht aus."
                ),
            },
        },
    )
    def personen(
        familienname: FamiliennameParam,
        vornamen: VornamenParam,
        geburtsdatum: GeburtsdatumParam,
    ) -> Response:
        """Find one person by family name, given names and birth date.

        Persons with an Auskunftssperre are excluded in the SQL query itself, so they never
        reach the match count: a block can neither produce its own answer nor turn an
        otherwise unique hit into an ambiguous one.

        Several matches give 409 rather than a hit list: an automated simple query is
        meant to identify one person, and listing namesakes (with their addresses) to a
        body that cannot tell them apart would disclose data about people it never had
        grounds to ask about. The caller should narrow the query instead.
        """
        statement = select(Person).where(
            col(Person.familienname) == _normalise_name(familienname),
            col(Person.geburtsdatum) == geburtsdatum,
            col(Person.auskunftssperre).is_(False),
        )
        with Session(engine) as session:
            candidates: Sequence[Person] = session.exec(statement).all()
            hits = [p for p in candidates if _vornamen_match(p.vornamen, vornamen)]
            if not hits:
                return _not_found()
            if len(hits) > 1:
                return _ambiguous()
            return _found(hits[0])

    @app.get("/health", include_in_schema=False)
    def health() -> Health:
        """Liveness probe for the node and the demo runner.

        Hidden from the OpenAPI document because that document is what the gateway
        publishes as the service description, and a probe is not a service.
        """
        return Health()

    return app


def serve(db_path: Path, host: str, port: int) -> None:
    """Run the Melderegister with uvicorn until interrupted (used by the ``gateway`` CLI)."""
    uvicorn.run(create_app(db_path), host=host, port=port, log_level="warning")
