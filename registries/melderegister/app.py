"""Melderegister of Lippstadt or Iserlohn: a sample population register for BMG § 38 and § 34.

The app stands in for the municipality's real registration software (the *service provider
information system* in X-Road terms). The gateway node calls it over plain HTTP on
127.0.0.1, so it does no authentication, authorisation or § 40 logging itself: the node
decides who may ask and records every request in its message log.

Paragraph numbers follow the BMG as amended on 1 November 2016 (the version the project's
reference notes use): § 38(1) lists the data of the automated *einfache Behördenauskunft*,
§ 38(4) the search keys, § 34(1) sentence 1 the data the register may transmit to other
public bodies.

Design choices, and why:

* **No module-level state.** :func:`create_app` builds the engine and the app per call, so
  tests (and a demo running several registries in one process) can each have their own
  database without leaking into each other.
* **Own SQLAlchemy registry.** The table models hang off a private ``registry()`` instead
  of SQLModel's process-wide default, so another sample registry defining its own
  ``person`` table in the same process cannot clash with this one.
* **One response model per legal basis.** :class:`PersonAuskunft` carries exactly the
  § 38(1) data, :class:`PersonUebermittlung` exactly the § 34(1) data; each field's
  description names its paragraph, and the OpenAPI document is generated from these
  models, so documentation and answer cannot drift apart.
* **Two URL trees.** § 38 answers at ``/personen``, § 34 at ``/datenuebermittlung/personen``.
  An X-Road consumer may append a path to a service's URL, so the wider § 34 endpoint must
  not live *below* the § 38 one, or an access right for the simple query would reach it.
* **A block is indistinguishable from a miss** (§ 38(2)): blocked persons, and persons whose
  gesetzlicher Vertreter is blocked, are filtered out in the same SQL query that finds
  candidates, and both outcomes return one shared, precomputed response. Nothing in status,
  headers, body or code path differs.
* **The data subject is named by the IDNr.** Every answer that discloses a person carries
  ``X-Data-Subject: <idnr>``, the person's steuerliche Identifikationsnummer, so the
  gateway's data tracker can tell the citizen who read their data, and the citizen can ask
  every city's tracker with the one number her eID sign-in supplies
  (docs/adr/0014-idnr-as-data-subject.md). The IDNr itself is never part of a § 38 or § 34
  answer: neither paragraph lists it.
* **One app, one seed per city.** ``city`` picks the residents (:data:`CITIES`): Lippstadt's
  and Iserlohn's registers are the same software with their own database, as two
  municipalities buying the same product would run it.
"""

import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypedDict

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import JSON, CheckConstraint, Column, Engine, exists, func
from sqlalchemy.engine import URL
from sqlalchemy.orm import aliased, registry
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel, col, create_engine, select

from registries.melderegister.idnr import check_idnr

__all__ = [
    "CITIES",
    "DATA_SUBJECT_HEADER",
    "GEMEINDESCHLUESSEL_ISERLOHN",
    "GEMEINDESCHLUESSEL_LIPPSTADT",
    "SEARCH_KEYS",
    "Anschrift",
    "City",
    "Gefunden",
    "GefundenUebermittlung",
    "GesetzlicheVertretung",
    "NichtEindeutig",
    "NichtGefunden",
    "Person",
    "PersonAuskunft",
    "PersonUebermittlung",
    "create_app",
    "serve",
]

GEMEINDESCHLUESSEL_LIPPSTADT: Final = "05974028"
"""Amtlicher Gemeindeschlüssel (AGS) of Lippstadt, Kreis Soest, NRW."""

GEMEINDESCHLUESSEL_ISERLOHN: Final = "05962024"
"""AGS of Iserlohn, Märkischer Kreis, NRW."""

DATA_SUBJECT_HEADER: Final = "X-Data-Subject"
"""Response header naming the disclosed person by IDNr (format: gateway/core/datasubject.py)."""

MAX_NAME_LENGTH: Final = 100
"""Upper bound for name query parameters and name columns; longer input is a client error."""

Geschlecht = Literal["m", "w", "d", "x"]
"""Sex as kept in the register: männlich, weiblich, divers, ohne Angabe (PStG § 22(3))."""

Wohnungsstatus = Literal["hauptwohnung", "nebenwohnung"]

Familienstand = Literal[
    "ledig", "verheiratet", "verwitwet", "geschieden", "lebenspartnerschaft", "unbekannt"
]


# --------------------------------------------------------------------------- storage


class _MelderegisterBase(SQLModel, registry=registry()):
    """Abstract base binding the table models to this module's own metadata."""


