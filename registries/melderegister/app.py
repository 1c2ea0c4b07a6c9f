"""Melderegister of Lippstadt or Iserlohn: a sample population register for BMG § 38 and § 34.

The app stands in for the municipality's real registration software (the *service provider
information system* in X-Road terms). The gateway node calls it on 127.0.0.1, so it does
no authentication or authorisation itself: the node decides who may ask and records every
request in its message log. The register keeps its own § 40 protocol of automated
retrievals from the X-Road headers the node passes on (see below).

Paragraph numbers follow the BMG as amended on 1 November 2016 (the version the project's
reference notes use): § 38(1) lists the data of the automated *einfache Behördenauskunft*,
§ 38(4) the search keys, § 34(1) sentence 1 the data the register may transmit to other
public bodies.

Design choices, and why:

* **No module-level state.** :func:`create_app` builds the engine and the app per call, so
  tests (and a demo running several registries in one process) can each have their own
  database without leaking into each other.
* **One module per concern.** Response models per legal basis in
  :mod:`registries.melderegister.models`, tables and seeding in
  :mod:`registries.melderegister.storage` (the residents are data files under ``data/``),
  the § 38(4) search in :mod:`registries.melderegister.search`; this module holds the
  routes and the projection of a stored person onto an answer.
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
* **Every automated retrieval is protocolled.** Each § 38 and § 34 answer writes a row
  of ``abrufprotokoll`` (:class:`registries.melderegister.storage.Abruf`) in the same
  transaction that read the person, from the X-Road headers the provider's node passes
  on: the requesting authority (``X-Road-Client``), its case number (``X-Road-Issue``),
  the end user, the represented party, the message ids, the time and the disclosed
  person's IDNr. ``GET /protokoll`` shows it to the register's operator only (a bearer
  token read from a file at start-up); it is not in the OpenAPI document the node
  publishes, and without a configured token it answers nobody.
* **One app, one seed per city.** ``city`` picks the residents (``CITIES``): Lippstadt's
  and Iserlohn's registers are the same software with their own database, as two
  municipalities buying the same product would run it.
"""

import hmac
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Header, Request, Response
from pydantic import BaseModel
from sqlmodel import Session, col, select

from gateway.net.guard import GuardSettings
from registries.common import (
    NO_STORE,
    Fehler,
    GroupCommit,
    add_health,
    disposing_lifespan,
    json_response,
    sqlite_engine,
)
from registries.melderegister.fastpath import LookupApp
from registries.melderegister.models import (
    DATA_SUBJECT_HEADER,
    GEMEINDESCHLUESSEL_ISERLOHN,
    GEMEINDESCHLUESSEL_LIPPSTADT,
    Anschrift,
    Gefunden,
    GefundenUebermittlung,
    NichtEindeutig,
    NichtGefunden,
    PersonAuskunft,
    PersonUebermittlung,
    Protokoll,
    Protokolleintrag,
)
from registries.melderegister.queries import candidates_born_on, protocol, vertreter_of
from registries.melderegister.search import SEARCH_KEYS, Suche, matches, suche_aus_query
from registries.melderegister.storage import (
    CITIES,
    Abruf,
    City,
    GesetzlicheVertretung,
    Person,
    create_tables,
    current_address,
    seed_if_empty,
)

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

# --------------------------------------------------------------------------- projections


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
        "anschrift": current_address(person),
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
                    "anschrift": current_address(v),
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
_NOT_FOUND_BODY: Final = NichtGefunden().model_dump_json().encode()
_AMBIGUOUS_BODY: Final = NichtEindeutig().model_dump_json().encode()


def _not_found() -> Response:
    """The single not-found answer, shared by "nobody" and "blocked" (§ 38(2)).

    Built from one precomputed byte string so the two cases cannot drift apart.
    """
    return Response(_NOT_FOUND_BODY, status_code=404, media_type=_JSON, headers=NO_STORE)


def _ambiguous() -> Response:
    return Response(_AMBIGUOUS_BODY, status_code=409, media_type=_JSON, headers=NO_STORE)


def _found(body: BaseModel, person: Person) -> Response:
    """A 200 answer disclosing ``person``, named in ``X-Data-Subject`` by IDNr only."""
    return json_response(body, 200, {DATA_SUBJECT_HEADER: person.idnr})


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

