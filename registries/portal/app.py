"""The portal app: sign-in, Gewerbeanmeldung with once-only data, receipt, data tracker.

Flow (docs/portal.md): the citizen signs in; fills in only the business data; the portal
opens a case, reads her personal data from the Melderegister through Soest's gateway node
with the case number as ``X-Road-Issue``; shows them for review; records her confirmation
(time and a SHA-256 of exactly what was shown); files the Gewerbeanmeldung with Soest's
Gewerberegister; shows the receipt.

Design choices, and why:

* **Reads go through the gateway, the filing does not.** The Melderegister belongs to
  another city, so it is an X-Road exchange (signed, access-checked, logged on both nodes,
  visible in the tracker). The Gewerberegister is the trade office's own system in Soest's
  network: the portal files with it directly, as X-Road does not route an organisation's
  calls to itself (docs/adr/0013-portal-and-ihk-notification.md).
* **Confirmation binds to content.** The review page carries the digest of the data it
  shows; the confirmation is accepted only with the digest of the stored data, so a
  citizen never confirms something she was not shown.
* **Session in the portal's own SQLite, cookie holds a random token** (``HttpOnly``,
  ``SameSite=Lax``); every state-changing form carries a per-session CSRF token. The
  tables are :mod:`registries.portal.storage`.
* **Form bodies are parsed by hand** (``application/x-www-form-urlencoded`` only), which
  avoids a multipart dependency for a portal that never uploads files
  (:mod:`registries.portal.forms`, with the two forms' models).
* **The citizen is known to the data tracker by her IDNr.** The sign-in (an eID/BundID
  in production, a form in the demo) supplies the steuerliche Identifikationsnummer,
  checked with its check digit before anything is stored; "Meine Daten" asks every
  configured tracker with it and merges the answers (docs/adr/0014-idnr-as-data-subject.md).
* **No module-level state; time injected** through :class:`PortalSettings`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlmodel import Session, col, select

from gateway.core.ids import ServiceId, SubsystemId
from gateway.net.guard import GuardSettings
from registries.common import Clock, disposing_lifespan, sqlite_engine
from registries.edgetls import EdgeTls
from registries.portal import pages
from registries.portal.forms import Anmeldung, Antrag, BadForm, messages, read_form
from registries.portal.storage import Sitzung, Vorgang, create_tables, utc
from registries.portal.xroad import GatewayCallError, MeldeDaten, UsageEntry, XRoadClient

__all__ = ["PortalSettings", "create_app", "serve"]

SESSION_COOKIE: Final = "gewerbeamt_sitzung"
CASE_PATTERN: Final = r"^GA-[0-9]{4}-[0-9]{6}$"
"""The portal's case numbers (Vorgangsnummer): ``GA-<year>-<running number>``."""
TRACKER_ISSUE: Final = "Selbstauskunft Art. 15 DSGVO"
"""``X-Road-Issue`` of the tracker queries: the legal ground, as there is no case."""


@dataclass(frozen=True)
class PortalSettings:
    """Where the portal's data lives and whom it calls.

    ``consumer_url`` is Soest's node (consumer edge); ``client`` the trade office's
    subsystem the portal calls as; ``melderegister_service`` the § 38 service;
    ``tracker_services`` the data tracker service of each provider node to ask;
    ``gewerberegister_url`` the trade office's own register, called directly.
    """

    db_path: Path
    consumer_url: str
    client: SubsystemId
    melderegister_service: ServiceId
    gewerberegister_url: str
    tracker_services: tuple[ServiceId, ...] = ()
    user_id: str = "portal-gewerbeamt-soest"
    timeout_seconds: float = 15.0
    clock: Clock = field(default=lambda: datetime.now(UTC))
    transport: httpx.BaseTransport | None = None
    """Injected httpx transport for unit tests; ``None`` uses the network."""
    tls: EdgeTls | None = None
    """How the portal authenticates to the node's consumer TLS port as ``client``."""