class Person(_MelderegisterBase, table=True):
    """One registered resident (a subset of BMG § 3(1)).

    ``vornamen`` is kept as one space-separated string in register order, because § 38
    queries match either all given names or the first one, never an arbitrary one.
    The current address columns hold the Wegzugsanschrift once ``wegzugsdatum`` is set
    (the person moved out of the municipality; § 38(1) Nr. 8 still lets the register tell
    it). ``idnr`` is the steuerliche Identifikationsnummer (BMG § 3 Abs. 2, § 139b AO): the
    register uses it only to name the person in ``X-Data-Subject`` and never returns it.
    """

    __table_args__ = (
        CheckConstraint("geschlecht IN ('m', 'w', 'd', 'x')", name="ck_person_geschlecht"),
        CheckConstraint(
            "wohnungsstatus IN ('hauptwohnung', 'nebenwohnung')", name="ck_person_wohnungsstatus"
        ),
        CheckConstraint(
            "length(idnr) = 11 AND idnr NOT GLOB '*[^0-9]*'", name="ck_person_idnr_format"
        ),
    )

    id: int | None = SQLField(default=None, primary_key=True)
    idnr: str = SQLField(unique=True, max_length=11)
    familienname: str = SQLField(index=True, max_length=MAX_NAME_LENGTH)
    fruehere_namen: list[str] = SQLField(default_factory=list, sa_column=Column(JSON))
    vornamen: str = SQLField(max_length=MAX_NAME_LENGTH)
    gebraeuchlicher_vorname: str | None = SQLField(default=None, max_length=MAX_NAME_LENGTH)
    ordensname: str | None = SQLField(default=None, max_length=MAX_NAME_LENGTH)
    kuenstlername: str | None = SQLField(default=None, max_length=MAX_NAME_LENGTH)
    geburtsdatum: date = SQLField(index=True)
    geburtsort: str = SQLField(max_length=MAX_NAME_LENGTH)
    geburtsstaat: str | None = SQLField(default=None, max_length=2)
    geschlecht: str = SQLField(max_length=1)
    doktorgrad: str | None = SQLField(default=None, max_length=50)
    strasse: str = SQLField(max_length=MAX_NAME_LENGTH)
    hausnummer: str = SQLField(max_length=20)
    postleitzahl: str = SQLField(max_length=5)
    wohnort: str = SQLField(max_length=MAX_NAME_LENGTH)
    gemeindeschluessel: str = SQLField(default=GEMEINDESCHLUESSEL_LIPPSTADT, max_length=8)
    wohnungsstatus: str = SQLField(default="hauptwohnung", max_length=20)
    einzugsdatum: date
    wegzugsdatum: date | None = SQLField(default=None)
    fruehere_anschriften: list[dict[str, Any]] = SQLField(
        default_factory=list, sa_column=Column(JSON)
    )
    staatsangehoerigkeiten: list[str] = SQLField(
        default_factory=lambda: ["DE"], sa_column=Column(JSON)
    )
    familienstand: str = SQLField(default="unbekannt", max_length=30)
    eheschliessung_datum: date | None = SQLField(default=None)
    eheschliessung_ort: str | None = SQLField(default=None, max_length=MAX_NAME_LENGTH)
    auskunftssperre: bool = SQLField(default=False)
    bedingter_sperrvermerk: bool = SQLField(default=False)
    sterbedatum: date | None = SQLField(default=None)
    sterbeort: str | None = SQLField(default=None, max_length=MAX_NAME_LENGTH)


class GesetzlicheVertretung(_MelderegisterBase, table=True):
    """Link from a person (usually a minor) to a registered gesetzlicher Vertreter."""

    __tablename__ = "gesetzliche_vertretung"

    person_id: int = SQLField(foreign_key="person.id", primary_key=True)
    vertreter_id: int = SQLField(foreign_key="person.id", primary_key=True)


class _Strassenanschrift(TypedDict):
    strasse: str
    hausnummer: str
    postleitzahl: str
    wohnort: str


def _lippstadt(strasse: str, hausnummer: str, postleitzahl: str = "59555") -> _Strassenanschrift:
    """A Lippstadt street address, to keep the seed list short."""
    return {
        "strasse": strasse,
        "hausnummer": hausnummer,
        "postleitzahl": postleitzahl,
        "wohnort": "Lippstadt",
    }


