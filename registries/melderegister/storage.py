"""The Melderegister's tables, the cities that run it, and their seeded residents.

* **Own SQLAlchemy registry.** The table models hang off a private ``registry()`` instead
  of SQLModel's process-wide default, so another sample registry defining its own
  ``person`` table in the same process cannot clash with this one.
* **Seed data is data.** Each city's residents live in ``data/<city>.json`` (package data,
  read through :func:`registries.common.load_seed`): ``einwohner`` holds one object per
  resident with the columns of :class:`Person` (dates as ``YYYY-MM-DD``, omitted columns
  take their defaults), ``gesetzliche_vertretung`` links a minor to a Vertreter by IDNr.
  Every row is validated by :class:`Person` and every IDNr by its check digit before
  anything is written, so a typo in the file fails the start instead of naming somebody
  else.
"""

from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from pydantic import BaseModel, ConfigDict
from sqlalchemy import JSON, CheckConstraint, Column, Engine, func
from sqlalchemy.orm import registry
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel, select

from registries.common import load_seed
from registries.melderegister.idnr import check_idnr
from registries.melderegister.models import (
    GEMEINDESCHLUESSEL_ISERLOHN,
    GEMEINDESCHLUESSEL_LIPPSTADT,
    MAX_NAME_LENGTH,
)

__all__ = [
    "CITIES",
    "Abruf",
    "City",
    "GesetzlicheVertretung",
    "Person",
    "Residents",
    "create_tables",
    "current_address",
    "residents_from",
    "seed_if_empty",
]


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


class Abruf(_MelderegisterBase, table=True):
    """One automated retrieval (§ 38 or § 34 answer), as the Melderecht asks the register
    to protocol it: who asked, for which case, when, and whom it disclosed.

    The X-Road columns are the headers the requesting authority's own node signed and
    the provider's node passed on (``X-Road-Client``, ``X-Road-Issue``, ...); a call that
    reached the register without them (an operator's direct test) keeps them empty.
    ``idnr`` is set only when the answer disclosed a person: a miss and a blocked person
    are protocolled alike, as they are answered alike (§ 38(2)).

    The table has no index beside its key: every lookup appends a row, and each index
    would add a page of its own to every lookup's commit, for queries the register never
    makes (the operator's view reads the rows in order of their key; ADR 0074).
    """

    __tablename__ = "abrufprotokoll"

    id: int | None = SQLField(default=None, primary_key=True)
    zeitpunkt: str = SQLField(max_length=24)
    """When the register answered, ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC)."""
    rechtsgrundlage: str = SQLField(max_length=10)
    abrufende_stelle: str | None = SQLField(default=None)
    aktenzeichen: str | None = SQLField(default=None)
    benutzer: str | None = SQLField(default=None)
    vertretene_stelle: str | None = SQLField(default=None)
    nachrichten_id: str | None = SQLField(default=None)
    anfrage_id: str | None = SQLField(default=None)
    ergebnis: str = SQLField(max_length=20)
    idnr: str | None = SQLField(default=None, max_length=11)


def current_address(person: Person) -> dict[str, str]:
    """The person's current address (or Wegzugsanschrift) in the shape of ``Anschrift``."""
    return {
        "strasse": person.strasse,
        "hausnummer": person.hausnummer,
        "postleitzahl": person.postleitzahl,
        "wohnort": person.wohnort,
        "gemeindeschluessel": person.gemeindeschluessel,
    }


def create_tables(engine: Engine) -> None:
    """Create the register's tables in ``engine``'s database if they do not exist yet."""
    _MelderegisterBase.metadata.create_all(engine)


class _Vertretung(BaseModel):
    """One ``gesetzliche_vertretung`` entry of a seed file: minor and Vertreter by IDNr."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    person: str
    vertreter: str


class _Seed(BaseModel):
    """The shape of ``data/<city>.json``; unknown keys are an error, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    einwohner: list[dict[str, Any]]
    gesetzliche_vertretung: list[_Vertretung] = []


@dataclass(frozen=True, slots=True)
class Residents:
    """A city's seed, checked: new (unsaved) rows and the Vertretung links between them."""

    persons: list[Person]
    vertretung: list[tuple[str, str]]
    """(minor, gesetzlicher Vertreter) pairs, by IDNr."""


