"""IHK endpoint: the chamber of commerce receives Gewerbeanzeigen (§ 14 Abs. 8 GewO).

The trade office pushes every An-, Um- and Abmeldung to the IHK (in production over OSCI
as XGewerbeanzeige ``ihk.gewerbemeldung``; here as JSON through the gateway). This app is
the receiving side: it validates, stores and lists the notifications.

Design choices, and why:

* **Only the subset the chamber may get.** The payload model forbids extra fields, so a
  sender that includes data the IHK is not entitled to (birth place, nationality, contact
  data of the Inhaber) is refused with 422 instead of having the surplus silently stored.
  The sender-side mapping is :func:`registries.gewerberegister.app.ihk_benachrichtigung`;
  this module does not import it, because in production the two are separate systems.
* **Idempotent on Aktenzeichen + Anzeigeart.** Notifications travel over a network and are
  retried; the same notification again answers 200 with the stored record instead of
  creating a duplicate. The same key with *different* content is a 409: one Aktenzeichen
  names one Anzeige, and silently overwriting would lose what was received first.
* **No module-level state; time injected** (:func:`create_app` takes a clock).
"""

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from fastapi import Body, FastAPI, Query, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from sqlalchemy import JSON, Column, Engine, UniqueConstraint
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import registry
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel, col, create_engine, select

__all__ = ["Benachrichtigung", "create_app", "serve"]

MAX_LISTE: Final = 500
"""Upper bound on one list answer."""

Clock = Callable[[], datetime]

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _require_iso_date(value: object) -> object:
    """Accept only ``YYYY-MM-DD`` strings; pydantic would also take epoch numbers."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("Datum im Format YYYY-MM-DD erwartet")
    return value


def _plausible(value: date) -> date:
    if value < date(1900, 1, 1):
        raise ValueError("Datum vor 1900-01-01 ist nicht plausibel")
    return value


Datum = Annotated[date, BeforeValidator(_require_iso_date), AfterValidator(_plausible)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Anzahl = Annotated[int, Field(ge=0, le=1_000_000, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Anschrift(_Strict):
    strasse: Text
    hausNrVon: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
    plz: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
    ort: Text


class NatuerlichePerson(_Strict):
    """What the IHK learns about a natural-person Inhaber: enough to identify and write."""

    art: Literal["natuerlichePerson"]
    familienname: Text
    vorname: Text
    doktorgrad: Annotated[str, StringConstraints(max_length=50)] | None = None
    geburtsdatum: Datum
    anschrift: Anschrift


class JuristischePerson(_Strict):
    art: Literal["juristischePerson"]
    eingetragenerName: Text
    rechtsform: Literal["gmbh", "ug", "ag", "se", "kgaa", "eg", "ev", "sonstige"]
    eintragungArt: Literal["HRB", "GnR", "VR", "PR"] | None = None
    eintragungNr: Annotated[str, StringConstraints(max_length=20)] | None = None
    eintragungOrt: Text | None = None
    anschrift: Anschrift


class Betriebsstaette(_Strict):
    anschrift: Anschrift
    niederlassungArt: Literal[
        "hauptniederlassung", "zweigniederlassung", "unselbststaendigeZweigstelle"
    ]


class Taetigkeit(_Strict):
    beschreibung: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)
    ]
    taetigkeitSchluessel: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")] = Field(
        description="WZ 2008, Unterklasse ohne Punkte."
    )


class Benachrichtigung(_Strict):
    """One Gewerbeanzeige as the IHK receives it (a subset of the XGewerbeanzeige Satz)."""

    aktenzeichen: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,5}-[0-9]{4}-[0-9]{1,9}$")]
    anzeigeart: Literal["anmeldung", "ummeldung", "abmeldung"]
    gemeindeSchluessel: Annotated[str, StringConstraints(pattern=r"^[0-9]{8}$")]
    gewerbebetriebID: UUID
    datumMeldung: Datum
    gueltigAb: Datum
    grund: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]+(,[A-Za-z]+)*$", max_length=200)]
    betriebsinhaber: Annotated[NatuerlichePerson | JuristischePerson, Field(discriminator="art")]
    geschaeftsbezeichnung: Text | None = None
    betriebsstaette: Betriebsstaette
    taetigkeit: Taetigkeit
    betriebArt: Literal["industrie", "handwerk", "handel", "sonstiges"]
    anzahlVollzeitBeschaeftigte: Anzahl
    anzahlTeilzeitBeschaeftigte: Anzahl

    @model_validator(mode="after")
    def _dates_consistent(self) -> "Benachrichtigung":
        inhaber = self.betriebsinhaber
        if isinstance(inhaber, NatuerlichePerson) and inhaber.geburtsdatum >= self.gueltigAb:
            raise ValueError("gueltigAb muss nach dem Geburtsdatum des Inhabers liegen")
        return self


class Eintrag(_Strict):
    """A stored notification with its receipt time."""

    id: int
    empfangenAm: datetime
    benachrichtigung: Benachrichtigung


class Liste(_Strict):
    anzahl: int
    benachrichtigungen: list[Eintrag]


class Fehler(_Strict):
    fehler: str
    detail: str


class Health(_Strict):
    status: Literal["ok"] = "ok"


# --------------------------------------------------------------------------- storage


class _IhkBase(SQLModel, registry=registry()):
    """Abstract base binding the table model to this module's own metadata."""