def _lippstadt_persons() -> list[Person]:
    """The seeded residents of Lippstadt.

    Anna Schmidt is the demo's citizen. The set also covers the cases the query logic has
    to get right: blocked persons (Bernd Krüger, Claudia Winter, and Paul Winter whose
    Vertreterin is blocked), a Doktorgrad, several given names, a non-ASCII name, two
    different Peter Müllers sharing a birth date (ambiguous hit), a former name (Maria
    Becker, née Schulte), a person who moved to Iserlohn (Lukas Brandt), a deceased
    person (Heinrich Lange) and a minor with a gesetzliche Vertreterin (Mia Schmidt).
    """
    return [
        Person(
            idnr="52693074139",
            familienname="Schmidt",
            vornamen="Anna",
            geburtsdatum=date(1988, 3, 14),
            geburtsort="Soest",
            geschlecht="w",
            **_lippstadt("Lange Straße", "12"),
            einzugsdatum=date(2016, 8, 1),
            familienstand="ledig",
        ),
        Person(
            idnr="94620851368",
            familienname="Krüger",
            vornamen="Bernd",
            geburtsdatum=date(1975, 7, 2),
            geburtsort="Lippstadt",
            geschlecht="m",
            **_lippstadt("Cappelstraße", "5"),
            einzugsdatum=date(2009, 4, 15),
            auskunftssperre=True,
        ),
        Person(
            idnr="90375416128",
            familienname="Hoffmann",
            vornamen="Thomas Johannes",
            gebraeuchlicher_vorname="Thomas",
            doktorgrad="Dr. med.",
            geburtsdatum=date(1962, 11, 23),
            geburtsort="Paderborn",
            geschlecht="m",
            **_lippstadt("Poststraße", "7"),
            einzugsdatum=date(1994, 10, 1),
            familienstand="verheiratet",
            eheschliessung_datum=date(1990, 5, 12),
            eheschliessung_ort="Paderborn",
        ),
        Person(
            idnr="43251078069",
            familienname="Becker",
            fruehere_namen=["Schulte"],
            vornamen="Maria Elisabeth",
            gebraeuchlicher_vorname="Maria",
            geburtsdatum=date(1954, 5, 30),
            geburtsort="Lippstadt",
            geschlecht="w",
            **_lippstadt("Südstraße", "41", "59557"),
            einzugsdatum=date(1979, 6, 1),
            familienstand="verwitwet",
            eheschliessung_datum=date(1978, 9, 2),
            eheschliessung_ort="Lippstadt",
        ),
        Person(
            idnr="42189372062",
            familienname="Wagner",
            vornamen="Jonas",
            geburtsdatum=date(2001, 9, 9),
            geburtsort="Hamm",
            geschlecht="m",
            **_lippstadt("Cappelstraße", "18a"),
            einzugsdatum=date(2021, 10, 1),
            familienstand="ledig",
            bedingter_sperrvermerk=True,
        ),
        Person(
            idnr="18852763496",
            familienname="Yılmaz",  # noqa: RUF001 (Turkish dotless i, on purpose)
            vornamen="Leyla Derya",
            gebraeuchlicher_vorname="Leyla",
            geburtsdatum=date(1993, 1, 27),
            geburtsort="Iserlohn",
            geschlecht="w",
            **_lippstadt("Rathausplatz", "3"),
            einzugsdatum=date(2019, 3, 1),
            staatsangehoerigkeiten=["DE", "TR"],
        ),
        Person(
            idnr="42710523891",
            familienname="Neumann",
            vornamen="Kim",
            geburtsdatum=date(1999, 12, 1),
            geburtsort="Lippstadt",
            geschlecht="d",
            **_lippstadt("Südstraße", "8", "59557"),
            einzugsdatum=date(2022, 2, 15),
        ),
        Person(
            idnr="75242038612",
            familienname="Müller",
            vornamen="Peter",
            geburtsdatum=date(1970, 1, 1),
            geburtsort="Lippstadt",
            geschlecht="m",
            **_lippstadt("Lange Straße", "40"),
            einzugsdatum=date(1998, 5, 1),
        ),
        Person(
            idnr="69701347257",
            familienname="Müller",
            vornamen="Peter",
            geburtsdatum=date(1970, 1, 1),
            geburtsort="Erwitte",
            geschlecht="m",
            **_lippstadt("Südstraße", "102", "59557"),
            einzugsdatum=date(2005, 7, 1),
        ),
        Person(
            idnr="84662531072",
            familienname="Brandt",
            vornamen="Lukas",
            geburtsdatum=date(1990, 4, 18),
            geburtsort="Lippstadt",
            geschlecht="m",
            strasse="Theodor-Heuss-Ring",
            hausnummer="12",
            postleitzahl="58636",
            wohnort="Iserlohn",
            gemeindeschluessel=GEMEINDESCHLUESSEL_ISERLOHN,
            einzugsdatum=date(2024, 10, 1),
            wegzugsdatum=date(2024, 9, 30),
            fruehere_anschriften=[
                {
                    **_lippstadt("Bahnhofstraße", "3"),
                    "gemeindeschluessel": GEMEINDESCHLUESSEL_LIPPSTADT,
                    "wohnungsstatus": "hauptwohnung",
                    "einzugsdatum": "2012-01-01",
                    "auszugsdatum": "2024-09-30",
                }
            ],
            familienstand="ledig",
        ),
        Person(
            idnr="39084120579",
            familienname="Lange",
            vornamen="Heinrich",
            geburtsdatum=date(1931, 2, 11),
            geburtsort="Lippstadt",
            geschlecht="m",
            **_lippstadt("Klosterstraße", "9"),
            einzugsdatum=date(1960, 4, 1),
            familienstand="verwitwet",
            sterbedatum=date(2025, 12, 3),
            sterbeort="Lippstadt",
        ),
        Person(
            idnr="85917400620",
            familienname="Schmidt",
            vornamen="Mia Sophie",
            gebraeuchlicher_vorname="Mia",
            geburtsdatum=date(2015, 6, 20),
            geburtsort="Lippstadt",
            geschlecht="w",
            **_lippstadt("Lange Straße", "12"),
            einzugsdatum=date(2016, 8, 1),
            familienstand="ledig",
        ),
        Person(
            idnr="61745308429",
            familienname="Winter",
            vornamen="Claudia",
            geburtsdatum=date(1984, 10, 5),
            geburtsort="Soest",
            geschlecht="w",
            **_lippstadt("Erwitter Straße", "77"),
            einzugsdatum=date(2023, 3, 1),
            auskunftssperre=True,
        ),
        Person(
            idnr="14507649289",
            familienname="Winter",
            vornamen="Paul",
            geburtsdatum=date(2017, 2, 2),
            geburtsort="Soest",
            geschlecht="m",
            **_lippstadt("Erwitter Straße", "77"),
            einzugsdatum=date(2023, 3, 1),
            familienstand="ledig",
        ),
    ]


_LIPPSTADT_VERTRETUNG: Final = (
    (("Schmidt", date(2015, 6, 20)), ("Schmidt", date(1988, 3, 14))),
    (("Winter", date(2017, 2, 2)), ("Winter", date(1984, 10, 5))),
)
"""(minor, gesetzlicher Vertreter) pairs, by Familienname and Geburtsdatum."""


def _iserlohn(strasse: str, hausnummer: str, postleitzahl: str = "58636") -> _Strassenanschrift:
    """An Iserlohn street address."""
    return {
        "strasse": strasse,
        "hausnummer": hausnummer,
        "postleitzahl": postleitzahl,
        "wohnort": "Iserlohn",
    }