def _instant(text: str) -> datetime:
    """A tracker's ISO 8601 time as an aware instant, so entries from nodes that write
    different offsets still sort by when they happened; unparseable times sort first."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _show(value: datetime | None) -> str:
    shown = utc(value)
    return "-" if shown is None else shown.strftime("%Y-%m-%d %H:%M:%S UTC")


def _digest(meldedaten: dict[str, Any], antrag: dict[str, Any]) -> str:
    """SHA-256 over what the review page shows, in a canonical JSON form."""
    shown = {"meldedaten": meldedaten, "antrag": antrag}
    canonical = json.dumps(shown, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def gewerbeanmeldung(daten: MeldeDaten, antrag: dict[str, Any]) -> dict[str, Any]:
    """The XGewerbeanzeige-shaped Anmeldung from register data plus the citizen's input."""
    inhaber: dict[str, Any] = {
        "art": "natuerlichePerson",
        "familienname": daten.familienname,
        "vorname": daten.vornamen,
        "geburtsdatum": daten.geburtsdatum.isoformat(),
        "geburtsort": daten.geburtsort,
        "anschrift": {
            "strasse": daten.strasse,
            "hausNrVon": daten.hausnummer,
            "plz": daten.postleitzahl,
            "ort": daten.wohnort,
        },
    }
    if daten.doktorgrad:
        inhaber["doktorgrad"] = daten.doktorgrad
    if daten.geschlecht in {"m", "w", "d", "x"}:
        inhaber["geschlecht"] = daten.geschlecht
    if daten.geburtsstaat and re.fullmatch(r"[A-Z]{2}", daten.geburtsstaat):
        inhaber["geburtsland"] = daten.geburtsstaat
    anzeige: dict[str, Any] = {
        "anzeigeart": "anmeldung",
        "gueltigAb": antrag["beginn"],
        "grundAnmeldungSchluessel": "neugruendung",
        "betriebsinhaber": inhaber,
        "betriebsstaette": {
            "anschrift": {
                "strasse": antrag["strasse"],
                "hausNrVon": antrag["hausnummer"],
                "plz": antrag["plz"],
                "ort": antrag["ort"],
            }
        },
        "taetigkeit": {"beschreibung": antrag["taetigkeit"], "taetigkeitSchluessel": antrag["wz"]},
        "betriebArt": antrag["betriebArt"],
        "anzahlVollzeitBeschaeftigte": antrag["vollzeit"],
        "anzahlTeilzeitBeschaeftigte": antrag["teilzeit"],
    }
    if antrag.get("geschaeftsbezeichnung"):
        anzeige["geschaeftsbezeichnung"] = antrag["geschaeftsbezeichnung"]
    return anzeige


def _register_refusal(response: httpx.Response) -> list[str]:
    """The Gewerberegister's reasons for a refusal, readable."""
    if response.status_code >= 500:
        return [
            f"Das Gewerberegister meldet einen technischen Fehler (HTTP {response.status_code}); "
            "bitte später erneut senden."
        ]
    try:
        body = response.json()
    except ValueError:
        return [f"Das Gewerberegister hat die Anmeldung abgelehnt (HTTP {response.status_code})."]
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        return [
            "Das Gewerberegister hat die Anmeldung abgelehnt: "
            + f"{'/'.join(str(p) for p in d.get('loc', [])[2:])}: {d.get('msg')}"
            for d in body["detail"]
            if isinstance(d, dict)
        ]
    if isinstance(body, dict) and "detail" in body:
        return [f"Das Gewerberegister hat die Anmeldung abgelehnt: {body['detail']}"]
    return [f"Das Gewerberegister hat die Anmeldung abgelehnt (HTTP {response.status_code})."]


# --------------------------------------------------------------------------- app


