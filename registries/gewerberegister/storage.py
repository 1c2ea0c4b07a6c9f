"""The Gewerberegister's tables and the one write path that files an Anzeige.

* **Every Satz carries the full Betrieb.** As in XGewerbeanzeige, each stored record holds
  the Betrieb as it stood after that Anzeige, so one record is enough for a recipient
  (the IHK, the statistics office) without replaying history.
* **Stateful rules where the state is.** Rules needing the clock or the stored Betrieb
  (the Betrieb exists, is not yet abgemeldet, dates do not run backwards) are checked by
  :func:`check_dates` and :func:`file_anzeige` in the same transaction that writes, and
  reported in FastAPI's 422 format.
* **The seed goes through the same path.** :func:`seed_if_empty` replays the Anzeigen in
  ``data/anzeigen.json`` through :func:`file_anzeige`, so seeded and filed records cannot
  differ in shape.
* **Own SQLAlchemy registry**, so another sample registry's tables in the same process
  cannot clash with these.
"""

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid4

from fastapi.exceptions import RequestValidationError
from sqlalchemy import JSON, Column, Engine, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel, col, select

from registries.common import load_seed
from registries.gewerberegister.models import (
    ANZEIGE_ADAPTER,
    MAX_VORLAUF,
    BetriebDaten,
    Gewerbeabmeldung,
    Gewerbeanmeldung,
    Gewerbemeldung,
    Gewerbeummeldung,
    JuristischePerson,
    NatuerlichePerson,
)

__all__ = [
    "Anzeige",
    "Betrieb",
    "Inhaber",
    "Konflikt",
    "check_dates",
    "create_tables",
    "file_anzeige",
    "seed_if_empty",
]


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


def create_tables(engine: Engine) -> None:
    """Create the register's tables in ``engine``'s database if they do not exist yet."""
    _GewerberegisterBase.metadata.create_all(engine)


# --------------------------------------------------------------------------- errors


def _invalid(loc: Sequence[str | int], msg: str, value: object) -> RequestValidationError:
    """A 422 in FastAPI's own format, for rules that need the clock or stored data."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", *loc), "msg": msg, "input": value}]
    )


class Konflikt(Exception):
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


def check_dates(
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


def file_anzeige(
    session: Session,
    anzeige: Gewerbeanmeldung | Gewerbeummeldung | Gewerbeabmeldung,
    received: datetime,
    gemeinde_schluessel: str,
) -> Anzeige:
    """Apply ``anzeige`` to the register and store its Satz; the caller commits.

    Raises the 422 or :class:`Konflikt` before writing anything if the Anzeige does not
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
            raise Konflikt(f"Der Betrieb ist seit {betrieb.aufgabe} abgemeldet.")
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


# --------------------------------------------------------------------------- seed


def seed_if_empty(engine: Engine, gemeinde_schluessel: str) -> None:
    """Replay the seeded Anzeigen through the normal code path, unless anything is stored.

    ``data/anzeigen.json`` holds three Betriebe covering the three Anzeigen and both
    Inhaber kinds: Anna Schmidt (the demo citizen, data as in the Melderegister Lippstadt)
    runs a hairdresser's in Soest; a GmbH bakery moved within Soest (Ummeldung); Jonas
    Wagner's kiosk was given up (Abmeldung). Each entry is ``{"eingang": <receipt time>,
    "anzeige": <the Anzeige as POSTed>}``; an Um- or Abmeldung names its Betrieb by the
    position of an earlier entry (``"#1"``), as the ids are created while seeding. Every
    Anzeige is validated like a POSTed one, so a broken file fails the start.
    """
    with Session(engine) as session:
        if session.exec(select(Anzeige.id)).first() is not None:
            return
        ids: list[str] = []
        for entry in load_seed("registries.gewerberegister", "anzeigen.json"):
            received = datetime.fromisoformat(entry["eingang"])
            raw = entry["anzeige"]
            ref = raw.get("gewerbebetriebID")
            if isinstance(ref, str) and ref.startswith("#"):
                raw = {**raw, "gewerbebetriebID": ids[int(ref[1:])]}
            anzeige = ANZEIGE_ADAPTER.validate_python(raw)
            record = file_anzeige(session, anzeige, received, gemeinde_schluessel)
            ids.append(record.gewerbebetrieb_id)
        session.commit()