def _iserlohn_persons() -> list[Person]:
    """The seeded residents of Iserlohn, a register of its own.

    Two of them are also in Lippstadt's register, with the same IDNr, as people who moved
    would be: Anna Schmidt lived in Iserlohn while studying and moved to Lippstadt in 2012
    (so Iserlohn keeps her with the Wegzugsanschrift, § 38(1) Nr. 8, and may be asked about
    her), and Lukas Brandt moved the other way in 2024. Sabine Vogel and Murat Demir are
    Iserlohn-only residents; Greta Schulz has an Auskunftssperre.
    """
    return [
        Person(
            idnr="52693074139",
            familienname="Schmidt",
            vornamen="Anna",
            geburtsdatum=date(1988, 3, 14),
            geburtsort="Soest",
            geschlecht="w",
            **_lippstadt("Bahnhofstraße", "20"),
            gemeindeschluessel=GEMEINDESCHLUESSEL_LIPPSTADT,
            einzugsdatum=date(2012, 4, 1),
            wegzugsdatum=date(2012, 3, 31),
            fruehere_anschriften=[
                {
                    **_iserlohn("Frauenstuhlweg", "31", "58644"),
                    "gemeindeschluessel": GEMEINDESCHLUESSEL_ISERLOHN,
                    "wohnungsstatus": "hauptwohnung",
                    "einzugsdatum": "2008-10-01",
                    "auszugsdatum": "2012-03-31",
                }
            ],
            familienstand="ledig",
        ),
        Person(
            idnr="84662531072",
            familienname="Brandt",
            vornamen="Lukas",
            geburtsdatum=date(1990, 4, 18),
            geburtsort="Lippstadt",
            geschlecht="m",
            **_iserlohn("Theodor-Heuss-Ring", "12"),
            gemeindeschluessel=GEMEINDESCHLUESSEL_ISERLOHN,
            einzugsdatum=date(2024, 10, 1),
            fruehere_anschriften=[
                {
                    **_lippstadt("Bahnhofstraße", "3"),
                    "gemeindeschluessel": GEMEINDESCHLUESSEL_LIPPSTADT,
                    "wohnungsstatus": "hauptwohnung",
                    "einzugsdatum": "2012-01-01",
                    "auszugsdatum": "2024-09-30",
                }
            ],
            familienstand="ledig",
        ),
        Person(
            idnr="13869524876",
            familienname="Vogel",
            vornamen="Sabine",
            geburtsdatum=date(1979, 8, 22),
            geburtsort="Iserlohn",
            geschlecht="w",
            **_iserlohn("Wermingser Straße", "15"),
            gemeindeschluessel=GEMEINDESCHLUESSEL_ISERLOHN,
            einzugsdatum=date(2003, 5, 1),
            familienstand="verheiratet",
            eheschliessung_datum=date(2002, 6, 8),
            eheschliessung_ort="Iserlohn",
        ),
        Person(
            idnr="17836220541",
            familienname="Demir",
            vornamen="Murat",
            geburtsdatum=date(1985, 2, 11),
            geburtsort="Hagen",
            geschlecht="m",
            **_iserlohn("Hohler Weg", "8", "58638"),
            gemeindeschluessel=GEMEINDESCHLUESSEL_ISERLOHN,
            einzugsdatum=date(2015, 9, 1),
            staatsangehoerigkeiten=["DE", "TR"],
        ),
        Person(
            idnr="72014986597",
            familienname="Schulz",
            vornamen="Greta",
            geburtsdatum=date(2000, 12, 24),
            geburtsort="Iserlohn",
            geschlecht="w",
            **_iserlohn("Am Dicken Turm", "2"),
            gemeindeschluessel=GEMEINDESCHLUESSEL_ISERLOHN,
            einzugsdatum=date(2021, 1, 15),
            auskunftssperre=True,
        ),
    ]


Vertretung = tuple[tuple[str, date], tuple[str, date]]


@dataclass(frozen=True, slots=True)
class City:
    """One municipality running this register: its name, AGS and seeded residents."""

    name: str
    gemeindeschluessel: str
    persons: Callable[[], list[Person]]
    vertretung: tuple[Vertretung, ...] = ()


CITIES: Final[dict[str, City]] = {
    "lippstadt": City(
        "Lippstadt", GEMEINDESCHLUESSEL_LIPPSTADT, _lippstadt_persons, _LIPPSTADT_VERTRETUNG
    ),
    "iserlohn": City("Iserlohn", GEMEINDESCHLUESSEL_ISERLOHN, _iserlohn_persons),
}
"""The cities whose register the app can run, by the ``city`` argument of :func:`create_app`."""


def _create_engine(db_path: Path) -> Engine:
    """A SQLite engine for ``db_path``.

    ``check_same_thread`` is off because FastAPI runs sync endpoints in a thread pool; each
    request still uses its own pooled connection, never one shared across threads.
    """
    url = URL.create("sqlite", database=str(db_path))
    return create_engine(url, connect_args={"check_same_thread": False})


def _seed_if_empty(engine: Engine, city: City) -> None:
    """Insert the demo persons unless the table already holds anyone.

    Checking for emptiness (rather than for the demo rows) makes seeding idempotent across
    restarts and never touches a database someone has filled by other means.
    """
    with Session(engine) as session:
        count = session.exec(select(func.count()).select_from(Person)).one()
        if count != 0:
            return
        persons = city.persons()
        for person in persons:
            check_idnr(person.idnr)  # a typo in the seed must not name somebody else
        session.add_all(persons)
        session.flush()
        by_key = {(p.familienname, p.geburtsdatum): p for p in persons}
        for minor, vertreter in city.vertretung:
            person_id, vertreter_id = by_key[minor].id, by_key[vertreter].id
            assert person_id is not None and vertreter_id is not None
            session.add(GesetzlicheVertretung(person_id=person_id, vertreter_id=vertreter_id))
        session.commit()


# --------------------------------------------------------------------------- API models


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Anschrift(_Frozen):
    """An address in the register (derzeitige, frühere or Wegzugsanschrift)."""

    strasse: str
    hausnummer: str
    postleitzahl: str = Field(pattern=r"^[0-9]{5}$")
    wohnort: str
    gemeindeschluessel: str = Field(
        pattern=r"^[0-9]{8}$", description="Amtlicher Gemeindeschlüssel (AGS) des Wohnorts."
    )


class FruehereAnschrift(Anschrift):
    """A former address with its dates (§ 34 Abs. 1 Nr. 6 und 7)."""

    wohnungsstatus: Wohnungsstatus
    einzugsdatum: date
    auszugsdatum: date


class Vertreter(_Frozen):
    """Data of a gesetzlicher Vertreter released by § 34 Abs. 1 Nr. 10 (a) to (g)."""

    familienname: str = Field(description="§ 34 Abs. 1 Nr. 10 a")
    vornamen: str = Field(description="§ 34 Abs. 1 Nr. 10 b")
    doktorgrad: str | None = Field(description="§ 34 Abs. 1 Nr. 10 c")
    anschrift: Anschrift = Field(description="§ 34 Abs. 1 Nr. 10 d")
    geburtsdatum: date = Field(description="§ 34 Abs. 1 Nr. 10 e")
    sterbedatum: date | None = Field(description="§ 34 Abs. 1 Nr. 10 f")
    bedingterSperrvermerk: bool = Field(
        description="§ 34 Abs. 1 Nr. 10 g (bedingter Sperrvermerk nach § 52)."
    )


