"""Gewerberegister Soest: a sample trade register taking Gewerbeanzeigen (§ 14 GewO).

The app stands in for a trade office's register software. It accepts the three kinds of
Gewerbeanzeige (An-, Um- and Abmeldung), keeps the resulting state of every Betrieb, and
answers lookups by Aktenzeichen and searches over Betriebe. Field names follow the data
model of XGewerbeanzeige 2.2 (``gewerbebetriebID``, ``gueltigAb``, ``betriebArt``,
``taetigkeitSchluessel``, ``grundAnmeldungSchluessel`` ...); code values are readable
words instead of the numeric XÖV code lists (docs/registries.md has the mapping).

Design choices, and why:

* **No module-level state; time injected.** :func:`create_app` takes the database path and
  a clock, so tests pin "today" and several registers can run in one process.
* **Discriminated union on ``anzeigeart``.** One endpoint takes all three Anzeigen; pydantic
  picks the model by the discriminator, so a 422 names the exact field of the exact kind
  that is wrong, and no kind can carry another kind's fields (``extra="forbid"``).
* **Static rules in the models, stateful rules in the endpoint.** Anything decidable from
  the request alone (field formats, WZ 2008 division, "registered name needs a register
  number") is a model validator; rules needing the clock or the stored Betrieb (the
  Betrieb exists, is not yet abgemeldet, dates do not run backwards) are checked in the
  same transaction that writes, and reported in FastAPI's 422 format.
* **Every Satz carries the full Betrieb.** As in XGewerbeanzeige, each stored record holds
  the Betrieb as it stood after that Anzeige, so one record is enough for a recipient
  (the IHK, the statistics office) without replaying history.
* **The data subject is named by a pseudonym.** Answers that return a natural person carry
  ``X-Data-Subject`` with that person's register-local random id, never a name.
"""

import re
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from uuid import UUID, uuid4

import httpx
from fastapi import Body, Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)
from sqlalchemy import JSON, Column, Engine, UniqueConstraint
from sqlalchemy.engine import URL
from sqlalchemy.orm import registry
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel, col, create_engine, select

from registries.gewerberegister.outbox import IhkTarget, OutboxDeliverer, create_tables, enqueue

__all__ = [
    "AKTENZEICHEN_PATTERN",
    "DATA_SUBJECT_HEADER",
    "GEMEINDESCHLUESSEL_SOEST",
    "BetriebDaten",
    "Gewerbeabmeldung",
    "Gewerbeanmeldung",
    "Gewerbeanzeige",
    "Gewerbemeldung",
    "Gewerbeummeldung",
    "create_app",
    "ihk_benachrichtigung",
    "serve",
]

GEMEINDESCHLUESSEL_SOEST: Final = "05974040"
"""Amtlicher Gemeindeschlüssel (AGS) of Soest, Kreis Soest, NRW."""

DATA_SUBJECT_HEADER: Final = "X-Data-Subject"
"""Response header naming the natural persons in an answer by register-local pseudonyms."""

AKTENZEICHEN_PATTERN: Final = r"^GEW-[0-9]{4}-[0-9]{6}$"
"""Aktenzeichen issued by this register: ``GEW-<year of receipt>-<running number>``."""

MAX_TREFFER: Final = 100
"""Upper bound on one search answer; a search is for finding a Betrieb, not for export."""

EARLIEST: Final = date(1900, 1, 1)
"""Dates before this are typing errors, not history this register could hold."""

MAX_VORLAUF: Final = timedelta(days=365)
"""How far ahead of its effective date an Anzeige may be filed."""

Clock = Callable[[], datetime]

# WZ 2008 divisions (Abteilungen); the numbers in between are unassigned.
_WZ_ABTEILUNGEN: Final = frozenset(
    n
    for start, stop in (
        *((1, 4), (5, 34), (35, 40), (41, 44), (45, 48), (49, 54), (55, 57)),
        *((58, 67), (68, 69), (69, 76), (77, 83), (84, 89), (90, 94), (94, 100)),
    )
    for n in range(start, stop)
)