class Notification(_IhkBase, table=True):
    """One received notification; (aktenzeichen, anzeigeart) is the idempotency key."""

    __tablename__ = "benachrichtigung"
    __table_args__ = (UniqueConstraint("aktenzeichen", "anzeigeart"),)

    id: int | None = SQLField(default=None, primary_key=True)
    aktenzeichen: str = SQLField(max_length=40)
    anzeigeart: str = SQLField(max_length=20)
    gewerbebetrieb_id: str = SQLField(index=True, max_length=36)
    empfangen_am: datetime
    inhalt: dict[str, Any] = SQLField(sa_column=Column(JSON, nullable=False))


def _create_engine(db_path: Path) -> Engine:
    url = URL.create("sqlite", database=str(db_path))
    return create_engine(url, connect_args={"check_same_thread": False})


def _eintrag(row: Notification) -> Eintrag:
    assert row.id is not None
    received = row.empfangen_am
    if received.tzinfo is None:  # SQLite drops the zone; we only ever store UTC
        received = received.replace(tzinfo=UTC)
    return Eintrag(
        id=row.id,
        empfangenAm=received,
        benachrichtigung=Benachrichtigung.model_validate(row.inhalt),
    )


def _json(body: BaseModel, status: int) -> Response:
    return Response(
        body.model_dump_json().encode(),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


_DESCRIPTION: Final = """\
Empfang von Gewerbeanzeigen durch die Industrie- und Handelskammer nach **§ 14 Abs. 8
GewO**: das Gewerbeamt meldet jede An-, Um- und Abmeldung (Felder nach XGewerbeanzeige,
nur der Ausschnitt, den die Kammer erhält).

* `POST /benachrichtigungen`: 201 beim ersten Eingang, 200 mit dem gespeicherten Eintrag
  bei einer Wiederholung (gleiches `aktenzeichen` und `anzeigeart`, gleicher Inhalt),
  409 bei gleichem Schlüssel mit anderem Inhalt, 422 bei ungültigen oder zusätzlichen
  Feldern.
* `GET /benachrichtigungen`: gespeicherte Benachrichtigungen, älteste zuerst; optional
  gefiltert nach `aktenzeichen`, `gewerbebetriebID` oder `anzeigeart`.
"""


def create_app(db_path: Path, *, clock: Clock | None = None) -> FastAPI:
    """Build the IHK notification endpoint on the SQLite database at ``db_path``."""
    now: Clock = clock or (lambda: datetime.now(UTC))
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = _create_engine(db_path)
    _IhkBase.metadata.create_all(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="IHK Benachrichtigungen",
        version="1.0.0",
        summary="Empfang von Gewerbeanzeigen nach § 14 Abs. 8 GewO",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )

    def existing(session: Session, meldung: Benachrichtigung) -> Notification | None:
        return session.exec(
            select(Notification).where(
                col(Notification.aktenzeichen) == meldung.aktenzeichen,
                col(Notification.anzeigeart) == meldung.anzeigeart,
            )
        ).first()

    def replay(row: Notification, inhalt: dict[str, Any]) -> Response:
        if row.inhalt != inhalt:  # both JSON-shaped: strings, integers, None, objects
            return _json(
                Fehler(
                    fehler="abweichender_inhalt",
                    detail="Zu diesem Aktenzeichen und dieser Anzeigeart liegt bereits eine "
                    "Benachrichtigung mit anderem Inhalt vor.",
                ),
                409,
            )
        return _json(_eintrag(row), 200)

    @app.post(
        "/benachrichtigungen",
        status_code=201,
        tags=["Benachrichtigungen"],
        operation_id="benachrichtigungEmpfangen",
        summary="Gewerbeanzeige empfangen",
        response_model=Eintrag,
        responses={
            200: {"model": Eintrag, "description": "Wiederholung; nichts neu gespeichert."},
            409: {"model": Fehler, "description": "Gleicher Schlüssel, anderer Inhalt."},
        },
    )
    def empfangen(meldung: Annotated[Benachrichtigung, Body()]) -> Response:
        """Store ``meldung`` once; a retry returns the stored entry.

        The unique constraint, not the preceding lookup, is what guarantees a single row:
        two concurrent deliveries of one notification both pass the lookup, one insert
        wins, and the loser re-reads and answers as a retry.
        """
        inhalt = meldung.model_dump(mode="json")
        with Session(engine) as session:
            row = existing(session, meldung)
            if row is not None:
                return replay(row, inhalt)
            row = Notification(
                aktenzeichen=meldung.aktenzeichen,
                anzeigeart=meldung.anzeigeart,
                gewerbebetrieb_id=str(meldung.gewerbebetriebID),
                empfangen_am=now().astimezone(UTC),
                inhalt=inhalt,
            )
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                winner = existing(session, meldung)
                assert winner is not None
                return replay(winner, inhalt)
            session.refresh(row)
            return _json(_eintrag(row), 201)

    @app.get(
        "/benachrichtigungen",
        tags=["Benachrichtigungen"],
        operation_id="benachrichtigungenAuflisten",
        summary="Empfangene Benachrichtigungen auflisten",
        response_model=Liste,
    )
    def auflisten(
        aktenzeichen: Annotated[str | None, Query(max_length=40)] = None,
        gewerbebetriebID: UUID | None = None,
        anzeigeart: Literal["anmeldung", "ummeldung", "abmeldung"] | None = None,
    ) -> Response:
        statement = select(Notification).order_by(col(Notification.id)).limit(MAX_LISTE)
        if aktenzeichen is not None:
            statement = statement.where(col(Notification.aktenzeichen) == aktenzeichen)
        if gewerbebetriebID is not None:
            statement = statement.where(
                col(Notification.gewerbebetrieb_id) == str(gewerbebetriebID)
            )
        if anzeigeart is not None:
            statement = statement.where(col(Notification.anzeigeart) == anzeigeart)
        with Session(engine) as session:
            rows = session.exec(statement).all()
            eintraege = [_eintrag(r) for r in rows]
        return _json(Liste(anzahl=len(eintraege), benachrichtigungen=eintraege), 200)

    @app.get("/health", include_in_schema=False)
    def health() -> Health:
        """Liveness probe; hidden from OpenAPI because a probe is not a service."""
        return Health()

    return app


def serve(db_path: Path, host: str, port: int) -> None:
    """Run the IHK endpoint with uvicorn until interrupted (used by the ``gateway`` CLI)."""
    from registries.serving import serve_app

    serve_app(create_app(db_path), host, port)
