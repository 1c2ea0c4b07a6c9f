"""What the IHK receives: one Gewerbeanzeige as the chamber may get it (§ 14 Abs. 8 GewO).

The payload model forbids extra fields, so a sender that includes data the IHK is not
entitled to (birth place, nationality, contact data of the Inhaber) is refused with 422
instead of having the surplus silently stored.
"""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator

from registries.common import Datum, Strict

__all__ = [
    "Anschrift",
    "Benachrichtigung",
    "Betriebsstaette",
    "Eintrag",
    "JuristischePerson",
    "Liste",
    "NatuerlichePerson",
    "Taetigkeit",
]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Anzahl = Annotated[int, Field(ge=0, le=1_000_000, strict=True)]


class Anschrift(Strict):
    strasse: Text
    hausNrVon: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
    plz: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
    ort: Text


class NatuerlichePerson(Strict):
    """What the IHK learns about a natural-person Inhaber: enough to identify and write."""

    art: Literal["natuerlichePerson"]
    familienname: Text
    vorname: Text
    doktorgrad: Annotated[str, StringConstraints(max_length=50)] | None = None
    geburtsdatum: Datum
    anschrift: Anschrift


class JuristischePerson(Strict):
    art: Literal["juristischePerson"]
    eingetragenerName: Text
    rechtsform: Literal["gmbh", "ug", "ag", "se", "kgaa", "eg", "ev", "sonstige"]
    eintragungArt: Literal["HRB", "GnR", "VR", "PR"] | None = None
    eintragungNr: Annotated[str, StringConstraints(max_length=20)] | None = None
    eintragungOrt: Text | None = None
    anschrift: Anschrift


class Betriebsstaette(Strict):
    anschrift: Anschrift
    niederlassungArt: Literal[
        "hauptniederlassung", "zweigniederlassung", "unselbststaendigeZweigstelle"
    ]


class Taetigkeit(Strict):
    beschreibung: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)
    ]
    taetigkeitSchluessel: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")] = Field(
        description="WZ 2008, Unterklasse ohne Punkte."
    )


class Benachrichtigung(Strict):
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


class Eintrag(Strict):
    """A stored notification with its receipt time."""

    id: int
    empfangenAm: datetime
    benachrichtigung: Benachrichtigung


class Liste(Strict):
    anzahl: int
    benachrichtigungen: list[Eintrag]
