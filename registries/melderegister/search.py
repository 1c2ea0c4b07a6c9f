"""The § 38(4) search: which query parameters a caller may give, and which person they match.

Both endpoints (§ 38 and § 34) search the same way, so the parameters, their validation
and the matching live here once:

* only the § 38 Abs. 4 Auswahldaten are accepted (:data:`SEARCH_KEYS`); any other
  parameter, or one given twice, is a 422 rather than silently ignored;
* Familienname (or a former name) matches exactly after NFC normalisation, Vornamen match
  all given names or the first one, case-insensitively; the optional keys narrow the hit
  against the current or any former address.
"""

import re
import unicodedata
from datetime import date
from typing import Annotated, Any, Final

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, BeforeValidator

from registries.melderegister.models import MAX_NAME_LENGTH, Geschlecht
from registries.melderegister.storage import Person, current_address

__all__ = ["SEARCH_KEYS", "Suche", "matches", "suche_aus_query"]

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _require_iso_date(value: object) -> object:
    """Reject anything but ``YYYY-MM-DD`` before pydantic's lenient date parsing.

    Pydantic would otherwise accept ``0`` (the Unix epoch) or a full timestamp, and a
    register lookup must not silently reinterpret a malformed birth date.
    """
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("geburtsdatum muss ein Datum im Format YYYY-MM-DD sein")
    return value


def _normalise_name(value: str) -> str:
    """NFC-normalise, so "Krüger" typed with a combining umlaut still matches."""
    return unicodedata.normalize("NFC", value)


def _fold(value: str) -> str:
    """Case- and whitespace-insensitive form of free text for comparison."""
    return " ".join(_normalise_name(value).split()).casefold()


def _vornamen_match(stored: str, queried: str) -> bool:
    """True if ``queried`` equals all stored given names or just the first one."""
    wanted = _fold(queried)
    names = _fold(stored)
    first = names.split(" ", 1)[0]
    return wanted in (names, first)


def _require_text(value: str) -> str:
    """Reject whitespace-only input: it is as good as missing, not a search for ""."""
    if not value.strip():
        raise ValueError("Wert darf nicht nur aus Leerzeichen bestehen")
    return value


def _text_query(description: str, example: str, max_length: int = MAX_NAME_LENGTH) -> Any:
    return Query(min_length=1, max_length=max_length, description=description, examples=[example])


FamiliennameParam = Annotated[
    str,
    AfterValidator(_require_text),
    _text_query(
        "Familienname oder ein früherer Name, exakt wie im Register (Groß-/Kleinschreibung "
        "zählt); § 38 Abs. 4.",
        "Schmidt",
    ),
]
VornamenParam = Annotated[
    str,
    AfterValidator(_require_text),
    _text_query(
        "Alle Vornamen (durch Leerzeichen getrennt) oder nur der erste Vorname; "
        "Groß-/Kleinschreibung egal; § 38 Abs. 4.",
        "Anna",
    ),
]
GeburtsdatumParam = Annotated[
    date,
    BeforeValidator(_require_iso_date),
    Query(description="Geburtsdatum im Format YYYY-MM-DD; § 38 Abs. 4.", examples=["1988-03-14"]),
]
GeschlechtParam = Annotated[
    Geschlecht | None, Query(description="Optional: Geschlecht (m, w, d, x); § 38 Abs. 4.")
]
OptionalText = Annotated[str, AfterValidator(_require_text)]
GeburtsortParam = Annotated[
    OptionalText | None,
    _text_query("Optional: Geburtsort (ohne Groß-/Kleinschreibung); § 38 Abs. 4.", "Soest"),
]
StrasseParam = Annotated[
    OptionalText | None,
    _text_query("Optional: Straße einer derzeitigen oder früheren Anschrift.", "Lange Straße"),
]
HausnummerParam = Annotated[
    OptionalText | None,
    _text_query("Optional: Hausnummer derselben Anschrift.", "12", max_length=20),
]
PostleitzahlParam = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{5}$", description="Optional: Postleitzahl derselben Anschrift."),
]
WohnortParam = Annotated[
    OptionalText | None,
    _text_query("Optional: Wohnort derselben Anschrift.", "Lippstadt"),
]

SEARCH_KEYS: Final = frozenset(
    {
        "familienname",
        "vornamen",
        "geburtsdatum",
        "geschlecht",
        "geburtsort",
        "strasse",
        "hausnummer",
        "postleitzahl",
        "wohnort",
    }
)
"""The only query parameters accepted: the § 38 Abs. 4 Auswahldaten."""


async def _only_search_keys(request: Request) -> None:
    """Refuse query parameters that are not § 38(4) search keys, and repeated ones.

    FastAPI would silently ignore them; a caller who searches by, say, nationality should
    learn that the register does not allow it rather than get an answer that ignored it.
    """
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for key in request.query_params:
        if key not in SEARCH_KEYS:
            errors.append(
                {
                    "type": "extra_forbidden",
                    "loc": ("query", key),
                    "msg": "kein zulässiges Suchmerkmal nach § 38 Abs. 4 BMG",
                    "input": request.query_params[key],
                }
            )
        elif key not in seen and len(request.query_params.getlist(key)) > 1:
            errors.append(
                {
                    "type": "value_error",
                    "loc": ("query", key),
                    "msg": "Suchmerkmal darf nur einmal angegeben werden",
                    "input": request.query_params.getlist(key),
                }
            )
        seen.add(key)
    if errors:
        raise RequestValidationError(errors)


class Suche(BaseModel):
    """The search keys of one query, already validated."""

    familienname: str
    vornamen: str
    geburtsdatum: date
    geschlecht: Geschlecht | None = None
    geburtsort: str | None = None
    strasse: str | None = None
    hausnummer: str | None = None
    postleitzahl: str | None = None
    wohnort: str | None = None


def suche_aus_query(
    familienname: FamiliennameParam,
    vornamen: VornamenParam,
    geburtsdatum: GeburtsdatumParam,
    geschlecht: GeschlechtParam = None,
    geburtsort: GeburtsortParam = None,
    strasse: StrasseParam = None,
    hausnummer: HausnummerParam = None,
    postleitzahl: PostleitzahlParam = None,
    wohnort: WohnortParam = None,
    _guard: None = Depends(_only_search_keys),
) -> Suche:
    return Suche(
        familienname=familienname,
        vornamen=vornamen,
        geburtsdatum=geburtsdatum,
        geschlecht=geschlecht,
        geburtsort=geburtsort,
        strasse=strasse,
        hausnummer=hausnummer,
        postleitzahl=postleitzahl,
        wohnort=wohnort,
    )


def _address_matches(address: dict[str, Any], suche: Suche) -> bool:
    for key in ("strasse", "hausnummer", "postleitzahl", "wohnort"):
        wanted = getattr(suche, key)
        if wanted is not None and _fold(wanted) != _fold(str(address.get(key, ""))):
            return False
    return True


def matches(person: Person, suche: Suche) -> bool:
    """Apply the § 38(4) keys that the SQL query did not already check."""
    familienname = _normalise_name(suche.familienname)
    if familienname != person.familienname and familienname not in person.fruehere_namen:
        return False
    if not _vornamen_match(person.vornamen, suche.vornamen):
        return False
    if suche.geschlecht is not None and suche.geschlecht != person.geschlecht:
        return False
    if suche.geburtsort is not None and _fold(suche.geburtsort) != _fold(person.geburtsort):
        return False
    addresses = [current_address(person), *person.fruehere_anschriften]
    return any(_address_matches(a, suche) for a in addresses)
