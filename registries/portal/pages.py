"""Server-rendered HTML of the portal: plain functions from values to escaped markup.

No template engine and no JavaScript: every page is a form or a link, so the portal
works in any browser and its behaviour is testable by plain HTTP. Everything that comes
from outside (the citizen's input, register data, gateway messages) goes through
:func:`e` (``html.escape``) exactly once, here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from registries.portal.xroad import MeldeDaten, UsageEntry

TITLE: Final = "Digitales Gewerbeamt Soest"

_STYLE: Final = """
body{font-family:system-ui,sans-serif;max-width:52rem;margin:1rem auto;padding:0 1rem;color:#1b1b1b}
header{border-bottom:3px solid #005a9c;margin-bottom:1rem}
header a{color:#005a9c;margin-right:1rem}
.fehler{background:#fde8e8;border-left:4px solid #c00;padding:.5rem 1rem}
.hinweis{background:#eef5fb;border-left:4px solid #005a9c;padding:.5rem 1rem}
label{display:block;margin:.4rem 0 .1rem}
input,select{padding:.3rem;min-width:16rem}
table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
button{margin-top:.8rem;padding:.4rem 1rem}
code{font-size:.9em}
"""


def e(value: object) -> str:
    """Escape any value for HTML text and attribute context; ``None`` shows as a dash."""
    return "&ndash;" if value is None else escape(str(value), quote=True)


def layout(title: str, body: str, *, signed_in_as: str | None = None, csrf: str = "") -> str:
    """The page frame with the navigation; a sign-out button when someone is signed in."""
    nav = '<a href="/">Start</a>'
    if signed_in_as is not None:
        nav += (
            '<a href="/antrag">Gewerbe anmelden</a><a href="/meine-daten">Meine Daten</a>'
            f"<span>Angemeldet: <strong>{e(signed_in_as)}</strong></span>"
            '<form method="post" action="/abmelden" style="display:inline">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}">'
            '<button type="submit" style="margin:0 0 0 1rem;padding:.1rem .5rem">'
            "Abmelden</button></form>"
        )
    return (
        '<!DOCTYPE html><html lang="de"><head><meta charset="utf-8">'
        f"<title>{e(title)} &ndash; {TITLE}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{TITLE}</h1><nav>{nav}</nav></header>"
        f"<main><h2>{e(title)}</h2>{body}</main></body></html>"
    )


def error_box(messages: Sequence[str]) -> str:
    if not messages:
        return ""
    items = "".join(f"<li>{e(m)}</li>" for m in messages)
    return f'<div class="fehler" role="alert"><ul>{items}</ul></div>'


def _field(name: str, label: str, value: str, *, kind: str = "text", extra: str = "") -> str:
    return (
        f'<label for="{name}">{e(label)}</label>'
        f'<input id="{name}" name="{name}" type="{kind}" value="{e(value)}" {extra}>'
    )


DEMO_IDENTITIES: Final = (("Schmidt", "Anna", "1988-03-14", "52693074139"),)
"""Citizens the demo sign-in offers with one click (Familienname, Vornamen, Geburtsdatum,
fictional IDNr; all are in the seeded Melderegister of Lippstadt)."""


def sign_in_page(errors: Sequence[str], values: Mapping[str, str]) -> str:
    """Demo sign-in: the citizen states who she is, as an eID/BundID would assert it."""
    demo = "".join(
        '<form method="post" action="/anmelden" style="display:inline">'
        f'<input type="hidden" name="familienname" value="{e(f)}">'
        f'<input type="hidden" name="vornamen" value="{e(v)}">'
        f'<input type="hidden" name="geburtsdatum" value="{e(g)}">'
        f'<input type="hidden" name="idnr" value="{e(i)}">'
        f'<button type="submit" name="demo" value="1">Als {e(v)} {e(f)} anmelden</button></form> '
        for f, v, g, i in DEMO_IDENTITIES
    )
    hint = " ".join(f"{v} {f}: {i}" for f, v, _, i in DEMO_IDENTITIES)
    body = (
        '<p class="hinweis">Demo-Anmeldung. Im Echtbetrieb meldet man sich mit der '
        "Online-Ausweisfunktion (eID) bzw. der BundID an; diese übermittelt Name, Vornamen, "
        "Geburtsdatum und die steuerliche Identifikationsnummer (IDNr), mit denen das "
        "Gewerbeamt Ihre Meldedaten abruft und »Meine Daten« die Register fragt.</p>"
        f"{error_box(errors)}"
        f"<p>{demo}</p>"
        '<form method="post" action="/anmelden" id="anmelden">'
        + _field("familienname", "Familienname", values.get("familienname", ""), extra="required")
        + _field("vornamen", "Vornamen", values.get("vornamen", ""), extra="required")
        + _field(
            "geburtsdatum",
            "Geburtsdatum",
            values.get("geburtsdatum", ""),
            kind="date",
            extra="required",
        )
        + _field(
            "idnr",
            "Steuerliche Identifikationsnummer (elf Ziffern; im Echtbetrieb aus der eID/BundID)",
            values.get("idnr", ""),
            extra=f'required inputmode="numeric" placeholder="{e(DEMO_IDENTITIES[0][3])}"',
        )
        + f'<p><small id="idnr-hinweis">Fiktive Demo-IDNr: {e(hint)}</small></p>'
        + '<button type="submit">Anmelden</button></form>'
    )
    return layout("Anmelden", body)


BETRIEB_ARTEN: Final = {
    "handwerk": "Handwerk",
    "handel": "Handel",
    "industrie": "Industrie",
    "sonstiges": "Sonstiges",
}


def application_page(name: str, csrf: str, errors: Sequence[str], values: Mapping[str, str]) -> str:
    """The Gewerbeanmeldung form: only what the register cannot know about the business.

    Name, birth data and home address are *not* asked: they come from the Melderegister.
    """
    art = values.get("betriebArt", "handwerk")
    options = "".join(
        f'<option value="{k}"{" selected" if k == art else ""}>{e(v)}</option>'
        for k, v in BETRIEB_ARTEN.items()
    )
    body = (
        '<p class="hinweis">Ihre Personalien und Ihre Wohnanschrift müssen Sie nicht eingeben: '
        "das Gewerbeamt ruft sie nach Ihrem Antrag beim Melderegister ab und zeigt sie Ihnen "
        "zur Prüfung, bevor etwas übermittelt wird.</p>"
        f"{error_box(errors)}"
        '<form method="post" action="/antrag" id="antrag">'
        f'<input type="hidden" name="csrf" value="{e(csrf)}">'
        + _field(
            "geschaeftsbezeichnung",
            "Geschäftsbezeichnung (optional)",
            values.get("geschaeftsbezeichnung", ""),
        )
        + "<fieldset><legend>Betriebsstätte</legend>"
        + _field("strasse", "Straße", values.get("strasse", ""), extra="required")
        + _field("hausnummer", "Hausnummer", values.get("hausnummer", ""), extra="required")
        + _field("plz", "Postleitzahl", values.get("plz", ""), extra="required")
        + _field("ort", "Ort", values.get("ort", "Soest"), extra="required")
        + "</fieldset><fieldset><legend>Tätigkeit</legend>"
        + _field(
            "taetigkeit",
            "Angemeldete Tätigkeit",
            values.get("taetigkeit", ""),
            extra="required",
        )
        + _field(
            "wz",
            "Wirtschaftszweig (WZ 2008, fünfstellig, z. B. 96021 Frisörsalons)",
            values.get("wz", ""),
            extra="required",
        )
        + f'<label for="betriebArt">Art des Betriebs</label><select id="betriebArt" '
        f'name="betriebArt">{options}</select>'
        + _field("beginn", "Beginn der Tätigkeit", values.get("beginn", ""), kind="date")
        + _field(
            "vollzeit",
            "Vollzeitbeschäftigte",
            values.get("vollzeit", "0"),
            kind="number",
            extra='min="0"',
        )
        + _field(
            "teilzeit",
            "Teilzeitbeschäftigte",
            values.get("teilzeit", "0"),
            kind="number",
            extra='min="0"',
        )
        + '</fieldset><button type="submit">Weiter: Meldedaten abrufen</button></form>'
    )
    return layout("Gewerbeanmeldung", body, signed_in_as=name, csrf=csrf)


def _rows(rows: Sequence[tuple[str, object]], table_id: str) -> str:
    cells = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    return f'<table id="{table_id}">{cells}</table>'


def melde_rows(daten: MeldeDaten) -> list[tuple[str, object]]:
    return [
        ("Familienname", daten.familienname),
        ("Vornamen", daten.vornamen),
        ("Doktorgrad", daten.doktorgrad),
        ("Geburtsdatum", daten.geburtsdatum.isoformat()),
        ("Geburtsort", daten.geburtsort),
        ("Anschrift", f"{daten.strasse} {daten.hausnummer}, {daten.postleitzahl} {daten.wohnort}"),
    ]


def antrag_rows(antrag: Mapping[str, object]) -> list[tuple[str, object]]:
    return [
        ("Geschäftsbezeichnung", antrag.get("geschaeftsbezeichnung")),
        (
            "Betriebsstätte",
            f"{antrag['strasse']} {antrag['hausnummer']}, {antrag['plz']} {antrag['ort']}",
        ),
        ("Tätigkeit", antrag["taetigkeit"]),
        ("WZ 2008", antrag["wz"]),
        ("Art des Betriebs", BETRIEB_ARTEN.get(str(antrag["betriebArt"]), antrag["betriebArt"])),
        ("Beginn", antrag["beginn"]),
        ("Vollzeit / Teilzeit", f"{antrag['vollzeit']} / {antrag['teilzeit']}"),
    ]


def review_page(
    *,
    name: str,
    csrf: str,
    case: str,
    source: str,
    retrieved_at: str,
    daten: MeldeDaten,
    antrag: Mapping[str, object],
    digest: str,
    errors: Sequence[str] = (),
) -> str:
    """What was read from the Melderegister, shown before it is used."""
    body = (
        f'<p>Vorgang <strong id="vorgang">{e(case)}</strong></p>'
        f"{error_box(errors)}"
        f"<h3>Ihre Meldedaten</h3><p>Abgerufen am {e(retrieved_at)} über das Gateway "
        f"bei <code>{e(source)}</code>.</p>"
        + _rows(melde_rows(daten), "meldedaten")
        + "<h3>Ihre Angaben zum Gewerbe</h3>"
        + _rows(antrag_rows(antrag), "antragsdaten")
        + '<form method="post" action="/vorgaenge/'
        + e(case)
        + '/bestaetigung" id="bestaetigung">'
        f'<input type="hidden" name="csrf" value="{e(csrf)}">'
        f'<input type="hidden" name="digest" value="{e(digest)}">'
        '<label><input type="checkbox" name="bestaetigt" value="ja" id="bestaetigt" '
        'style="min-width:0"> Ich habe die Angaben geprüft; sie sind richtig und dürfen für '
        "die Gewerbeanmeldung verwendet werden.</label>"
        '<button type="submit">Gewerbe verbindlich anmelden</button></form>'
        "<p>Stimmen Ihre Meldedaten nicht? Dann wenden Sie sich bitte an die Meldebehörde; "
        "das Gewerbeamt verwendet nur die Daten des Melderegisters.</p>"
    )
    return layout("Angaben prüfen", body, signed_in_as=name, csrf=csrf)


def receipt_page(
    *,
    name: str,
    csrf: str,
    case: str,
    aktenzeichen: str,
    betrieb_id: str,
    received_at: str,
    confirmed_at: str,
) -> str:
    body = (
        '<p class="hinweis" id="eingang">Ihre Gewerbeanmeldung ist eingegangen.</p>'
        + _rows(
            [
                ("Vorgang", case),
                ("Aktenzeichen im Gewerberegister", aktenzeichen),
                ("Betriebskennung", betrieb_id),
                ("Von Ihnen bestätigt am", confirmed_at),
                ("Eingegangen am", received_at),
            ],
            "quittung",
        )
        + "<p>Die Industrie- und Handelskammer wird über das Gateway benachrichtigt "
        "(§ 14 Abs. 8 GewO). Wer Ihre Daten wann gelesen hat, sehen Sie unter "
        '<a href="/meine-daten">Meine Daten</a>.</p>'
    )
    return layout("Eingangsbestätigung", body, signed_in_as=name, csrf=csrf)


@dataclass(frozen=True, slots=True)
class TrackerSource:
    """One tracker the portal asked: whose it is, and what came of it.

    ``problem`` is ``None`` when the tracker answered (with ``count`` reads), else why
    it could not be asked; the page then says the view is incomplete.
    """

    name: str
    service: str
    problem: str | None
    count: int = 0


SERVICE_LABELS: Mapping[str, str] = {
    "einfacheAuskunft": "Meldedaten: Name, Geburtsdaten, Anschrift (§ 38 BMG)",
    "datenuebermittlung": "Meldedaten für eine öffentliche Stelle (§ 34 BMG)",
}
"""What a citizen reads in place of a service code; unknown codes are shown as they are."""


def _what(service: str) -> str:
    """The data a read concerned, in words where the service is known, with its id."""
    label = SERVICE_LABELS.get(service.rsplit("/", 1)[-1])
    code = f"<small><code>{e(service)}</code></small>"
    return f"{e(label)}<br>{code}" if label else code


def _organisation(client: str, names: Mapping[str, str]) -> str:
    """ "Stadt Soest (gewerbeamt)" for a subsystem id whose member has a registered name."""
    parts = client.split("/")
    member = "/".join(parts[:3])
    if member not in names:
        return client
    return names[member] + (f" ({parts[3]})" if len(parts) > 3 else "")


def tracker_page(
    *,
    name: str,
    csrf: str,
    entries: Sequence[UsageEntry],
    sources: Sequence[TrackerSource],
    names: Mapping[str, str],
) -> str:
    """The data tracker: every read of the citizen's data the providers' nodes report.

    One table across all registers, oldest first, each row naming in words the register
    (the city whose tracker reported it) and who read. Trackers that could not be asked
    are listed above the table as an alert, so a partial view never looks complete.
    """
    failed = [src for src in sources if src.problem is not None]
    problems = [f"{src.name}: nicht erreichbar ({src.problem})" for src in failed]
    if failed:
        problems.insert(
            0,
            "Die Übersicht ist unvollständig: nicht alle Register konnten gefragt werden. "
            "Zugriffe dort fehlen unten.",
        )
    by_service = {src.service: src.name for src in sources}
    if entries:
        rows = "".join(
            "<tr>"
            f"<td>{e(u.time)}</td><td>{e(by_service.get(u.provider_service, u.provider_service))}"
            f"</td><td>{e(_organisation(u.client, names))}</td>"
            f"<td>{_what(u.service)}</td><td>{e(u.issue)}</td>"
            f"<td>{e(u.user_id)}</td></tr>"
            for u in entries
        )
        table = (
            '<table id="zugriffe"><tr><th>Zeitpunkt (UTC)</th><th>Register</th><th>Wer</th>'
            "<th>Welche Daten</th><th>Vorgang</th><th>Bearbeitung</th></tr>" + rows + "</table>"
        )
    elif failed:
        table = '<p id="keine-zugriffe">Keine Zugriffe gemeldet von den erreichbaren Registern.</p>'
    else:
        table = '<p id="keine-zugriffe">Keine Zugriffe gemeldet.</p>'
    asked = "".join(
        f'<li data-status="{"fehlt" if src.problem else "ok"}">{e(src.name)}: '
        + (
            "nicht erreichbar"
            if src.problem
            else f"{src.count} Zugriff{'' if src.count == 1 else 'e'}"
        )
        + f" <small><code>{e(src.service)}</code></small></li>"
        for src in sources
    )
    body = (
        "<p>Wer hat Ihre Daten gelesen, wann und für welchen Vorgang? Die Angaben stammen "
        "aus den Protokollen der Gateway-Knoten der Register; gefragt wird mit Ihrer "
        "steuerlichen Identifikationsnummer.</p>"
        f'{error_box(problems)}{table}<p>Gefragt wurden:</p><ul id="register">{asked}</ul>'
    )
    return layout("Meine Daten", body, signed_in_as=name, csrf=csrf)


def home_page(name: str, csrf: str, cases: Sequence[tuple[str, str, str | None]]) -> str:
    if cases:
        rows = "".join(
            f'<tr><td><a href="/vorgaenge/{e(c)}">{e(c)}</a></td><td>{e(s)}</td>'
            f"<td>{e(a)}</td></tr>"
            for c, s, a in cases
        )
        listing = (
            '<table id="vorgaenge"><tr><th>Vorgang</th><th>Stand</th><th>Aktenzeichen</th></tr>'
            + rows
            + "</table>"
        )
    else:
        listing = "<p>Noch keine Vorgänge.</p>"
    body = (
        '<p><a href="/antrag" id="neu">Gewerbe anmelden</a> · '
        '<a href="/meine-daten">Meine Daten: wer hat was gelesen?</a></p>'
        f"<h3>Ihre Vorgänge</h3>{listing}"
    )
    return layout("Willkommen", body, signed_in_as=name, csrf=csrf)


def message_page(title: str, messages: Sequence[str], *, status_note: str = "") -> str:
    return layout(title, error_box(messages) + (f"<p>{e(status_note)}</p>" if status_note else ""))