def _doc(paragraph: str, text: str = "") -> str:
    return f"{paragraph}. {text}".strip()


class PersonAuskunft(_Frozen):
    """The § 38 Abs. 1 data of one person; deliberately without any Auskunftssperre flag."""

    familienname: str = Field(description=_doc("§ 38 Abs. 1 Nr. 1"))
    fruehereNamen: list[str] = Field(description=_doc("§ 38 Abs. 1 Nr. 2"))
    vornamen: str = Field(
        description=_doc(
            "§ 38 Abs. 1 Nr. 3", "Alle Vornamen in Registerreihenfolge, durch Leerzeichen."
        )
    )
    gebraeuchlicherVorname: str | None = Field(
        description=_doc("§ 38 Abs. 1 Nr. 3", "Kennzeichnung des gebräuchlichen Vornamens.")
    )
    ordensname: str | None = Field(description=_doc("§ 38 Abs. 1 Nr. 4"))
    kuenstlername: str | None = Field(description=_doc("§ 38 Abs. 1 Nr. 4"))
    geburtsdatum: date = Field(description=_doc("§ 38 Abs. 1 Nr. 5"))
    geburtsort: str = Field(description=_doc("§ 38 Abs. 1 Nr. 5"))
    geburtsstaat: str | None = Field(
        description=_doc("§ 38 Abs. 1 Nr. 5", "Nur bei Geburt im Ausland; ISO 3166-1 alpha-2.")
    )
    doktorgrad: str | None = Field(description=_doc("§ 38 Abs. 1 Nr. 6"))
    geschlecht: Geschlecht = Field(
        description=_doc(
            "§ 38 Abs. 1 Nr. 7", "m = männlich, w = weiblich, d = divers, x = ohne Angabe."
        )
    )
    anschrift: Anschrift = Field(
        description=_doc("§ 38 Abs. 1 Nr. 8", "Derzeitige Anschrift oder Wegzugsanschrift.")
    )
    wohnungsstatus: Wohnungsstatus = Field(
        description=_doc("§ 38 Abs. 1 Nr. 8", "Kennzeichnung nach Haupt- und Nebenwohnung.")
    )
    wegzugsanschrift: bool = Field(
        description=_doc(
            "§ 38 Abs. 1 Nr. 8",
            "true, wenn die Person aus der Gemeinde weggezogen ist und `anschrift` die "
            "Wegzugsanschrift ist.",
        )
    )
    sterbedatum: date | None = Field(description=_doc("§ 38 Abs. 1 Nr. 9"))
    sterbeort: str | None = Field(description=_doc("§ 38 Abs. 1 Nr. 9"))
    bedingterSperrvermerk: bool = Field(
        description=_doc("§ 38 Abs. 1 Nr. 10", "Bedingter Sperrvermerk nach § 52.")
    )


class PersonUebermittlung(PersonAuskunft):
    """The § 34 Abs. 1 Satz 1 data of one person: the § 38 set plus the fields below.

    Auskunftssperren nach § 51 (Nr. 13) never appear: an automated answer about a blocked
    person is the neutral "nicht gefunden" (§ 38 Abs. 2), and the request is then handled
    by the Meldebehörde outside this service.
    """

    fruehereAnschriften: list[FruehereAnschrift] = Field(
        description=_doc("§ 34 Abs. 1 Nr. 6", "Frühere Anschriften mit Ein- und Auszugsdatum.")
    )
    einzugsdatum: date = Field(
        description=_doc("§ 34 Abs. 1 Nr. 7", "Einzugsdatum der derzeitigen Anschrift.")
    )
    wegzugsdatum: date | None = Field(
        description=_doc("§ 34 Abs. 1 Nr. 7", "Datum des Wegzugs aus der Gemeinde.")
    )
    gesetzlicheVertreter: list[Vertreter] = Field(description=_doc("§ 34 Abs. 1 Nr. 10"))
    staatsangehoerigkeiten: list[str] = Field(
        description=_doc("§ 34 Abs. 1 Nr. 11", "Derzeitige Staatsangehörigkeiten, ISO 3166-1.")
    )
    familienstand: Familienstand = Field(description=_doc("§ 34 Abs. 1 Nr. 12"))
    eheschliessungDatum: date | None = Field(description=_doc("§ 34 Abs. 1 Nr. 12"))
    eheschliessungOrt: str | None = Field(description=_doc("§ 34 Abs. 1 Nr. 12"))


class Gefunden(_Frozen):
    """Exactly one person matched (§ 38 einfache Behördenauskunft)."""

    ergebnis: Literal["gefunden"] = "gefunden"
    person: PersonAuskunft


class GefundenUebermittlung(_Frozen):
    """Exactly one person matched (§ 34 Datenübermittlung)."""

    ergebnis: Literal["gefunden"] = "gefunden"
    person: PersonUebermittlung


class NichtGefunden(_Frozen):
    """No person may be disclosed; also the answer for a person with an Auskunftssperre."""

    ergebnis: Literal["nicht_gefunden"] = "nicht_gefunden"


class NichtEindeutig(_Frozen):
    """More than one disclosable person matched the search keys."""

    ergebnis: Literal["nicht_eindeutig"] = "nicht_eindeutig"


class Health(_Frozen):
    status: Literal["ok"] = "ok"


def _anschrift(person: Person) -> dict[str, str]:
    return {
        "strasse": person.strasse,
        "hausnummer": person.hausnummer,
        "postleitzahl": person.postleitzahl,
        "wohnort": person.wohnort,
        "gemeindeschluessel": person.gemeindeschluessel,
    }


def _auskunft_fields(person: Person) -> dict[str, Any]:
    return {
        "familienname": person.familienname,
        "fruehereNamen": list(person.fruehere_namen),
        "vornamen": person.vornamen,
        "gebraeuchlicherVorname": person.gebraeuchlicher_vorname,
        "ordensname": person.ordensname,
        "kuenstlername": person.kuenstlername,
        "geburtsdatum": person.geburtsdatum,
        "geburtsort": person.geburtsort,
        "geburtsstaat": person.geburtsstaat,
        "doktorgrad": person.doktorgrad,
        "geschlecht": person.geschlecht,
        "anschrift": _anschrift(person),
        "wohnungsstatus": person.wohnungsstatus,
        "wegzugsanschrift": person.wegzugsdatum is not None,
        "sterbedatum": person.sterbedatum,
        "sterbeort": person.sterbeort,
        "bedingterSperrvermerk": person.bedingter_sperrvermerk,
    }


