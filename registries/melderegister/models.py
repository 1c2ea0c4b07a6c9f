"""The Melderegister's answers: the § 38(1) and § 34(1) data sets as response models.

One response model per legal basis: :class:`PersonAuskunft` carries exactly the § 38(1)
data, :class:`PersonUebermittlung` exactly the § 34(1) data; each field's description
names its paragraph, and the OpenAPI document is generated from these models, so
documentation and answer cannot drift apart. The stored record is
:class:`registries.melderegister.storage.Person`; :mod:`registries.melderegister.app`
projects it onto these models.
"""

from datetime import date
from typing import Final, Literal

from pydantic import Field

from registries.common import Strict

__all__ = [
    "DATA_SUBJECT_HEADER",
    "GEMEINDESCHLUESSEL_ISERLOHN",
    "GEMEINDESCHLUESSEL_LIPPSTADT",
    "MAX_NAME_LENGTH",
    "Anschrift",
    "Familienstand",
    "FruehereAnschrift",
    "Gefunden",
    "GefundenUebermittlung",
    "Geschlecht",
    "NichtEindeutig",
    "NichtGefunden",
    "PersonAuskunft",
    "PersonUebermittlung",
    "Protokoll",
    "Protokolleintrag",
    "Vertreter",
    "Wohnungsstatus",
]

GEMEINDESCHLUESSEL_LIPPSTADT: Final = "05974028"
"""Amtlicher Gemeindeschlüssel (AGS) of Lippstadt, Kreis Soest, NRW."""

GEMEINDESCHLUESSEL_ISERLOHN: Final = "05962024"
"""AGS of Iserlohn, Märkischer Kreis, NRW."""

DATA_SUBJECT_HEADER: Final = "X-Data-Subject"
"""Response header naming the disclosed person by IDNr (format: gateway/core/datasubject.py)."""

MAX_NAME_LENGTH: Final = 100
"""Upper bound for name query parameters and name columns; longer input is a client error."""

Geschlecht = Literal["m", "w", "d", "x"]
"""Sex as kept in the register: männlich, weiblich, divers, ohne Angabe (PStG § 22(3))."""

Wohnungsstatus = Literal["hauptwohnung", "nebenwohnung"]

Familienstand = Literal[
    "ledig", "verheiratet", "verwitwet", "geschieden", "lebenspartnerschaft", "unbekannt"
]


class Anschrift(Strict):
    """An address in the register (derzeitige, frühere or Wegzugsanschrift)."""

    strasse: str
    hausnummer: str
    postleitzahl: str = Field(pattern=r"^[0-9]{5}$")
    wohnort: str
    gemeindeschluessel: str = Field(
        pattern=r"^[0-9]{8}$", description="Amtlicher Gemeindeschlüssel (AGS) des Wohnorts."
    )


class FruehereAnschrift(Anschrift):
    """A former address with its dates (§ 34 Abs. 1 Nr. 6 und 7)."""

    wohnungsstatus: Wohnungsstatus
    einzugsdatum: date
    auszugsdatum: date


class Vertreter(Strict):
    """Data of a gesetzlicher Vertreter released by § 34 Abs. 1 Nr. 10 (a) to (g)."""

    familienname: str = Field(description="§ 34 Abs. 1 Nr. 10 a")
    vornamen: str = Field(description="§ 34 Abs. 1 Nr. 10 b")
    doktorgrad: str | None = Field(description="§ 34 Abs. 1 Nr. 10 c")
    anschrift: Anschrift = Field(description="§ 34 Abs. 1 Nr. 10 d")
    geburtsdatum: date = Field(description="§ 34 Abs. 1 Nr. 10 e")
    sterbedatum: date | None = Field(description="§ 34 Abs. 1 Nr. 10 f")
    bedingterSperrvermerk: bool = Field(
        description="§ 34 Abs. 1 Nr. 10 g (bedingter Sperrvermerk nach § 52)."
    )


def _doc(paragraph: str, text: str = "") -> str:
    return f"{paragraph}. {text}".strip()