Die Zugriffskontrolle übernimmt der Gateway-Knoten, über den dieser Dienst ausschließlich
erreichbar ist. Jeden Abruf protokolliert das Melderegister zusätzlich selbst (§ 40 BMG):
abrufende Stelle (`X-Road-Client`), Aktenzeichen (`X-Road-Issue`), Benutzer
(`X-Road-UserId`), vertretene Stelle (`X-Road-Represented-Party`), Zeitpunkt und
offengelegte Person.
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


def _zeitpunkt(moment: datetime) -> str:
    """``moment`` in UTC as ``YYYY-MM-DDTHH:MM:SS.mmmZ``, the protocol's one spelling."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _abruf(
    headers: Mapping[str, str], rechtsgrundlage: str, hit: Person | Response, moment: datetime
) -> dict[str, str | None]:
    """The protocol row for one answer, as the columns of :class:`Abruf`: who asked (the
    X-Road headers as the provider's node passed them on), when, on which basis, and whom
    the answer disclosed. A plain mapping, because building an ``Abruf`` instance only to
    read its fields back cost more CPU than the INSERT."""
    if not isinstance(hit, Response):
        ergebnis, idnr = "gefunden", hit.idnr
    else:
        ergebnis, idnr = ("nicht_eindeutig" if hit.status_code == 409 else "nicht_gefunden"), None
    return {
        "zeitpunkt": _zeitpunkt(moment),
        "rechtsgrundlage": rechtsgrundlage,
        "abrufende_stelle": headers.get("x-road-client"),
        "aktenzeichen": headers.get("x-road-issue"),
        "benutzer": headers.get("x-road-userid"),
        "vertretene_stelle": headers.get("x-road-represented-party"),
        "nachrichten_id": headers.get("x-road-id"),
        "anfrage_id": headers.get("x-road-request-id"),
        "ergebnis": ergebnis,
        "idnr": idnr,
    }


def _eintrag(row: Abruf) -> Protokolleintrag:
    assert row.id is not None
    return Protokolleintrag.model_validate(
        {
            "id": row.id,
            "zeitpunkt": row.zeitpunkt,
            "rechtsgrundlage": row.rechtsgrundlage,
            "abrufendeStelle": row.abrufende_stelle,
            "aktenzeichen": row.aktenzeichen,
            "benutzer": row.benutzer,
            "vertreteneStelle": row.vertretene_stelle,
            "nachrichtenId": row.nachrichten_id,
            "anfrageId": row.anfrage_id,
            "ergebnis": row.ergebnis,
            "idnr": row.idnr,
        }
    )


def _refusal(status: int, fehler: str, detail: str) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return json_response(Fehler(fehler=fehler, detail=detail), status, headers)


def create_app(
    db_path: Path,
    *,
    seed: bool = True,
    city: str = "lippstadt",
    operator_token: str | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """Build the Melderegister of ``city`` (a key of :data:`CITIES`) on ``db_path``.

    Creates the file and tables if needed and, when ``seed`` is true and the person table
    is empty, inserts the city's demo residents. The engine lives as long as the app: it is
    disposed when the ASGI lifespan ends. ``operator_token`` opens ``GET /protokoll`` to
    whoever presents it as a bearer token (nobody without one); ``clock`` gives the
    protocol's time (default: the system clock).
    """
    now = clock or (lambda: datetime.now(UTC))
    if city not in CITIES:
        raise ValueError(f"unknown city {city!r}; known: {', '.join(sorted(CITIES))}")
    stadt = CITIES[city]
    engine = sqlite_engine(db_path)
    # The lookups' transactions (read, protocol row, commit) run on one thread, several
    # to a commit: one fsync for the lookups that arrive together instead of one each.
    writes = GroupCommit(engine)
    create_tables(engine)
    if seed:
        seed_if_empty(engine, stadt)

    app = LookupApp(
        title=f"Melderegister {stadt.name}",
        version="1.2.0",
        summary="Einfache Behördenauskunft (§ 38 BMG) und Datenübermittlung (§ 34 BMG)",
        description=_DESCRIPTION.replace("{stadt}", stadt.name).replace(
            "{ags}", stadt.gemeindeschluessel
        ),
        lifespan=disposing_lifespan(engine, on_stop=writes.stop),
        openapi_tags=[
            {"name": "Melderegister", "description": "Auskünfte aus dem Melderegister."},
        ],
    )

    def find(conn: sqlite3.Connection, suche: Suche) -> Person | Response:
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
        candidates = candidates_born_on(conn, suche.geburtsdatum)
        hits = [p for p in candidates if matches(p, suche)]
        if not hits:
            return _not_found()
        if len(hits) > 1:
            return _ambiguous()
        return hits[0]

    async def auskunft(suche: Suche, headers: Mapping[str, str]) -> Response:
        """The § 38 answer: the route's, and the fast path's (:mod:`.fastpath`)."""

        def lookup(conn: sqlite3.Connection) -> Person | Response:
            hit = find(conn, suche)
            protocol(conn, _abruf(headers, "§ 38 BMG", hit, now()))
            return hit

        hit = await writes.run(lookup)
        if isinstance(hit, Response):
            return hit
        return _found(Gefunden(person=_auskunft(hit)), hit)

    async def uebermittlung(suche: Suche, headers: Mapping[str, str]) -> Response:
        """The § 34 answer: the route's, and the fast path's."""

        def lookup(conn: sqlite3.Connection) -> tuple[Person | Response, Sequence[Person]]:
            hit = find(conn, suche)
            protocol(conn, _abruf(headers, "§ 34 BMG", hit, now()))
            if isinstance(hit, Response):
                return hit, ()
            assert hit.id is not None
            return hit, vertreter_of(conn, hit.id)

        hit, vertreter = await writes.run(lookup)
        if isinstance(hit, Response):
            return hit
        return _found(GefundenUebermittlung(person=_uebermittlung(hit, vertreter)), hit)

    # Plain GETs of the two lookups skip FastAPI's middleware and router (same handlers,
    # same answers); the routes below stay for everything else and for the OpenAPI document.
    app.lookups.update({"/personen": auskunft, "/datenuebermittlung/personen": uebermittlung})

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
    async def personen(
        suche: Annotated[Suche, Depends(suche_aus_query)], request: Request
    ) -> Response:
        """Answer a § 38 query with the § 38(1) data of the one matching person."""
        return await auskunft(suche, request.headers)

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
    async def datenuebermittlung(
        suche: Annotated[Suche, Depends(suche_aus_query)], request: Request
    ) -> Response:
        """Answer a § 34 request with the § 34(1) data of the one matching person."""
        return await uebermittlung(suche, request.headers)

    @app.get("/protokoll", include_in_schema=False)
    def protokoll(authorization: Annotated[str | None, Header()] = None) -> Response:
        """The protocol of automated retrievals, for the register's operator only.

        Hidden from the OpenAPI document (the node publishes that to consumers) and
        closed unless a token was configured; the token is compared in constant time.
        """
        if operator_token is None:
            return _refusal(
                403,
                "kein_betreiberzugang",
                "Kein Betreiber-Token konfiguriert (--operator-token-file).",
            )
        expected = f"Bearer {operator_token}".encode()
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
            return _refusal(
                401,
                "nicht_angemeldet",
                "Authorization: Bearer <Betreiber-Token> fehlt oder ist falsch.",
            )
        with Session(engine) as session:
            rows = session.exec(select(Abruf).order_by(col(Abruf.id))).all()
            return json_response(Protokoll(eintraege=[_eintrag(r) for r in rows]), 200)

    add_health(app)

    return app


def read_operator_token(path: Path) -> str:
    """The operator token in ``path`` (surrounding whitespace ignored); refuses an empty
    or short one, so a truncated file never opens the protocol to a guessable token."""
    token = path.read_text("utf-8").strip()
    if len(token) < 16 or not token.isprintable() or " " in token:
        raise ValueError(f"{path}: the operator token must be at least 16 printable characters")
    return token


def serve(
    db_path: Path,
    host: str,
    port: int,
    city: str = "lippstadt",
    operator_token_file: Path | None = None,
    *,
    limits: GuardSettings | None = None,
) -> None:
    """Run ``city``'s Melderegister with uvicorn until interrupted (``gateway`` CLI)."""
    from registries.serving import DEFAULT_LIMITS, serve_app

    token = read_operator_token(operator_token_file) if operator_token_file else None
    serve_app(
        create_app(db_path, city=city, operator_token=token), host, port, limits or DEFAULT_LIMITS
    )
