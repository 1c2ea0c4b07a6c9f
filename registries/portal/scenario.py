"""Anna's once-only Gewerbeanmeldung, driven over plain HTTP like a browser would.

:func:`run_anna_scenario` signs in at the portal, applies, reads back the review page
(data the portal fetched from Lippstadt's Melderegister through the gateway), confirms,
reads the receipt and opens "Meine Daten". It returns what each page showed, so the demo
can tell the story and the tests can check it, without either knowing the HTML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape
from typing import Final

import httpx

__all__ = [
    "ANNA",
    "ANNA_IDNR",
    "AnnaStory",
    "ScenarioError",
    "Step",
    "read_tracker",
    "run_anna_scenario",
]

ANNA_IDNR: Final = "52693074139"
"""Anna's fictional steuerliche Identifikationsnummer, as her eID/BundID sign-in asserts it
(the same number both cities' Melderegister hold for her)."""
ANNA: Final = {
    "familienname": "Schmidt",
    "vornamen": "Anna",
    "geburtsdatum": "1988-03-14",
    "idnr": ANNA_IDNR,
}
TRACKER_COLUMNS: Final = ("Zeitpunkt", "Register", "Wer", "Welche Daten", "Vorgang", "Bearbeitung")
"""The columns of the "Meine Daten" table, in order."""
SALON: Final = {
    "geschaeftsbezeichnung": "Salon Anna Soest",
    "strasse": "Marktstraße",
    "hausnummer": "5",
    "plz": "59494",
    "ort": "Soest",
    "taetigkeit": "Friseursalon",
    "wz": "96021",
    "betriebArt": "handwerk",
    "vollzeit": "1",
    "teilzeit": "2",
}


class ScenarioError(Exception):
    """A page did not show what the next step needs; ``page`` is its text."""

    def __init__(self, message: str, page: str = "") -> None:
        super().__init__(message)
        self.page = page


@dataclass(frozen=True, slots=True)
class Step:
    title: str
    facts: dict[str, str]


@dataclass
class AnnaStory:
    """What the portal showed at each step, in order; the key facts lifted out."""

    steps: list[Step] = field(default_factory=list)
    case: str = ""
    aktenzeichen: str = ""
    reviewed: dict[str, str] = field(default_factory=dict)
    tracker: list[dict[str, str]] = field(default_factory=list)
    tracker_problems: str = ""
    """What "Meine Daten" warned about (a tracker that could not be asked), else empty."""


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    if found is None:
        raise ScenarioError(f"no hidden field {name!r} on the page", page)
    return unescape(found.group(1))


def _table(page: str, table_id: str) -> dict[str, str]:
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    if found is None:
        raise ScenarioError(f"no table {table_id!r} on the page", page)
    rows = re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", found.group(1), re.S)
    return {unescape(k): unescape(re.sub(r"<[^>]+>", "", v)) for k, v in rows}


def _rows(page: str, table_id: str) -> list[list[str]]:
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    if found is None:
        return []
    out = []
    for row in re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        if cells:
            out.append([unescape(" ".join(re.sub(r"<[^>]+>", " ", c).split())) for c in cells])
    return out


def _errors(page: str) -> str:
    found = re.search(r'<div class="fehler" role="alert">(.*?)</div>', page, re.S)
    return unescape(re.sub(r"<[^>]+>", " ", found.group(1))).strip() if found else ""


def run_anna_scenario(
    portal_url: str,
    *,
    beginn: str,
    identity: dict[str, str] | None = None,
    business: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> AnnaStory:
    """Run the whole citizen journey against a running portal; raise on any failure.

    ``beginn`` is the business start date (``YYYY-MM-DD``; at most a year ahead of the
    portal's today). The returned story holds the case number, the Gewerberegister's
    Aktenzeichen, the reviewed data and the data tracker's rows.
    """
    story = AnnaStory()
    person = identity or ANNA
    with httpx.Client(base_url=portal_url, timeout=timeout, follow_redirects=True) as http:
        home = http.post("/anmelden", data=person)
        if home.status_code != 200 or "Angemeldet" not in home.text:
            raise ScenarioError(f"sign-in failed: HTTP {home.status_code}", home.text)
        story.steps.append(
            Step(
                "Anna meldet sich am Digitalen Gewerbeamt an (Demo statt eID)",
                {
                    "Identität": f"{person['vornamen']} {person['familienname']}, "
                    f"geb. {person['geburtsdatum']}",
                    "IDNr (aus der eID)": person.get("idnr", "-"),
                },
            )
        )
        form = http.get("/antrag")
        csrf = _hidden(form.text, "csrf")
        review = http.post("/antrag", data={**(business or SALON), "beginn": beginn, "csrf": csrf})
        if review.status_code != 200:
            raise ScenarioError(
                f"application failed: HTTP {review.status_code}: {_errors(review.text)}",
                review.text,
            )
        case = re.search(r'<strong id="vorgang">([^<]+)</strong>', review.text)
        if case is None:
            raise ScenarioError("no case number on the review page", review.text)
        story.case = unescape(case.group(1))
        story.reviewed = _table(review.text, "meldedaten")
        story.steps.append(
            Step(
                "Das Portal liest Annas Meldedaten über Soests Knoten aus Lippstadts "
                "Melderegister und zeigt sie zur Prüfung",
                {"Vorgang (X-Road-Issue)": story.case, **story.reviewed},
            )
        )
        receipt = http.post(
            f"/vorgaenge/{story.case}/bestaetigung",
            data={
                "csrf": csrf,
                "digest": _hidden(review.text, "digest"),
                "bestaetigt": "ja",
            },
        )
        if receipt.status_code != 200 or 'id="eingang"' not in receipt.text:
            raise ScenarioError(
                f"confirmation failed: HTTP {receipt.status_code}: {_errors(receipt.text)}",
                receipt.text,
            )
        quittung = _table(receipt.text, "quittung")
        story.aktenzeichen = quittung.get("Aktenzeichen im Gewerberegister", "")
        story.steps.append(
            Step("Anna bestätigt; das Gewerberegister Soest quittiert die Anmeldung", quittung)
        )
        story.tracker, problems = read_tracker(http)
        story.tracker_problems = problems
        facts = {f"Zugriff {i + 1}": " | ".join(r.values()) for i, r in enumerate(story.tracker)}
        if problems:
            facts["Hinweise"] = problems
        story.steps.append(Step("Anna öffnet »Meine Daten«: wer hat was gelesen?", facts))
    return story


def read_tracker(http: httpx.Client) -> tuple[list[dict[str, str]], str]:
    """The rows of "Meine Daten" for the signed-in session of ``http``, and its warnings
    (non-empty when a city's tracker could not be asked)."""
    tracker = http.get("/meine-daten")
    if tracker.status_code != 200:
        raise ScenarioError(f"tracker failed: HTTP {tracker.status_code}", tracker.text)
    rows = [dict(zip(TRACKER_COLUMNS, r, strict=True)) for r in _rows(tracker.text, "zugriffe")]
    return rows, _errors(tracker.text)