def _auskunft(person: Person) -> PersonAuskunft:
    """Project a stored person onto the § 38(1) fields, validating the stored enums."""
    return PersonAuskunft.model_validate(_auskunft_fields(person))


def _uebermittlung(person: Person, vertreter: Iterable[Person]) -> PersonUebermittlung:
    """Project a stored person onto the § 34(1) fields."""
    return PersonUebermittlung.model_validate(
        {
            **_auskunft_fields(person),
            "fruehereAnschriften": list(person.fruehere_anschriften),
            "einzugsdatum": person.einzugsdatum,
            "wegzugsdatum": person.wegzugsdatum,
            "gesetzlicheVertreter": [
                {
                    "familienname": v.familienname,
                    "vornamen": v.vornamen,
                    "doktorgrad": v.doktorgrad,
                    "anschrift": _anschrift(v),
                    "geburtsdatum": v.geburtsdatum,
                    "sterbedatum": v.sterbedatum,
                    "bedingterSperrvermerk": v.bedingter_sperrvermerk,
                }
                for v in vertreter
            ],
            "staatsangehoerigkeiten": list(person.staatsangehoerigkeiten),
            "familienstand": person.familienstand,
            "eheschliessungDatum": person.eheschliessung_datum,
            "eheschliessungOrt": person.eheschliessung_ort,
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


def _found(body: BaseModel, person: Person) -> Response:
    """A 200 answer disclosing ``person``, named in ``X-Data-Subject`` by IDNr only."""
    headers = {**_NO_STORE, DATA_SUBJECT_HEADER: person.idnr}
    return Response(
        body.model_dump_json().encode(), status_code=200, media_type=_JSON, headers=headers
    )


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


def _fold(value: str) -> str:
    """Case- and whitespace-insensitive form of free text for comparison."""
    return " ".join(_normalise_name(value).split()).casefold()


def _vornamen_match(stored: str, queried: str) -> bool:
    """True if ``queried`` equals all stored given names or just the first one."""
    wanted = _fold(queried)
    names = _fold(stored)
    first = names.split(" ", 1)[0]
    return wanted in (names, first)


def _require_text(value: str) -> str:
    """Reject whitespace-only input: it is as good as missing, not a search for ""."""
    if not value.strip():
        raise ValueError("Wert darf nicht nur aus Leerzeichen bestehen")
    return value


def _text_query(description: str, example: str, max_length: int = MAX_NAME_LENGTH) -> Any:
    return Query(min_length=1, max_length=max_length, description=description, examples=[example])


FamiliennameParam = Annotated[
    str,
    AfterValidator(_require_text),
    _text_query(
        "Familienname oder ein früherer Name, exakt wie im Register (Groß-/Kleinschreibung "
        "zählt); § 38 Abs. 4.",
        "Schmidt",
    ),
]
VornamenParam = Annotated[
    str,
    AfterValidator(_require_text),
    _text_query(
        "Alle Vornamen (durch Leerzeichen getrennt) oder nur der erste Vorname; "
        "Groß-/Kleinschreibung egal; § 38 Abs. 4.",
        "Anna",
    ),
]
GeburtsdatumParam = Annotated[
    date,
    BeforeValidator(_require_iso_date),
    Query(description="Geburtsdatum im Format YYYY-MM-DD; § 38 Abs. 4.", examples=["1988-03-14"]),
]
GeschlechtParam = Annotated[
    Geschlecht | None, Query(description="Optional: Geschlecht (m, w, d, x); § 38 Abs. 4.")
]
OptionalText = Annotated[str, AfterValidator(_require_text)]
GeburtsortParam = Annotated[
    OptionalText | None,
    _text_query("Optional: Geburtsort (ohne Groß-/Kleinschreibung); § 38 Abs. 4.", "Soest"),
]
StrasseParam = Annotated[
    OptionalText | None,
    _text_query("Optional: Straße einer derzeitigen oder früheren Anschrift.", "Lange Straße"),
]
HausnummerParam = Annotated[
    OptionalText | None,
    _text_query("Optional: Hausnummer derselben Anschrift.", "12", max_length=20),
]
PostleitzahlParam = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{5}$", description="Optional: Postleitzahl derselben Anschrift."),
]
WohnortParam = Annotated[
    OptionalText | None,
    _text_query("Optional: Wohnort derselben Anschrift.", "Lippstadt"),
]

SEARCH_KEYS: Final = frozenset(
    {
        "familienname",
        "vornamen",
        "geburtsdatum",
        "geschlecht",
        "geburtsort",
        "strasse",
        "hausnummer",
        "postleitzahl",
        "wohnort",
    }
)
"""The only query parameters accepted: the § 38 Abs. 4 Auswahldaten."""


async def _only_search_keys(request: Request) -> None:
    """Refuse query parameters that are not § 38(4) search keys, and repeated ones.

    FastAPI would silently ignore them; a caller who searches by, say, nationality should
    learn that the register does not allow it rather than get an answer that ignored it.
    """
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for key in request.query_params:
        if key not in SEARCH_KEYS:
            errors.append(
                {
                    "type": "extra_forbidden",
                    "loc": ("query", key),
                    "msg": "kein zulässiges Suchmerkmal nach § 38 Abs. 4 BMG",
                    "input": request.query_params[key],
                }
            )
        elif key not in seen and len(request.query_params.getlist(key)) > 1:
            errors.append(
                {
                    "type": "value_error",
                    "loc": ("query", key),
                    "msg": "Suchmerkmal darf nur einmal angegeben werden",
                    "input": request.query_params.getlist(key),
                }
            )
        seen.add(key)
    if errors:
        raise RequestValidationError(errors)


class _Suche(BaseModel):
    """The search keys of one query, already validated."""

    familienname: str
    vornamen: str
    geburtsdatum: date
    geschlecht: Geschlecht | None = None
    geburtsort: str | None = None
    strasse: str | None = None
    hausnummer: str | None = None
    postleitzahl: str | None = None
    wohnort: str | None = None


def _suche(
    familienname: FamiliennameParam,
    vornamen: VornamenParam,
    geburtsdatum: GeburtsdatumParam,
    geschlecht: GeschlechtParam = None,
    geburtsort: GeburtsortParam = None,
    strasse: StrasseParam = None,
    hausnummer: HausnummerParam = None,
    postleitzahl: PostleitzahlParam = None,
    wohnort: WohnortParam = None,
    _guard: None = Depends(_only_search_keys),
) -> _Suche:
    return _Suche(
        familienname=familienname,
        vornamen=vornamen,
        geburtsdatum=geburtsdatum,
        geschlecht=geschlecht,
        geburtsort=geburtsort,
        strasse=strasse,
        hausnummer=hausnummer,
        postleitzahl=postleitzahl,
        wohnort=wohnort,
    )


def _address_matches(address: dict[str, Any], suche: _Suche) -> bool:
    for key in ("strasse", "hausnummer", "postleitzahl", "wohnort"):
        wanted = getattr(suche, key)
        if wanted is not None and _fold(wanted) != _fold(str(address.get(key, ""))):
            return False
    return True


def _matches(person: Person, suche: _Suche) -> bool:
    """Apply the § 38(4) keys that the SQL query did not already check."""
    familienname = _normalise_name(suche.familienname)
    if familienname != person.familienname and familienname not in person.fruehere_namen:
        return False
    if not _vornamen_match(person.vornamen, suche.vornamen):
        return False
    if suche.geschlecht is not None and suche.geschlecht != person.geschlecht:
        return False
    if suche.geburtsort is not None and _fold(suche.geburtsort) != _fold(person.geburtsort):
        return False
    addresses = [_anschrift(person), *person.fruehere_anschriften]
    return any(_address_matches(a, suche) for a in addresses)


# --------------------------------------------------------------------------- app

_DESCRIPTION: Final = """\
Auskünfte aus dem Melderegister der Stadt {stadt} (AGS {ags}) als Dienste hinter
dem Once-only-Gateway, nach dem **Bundesmeldegesetz** (Paragrafen in der Fassung vom
1. November 2016).

* `GET /personen`, **einfache Behördenauskunft nach § 38 BMG**: nur die Daten nach
  § 38 Abs. 1: Familienname (Nr. 1), frühere Namen (Nr. 2), Vornamen mit Kennzeichnung
  des gebräuchlichen Vornamens (Nr. 3), Ordens- und Künstlername (Nr. 4), Geburtsdatum,
  -ort und -staat (Nr. 5), Doktorgrad (Nr. 6), Geschlecht (Nr. 7), derzeitige Anschrift
  oder Wegzugsanschrift mit Wohnungsstatus (Nr. 8), Sterbedatum und -ort (Nr. 9),
  bedingter Sperrvermerk nach § 52 (Nr. 10).
* `GET /datenuebermittlung/personen`, **Datenübermittlung an andere öffentliche Stellen
  nach § 34 BMG**: die Daten nach § 34 Abs. 1 Satz 1, also alles aus § 38 Abs. 1 und
  dazu frühere Anschriften (Nr. 6), Einzugs- und Wegzugsdatum (Nr. 7), gesetzliche
  Vertreter mit Namen, Doktorgrad, Anschrift, Geburts- und Sterbedatum und bedingtem
  Sperrvermerk (Nr. 10), Staatsangehörigkeiten (Nr. 11), Familienstand mit Datum und
  Ort der Eheschließung (Nr. 12).

Jedes Feld der Antwortschemata nennt seine Nummer im Gesetz.

* **Suchschlüssel (§ 38 Abs. 4):** Familienname oder früherer Name (exakt), Vornamen
  (alle oder der erste, ohne Beachtung der Groß-/Kleinschreibung) und Geburtsdatum sind
  Pflicht; Geschlecht, Geburtsort und eine derzeitige oder frühere Anschrift (Straße,
  Hausnummer, Postleitzahl, Wohnort) grenzen ein. Andere Parameter werden mit 422
  abgelehnt.
* **Auskunftssperre (§ 51, § 38 Abs. 2):** Personen mit Auskunftssperre, und Personen,
  deren gesetzlicher Vertreter eine hat, werden wie nicht gefundene behandelt; Status,
  Kopfzeilen und Inhalt der Antwort sind identisch. Die Meldebehörde bearbeitet solche
  Fälle außerhalb dieses Dienstes.
* **Mehrdeutigkeit:** passen mehrere Personen, antwortet der Dienst mit 409 statt mit
  einer Trefferliste.
* **Betroffene Person:** jede Antwort, die eine Person offenlegt (200), trägt die
  Kopfzeile `X-Data-Subject` mit der steuerlichen Identifikationsnummer (IDNr, § 139b AO)
  dieser Person, damit der Datencockpit-Dienst des Gateways der Person zeigen kann, wer
  ihre Daten abgerufen hat. Der Gateway-Knoten protokolliert sie und entfernt die
  Kopfzeile; der Abrufende erhält die IDNr weder dort noch im Inhalt (weder § 38 Abs. 1
  noch § 34 Abs. 1 nennen sie). Antworten ohne Person tragen sie nicht.

Zugriffskontrolle und Protokollierung nach § 40 BMG übernimmt der Gateway-Knoten, über
den dieser Dienst ausschließlich erreichbar ist.
"""

_DATA_SUBJECT_DOC: Final = {
    DATA_SUBJECT_HEADER: {
        "description": (
            "Steuerliche Identifikationsnummer (IDNr) der offengelegten Person; nur für den "
            "Gateway-Knoten, der sie protokolliert und entfernt."
        ),
        "schema": {"type": "string", "pattern": "^[1-9][0-9]{10}$"},
    }
}

_ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
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
            "Mehrere Personen passen; die Suchmerkmale reichen zur Identifizierung nicht aus."
        ),
    },
}