def create_app(settings: PortalSettings) -> FastAPI:
    """Build the portal on its own SQLite database (created on first use)."""
    engine = sqlite_engine(settings.db_path)
    create_tables(engine)
    now = settings.clock
    xroad = XRoadClient(
        settings.consumer_url,
        settings.client,
        settings.user_id,
        settings.timeout_seconds,
        settings.transport,
        settings.tls,
    )
    case_lock = threading.Lock()

    app = FastAPI(
        title="Digitales Gewerbeamt Soest",
        version="1.0.0",
        summary="Once-only-Gewerbeanmeldung und Datencockpit",
        lifespan=disposing_lifespan(engine),
        docs_url=None,
        redoc_url=None,
    )

    def html(body: str, status: int = 200, **headers: str) -> HTMLResponse:
        return HTMLResponse(
            body,
            status_code=status,
            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY", **headers},
        )

    def current(request: Request) -> Sitzung | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        with Session(engine) as session:
            return session.exec(select(Sitzung).where(col(Sitzung.token_sha256) == digest)).first()

    def who(s: Sitzung) -> str:
        return f"{s.vornamen} {s.familienname}"

    def to_sign_in() -> Response:
        return RedirectResponse("/", status_code=303)

    def bad_request(message: str) -> HTMLResponse:
        return html(pages.message_page("Ungültige Anfrage", [message]), 400)

    def load_case(s: Sitzung, nummer: str) -> Vorgang | None:
        if not re.fullmatch(CASE_PATTERN, nummer):
            return None
        with Session(engine) as session:
            return session.exec(
                select(Vorgang).where(
                    col(Vorgang.nummer) == nummer, col(Vorgang.sitzung_id) == s.id
                )
            ).first()

    def review(s: Sitzung, v: Vorgang, errors: list[str], status: int = 200) -> HTMLResponse:
        assert v.meldedaten is not None
        return html(
            pages.review_page(
                name=who(s),
                csrf=s.csrf,
                case=v.nummer,
                source=str(settings.melderegister_service),
                retrieved_at=_show(v.abgerufen_am),
                daten=MeldeDaten.from_dict(v.meldedaten),
                antrag=v.antrag,
                digest=_digest(v.meldedaten, v.antrag),
                errors=errors,
            ),
            status,
        )

    @app.get("/", response_class=HTMLResponse)
    def start(request: Request) -> Response:
        s = current(request)
        if s is None:
            return html(pages.sign_in_page([], {}))
        with Session(engine) as session:
            cases = session.exec(
                select(Vorgang).where(col(Vorgang.sitzung_id) == s.id).order_by(col(Vorgang.id))
            ).all()
            listing = [(v.nummer, v.stand, (v.quittung or {}).get("aktenzeichen")) for v in cases]
        return html(pages.home_page(who(s), s.csrf, listing))

    @app.post("/anmelden", response_class=HTMLResponse)
    async def anmelden(request: Request) -> Response:
        """Demo sign-in: accept the stated identity (an eID does this in production)."""
        try:
            fields = await read_form(request)
            identity = Anmeldung.model_validate(fields)
        except BadForm as exc:
            return bad_request(str(exc))
        except ValidationError as exc:
            return html(pages.sign_in_page(messages(exc), fields), 422)
        token = secrets.token_urlsafe(32)
        with Session(engine) as session:
            session.add(
                Sitzung(
                    token_sha256=hashlib.sha256(token.encode()).hexdigest(),
                    csrf=secrets.token_urlsafe(24),
                    familienname=identity.familienname,
                    vornamen=identity.vornamen,
                    geburtsdatum=identity.geburtsdatum,
                    idnr=identity.idnr,
                    angemeldet_am=now(),
                )
            )
            session.commit()
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", path="/")
        return response

    async def checked_form(request: Request, s: Sitzung) -> dict[str, str]:
        fields = await read_form(request)
        if not secrets.compare_digest(fields.get("csrf", ""), s.csrf):
            raise BadForm("Sicherheitsmerkmal des Formulars fehlt oder ist abgelaufen.")
        return fields

    @app.post("/abmelden")
    async def abmelden(request: Request) -> Response:
        s = current(request)
        if s is None:
            return to_sign_in()
        try:
            await checked_form(request, s)
        except BadForm as exc:
            return bad_request(str(exc))
        with Session(engine) as session:
            row = session.get(Sitzung, s.id)
            if row is not None:
                session.delete(row)
                session.commit()
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/antrag", response_class=HTMLResponse)
    def antrag_form(request: Request) -> Response:
        s = current(request)
        if s is None:
            return to_sign_in()
        return html(pages.application_page(who(s), s.csrf, [], {}))

    @app.post("/antrag", response_class=HTMLResponse)
    async def antrag_stellen(request: Request) -> Response:
        """Open a case, then read the citizen's data through the gateway for it."""
        s = current(request)
        if s is None:
            return to_sign_in()
        try:
            fields = await checked_form(request, s)
        except BadForm as exc:
            return bad_request(str(exc))
        try:
            antrag = Antrag.model_validate(fields)
        except ValidationError as exc:
            return html(pages.application_page(who(s), s.csrf, messages(exc), fields), 422)
        today = now().astimezone(UTC).date()
        if antrag.beginn < s.geburtsdatum or (antrag.beginn - today).days > 365:
            return html(
                pages.application_page(
                    who(s),
                    s.csrf,
                    ["Beginn der Tätigkeit: höchstens ein Jahr im Voraus."],
                    fields,
                ),
                422,
            )
        opened = now().astimezone(UTC)
        with case_lock, Session(engine) as session:
            v = Vorgang(
                nummer="",
                sitzung_id=s.id or 0,
                familienname=s.familienname,
                vornamen=s.vornamen,
                geburtsdatum=s.geburtsdatum,
                stand="abruf",
                angelegt_am=opened,
                antrag=antrag.model_dump(mode="json"),
            )
            session.add(v)
            session.flush()
            v.nummer = f"GA-{opened.year:04d}-{v.id:06d}"
            session.add(v)
            session.commit()
            session.refresh(v)
        try:
            daten = xroad.read_person(
                settings.melderegister_service,
                familienname=s.familienname,
                vornamen=s.vornamen,
                geburtsdatum=s.geburtsdatum,
                issue=v.nummer,
                request_id=f"{v.nummer}-melderegister",
            )
        except GatewayCallError as exc:
            with Session(engine) as session:
                row = session.get(Vorgang, v.id)
                assert row is not None
                row.stand = "abruf_fehlgeschlagen"
                row.abruf_fehler = f"{exc.code}: {exc.message}"[:500]
                session.add(row)
                session.commit()
            return html(
                pages.message_page(
                    "Meldedaten nicht abrufbar",
                    [exc.message],
                    status_note=f"Vorgang {v.nummer}; Fehlercode {exc.code}",
                ),
                502 if exc.status is None or exc.status >= 500 else 409,
            )
        with Session(engine) as session:
            row = session.get(Vorgang, v.id)
            assert row is not None
            row.meldedaten = daten.as_dict()
            row.abgerufen_am = now().astimezone(UTC)
            row.stand = "zur_pruefung"
            session.add(row)
            session.commit()
        return RedirectResponse(f"/vorgaenge/{v.nummer}", status_code=303)

    @app.get("/vorgaenge/{nummer}", response_class=HTMLResponse)
    def vorgang(request: Request, nummer: str) -> Response:
        s = current(request)
        if s is None:
            return to_sign_in()
        v = load_case(s, nummer)
        if v is None:
            return html(pages.message_page("Nicht gefunden", ["Kein solcher Vorgang."]), 404)
        if v.stand == "eingereicht" and v.quittung is not None:
            return html(
                pages.receipt_page(
                    name=who(s),
                    csrf=s.csrf,
                    case=v.nummer,
                    aktenzeichen=str(v.quittung["aktenzeichen"]),
                    betrieb_id=str(v.quittung["gewerbebetriebID"]),
                    received_at=str(v.quittung["eingegangenAm"]),
                    confirmed_at=_show(v.bestaetigt_am),
                )
            )
        if v.meldedaten is None:
            return html(
                pages.message_page(
                    "Meldedaten nicht abrufbar",
                    [v.abruf_fehler or "Der Abruf ist nicht abgeschlossen."],
                    status_note=f"Vorgang {v.nummer}",
                )
            )
        return review(s, v, [])

    @app.post("/vorgaenge/{nummer}/bestaetigung", response_class=HTMLResponse)
    async def bestaetigen(request: Request, nummer: str) -> Response:
        """Record the confirmation of exactly what was shown, then file with the register."""
        s = current(request)
        if s is None:
            return to_sign_in()
        try:
            fields = await checked_form(request, s)
        except BadForm as exc:
            return bad_request(str(exc))
        v = load_case(s, nummer)
        if v is None:
            return html(pages.message_page("Nicht gefunden", ["Kein solcher Vorgang."]), 404)
        if v.stand == "eingereicht":
            return RedirectResponse(f"/vorgaenge/{v.nummer}", status_code=303)
        if v.meldedaten is None:
            return bad_request("Zu diesem Vorgang liegen keine Meldedaten vor.")
        digest = _digest(v.meldedaten, v.antrag)
        if fields.get("bestaetigt") != "ja":
            return review(s, v, ["Bitte bestätigen Sie, dass Sie die Angaben geprüft haben."], 422)
        if not secrets.compare_digest(fields.get("digest", ""), digest):
            return review(
                s, v, ["Die angezeigten Daten haben sich geändert; bitte erneut prüfen."], 409
            )
        confirmed_at = now().astimezone(UTC)
        with Session(engine) as session:
            row = session.get(Vorgang, v.id)
            assert row is not None
            row.bestaetigt_am = confirmed_at
            row.bestaetigung = {
                "sha256": digest,
                "meldedaten": v.meldedaten,
                "antrag": v.antrag,
                "bestaetigtAm": confirmed_at.isoformat(),
            }
            session.add(row)
            session.commit()
        anzeige = gewerbeanmeldung(MeldeDaten.from_dict(v.meldedaten), v.antrag)
        try:
            with httpx.Client(
                timeout=settings.timeout_seconds, transport=settings.transport
            ) as http:
                response = http.post(
                    settings.gewerberegister_url.rstrip("/") + "/gewerbeanzeigen", json=anzeige
                )
        except httpx.HTTPError:
            return review(
                s, v, ["Das Gewerberegister ist nicht erreichbar; bitte später erneut senden."], 502
            )
        if response.status_code != 201:
            return review(s, v, _register_refusal(response), 422)
        receipt = response.json()
        with Session(engine) as session:
            row = session.get(Vorgang, v.id)
            assert row is not None
            row.quittung = receipt
            row.stand = "eingereicht"
            session.add(row)
            session.commit()
        return RedirectResponse(f"/vorgaenge/{v.nummer}", status_code=303)

    @app.get("/meine-daten", response_class=HTMLResponse)
    def meine_daten(request: Request) -> Response:
        """Ask every configured tracker with the citizen's IDNr; one merged, timed view.

        A tracker that cannot be asked is named as missing, never left out silently: an
        empty list would otherwise claim that nobody read anything there.
        """
        s = current(request)
        if s is None:
            return to_sign_in()
        names = xroad.member_names()
        entries: list[UsageEntry] = []
        asked: list[pages.TrackerSource] = []
        for service in settings.tracker_services:
            source = names.get(str(service.member), str(service.member))
            try:
                found = xroad.find_usage(
                    service,
                    subject=s.idnr,
                    issue=TRACKER_ISSUE,
                    request_id=f"datencockpit-{secrets.token_hex(8)}",
                )
            except GatewayCallError as exc:
                asked.append(
                    pages.TrackerSource(source, str(service), f"{exc.message} ({exc.code})")
                )
                continue
            asked.append(pages.TrackerSource(source, str(service), None, len(found)))
            entries += found
        entries.sort(key=lambda u: (_instant(u.time), u.provider_service))
        return html(
            pages.tracker_page(
                name=who(s),
                csrf=s.csrf,
                entries=entries,
                sources=asked,
                names=names,
            )
        )

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(
    settings: PortalSettings, host: str, port: int, *, limits: GuardSettings | None = None
) -> None:
    """Run the portal with uvicorn until interrupted (used by ``gateway registry portal``)."""
    from registries.serving import DEFAULT_LIMITS, serve_app

    serve_app(create_app(settings), host, port, limits or DEFAULT_LIMITS)
