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
* **One module per concern.** The request and response models (static rules as model
  validators) are :mod:`registries.gewerberegister.models`; the tables, the write path
  with its stateful rules and the seed (``data/anzeigen.json``) are
  :mod:`registries.gewerberegister.storage`; this module holds the routes.
* **The data subject is named by a pseudonym.** Answers that return a natural person carry
  ``X-Data-Subject`` with that person's register-local random id, never a name.
"""

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final, Literal
from uuid import UUID

import httpx
from fastapi import Body, Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlmodel import Session, col, select

from gateway.net.guard import GuardSettings
from registries.common import (
    Clock,
    Fehler,
    add_health,
    disposing_lifespan,
    json_response,
    sqlite_engine,
)
from registries.gewerberegister.models import (
    AKTENZEICHEN_PATTERN,
    DATA_SUBJECT_HEADER,
    GEMEINDESCHLUESSEL_SOEST,
    MAX_TREFFER,
    BetriebDaten,
    BetriebEintrag,
    Eingangsbestaetigung,
    Gewerbeabmeldung,
    Gewerbeanmeldung,
    Gewerbeanzeige,
    Gewerbemeldung,
    Gewerbeummeldung,
    NatuerlichePerson,
    Suchergebnis,
    ihk_benachrichtigung,
)
from registries.gewerberegister.outbox import IhkTarget, OutboxDeliverer, enqueue
from registries.gewerberegister.outbox import create_tables as create_outbox_tables
from registries.gewerberegister.storage import (
    Anzeige,
    Betrieb,
    Konflikt,
    check_dates,
    create_tables,
    file_anzeige,
    seed_if_empty,
)

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


def _natural(daten: BetriebDaten) -> bool:
    return isinstance(daten.betriebsinhaber, NatuerlichePerson)


# --------------------------------------------------------------------------- responses


def _json(body: BaseModel, status: int, subjects: Sequence[str | None] = ()) -> Response:
    """A JSON answer; ``X-Data-Subject`` lists the distinct pseudonyms, if any."""
    headers: dict[str, str] = {}
    distinct = list(dict.fromkeys(s for s in subjects if s))
    if distinct:
        headers[DATA_SUBJECT_HEADER] = ", ".join(distinct)
    return json_response(body, status, headers)


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
    engine = sqlite_engine(db_path)
    create_tables(engine)
    create_outbox_tables(engine)
    if seed:
        seed_if_empty(engine, gemeinde_schluessel)
    deliverer = None if ihk is None else OutboxDeliverer(engine, ihk, now, transport=ihk_transport)
    lifespan = (
        disposing_lifespan(engine)
        if deliverer is None
        else disposing_lifespan(engine, on_start=deliverer.start, on_stop=deliverer.stop)
    )

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
        check_dates(anzeige, received.date())
        with write_lock, Session(engine) as session:
            try:
                record = file_anzeige(session, anzeige, received, gemeinde_schluessel)
            except Konflikt as conflict:
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

    add_health(app)

    return app


def serve(
    db_path: Path,
    host: str,
    port: int,
    ihk: IhkTarget | None = None,
    *,
    limits: GuardSettings | None = None,
) -> None:
    """Run the Gewerberegister with uvicorn until interrupted (used by the ``gateway`` CLI)."""
    from registries.serving import DEFAULT_LIMITS, serve_app

    serve_app(create_app(db_path, ihk=ihk), host, port, limits or DEFAULT_LIMITS)