def residents_from(document: object, source: str) -> Residents:
    """Check a parsed seed file and turn it into rows; ``ValueError`` names what is wrong.

    A key that is not a column is an error: validation alone would drop it, and a misspelt
    ``auskunftssperre`` would then publish a blocked person. Every row is validated by
    :class:`Person` (dates, lengths), every IDNr by its check digit (a typo must not name
    somebody else), and every Vertretung must link two residents of the same file.
    """
    seed = _Seed.model_validate(document)
    columns = set(Person.model_fields) - {"id"}
    persons: list[Person] = []
    for row in seed.einwohner:
        unknown = sorted(set(row) - columns)
        if unknown:
            raise ValueError(f"{source}: unknown column(s) {unknown} in {row!r}")
        person = Person.model_validate(row)
        try:
            check_idnr(person.idnr)
        except ValueError as exc:
            raise ValueError(
                f"{source}: IDNr {person.idnr} of {person.familienname}: {exc}"
            ) from exc
        persons.append(person)
    idnrs = {p.idnr for p in persons}
    links = [(v.person, v.vertreter) for v in seed.gesetzliche_vertretung]
    for minor, vertreter in links:
        if minor not in idnrs or vertreter not in idnrs:
            raise ValueError(f"{source}: Vertretung {minor} -> {vertreter} names a non-resident")
    return Residents(persons, links)


@dataclass(frozen=True, slots=True)
class City:
    """One municipality running this register: its name, AGS and seed file."""

    name: str
    gemeindeschluessel: str
    seed_file: str
    """File name under ``registries/melderegister/data/``."""

    def residents(self) -> Residents:
        """The seeded residents, read from the package data and checked."""
        document = load_seed("registries.melderegister", self.seed_file)
        return residents_from(document, self.seed_file)


CITIES: Final[dict[str, City]] = {
    "lippstadt": City("Lippstadt", GEMEINDESCHLUESSEL_LIPPSTADT, "lippstadt.json"),
    "iserlohn": City("Iserlohn", GEMEINDESCHLUESSEL_ISERLOHN, "iserlohn.json"),
}
"""The cities whose register the app can run, by the ``city`` argument of ``create_app``.

Lippstadt's residents: Anna Schmidt is the demo's citizen. The set also covers the cases
the query logic has to get right: blocked persons (Bernd Krüger, Claudia Winter, and Paul
Winter whose Vertreterin is blocked), a Doktorgrad, several given names, a non-ASCII name,
two different Peter Müllers sharing a birth date (ambiguous hit), a former name (Maria
Becker, née Schulte), a person who moved to Iserlohn (Lukas Brandt), a deceased person
(Heinrich Lange) and a minor with a gesetzliche Vertreterin (Mia Schmidt).

Iserlohn's, a register of its own: two of them are also in Lippstadt's register, with the
same IDNr, as people who moved would be: Anna Schmidt lived in Iserlohn while studying and
moved to Lippstadt in 2012 (so Iserlohn keeps her with the Wegzugsanschrift, § 38(1) Nr. 8,
and may be asked about her), and Lukas Brandt moved the other way in 2024. Sabine Vogel and
Murat Demir are Iserlohn-only residents; Greta Schulz has an Auskunftssperre.
"""


def seed_if_empty(engine: Engine, city: City) -> None:
    """Insert the city's residents unless the table already holds anyone.

    Checking for emptiness (rather than for the demo rows) makes seeding idempotent across
    restarts and never touches a database someone has filled by other means.
    """
    with Session(engine) as session:
        count = session.exec(select(func.count()).select_from(Person)).one()
        if count != 0:
            return
        residents = city.residents()
        session.add_all(residents.persons)
        session.flush()
        by_idnr = {p.idnr: p for p in residents.persons}
        for minor, vertreter in residents.vertretung:
            person_id, vertreter_id = by_idnr[minor].id, by_idnr[vertreter].id
            assert person_id is not None and vertreter_id is not None
            session.add(GesetzlicheVertretung(person_id=person_id, vertreter_id=vertreter_id))
        session.commit()
