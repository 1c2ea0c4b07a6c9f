"""IHK endpoint: the chamber of commerce receives Gewerbeanzeigen (§ 14 Abs. 8 GewO).

The trade office pushes every An-, Um- and Abmeldung to the IHK (in production over OSCI
as XGewerbeanzeige ``ihk.gewerbemeldung``; here as JSON through the gateway). This app is
the receiving side: it validates, stores and lists the notifications.

Design choices, and why:

* **Only the subset the chamber may get.** The payload model forbids extra fields, so a
  sender that includes data the IHK is not entitled to (birth place, nationality, contact
  data of the Inhaber) is refused with 422 instead of having the surplus silently stored.
  The sender-side mapping is :func:`registries.gewerberegister.models.ihk_benachrichtigung`;
  this module does not import it, because in production the two are separate systems.
* **Idempotent on Aktenzeichen + Anzeigeart.** Notifications travel over a network and are
  retried; the same notification again answers 200 with the stored record instead of
  creating a duplicate. The same key with *different* content is a 409: one Aktenzeichen
  names one Anzeige, and silently overwriting would lose what was received first.
* **No module-level state; time injected** (:func:`create_app` takes a clock).
* **Models, table, routes apart**: :mod:`registries.ihk.models` is the payload the IHK
  accepts, :mod:`registries.ihk.storage` the table; this module holds the routes.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final, Literal
from uuid import UUID

from fastapi import Body, FastAPI, Query, Response
from sqlmodel import Session, col, select

from gateway.net.guard import GuardSettings
from registries.common import (
    Clock,
    Fehler,
    GroupCommit,
    add_health,
    disposing_lifespan,
    json_response,
    sqlite_engine,
)
from registries.ihk.models import Benachrichtigung, Eintrag, Liste
from registries.ihk.receipt import IhkApp, Receipt
from registries.ihk.storage import Notification, create_tables, eintrag

__all__ = ["Benachrichtigung", "create_app", "serve"]

MAX_LISTE: Final = 500
"""Upper bound on one list answer."""


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
    engine = sqlite_engine(db_path)
    create_tables(engine)

    # Notifications are stored on one connection, several to a commit when they arrive
    # together, each answered only once its commit is on disk (registries/common.py).
    writes = GroupCommit(engine)
    receipt = Receipt(writes, now)
    app = IhkApp(
        title="IHK Benachrichtigungen",
        version="1.0.0",
        summary="Empfang von Gewerbeanzeigen nach § 14 Abs. 8 GewO",
        description=_DESCRIPTION,
        lifespan=disposing_lifespan(engine, on_stop=writes.stop),
    )
    # A plainly valid notification skips FastAPI's stack (same handler, same answer);
    # the route below stays for everything else and for the OpenAPI document.
    app.receipt = receipt

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
    async def empfangen(meldung: Annotated[Benachrichtigung, Body()]) -> Response:
        """Store ``meldung`` once; a retry returns the stored entry (:class:`Receipt`)."""
        return await receipt(meldung)

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
            eintraege = [eintrag(r) for r in rows]
        return json_response(Liste(anzahl=len(eintraege), benachrichtigungen=eintraege), 200)

    add_health(app)

    return app


def serve(db_path: Path, host: str, port: int, *, limits: GuardSettings | None = None) -> None:
    """Run the IHK endpoint with uvicorn until interrupted (used by the ``gateway`` CLI)."""
    from registries.serving import DEFAULT_LIMITS, serve_app

    serve_app(create_app(db_path), host, port, limits or DEFAULT_LIMITS)