# --------------------------------------------------------------------------- input types

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _require_iso_date(value: object) -> object:
    """Accept only ``YYYY-MM-DD`` strings; pydantic would also take epoch numbers."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("Datum im Format YYYY-MM-DD erwartet")
    return value


def _not_before_1900(value: date) -> date:
    if value < EARLIEST:
        raise ValueError("Datum vor 1900-01-01 ist nicht plausibel")
    return value


Datum = Annotated[date, BeforeValidator(_require_iso_date), AfterValidator(_not_before_1900)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Plz = Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
Staat = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Anzahl = Annotated[int, Field(ge=0, le=1_000_000, strict=True)]
Telefon = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 /()-]{3,30}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]+$")]
EintragungNr = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,7}( ?[A-Z]{1,3})?$")]


def _check_wz(value: str) -> str:
    if int(value[:2]) not in _WZ_ABTEILUNGEN:
        raise ValueError(f"{value[:2]} ist keine Abteilung der WZ 2008")
    return value


WzSchluessel = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{5}$"),
    AfterValidator(_check_wz),
    Field(
        description="Wirtschaftszweig nach WZ 2008, Unterklasse ohne Punkte (96.02.1 → 96021).",
        examples=["96021"],
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Anschrift(_Strict):
    """An address in Germany (XGewerbeanzeige ``anschrift``)."""

    strasse: Text
    hausNrVon: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
    plz: Plz
    ort: Name


class Erreichbarkeit(_Strict):
    """Contact data; at least one channel if given."""

    telefon: Telefon | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _one_channel(self) -> "Erreichbarkeit":
        if self.telefon is None and self.email is None:
            raise ValueError("erreichbarkeit braucht telefon oder email")
        return self


class NatuerlichePerson(_Strict):
    """A natural person running the Betrieb (XGewerbeanzeige ``beteiligtePerson``)."""

    art: Literal["natuerlichePerson"]
    familienname: Name
    vorname: Name = Field(description="Alle Vornamen, durch Leerzeichen getrennt.")
    doktorgrad: Annotated[str, StringConstraints(max_length=50)] | None = None
    geschlecht: Literal["m", "w", "d", "x"] | None = None
    geburtsname: Name | None = None
    geburtsdatum: Datum
    geburtsort: Name
    geburtsland: Staat = Field(default="DE", description="ISO 3166-1 alpha-2.")
    staatsangehoerigkeiten: list[Staat] = Field(
        default_factory=lambda: ["DE"], min_length=1, max_length=5
    )
    anschrift: Anschrift = Field(description="Wohnanschrift.")
    erreichbarkeit: Erreichbarkeit | None = None


class JuristischePerson(_Strict):
    """A legal person running the Betrieb (XGewerbeanzeige ``betrieb`` with register data)."""

    art: Literal["juristischePerson"]
    eingetragenerName: Text
    rechtsform: Literal["gmbh", "ug", "ag", "se", "kgaa", "eg", "ev", "sonstige"]
    eintragungArt: Literal["HRB", "GnR", "VR", "PR"] | None = None
    eintragungNr: EintragungNr | None = None
    eintragungOrt: Name | None = Field(default=None, description="Registergericht.")
    anschrift: Anschrift = Field(description="Sitz.")

    @model_validator(mode="after")
    def _eintragung_complete(self) -> "JuristischePerson":
        given = [self.eintragungArt, self.eintragungNr, self.eintragungOrt]
        if any(v is not None for v in given) and not all(v is not None for v in given):
            raise ValueError("eintragungArt, eintragungNr und eintragungOrt nur zusammen angeben")
        return self


Betriebsinhaber = Annotated[NatuerlichePerson | JuristischePerson, Field(discriminator="art")]


class Taetigkeit(_Strict):
    """One activity (XGewerbeanzeige ``taetigkeitSchwerpunkt`` with its WZ 2008 key)."""

    beschreibung: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)
    ]
    taetigkeitSchluessel: WzSchluessel
    stichwort: Name | None = None


class Betriebsstaette(_Strict):
    """Where the Betrieb is run (XGewerbeanzeige ``gewerbe/anschrift``)."""

    anschrift: Anschrift
    niederlassungArt: Literal[
        "hauptniederlassung", "zweigniederlassung", "unselbststaendigeZweigstelle"
    ] = "hauptniederlassung"


BetriebArt = Literal["industrie", "handwerk", "handel", "sonstiges"]
GrundUmmeldung = Literal[
    "verlegung",
    "taetigkeitswechsel",
    "taetigkeitsausdehnung",
    "taetigkeitseinschraenkung",
    "namensaenderung",
    "sonstige",
]


class Gewerbeanmeldung(_Strict):
    """Gewerbeanmeldung (GewA 1): a new Betrieb; ``gueltigAb`` is the Beginn."""

    anzeigeart: Literal["anmeldung"]
    gueltigAb: Datum = Field(description="Beginn der Tätigkeit.")
    grundAnmeldungSchluessel: Literal["neugruendung", "uebernahme", "zuzug", "umwandlung"]
    betriebsinhaber: Betriebsinhaber
    geschaeftsbezeichnung: Text | None = None
    betriebsstaette: Betriebsstaette
    taetigkeit: Taetigkeit
    weitereTaetigkeiten: list[Taetigkeit] = Field(default_factory=list, max_length=10)
    betriebArt: BetriebArt
    istReisegewerbe: bool = False
    istNebenerwerb: bool = False
    anzahlVollzeitBeschaeftigte: Anzahl = 0
    anzahlTeilzeitBeschaeftigte: Anzahl = 0

    @model_validator(mode="after")
    def _born_before_start(self) -> "Gewerbeanmeldung":
        inhaber = self.betriebsinhaber
        if isinstance(inhaber, NatuerlichePerson) and inhaber.geburtsdatum >= self.gueltigAb:
            raise ValueError("gueltigAb (Beginn) muss nach dem Geburtsdatum des Inhabers liegen")
        return self


class Gewerbeummeldung(_Strict):
    """Gewerbeummeldung (GewA 2): changes to an existing Betrieb from ``gueltigAb`` on.

    Only the changed parts are sent; each reason requires the part it changes. A change of
    Inhaber is not an Ummeldung (the old one abmeldet, the new one anmeldet), hence there is
    no ``betriebsinhaber`` field.
    """

    anzeigeart: Literal["ummeldung"]
    gewerbebetriebID: UUID
    gueltigAb: Datum = Field(description="Datum der Änderung.")
    grundUmmeldungSchluessel: list[GrundUmmeldung] = Field(min_length=1, max_length=6)
    geschaeftsbezeichnung: Text | None = None
    betriebsstaette: Betriebsstaette | None = None
    taetigkeit: Taetigkeit | None = None
    weitereTaetigkeiten: list[Taetigkeit] | None = Field(default=None, max_length=10)
    betriebArt: BetriebArt | None = None
    anzahlVollzeitBeschaeftigte: Anzahl | None = None
    anzahlTeilzeitBeschaeftigte: Anzahl | None = None

    @model_validator(mode="after")
    def _reasons_match_changes(self) -> "Gewerbeummeldung":
        gruende = set(self.grundUmmeldungSchluessel)
        if len(gruende) != len(self.grundUmmeldungSchluessel):
            raise ValueError("grundUmmeldungSchluessel enthält einen Grund doppelt")
        needs = {
            "verlegung": ("betriebsstaette", self.betriebsstaette),
            "namensaenderung": ("geschaeftsbezeichnung", self.geschaeftsbezeichnung),
            "taetigkeitswechsel": ("taetigkeit", self.taetigkeit),
        }
        for grund, (feld, wert) in needs.items():
            if grund in gruende and wert is None:
                raise ValueError(f"Grund {grund!r} verlangt das Feld {feld!r}")
        if {"taetigkeitsausdehnung", "taetigkeitseinschraenkung"} & gruende and (
            self.taetigkeit is None and self.weitereTaetigkeiten is None
        ):
            raise ValueError("Änderung der Tätigkeit verlangt taetigkeit oder weitereTaetigkeiten")
        if not self.changes():
            raise ValueError("Ummeldung ohne geänderte Angaben")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields this Ummeldung sets, in JSON form."""
        return self.model_dump(
            mode="json",
            exclude_none=True,
            exclude={"anzeigeart", "gewerbebetriebID", "gueltigAb", "grundUmmeldungSchluessel"},
        )