def create_app(db_path: Path, *, seed: bool = True, city: str = "lippstadt") -> FastAPI:
    """Build the Melderegister of ``city`` (a key of :data:`CITIES`) on ``db_path``.

    Creates the file and tables if needed and, when ``seed`` is true and the person table
    is empty, inserts the city's demo residents. The engine lives as long as the app: it is
    disposed when the ASGI lifespan ends.
    """
    if city not in CITIES:
        raise ValueError(f"unknown city {city!r}; known: {', '.join(sorted(CITIES))}")
    stadt = CITIES[city]
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = _create_engine(db_path)
    _MelderegisterBase.metadata.create_all(engine)
    if seed:
        _seed_if_empty(engine, stadt)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title=f"Melderegister {stadt.name}",
        version="1.2.0",
        summary="Einfache Behördenauskunft (§ 38 BMG) und Datenübermittlung (§ 34 BMG)",
        description=_DESCRIPTION.replace("{stadt}", stadt.name).replace(
            "{ags}", stadt.gemeindeschluessel
        ),
        lifespan=lifespan,
        openapi_tags=[
            {"name": "Melderegister", "description": "Auskünfte aus dem Melderegister."},
        ],
    )

    def find(session: Session, suche: _Suche) -> Person | Response:
        """The single disclosable person matching ``suche``, or the answer to give instead.

        Persons with an Auskunftssperre, or whose gesetzlicher Vertreter has one, are
        excluded in the SQL query itself, so they never reach the match count: a block can
        neither produce its own answer nor turn an otherwise unique hit into an ambiguous
        one.

        Several matches give 409 rather than a hit list: an automated query is meant to
        identify one person, and listing namesakes (with their addresses) to a body that
        cannot tell them apart would disclose data about people it never had grounds to
        ask about. The caller should narrow the query instead.
        """
        blocked_vertreter = aliased(Person)
        vertreter_blocked = exists().where(
            col(GesetzlicheVertretung.person_id) == col(Person.id),
            col(GesetzlicheVertretung.vertreter_id) == col(blocked_vertreter.id),
            col(blocked_vertreter.auskunftssperre).is_(True),
        )
        statement = select(Person).where(
            col(Person.geburtsdatum) == suche.geburtsdatum,
            col(Person.auskunftssperre).is_(False),
            ~vertreter_blocked,
        )
        candidates: Sequence[Person] = session.exec(statement).all()
        hits = [p for p in candidates if _matches(p, suche)]
        if not hits:
            return _not_found()
        if len(hits) > 1:
            return _ambiguous()
        return hits[0]

    @app.get(
        "/personen",
        tags=["Melderegister"],
        operation_id="einfacheBehoerdenauskunft",
        summary="Person suchen (einfache Behördenauskunft, § 38 BMG)",
        description=(
            "Sucht genau eine Person über die Suchmerkmale nach § 38 Abs. 4 und gibt nur "
            "die Daten nach § 38 Abs. 1 zurück (Schema `PersonAuskunft`). Personen mit "
            "Auskunftssperre bleiben unsichtbar: die Antwort ist dieselbe wie bei einer "
            "unbekannten Person. Passen mehrere Personen, gibt es keine Trefferliste, "
            "sondern 409."
        ),
        response_model=Gefunden,
        responses={
            200: {"description": "Genau eine Person gefunden.", "headers": _DATA_SUBJECT_DOC},
            **_ERROR_RESPONSES,
        },
    )
    def personen(suche: Annotated[_Suche, Depends(_suche)]) -> Response:
        """Answer a § 38 query with the § 38(1) data of the one matching person."""
        with Session(engine) as session:
            hit = find(session, suche)
            if isinstance(hit, Response):
                return hit
            return _found(Gefunden(person=_auskunft(hit)), hit)

    @app.get(
        "/datenuebermittlung/personen",
        tags=["Melderegister"],
        operation_id="datenuebermittlung",
        summary="Person suchen (Datenübermittlung an öffentliche Stellen, § 34 BMG)",
        description=(
            "Dieselbe Suche wie `GET /personen`, gibt aber die Daten nach § 34 Abs. 1 Satz 1 "
            "zurück (Schema `PersonUebermittlung`). Auskunftssperren behandelt der Dienst "
            "wie bei § 38: die Antwort gleicht der für eine unbekannte Person."
        ),
        response_model=GefundenUebermittlung,
        responses={
            200: {"description": "Genau eine Person gefunden.", "headers": _DATA_SUBJECT_DOC},
            **_ERROR_RESPONSES,
        },
    )
    def datenuebermittlung(suche: Annotated[_Suche, Depends(_suche)]) -> Response:
        """Answer a § 34 request with the § 34(1) data of the one matching person."""
        with Session(engine) as session:
            hit = find(session, suche)
            if isinstance(hit, Response):
                return hit
            vertreter = session.exec(
                select(Person)
                .join(
                    GesetzlicheVertretung,
                    col(GesetzlicheVertretung.vertreter_id) == col(Person.id),
                )
                .where(col(GesetzlicheVertretung.person_id) == hit.id)
                .order_by(col(Person.id))
            ).all()
            return _found(GefundenUebermittlung(person=_uebermittlung(hit, vertreter)), hit)

    @app.get("/health", include_in_schema=False)
    def health() -> Health:
        """Liveness probe for the node and the demo runner.

        Hidden from the OpenAPI document because that document is what the gateway
        publishes as the service description, and a probe is not a service.
        """
        return Health()

    return app


def serve(db_path: Path, host: str, port: int, city: str = "lippstadt") -> None:
    """Run ``city``'s Melderegister with uvicorn until interrupted (``gateway`` CLI)."""
    from registries.serving import serve_app

    serve_app(create_app(db_path, city=city), host, port)