class PersonAuskunft(Strict):
    """The § 38 Abs. 1 data of one person; deliberately without any Auskunftssperre flag."""

    familienname: str = Field(description=_doc("§ 38 Abs. 1 Nr. 1"))
    fruehereNamen: list[str] = Field(description=_doc("§ 38 Abs. 1 Nr. 2"))
    vornamen: str = Field(
        description=_doc(
            "§ 38 Abs. 1 Nr. 3", "Alle Vornamen in Registerreihenfolge, durch Leerzeichen."
        )
    )
    gebraeuchlicherVorname: str | None = Field(
        description=_doc("§ 38 Abs. 1 Nr. 3", "Kennzeichnung des gebräuchlichen Vornamens.")
    )
    ordensname: str | None = Field(description=_doc("§ 38 Abs. 1 Nr. 4"))
    kuenstlername: str | None = Field(description=_doc("§ 38 Abs. 1 Nr. 4"))
    geburtsdatum: date = Field(description=_doc("§ 38 Abs. 1 Nr. 5"))
    geburtsort: str = Field(description=_doc("§ 38 Abs. 1 Nr. 5"))
    geburtsstaat: str | None = Field(
        description=_doc("§ 38 Abs. 1 Nr. 5", "Nur bei Geburt im Ausland; ISO 3166-1 alpha-2.")
    )
    doktorgrad: str | None = Field(description=_doc("§ 38 Abs. 1 Nr. 6"))
    geschlecht: Geschlecht = Field(
        description=_doc(
            "§ 38 Abs. 1 Nr. 7", "m = männlich, w = weiblich, d = divers, x = ohne Angabe."
        )
    )
    anschrift: Anschrift = Field(
        description=_doc("§ 38 Abs. 1 Nr. 8", "Derzeitige Anschrift oder Wegzugsanschrift.")
    )
    wohnungsstatus: Wohnungsstatus = Field(
        description=_doc("§ 38 Abs. 1 Nr. 8", "Kennzeichnung nach Haupt- und Nebenwohnung.")
    )
    wegzugsanschrift: bool = Field(
        description=_doc(
            "§ 38 Abs. 1 Nr. 8",
            "true, wenn die Person aus der Gemeinde weggezogen ist und `anschrift` die "
            "Wegzugsanschrift ist.",
        )
    )
    sterbedatum: date | None = Field(description=_doc("§ 38 Abs. 1 Nr. 9"))
    sterbeort: str | None = Field(description=_doc("§ 38 Abs. 1 Nr. 9"))
    bedingterSperrvermerk: bool = Field(
        description=_doc("§ 38 Abs. 1 Nr. 10", "Bedingter Sperrvermerk nach § 52.")
    )


class PersonUebermittlung(PersonAuskunft):
    """The § 34 Abs. 1 Satz 1 data of one person: the § 38 set plus the fields below.

    Auskunftssperren nach § 51 (Nr. 13) never appear: an automated answer about a blocked
    person is the neutral "nicht gefunden" (§ 38 Abs. 2), and the request is then handled
    by the Meldebehörde outside this service.
    """

    fruehereAnschriften: list[FruehereAnschrift] = Field(
        description=_doc("§ 34 Abs. 1 Nr. 6", "Frühere Anschriften mit Ein- und Auszugsdatum.")
    )
    einzugsdatum: date = Field(
        description=_doc("§ 34 Abs. 1 Nr. 7", "Einzugsdatum der derzeitigen Anschrift.")
    )
    wegzugsdatum: date | None = Field(
        description=_doc("§ 34 Abs. 1 Nr. 7", "Datum des Wegzugs aus der Gemeinde.")
    )
    gesetzlicheVertreter: list[Vertreter] = Field(description=_doc("§ 34 Abs. 1 Nr. 10"))
    staatsangehoerigkeiten: list[str] = Field(
        description=_doc("§ 34 Abs. 1 Nr. 11", "Derzeitige Staatsangehörigkeiten, ISO 3166-1.")
    )
    familienstand: Familienstand = Field(description=_doc("§ 34 Abs. 1 Nr. 12"))
    eheschliessungDatum: date | None = Field(description=_doc("§ 34 Abs. 1 Nr. 12"))
    eheschliessungOrt: str | None = Field(description=_doc("§ 34 Abs. 1 Nr. 12"))


class Gefunden(Strict):
    """Exactly one person matched (§ 38 einfache Behördenauskunft)."""

    ergebnis: Literal["gefunden"] = "gefunden"
    person: PersonAuskunft


class GefundenUebermittlung(Strict):
    """Exactly one person matched (§ 34 Datenübermittlung)."""

    ergebnis: Literal["gefunden"] = "gefunden"
    person: PersonUebermittlung


class NichtGefunden(Strict):
    """No person may be disclosed; also the answer for a person with an Auskunftssperre."""

    ergebnis: Literal["nicht_gefunden"] = "nicht_gefunden"


class NichtEindeutig(Strict):
    """More than one disclosable person matched the search keys."""

    ergebnis: Literal["nicht_eindeutig"] = "nicht_eindeutig"


class Protokolleintrag(Strict):
    """One automated retrieval as the register protocolled it (``GET /protokoll``)."""

    id: int
    zeitpunkt: str = Field(description="Zeitpunkt der Antwort, UTC (YYYY-MM-DDTHH:MM:SS.mmmZ).")
    rechtsgrundlage: Literal["§ 38 BMG", "§ 34 BMG"]
    abrufendeStelle: str | None = Field(description="X-Road-Client: die abrufende Stelle.")
    aktenzeichen: str | None = Field(description="X-Road-Issue: das Aktenzeichen.")
    benutzer: str | None = Field(description="X-Road-UserId: wer bei der Stelle abrief.")
    vertreteneStelle: str | None = Field(
        description="X-Road-Represented-Party: für wen die Stelle abrief."
    )
    nachrichtenId: str | None = Field(description="X-Road-Id des Abrufs.")
    anfrageId: str | None = Field(description="X-Road-Request-Id des Abrufs.")
    ergebnis: Literal["gefunden", "nicht_gefunden", "nicht_eindeutig"]
    idnr: str | None = Field(
        description="IDNr der offengelegten Person; leer, wenn niemand offengelegt wurde."
    )


class Protokoll(Strict):
    """The register's protocol of automated retrievals, oldest first."""

    eintraege: list[Protokolleintrag]