class Gewerbeabmeldung(_Strict):
    """Gewerbeabmeldung (GewA 3): the Betrieb ends; ``gueltigAb`` is the Aufgabe."""

    anzeigeart: Literal["abmeldung"]
    gewerbebetriebID: UUID
    gueltigAb: Datum = Field(description="Datum der Betriebsaufgabe.")
    grundAbmeldungSchluessel: Literal[
        "vollstaendigeAufgabe", "verlegungAusDemMeldebezirk", "uebergabe", "umwandlung"
    ]
    ursacheAbmeldungSchluessel: (
        Literal["wirtschaftlicheSchwierigkeiten", "insolvenz", "alter", "krankheit", "sonstige"]
        | None
    ) = None

    @model_validator(mode="after")
    def _ursache_only_for_aufgabe(self) -> "Gewerbeabmeldung":
        if (
            self.ursacheAbmeldungSchluessel is not None
            and self.grundAbmeldungSchluessel != "vollstaendigeAufgabe"
        ):
            raise ValueError("ursacheAbmeldungSchluessel nur bei vollstaendigeAufgabe")
        return self


Gewerbeanzeige = Annotated[
    Gewerbeanmeldung | Gewerbeummeldung | Gewerbeabmeldung, Field(discriminator="anzeigeart")
]
_ANZEIGE: Final[TypeAdapter[Gewerbeanmeldung | Gewerbeummeldung | Gewerbeabmeldung]] = TypeAdapter(
    Gewerbeanzeige
)


# --------------------------------------------------------------------------- output types


class BetriebDaten(_Strict):
    """A Betrieb as it stands after an Anzeige (XGewerbeanzeige ``gewerbe``)."""

    betriebsinhaber: Betriebsinhaber
    geschaeftsbezeichnung: str | None
    betriebsstaette: Betriebsstaette
    taetigkeit: Taetigkeit
    weitereTaetigkeiten: list[Taetigkeit]
    betriebArt: BetriebArt
    istReisegewerbe: bool
    istNebenerwerb: bool
    anzahlVollzeitBeschaeftigte: int
    anzahlTeilzeitBeschaeftigte: int


class Gewerbemeldung(_Strict):
    """One stored Satz: the Anzeige as filed, its metadata, and the resulting Betrieb."""

    aktenzeichen: str = Field(pattern=AKTENZEICHEN_PATTERN)
    uuid: UUID = Field(description="Kennung dieses Satzes (XGewerbeanzeige ``uuid``).")
    satzErstellung: datetime = Field(description="Eingang beim Gewerbeamt (UTC).")
    datumMeldung: date
    gemeindeSchluessel: str = Field(pattern=r"^[0-9]{8}$")
    gewerbebetriebID: UUID = Field(description="Dauerhafte Kennung des Betriebs.")
    anzeige: Gewerbeanzeige
    betrieb: BetriebDaten
    status: Literal["aktiv", "abgemeldet"] = Field(description="Stand nach dieser Anzeige.")


class Eingangsbestaetigung(_Strict):
    """The receipt for a filed Anzeige."""

    aktenzeichen: str = Field(pattern=AKTENZEICHEN_PATTERN)
    anzeigeart: Literal["anmeldung", "ummeldung", "abmeldung"]
    gewerbebetriebID: UUID
    uuid: UUID
    eingegangenAm: datetime


class BetriebEintrag(_Strict):
    """One Betrieb in a search answer, in its current state."""

    gewerbebetriebID: UUID
    status: Literal["aktiv", "abgemeldet"]
    beginn: date
    aufgabe: date | None
    aktenzeichen: list[str] = Field(description="Alle Anzeigen zu diesem Betrieb, älteste zuerst.")
    betrieb: BetriebDaten


class Suchergebnis(_Strict):
    anzahl: int
    unvollstaendig: bool = Field(description=f"true, wenn mehr als {MAX_TREFFER} Betriebe passen.")
    betriebe: list[BetriebEintrag]


class Fehler(_Strict):
    """A refusal that is not a field validation error."""

    fehler: str
    detail: str


class Health(_Strict):
    status: Literal["ok"] = "ok"


# --------------------------------------------------------------------------- storage


class _GewerberegisterBase(SQLModel, registry=registry()):
    """Abstract base binding the table models to this module's own metadata."""


def _new_uuid() -> str:
    return str(uuid4())


class Inhaber(_GewerberegisterBase, table=True):
    """A natural person who has run a Betrieb here; owns the ``X-Data-Subject`` pseudonym.

    Persons are recognised by name and birth data, so one person with two Betriebe has one
    pseudonym in this register.
    """

    __table_args__ = (UniqueConstraint("familienname", "vorname", "geburtsdatum", "geburtsort"),)

    id: int | None = SQLField(default=None, primary_key=True)
    kennung: str = SQLField(default_factory=_new_uuid, unique=True, max_length=36)
    familienname: str = SQLField(max_length=100)
    vorname: str = SQLField(max_length=100)
    geburtsdatum: date
    geburtsort: str = SQLField(max_length=100)


