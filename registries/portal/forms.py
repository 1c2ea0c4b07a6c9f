"""The portal's two forms (sign-in and application) and how a form body is read.

Form bodies are parsed by hand (``application/x-www-form-urlencoded`` only), which avoids
a multipart dependency for a portal that never uploads files; a repeated field, another
content type, a body over 64 kB or one that is not UTF-8 is refused (:class:`BadForm`).
Field errors are rendered one readable German line per field, named as on the form.
"""

from datetime import date
from typing import Annotated, Final, Literal
from urllib.parse import parse_qsl

from fastapi import Request
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from registries.melderegister.idnr import check_idnr

__all__ = ["Anmeldung", "Antrag", "BadForm", "messages", "read_form"]

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class _Form(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


def _without_spaces(value: object) -> object:
    """The IDNr is printed in groups ("52 693 074 139"); accept it as typed from a letter."""
    return "".join(value.split()) if isinstance(value, str) else value


Idnr = Annotated[str, BeforeValidator(_without_spaces), AfterValidator(check_idnr)]
"""An IDNr with valid check digit; a typo is refused rather than asked about."""


class Anmeldung(_Form):
    """The sign-in assertion (what an eID/BundID sign-in would provide)."""

    familienname: Short
    vornamen: Short
    geburtsdatum: date
    idnr: Idnr


class Antrag(_Form):
    """The business data the citizen enters; everything personal comes from the register."""

    geschaeftsbezeichnung: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
    strasse: Short
    hausnummer: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)
    ]
    plz: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
    ort: Short
    taetigkeit: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)
    ]
    wz: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
    betriebArt: Literal["industrie", "handwerk", "handel", "sonstiges"]
    beginn: date
    vollzeit: Annotated[int, Field(ge=0, le=100_000)]
    teilzeit: Annotated[int, Field(ge=0, le=100_000)]


_LABELS: Final = {
    "familienname": "Familienname",
    "vornamen": "Vornamen",
    "geburtsdatum": "Geburtsdatum",
    "idnr": "Steuerliche Identifikationsnummer",
    "geschaeftsbezeichnung": "Geschäftsbezeichnung",
    "strasse": "Straße",
    "hausnummer": "Hausnummer",
    "plz": "Postleitzahl (fünf Ziffern)",
    "ort": "Ort",
    "taetigkeit": "Tätigkeit (mindestens drei Zeichen)",
    "wz": "Wirtschaftszweig (fünf Ziffern)",
    "betriebArt": "Art des Betriebs",
    "beginn": "Beginn der Tätigkeit",
    "vollzeit": "Vollzeitbeschäftigte",
    "teilzeit": "Teilzeitbeschäftigte",
}


def messages(exc: ValidationError) -> list[str]:
    """One readable line per invalid field, named as on the form."""
    out = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "value_error":  # our own checks speak German already
            reason = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
        else:
            reason = err["msg"]
        out.append(f"{_LABELS.get(name, name)}: bitte prüfen ({reason}).")
    return out


class BadForm(Exception):
    pass


async def read_form(request: Request) -> dict[str, str]:
    """The URL-encoded form fields; a repeated field or another content type is refused."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadForm("Formular erwartet (application/x-www-form-urlencoded).")
    body = await request.body()
    if len(body) > 64_000:
        raise BadForm("Formular zu groß.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise BadForm("Formular ist nicht UTF-8.") from exc
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise BadForm(f"Feld {key!r} mehrfach angegeben.")
        fields[key] = value
    return fields
