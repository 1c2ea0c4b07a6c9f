"""The sample e-Business Register (Äriregister) of the EE-TEST instance.

A German trade office (Soest's Gewerbeamt) registering the branch of an Estonian company
reads the company's registry card through both instances' gateways: its node in DE-NRW
routes to RIK's node in EE-TEST, which calls this app. Design choices, and why:

* **Read only.** Entries come from the seed file; the register's own processes (court
  registration department) are out of scope for the sample.
* **By registry code first.** ``GET /ettevotted/{ariregistri_kood}`` is what a case
  file cites; the search by name (``GET /ettevotted?nimi=``) is for finding the code.
* **The case number is the gateway's business.** The service requires ``X-Road-Issue``
  in the node's configuration (``require_issue``), so every answer is logged on both
  sides with the case it served; the app itself needs no access control beyond that the
  node is its only caller (it binds to 127.0.0.1).
"""

from pathlib import Path
from typing import Annotated, Final

from fastapi import FastAPI, Query, Response
from fastapi import Path as PathParam
from sqlmodel import Session, col, select

from gateway.net.guard import GuardSettings
from registries.ariregister.cards import AriregisterApp, Cards
from registries.ariregister.models import REGISTRIKOOD, Ettevote, Otsing
from registries.ariregister.storage import Company, create_tables, ettevote, seed
from registries.common import Fehler, add_health, disposing_lifespan, json_response, sqlite_engine

__all__ = ["create_app", "serve"]

MAX_LEITUD: Final = 50
"""Upper bound on one search answer."""

_DESCRIPTION: Final = """\
Äriregistri näidisandmed (EE-TEST): ettevõtte nimi, registrikood, õiguslik vorm,
aadress, staatus ja kaardile kantud isikud (juhatuse liikmed).

* `GET /ettevotted/{ariregistri_kood}`: one company; 404 if the code is not registered.
* `GET /ettevotted?nimi=`: companies whose name contains the text (case-insensitive).
"""


def create_app(db_path: Path) -> FastAPI:
    """Build the register on the SQLite database at ``db_path`` (seeded if new)."""
    engine = sqlite_engine(db_path)
    create_tables(engine)
    seed(engine)
    cards = Cards(engine)
    app = AriregisterApp(
        title="Äriregister (EE-TEST)",
        version="1.0.0",
        summary="Ettevõtete andmed",
        description=_DESCRIPTION,
        lifespan=disposing_lifespan(engine, on_stop=cards.close),
    )
    # A card asked for by a plain code skips FastAPI's stack (same reading, same answer);
    # the route below stays for everything else and for the OpenAPI document.
    app.cards = cards

    @app.get(
        "/ettevotted/{ariregistri_kood}",
        tags=["Ettevõtted"],
        operation_id="ettevote",
        summary="Ettevõtte registrikaart",
        response_model=Ettevote,
        responses={404: {"model": Fehler, "description": "Not registered."}},
    )
    async def registrikaart(
        ariregistri_kood: Annotated[str, PathParam(pattern=REGISTRIKOOD)],
    ) -> Response:
        return cards.card(ariregistri_kood)

    @app.get(
        "/ettevotted",
        tags=["Ettevõtted"],
        operation_id="ettevotteOtsing",
        summary="Ettevõtete otsing nime järgi",
        response_model=Otsing,
    )
    def otsing(nimi: Annotated[str, Query(min_length=2, max_length=100)]) -> Response:
        statement = (
            select(Company)
            .where(col(Company.otsinimi).contains(nimi.strip().casefold(), autoescape=True))
            .order_by(col(Company.nimi))
            .limit(MAX_LEITUD)
        )
        with Session(engine) as session:
            found = tuple(ettevote(r) for r in session.exec(statement).all())
        return json_response(Otsing(leitud=len(found), ettevotted=found), 200)

    add_health(app)
    return app


def serve(db_path: Path, host: str, port: int, *, limits: GuardSettings | None = None) -> None:
    """Run the register with uvicorn until interrupted (used by the ``gateway`` CLI)."""
    from registries.serving import DEFAULT_LIMITS, serve_app

    serve_app(create_app(db_path), host, port, limits or DEFAULT_LIMITS)