class Betrieb(_GewerberegisterBase, table=True):
    """The current state of one Betrieb, plus columns the search filters on."""

    id: int | None = SQLField(default=None, primary_key=True)
    gewerbebetrieb_id: str = SQLField(unique=True, max_length=36)
    status: str = SQLField(default="aktiv", max_length=20)
    beginn: date
    aufgabe: date | None = None
    letzte_aenderung: date
    daten: dict[str, Any] = SQLField(sa_column=Column(JSON, nullable=False))
    inhaber_kennung: str | None = SQLField(default=None, max_length=36)


class Anzeige(_GewerberegisterBase, table=True):
    """One filed Gewerbeanzeige with the full Satz as returned by GET."""

    id: int | None = SQLField(default=None, primary_key=True)
    aktenzeichen: str = SQLField(unique=True, max_length=40)
    anzeigeart: str = SQLField(max_length=20)
    gewerbebetrieb_id: str = SQLField(index=True, max_length=36)
    satz: dict[str, Any] = SQLField(sa_column=Column(JSON, nullable=False))
    inhaber_kennung: str | None = SQLField(default=None, max_length=36)


def _create_engine(db_path: Path) -> Engine:
    """A SQLite engine; ``check_same_thread`` off for FastAPI's thread pool (no sharing)."""
    url = URL.create("sqlite", database=str(db_path))
    return create_engine(url, connect_args={"check_same_thread": False})


# --------------------------------------------------------------------------- errors


def _invalid(loc: Sequence[str | int], msg: str, value: object) -> RequestValidationError:
    """A 422 in FastAPI's own format, for rules that need the clock or stored data."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", *loc), "msg": msg, "input": value}]
    )


class _Konflikt(Exception):
    """The Anzeige is well-formed but contradicts the Betrieb's state (409)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# --------------------------------------------------------------------------- logic


def _inhaber_kennung(
    session: Session, inhaber: NatuerlichePerson | JuristischePerson
) -> str | None:
    """The pseudonym of a natural-person Inhaber, created on first sight; None otherwise."""
    if not isinstance(inhaber, NatuerlichePerson):
        return None
    existing = session.exec(
        select(Inhaber).where(
            col(Inhaber.familienname) == inhaber.familienname,
            col(Inhaber.vorname) == inhaber.vorname,
            col(Inhaber.geburtsdatum) == inhaber.geburtsdatum,
            col(Inhaber.geburtsort) == inhaber.geburtsort,
        )
    ).first()
    if existing is not None:
        return existing.kennung
    person = Inhaber(
        familienname=inhaber.familienname,
        vorname=inhaber.vorname,
        geburtsdatum=inhaber.geburtsdatum,
        geburtsort=inhaber.geburtsort,
    )
    session.add(person)
    session.flush()
    return person.kennung


def _check_dates(
    anzeige: Gewerbeanmeldung | Gewerbeummeldung | Gewerbeabmeldung, today: date
) -> None:
    if anzeige.gueltigAb > today + MAX_VORLAUF:
        raise _invalid(
            [anzeige.anzeigeart, "gueltigAb"],
            f"gueltigAb darf höchstens {MAX_VORLAUF.days} Tage in der Zukunft liegen",
            anzeige.gueltigAb.isoformat(),
        )
    if isinstance(anzeige, Gewerbeanmeldung):
        inhaber = anzeige.betriebsinhaber
        if isinstance(inhaber, NatuerlichePerson) and inhaber.geburtsdatum > today:
            raise _invalid(
                ["anmeldung", "betriebsinhaber", "natuerlichePerson", "geburtsdatum"],
                "Geburtsdatum liegt in der Zukunft",
                inhaber.geburtsdatum.isoformat(),
            )


def _file(
    session: Session,
    anzeige: Gewerbeanmeldung | Gewerbeummeldung | Gewerbeabmeldung,
    received: datetime,
    gemeinde_schluessel: str,
) -> Anzeige:
    """Apply ``anzeige`` to the register and store its Satz; the caller commits.

    Raises the 422 or :class:`_Konflikt` before writing anything if the Anzeige does not
    fit the stored Betrieb.
    """
    if isinstance(anzeige, Gewerbeanmeldung):
        daten = anzeige.model_dump(
            mode="json", exclude={"anzeigeart", "gueltigAb", "grundAnmeldungSchluessel"}
        )
        betrieb = Betrieb(
            gewerbebetrieb_id=_new_uuid(),
            beginn=anzeige.gueltigAb,
            letzte_aenderung=anzeige.gueltigAb,
            daten=daten,
            inhaber_kennung=_inhaber_kennung(session, anzeige.betriebsinhaber),
        )
        session.add(betrieb)
    else:
        found = session.exec(
            select(Betrieb).where(col(Betrieb.gewerbebetrieb_id) == str(anzeige.gewerbebetriebID))
        ).first()
        if found is None:
            raise _invalid(
                [anzeige.anzeigeart, "gewerbebetriebID"],
                "kein Betrieb mit dieser gewerbebetriebID im Gewerberegister",
                str(anzeige.gewerbebetriebID),
            )
        betrieb = found
        if betrieb.status == "abgemeldet":
            raise _Konflikt(f"Der Betrieb ist seit {betrieb.aufgabe} abgemeldet.")
        if anzeige.gueltigAb < betrieb.letzte_aenderung:
            raise _invalid(
                [anzeige.anzeigeart, "gueltigAb"],
                "gueltigAb liegt vor der letzten Anzeige zu diesem Betrieb "
                f"({betrieb.letzte_aenderung.isoformat()})",
                anzeige.gueltigAb.isoformat(),
            )
        betrieb.letzte_aenderung = anzeige.gueltigAb
        if isinstance(anzeige, Gewerbeummeldung):
            betrieb.daten = {**betrieb.daten, **anzeige.changes()}
        else:
            betrieb.status = "abgemeldet"
            betrieb.aufgabe = anzeige.gueltigAb
        session.add(betrieb)

    record = Anzeige(
        aktenzeichen=_new_uuid(),  # placeholder, replaced once the row id is known
        anzeigeart=anzeige.anzeigeart,
        gewerbebetrieb_id=betrieb.gewerbebetrieb_id,
        satz={},
        inhaber_kennung=betrieb.inhaber_kennung,
    )
    session.add(record)
    session.flush()
    record.aktenzeichen = f"GEW-{received.year:04d}-{record.id:06d}"
    satz = Gewerbemeldung(
        aktenzeichen=record.aktenzeichen,
        uuid=uuid4(),
        satzErstellung=received,
        datumMeldung=received.date(),
        gemeindeSchluessel=gemeinde_schluessel,
        gewerbebetriebID=UUID(betrieb.gewerbebetrieb_id),
        anzeige=anzeige,
        betrieb=BetriebDaten.model_validate(betrieb.daten),
        status="abgemeldet" if betrieb.status == "abgemeldet" else "aktiv",
    )
    record.satz = satz.model_dump(mode="json")
    session.add(record)
    return record


def _natural(daten: BetriebDaten) -> bool:
    return isinstance(daten.betriebsinhaber, NatuerlichePerson)


def ihk_benachrichtigung(meldung: Gewerbemeldung) -> dict[str, Any]:
    """The subset of a Satz the chamber of commerce receives (§ 14 Abs. 8 GewO).

    The IHK needs to identify and contact its new member and classify the Betrieb; it does
    not get birth place, nationality, sex, birth name or contact data of the Inhaber. The
    IHK endpoint (:mod:`registries.ihk`) refuses any field beyond this set.
    """
    betrieb = meldung.betrieb
    inhaber = betrieb.betriebsinhaber
    if isinstance(inhaber, NatuerlichePerson):
        inhaber_daten: dict[str, Any] = inhaber.model_dump(
            mode="json",
            include={"art", "familienname", "vorname", "doktorgrad", "geburtsdatum", "anschrift"},
        )
    else:
        inhaber_daten = inhaber.model_dump(mode="json")
    anzeige = meldung.anzeige
    grund: str
    if isinstance(anzeige, Gewerbeanmeldung):
        grund = anzeige.grundAnmeldungSchluessel
    elif isinstance(anzeige, Gewerbeummeldung):
        grund = ",".join(anzeige.grundUmmeldungSchluessel)
    else:
        grund = anzeige.grundAbmeldungSchluessel
    return {
        "aktenzeichen": meldung.aktenzeichen,
        "anzeigeart": anzeige.anzeigeart,
        "gemeindeSchluessel": meldung.gemeindeSchluessel,
        "gewerbebetriebID": str(meldung.gewerbebetriebID),
        "datumMeldung": meldung.datumMeldung.isoformat(),
        "gueltigAb": anzeige.gueltigAb.isoformat(),
        "grund": grund,
        "betriebsinhaber": inhaber_daten,
        "geschaeftsbezeichnung": betrieb.geschaeftsbezeichnung,
        "betriebsstaette": betrieb.betriebsstaette.model_dump(mode="json"),
        "taetigkeit": betrieb.taetigkeit.model_dump(
            mode="json", include={"beschreibung", "taetigkeitSchluessel"}
        ),
        "betriebArt": betrieb.betriebArt,
        "anzahlVollzeitBeschaeftigte": betrieb.anzahlVollzeitBeschaeftigte,
        "anzahlTeilzeitBeschaeftigte": betrieb.anzahlTeilzeitBeschaeftigte,
    }


# --------------------------------------------------------------------------- seed


def _demo_anzeigen() -> list[tuple[datetime, dict[str, Any]]]:
    """The seeded history: three Betriebe covering the three Anzeigen and both Inhaber kinds.

    Anna Schmidt (the demo citizen, data as in the Melderegister Lippstadt) runs a
    hairdresser's in Soest; a GmbH bakery moved within Soest (Ummeldung); Jonas Wagner's
    kiosk was given up (Abmeldung). The Ummeldung and Abmeldung refer to their Betrieb by
    position (``"#0"``), as the ids are created while seeding.
    """
    anna = {
        "art": "natuerlichePerson",
        "familienname": "Schmidt",
        "vorname": "Anna",
        "geschlecht": "w",
        "geburtsdatum": "1988-03-14",
        "geburtsort": "Soest",
        "anschrift": {
            "strasse": "Lange Straße",
            "hausNrVon": "12",
            "plz": "59555",
            "ort": "Lippstadt",
        },
    }
    jonas = {
        "art": "natuerlichePerson",
        "familienname": "Wagner",
        "vorname": "Jonas",
        "geschlecht": "m",
        "geburtsdatum": "2001-09-09",
        "geburtsort": "Hamm",
        "anschrift": {
            "strasse": "Cappelstraße",
            "hausNrVon": "18a",
            "plz": "59555",
            "ort": "Lippstadt",
        },
    }
    baeckerei = {
        "art": "juristischePerson",
        "eingetragenerName": "Hellweg Backstube GmbH",
        "rechtsform": "gmbh",
        "eintragungArt": "HRB",
        "eintragungNr": "4711",
        "eintragungOrt": "Amtsgericht Arnsberg",
        "anschrift": {"strasse": "Brüderstraße", "hausNrVon": "20", "plz": "59494", "ort": "Soest"},
    }

    def at(day: str) -> datetime:
        return datetime.fromisoformat(f"{day}T09:00:00+00:00")

    return [
        (
            at("2019-03-25"),
            {
                "anzeigeart": "anmeldung",
                "gueltigAb": "2019-04-01",
                "grundAnmeldungSchluessel": "neugruendung",
                "betriebsinhaber": anna,
                "geschaeftsbezeichnung": "Salon Anna",
                "betriebsstaette": {
                    "anschrift": {
                        "strasse": "Markt",
                        "hausNrVon": "5",
                        "plz": "59494",
                        "ort": "Soest",
                    }
                },
                "taetigkeit": {"beschreibung": "Friseursalon", "taetigkeitSchluessel": "96021"},
                "betriebArt": "handwerk",
                "anzahlTeilzeitBeschaeftigte": 2,
            },
        ),
        (
            at("2015-01-10"),
            {
                "anzeigeart": "anmeldung",
                "gueltigAb": "2015-01-15",
                "grundAnmeldungSchluessel": "neugruendung",
                "betriebsinhaber": baeckerei,
                "betriebsstaette": {"anschrift": baeckerei["anschrift"]},
                "taetigkeit": {
                    "beschreibung": "Herstellung von Backwaren und Verkauf im Laden",
                    "taetigkeitSchluessel": "10711",
                },
                "betriebArt": "handwerk",
                "anzahlVollzeitBeschaeftigte": 12,
                "anzahlTeilzeitBeschaeftigte": 5,
            },
        ),
        (
            at("2022-05-20"),
            {
                "anzeigeart": "ummeldung",
                "gewerbebetriebID": "#1",
                "gueltigAb": "2022-06-01",
                "grundUmmeldungSchluessel": ["verlegung"],
                "betriebsstaette": {
                    "anschrift": {
                        "strasse": "Grandweg",
                        "hausNrVon": "3",
                        "plz": "59494",
                        "ort": "Soest",
                    }
                },
            },
        ),
        (
            at("2021-02-22"),
            {
                "anzeigeart": "anmeldung",
                "gueltigAb": "2021-03-01",
                "grundAnmeldungSchluessel": "neugruendung",
                "betriebsinhaber": jonas,
                "geschaeftsbezeichnung": "Kiosk am Bahnhof",
                "betriebsstaette": {
                    "anschrift": {
                        "strasse": "Bahnhofstraße",
                        "hausNrVon": "1",
                        "plz": "59494",
                        "ort": "Soest",
                    }
                },
                "taetigkeit": {
                    "beschreibung": "Einzelhandel mit Tabakwaren und Zeitschriften",
                    "taetigkeitSchluessel": "47260",
                },
                "betriebArt": "handel",
                "istNebenerwerb": True,
            },
        ),
        (
            at("2025-01-03"),
            {
                "anzeigeart": "abmeldung",
                "gewerbebetriebID": "#3",
                "gueltigAb": "2024-12-31",
                "grundAbmeldungSchluessel": "vollstaendigeAufgabe",
                "ursacheAbmeldungSchluessel": "wirtschaftlicheSchwierigkeiten",
            },
        ),
    ]


def _seed_if_empty(engine: Engine, gemeinde_schluessel: str) -> None:
    """Replay the demo Anzeigen through the normal code path, unless anything is stored."""
    with Session(engine) as session:
        if session.exec(select(Anzeige.id)).first() is not None:
            return
        ids: list[str] = []
        for received, raw in _demo_anzeigen():
            ref = raw.get("gewerbebetriebID")
            if isinstance(ref, str) and ref.startswith("#"):
                raw = {**raw, "gewerbebetriebID": ids[int(ref[1:])]}
            record = _file(session, _ANZEIGE.validate_python(raw), received, gemeinde_schluessel)
            ids.append(record.gewerbebetrieb_id)
        session.commit()


# --------------------------------------------------------------------------- responses

_JSON: Final = "application/json"
_NO_STORE: Final = {"Cache-Control": "no-store"}


def _json(body: BaseModel, status: int, subjects: Sequence[str | None] = ()) -> Response:
    """A JSON answer; ``X-Data-Subject`` lists the distinct pseudonyms, if any."""
    headers = dict(_NO_STORE)
    distinct = list(dict.fromkeys(s for s in subjects if s))
    if distinct:
        headers[DATA_SUBJECT_HEADER] = ", ".join(distinct)
    return Response(
        body.model_dump_json().encode(), status_code=status, media_type=_JSON, headers=headers
    )


SUCHPARAMETER: Final = frozenset(
    {
        "name",
        "plz",
        "ort",
        "taetigkeitSchluessel",
        "status",
        "inhaberFamilienname",
        "gewerbebetriebID",
    }
)


async def _only_search_parameters(request: Request) -> None:
    """Unknown or repeated query parameters are refused, not silently ignored."""
    errors = [
        {
            "type": "extra_forbidden",
            "loc": ("query", key),
            "msg": "unbekannter Suchparameter",
            "input": request.query_params[key],
        }
        for key in request.query_params
        if key not in SUCHPARAMETER
    ] + [
        {
            "type": "value_error",
            "loc": ("query", key),
            "msg": "Suchparameter darf nur einmal angegeben werden",
            "input": request.query_params.getlist(key),
        }
        for key in request.query_params
        if key in SUCHPARAMETER and len(request.query_params.getlist(key)) > 1
    ]
    if errors:
        raise RequestValidationError(errors)


def _fold(value: str) -> str:
    return " ".join(value.split()).casefold()


def _names(daten: BetriebDaten) -> list[str]:
    inhaber = daten.betriebsinhaber
    names = [daten.geschaeftsbezeichnung or ""]
    if isinstance(inhaber, NatuerlichePerson):
        names.append(f"{inhaber.vorname} {inhaber.familienname}")
    else:
        names.append(inhaber.eingetragenerName)
    return [_fold(n) for n in names if n]


# --------------------------------------------------------------------------- app

_DESCRIPTION: Final = """\
Gewerberegister der Stadt Soest (AGS 05974040): nimmt Gewerbeanzeigen nach **§ 14 GewO**
entgegen (An-, Um- und Abmeldung, Felder nach dem Datenmodell von **XGewerbeanzeige
2.2**) und beantwortet Abfragen hinter dem Once-only-Gateway.

* `POST /gewerbeanzeigen`: eine Anzeige; `anzeigeart` (`anmeldung`, `ummeldung`,
  `abmeldung`) wählt das Schema. Antwort 201 mit Aktenzeichen und Eingangszeit.
  Um- und Abmeldung nennen die `gewerbebetriebID` eines bestehenden, nicht abgemeldeten
  Betriebs; ihr `gueltigAb` darf nicht vor der letzten Anzeige zu diesem Betrieb liegen.
* `GET /gewerbeanzeigen/{aktenzeichen}`: der gespeicherte Satz mit der Anzeige und dem
  Betrieb, wie er danach bestand.
* `GET /betriebe`: Suche nach Betrieben (mindestens ein Suchparameter, höchstens 100
  Treffer).

Fehlerhafte Eingaben ergeben 422 mit der genauen Feldposition (`loc`) und einer deutschen
Meldung. **Betroffene Personen:** Antworten, die eine natürliche Person als
Betriebsinhaber enthalten, tragen die Kopfzeile `X-Data-Subject` mit den pseudonymen
Kennungen (UUID) dieser Personen in diesem Register, durch Komma getrennt; nie einen
Namen. Antworten ohne natürliche Person tragen sie nicht.
"""

_DATA_SUBJECT_DOC: Final = {
    DATA_SUBJECT_HEADER: {
        "description": "Pseudonyme Kennungen (UUID, kommagetrennt) der enthaltenen "
        "natürlichen Personen; fehlt, wenn keine enthalten ist.",
        "schema": {"type": "string"},
    }
}


def create_app(
    db_path: Path,
    *,
    seed: bool = True,
    gemeinde_schluessel: str = GEMEINDESCHLUESSEL_SOEST,
    clock: Clock | None = None,
    ihk: IhkTarget | None = None,
    ihk_transport: httpx.BaseTransport | None = None,
) -> FastAPI:
    """Build the Gewerberegister app on the SQLite database at ``db_path``.

    ``clock`` returns the current time (aware, UTC); it stamps receipts and bounds how far
    in the future ``gueltigAb`` may lie. The engine is disposed when the lifespan ends.
    With ``ihk`` every filed Anzeige is also queued for the IHK in the same transaction
    and delivered through the gateway in the background while the app runs
    (:mod:`registries.gewerberegister.outbox`); ``ihk_transport`` is an httpx transport
    for tests.
    """
    now: Clock = clock or (lambda: datetime.now(UTC))
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = _create_engine(db_path)
    _GewerberegisterBase.metadata.create_all(engine)
    create_tables(engine)
    if seed:
        _seed_if_empty(engine, gemeinde_schluessel)
    deliverer = None if ihk is None else OutboxDeliverer(engine, ihk, now, transport=ihk_transport)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if deliverer is not None:
            deliverer.start()
        try:
            yield
        finally:
            if deliverer is not None:
                deliverer.stop()
            engine.dispose()

    app = FastAPI(
        title="Gewerberegister Soest",
        version="1.0.0",
        summary="Gewerbeanzeigen nach § 14 GewO (XGewerbeanzeige)",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )

    app.state.ihk_outbox = deliverer  # for operators' tools and tests; None if not notifying
    write_lock = threading.Lock()

    @app.post(
        "/gewerbeanzeigen",
        status_code=201,
        tags=["Gewerbeanzeigen"],
        operation_id="gewerbeanzeigeErstatten",
        summary="Gewerbeanzeige erstatten (An-, Um- oder Abmeldung)",
        response_model=Eingangsbestaetigung,
        responses={
            201: {
                "description": "Anzeige gespeichert; `Location` zeigt auf den Satz.",
                "headers": {"Location": {"schema": {"type": "string"}}},
            },
            409: {"model": Fehler, "description": "Der Betrieb ist bereits abgemeldet."},
        },
    )
    def gewerbeanzeige_erstatten(
        anzeige: Annotated[Gewerbeanzeige, Body()],
    ) -> Response:
        """File one Anzeige and answer with a receipt.

        Writes are serialised by ``write_lock``: an Ummeldung reads the Betrieb's state and
        writes the merged state back, and two concurrent ones must not lose an update. The
        receipt names no person, so it carries no ``X-Data-Subject``. The IHK notification
        is queued in the same transaction and sent afterwards, so the IHK's availability
        never decides whether an Anzeige is accepted.
        """
        received = now().astimezone(UTC)
        _check_dates(anzeige, received.date())
        with write_lock, Session(engine) as session:
            try:
                record = _file(session, anzeige, received, gemeinde_schluessel)
            except _Konflikt as conflict:
                session.rollback()
                return _json(Fehler(fehler="betrieb_abgemeldet", detail=conflict.detail), 409)
            satz = Gewerbemeldung.model_validate(record.satz)
            if deliverer is not None:
                enqueue(session, ihk_benachrichtigung(satz), received)
            session.commit()
        if deliverer is not None:
            deliverer.wake()
        receipt = Eingangsbestaetigung(
            aktenzeichen=satz.aktenzeichen,
            anzeigeart=anzeige.anzeigeart,
            gewerbebetriebID=satz.gewerbebetriebID,
            uuid=satz.uuid,
            eingegangenAm=satz.satzErstellung,
        )
        response = _json(receipt, 201)
        response.headers["Location"] = f"/gewerbeanzeigen/{satz.aktenzeichen}"
        return response

    @app.get(
        "/gewerbeanzeigen/{aktenzeichen}",
        tags=["Gewerbeanzeigen"],
        operation_id="gewerbeanzeigeLesen",
        summary="Gespeicherte Gewerbeanzeige lesen",
        response_model=Gewerbemeldung,
        responses={
            200: {"description": "Der Satz.", "headers": _DATA_SUBJECT_DOC},
            404: {"model": Fehler, "description": "Kein Satz mit diesem Aktenzeichen."},
        },
    )
    def gewerbeanzeige_lesen(
        aktenzeichen: Annotated[
            str, PathParam(pattern=AKTENZEICHEN_PATTERN, examples=["GEW-2026-000001"])
        ],
    ) -> Response:
        """Return one stored Satz as filed, with the Betrieb as it stood afterwards.

        The Satz is returned from storage rather than rebuilt from the current Betrieb, so
        a later Ummeldung never rewrites what an earlier Anzeige said.
        """
        with Session(engine) as session:
            record = session.exec(
                select(Anzeige).where(col(Anzeige.aktenzeichen) == aktenzeichen)
            ).first()
            if record is None:
                return _json(
                    Fehler(fehler="nicht_gefunden", detail="Kein Satz mit diesem Aktenzeichen."),
                    404,
                )
            satz = Gewerbemeldung.model_validate(record.satz)
            subject = record.inhaber_kennung if _natural(satz.betrieb) else None
        return _json(satz, 200, [subject])

    @app.get(
        "/betriebe",
        tags=["Betriebe"],
        operation_id="betriebeSuchen",
        summary="Betriebe suchen",
        description=(
            "Alle Parameter sind optional, mindestens einer ist nötig; mehrere verknüpft "
            "UND. `name` sucht (ohne Groß-/Kleinschreibung) als Teilzeichenkette in "
            "Geschäftsbezeichnung, eingetragenem Namen und Name des Inhabers; "
            "`taetigkeitSchluessel` ist ein Präfix des WZ-2008-Schlüssels."
        ),
        response_model=Suchergebnis,
        responses={200: {"description": "Treffer (auch keine).", "headers": _DATA_SUBJECT_DOC}},
    )
    def betriebe_suchen(
        _guard: Annotated[None, Depends(_only_search_parameters)],
        name: Annotated[str | None, Query(min_length=2, max_length=100)] = None,
        plz: Annotated[str | None, Query(pattern=r"^[0-9]{5}$")] = None,
        ort: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        taetigkeitSchluessel: Annotated[str | None, Query(pattern=r"^[0-9]{2,5}$")] = None,
        status: Literal["aktiv", "abgemeldet"] | None = None,
        inhaberFamilienname: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        gewerbebetriebID: UUID | None = None,
    ) -> Response:
        """Find Betriebe by a few public attributes, current state only.

        At least one criterion is required and the answer is capped, because the endpoint
        is for locating a Betrieb, not for exporting the register (and every hit with a
        natural person is a disclosure the data tracker will show that person).
        """
        criteria = [
            name,
            plz,
            ort,
            taetigkeitSchluessel,
            status,
            inhaberFamilienname,
            gewerbebetriebID,
        ]
        if all(c is None for c in criteria):
            raise RequestValidationError(
                [
                    {
                        "type": "missing",
                        "loc": ("query",),
                        "msg": "mindestens ein Suchparameter ist nötig: "
                        + ", ".join(sorted(SUCHPARAMETER)),
                        "input": None,
                    }
                ]
            )
        statement = select(Betrieb).order_by(col(Betrieb.id))
        if status is not None:
            statement = statement.where(col(Betrieb.status) == status)
        if gewerbebetriebID is not None:
            statement = statement.where(col(Betrieb.gewerbebetrieb_id) == str(gewerbebetriebID))
        treffer: list[BetriebEintrag] = []
        kennungen: list[str | None] = []
        with Session(engine) as session:
            for row in session.exec(statement).all():
                daten = BetriebDaten.model_validate(row.daten)
                anschrift = daten.betriebsstaette.anschrift
                inhaber = daten.betriebsinhaber
                if name is not None and not any(_fold(name) in n for n in _names(daten)):
                    continue
                if plz is not None and anschrift.plz != plz:
                    continue
                if ort is not None and _fold(anschrift.ort) != _fold(ort):
                    continue
                schluessel = [daten.taetigkeit, *daten.weitereTaetigkeiten]
                if taetigkeitSchluessel is not None and not any(
                    t.taetigkeitSchluessel.startswith(taetigkeitSchluessel) for t in schluessel
                ):
                    continue
                if inhaberFamilienname is not None and not (
                    isinstance(inhaber, NatuerlichePerson)
                    and _fold(inhaber.familienname) == _fold(inhaberFamilienname)
                ):
                    continue
                aktenzeichen = session.exec(
                    select(Anzeige.aktenzeichen)
                    .where(col(Anzeige.gewerbebetrieb_id) == row.gewerbebetrieb_id)
                    .order_by(col(Anzeige.id))
                ).all()
                treffer.append(
                    BetriebEintrag(
                        gewerbebetriebID=UUID(row.gewerbebetrieb_id),
                        status="abgemeldet" if row.status == "abgemeldet" else "aktiv",
                        beginn=row.beginn,
                        aufgabe=row.aufgabe,
                        aktenzeichen=list(aktenzeichen),
                        betrieb=daten,
                    )
                )
                kennungen.append(row.inhaber_kennung if _natural(daten) else None)
        shown = treffer[:MAX_TREFFER]
        subjects = kennungen[:MAX_TREFFER]
        body = Suchergebnis(
            anzahl=len(shown), unvollstaendig=len(treffer) > MAX_TREFFER, betriebe=shown
        )
        return _json(body, 200, subjects)

    @app.get("/health", include_in_schema=False)
    def health() -> Health:
        """Liveness probe; hidden from OpenAPI because a probe is not a service."""
        return Health()

    return app


def serve(db_path: Path, host: str, port: int, ihk: IhkTarget | None = None) -> None:
    """Run the Gewerberegister with uvicorn until interrupted (used by the ``gateway`` CLI)."""
    from registries.serving import serve_app

    serve_app(create_app(db_path, ihk=ihk), host, port)
