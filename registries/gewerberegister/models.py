"""The Gewerberegister's request and response models (XGewerbeanzeige 2.2 field names).

* **Discriminated union on ``anzeigeart``.** One endpoint takes all three Anzeigen; pydantic
  picks the model by the discriminator, so a 422 names the exact field of the exact kind
  that is wrong, and no kind can carry another kind's fields (``extra="forbid"``).
* **Static rules in the models.** Anything decidable from the request alone (field
  formats, WZ 2008 division, "registered name needs a register number") is a model
  validator here; rules needing the clock or the stored Betrieb are checked by
  :mod:`registries.gewerberegister.storage` in the transaction that writes.
"""

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from registries.common import Datum, Strict

__all__ = [
    "AKTENZEICHEN_PATTERN",
    "ANZEIGE_ADAPTER",
    "DATA_SUBJECT_HEADER",
    "GEMEINDESCHLUESSEL_SOEST",
    "MAX_TREFFER",
    "MAX_VORLAUF",
    "Anschrift",
    "BetriebDaten",
    "BetriebEintrag",
    "Eingangsbestaetigung",
    "Gewerbeabmeldung",
    "Gewerbeanmeldung",
    "Gewerbeanzeige",
    "Gewerbemeldung",
    "Gewerbeummeldung",
    "JuristischePerson",
    "NatuerlichePerson",
    "Suchergebnis",
    "ihk_benachrichtigung",
]

GEMEINDESCHLUESSEL_SOEST: Final = "05974040"
"""Amtlicher Gemeindeschlüssel (AGS) of Soest, Kreis Soest, NRW."""

DATA_SUBJECT_HEADER: Final = "X-Data-Subject"
"""Response header naming the natural persons in an answer by register-local pseudonyms."""

AKTENZEICHEN_PATTERN: Final = r"^GEW-[0-9]{4}-[0-9]{6}$"
"""Aktenzeichen issued by this register: ``GEW-<year of receipt>-<running number>``."""

MAX_TREFFER: Final = 100
"""Upper bound on one search answer; a search is for finding a Betrieb, not for export."""

MAX_VORLAUF: Final = timedelta(days=365)
"""How far ahead of its effective date an Anzeige may be filed."""

# WZ 2008 divisions (Abteilungen); the numbers in between are unassigned.
_WZ_ABTEILUNGEN: Final = frozenset(
    n
    for start, stop in (
        *((1, 4), (5, 34), (35, 40), (41, 44), (45, 48), (49, 54), (55, 57)),
        *((58, 67), (68, 69), (69, 76), (77, 83), (84, 89), (90, 94), (94, 100)),
    )
    for n in range(start, stop)
)


# --------------------------------------------------------------------------- input types


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Plz = Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
Staat = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Anzahl = Annotated[int, Field(ge=0, le=1_000_000, strict=True)]
Telefon = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 /()-]{3,30}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]+$")]
EintragungNr = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,7}( ?[A-Z]{1,3})?$")]


def _check_wz(value: str) -> str:
    if int(value[:2]) not in _WZ_ABTEILUNGEN:
        raise ValueError(f"{value[:2]} ist keine Abteilung der WZ 2008")
    return value


WzSchluessel = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{5}$"),
    AfterValidator(_check_wz),
    Field(
        description="Wirtschaftszweig nach WZ 2008, Unterklasse ohne Punkte (96.02.1 → 96021).",
        examples=["96021"],
    ),
]


class Anschrift(Strict):
    """An address in Germany (XGewerbeanzeige ``anschrift``)."""

    strasse: Text
    hausNrVon: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
    plz: Plz
    ort: Name


class Erreichbarkeit(Strict):
    """Contact data; at least one channel if given."""

    telefon: Telefon | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _one_channel(self) -> "Erreichbarkeit":
        if self.telefon is None and self.email is None:
            raise ValueError("erreichbarkeit braucht telefon oder email")
        return self


class NatuerlichePerson(Strict):
    """A natural person running the Betrieb (XGewerbeanzeige ``beteiligtePerson``)."""

    art: Literal["natuerlichePerson"]
    familienname: Name
    vorname: Name = Field(description="Alle Vornamen, durch Leerzeichen getrennt.")
    doktorgrad: Annotated[str, StringConstraints(max_length=50)] | None = None
    geschlecht: Literal["m", "w", "d", "x"] | None = None
    geburtsname: Name | None = None
    geburtsdatum: Datum
    geburtsort: Name
    geburtsland: Staat = Field(default="DE", description="ISO 3166-1 alpha-2.")
    staatsangehoerigkeiten: list[Staat] = Field(
        default_factory=lambda: ["DE"], min_length=1, max_length=5
    )
    anschrift: Anschrift = Field(description="Wohnanschrift.")
    erreichbarkeit: Erreichbarkeit | None = None


class JuristischePerson(Strict):
    """A legal person running the Betrieb (XGewerbeanzeige ``betrieb`` with register data)."""

    art: Literal["juristischePerson"]
    eingetragenerName: Text
    rechtsform: Literal["gmbh", "ug", "ag", "se", "kgaa", "eg", "ev", "sonstige"]
    eintragungArt: Literal["HRB", "GnR", "VR", "PR"] | None = None
    eintragungNr: EintragungNr | None = None
    eintragungOrt: Name | None = Field(default=None, description="Registergericht.")
    anschrift: Anschrift = Field(description="Sitz.")

    @model_validator(mode="after")
    def _eintragung_complete(self) -> "JuristischePerson":
        given = [self.eintragungArt, self.eintragungNr, self.eintragungOrt]
        if any(v is not None for v in given) and not all(v is not None for v in given):
            raise ValueError("eintragungArt, eintragungNr und eintragungOrt nur zusammen angeben")
        return self


Betriebsinhaber = Annotated[NatuerlichePerson | JuristischePerson, Field(discriminator="art")]


class Taetigkeit(Strict):
    """One activity (XGewerbeanzeige ``taetigkeitSchwerpunkt`` with its WZ 2008 key)."""

    beschreibung: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)
    ]
    taetigkeitSchluessel: WzSchluessel
    stichwort: Name | None = None


class Betriebsstaette(Strict):
    """Where the Betrieb is run (XGewerbeanzeige ``gewerbe/anschrift``)."""

    anschrift: Anschrift
    niederlassungArt: Literal[
        "hauptniederlassung", "zweigniederlassung", "unselbststaendigeZweigstelle"
    ] = "hauptniederlassung"


BetriebArt = Literal["industrie", "handwerk", "handel", "sonstiges"]
GrundUmmeldung = Literal[
    "verlegung",
    "taetigkeitswechsel",
    "taetigkeitsausdehnung",
    "taetigkeitseinschraenkung",
    "namensaenderung",
    "sonstige",
]


class Gewerbeanmeldung(Strict):
    """Gewerbeanmeldung (GewA 1): a new Betrieb; ``gueltigAb`` is the Beginn."""

    anzeigeart: Literal["anmeldung"]
    gueltigAb: Datum = Field(description="Beginn der Tätigkeit.")
    grundAnmeldungSchluessel: Literal["neugruendung", "uebernahme", "zuzug", "umwandlung"]
    betriebsinhaber: Betriebsinhaber
    geschaeftsbezeichnung: Text | None = None
    betriebsstaette: Betriebsstaette
    taetigkeit: Taetigkeit
    weitereTaetigkeiten: list[Taetigkeit] = Field(default_factory=list, max_length=10)
    betriebArt: BetriebArt
    istReisegewerbe: bool = False
    istNebenerwerb: bool = False
    anzahlVollzeitBeschaeftigte: Anzahl = 0
    anzahlTeilzeitBeschaeftigte: Anzahl = 0

    @model_validator(mode="after")
    def _born_before_start(self) -> "Gewerbeanmeldung":
        inhaber = self.betriebsinhaber
        if isinstance(inhaber, NatuerlichePerson) and inhaber.geburtsdatum >= self.gueltigAb:
            raise ValueError("gueltigAb (Beginn) muss nach dem Geburtsdatum des Inhabers liegen")
        return self


class Gewerbeummeldung(Strict):
    """Gewerbeummeldung (GewA 2): changes to an existing Betrieb from ``gueltigAb`` on.

    Only the changed parts are sent; each reason requires the part it changes. A change of
    Inhaber is not an Ummeldung (the old one abmeldet, the new one anmeldet), hence there is
    no ``betriebsinhaber`` field.
    """

    anzeigeart: Literal["ummeldung"]
    gewerbebetriebID: UUID
    gueltigAb: Datum = Field(description="Datum der Änderung.")
    grundUmmeldungSchluessel: list[GrundUmmeldung] = Field(min_length=1, max_length=6)
    geschaeftsbezeichnung: Text | None = None
    betriebsstaette: Betriebsstaette | None = None
    taetigkeit: Taetigkeit | None = None
    weitereTaetigkeiten: list[Taetigkeit] | None = Field(default=None, max_length=10)
    betriebArt: BetriebArt | None = None
    anzahlVollzeitBeschaeftigte: Anzahl | None = None
    anzahlTeilzeitBeschaeftigte: Anzahl | None = None

    @model_validator(mode="after")
    def _reasons_match_changes(self) -> "Gewerbeummeldung":
        gruende = set(self.grundUmmeldungSchluessel)
        if len(gruende) != len(self.grundUmmeldungSchluessel):
            raise ValueError("grundUmmeldungSchluessel enthält einen Grund doppelt")
        needs = {
            "verlegung": ("betriebsstaette", self.betriebsstaette),
            "namensaenderung": ("geschaeftsbezeichnung", self.geschaeftsbezeichnung),
            "taetigkeitswechsel": ("taetigkeit", self.taetigkeit),
        }
        for grund, (feld, wert) in needs.items():
            if grund in gruende and wert is None:
                raise ValueError(f"Grund {grund!r} verlangt das Feld {feld!r}")
        if {"taetigkeitsausdehnung", "taetigkeitseinschraenkung"} & gruende and (
            self.taetigkeit is None and self.weitereTaetigkeiten is None
        ):
            raise ValueError("Änderung der Tätigkeit verlangt taetigkeit oder weitereTaetigkeiten")
        if not self.changes():
            raise ValueError("Ummeldung ohne geänderte Angaben")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields this Ummeldung sets, in JSON form."""
        return self.model_dump(
            mode="json",
            exclude_none=True,
            exclude={"anzeigeart", "gewerbebetriebID", "gueltigAb", "grundUmmeldungSchluessel"},
        )


class Gewerbeabmeldung(Strict):
    """Gewerbeabmeldung (GewA 3): the Betrieb ends; ``gueltigAb`` is the Aufgabe."""

    anzeigeart: Literal["abmeldung"]
    gewerbebetriebID: UUID
    gueltigAb: Datum = Field(description="Datum der Betriebsaufgabe.")
    grundAbmeldungSchluessel: Literal[
        "vollstaendigeAufgabe", "verlegungAusDemMeldebezirk", "uebergabe", "umwandlung"
    ]
    ursacheAbmeldungSchluessel: (
        Literal["wirtschaftlicheSchwierigkeiten", "insolvenz", "alter", "krankheit", "sonstige"]
        | None
    ) = None

    @model_validator(mode="after")
    def _ursache_only_for_aufgabe(self) -> "Gewerbeabmeldung":
        if (
            self.ursacheAbmeldungSchluessel is not None
            and self.grundAbmeldungSchluessel != "vollstaendigeAufgabe"
        ):
            raise ValueError("ursacheAbmeldungSchluessel nur bei vollstaendigeAufgabe")
        return self


Gewerbeanzeige = Annotated[
    Gewerbeanmeldung | Gewerbeummeldung | Gewerbeabmeldung, Field(discriminator="anzeigeart")
]
ANZEIGE_ADAPTER: Final[TypeAdapter[Gewerbeanmeldung | Gewerbeummeldung | Gewerbeabmeldung]] = (
    TypeAdapter(Gewerbeanzeige)
)


# --------------------------------------------------------------------------- output types


class BetriebDaten(Strict):
    """A Betrieb as it stands after an Anzeige (XGewerbeanzeige ``gewerbe``)."""

    betriebsinhaber: Betriebsinhaber
    geschaeftsbezeichnung: str | None
    betriebsstaette: Betriebsstaette
    taetigkeit: Taetigkeit
    weitereTaetigkeiten: list[Taetigkeit]
    betriebArt: BetriebArt
    istReisegewerbe: bool
    istNebenerwerb: bool
    anzahlVollzeitBeschaeftigte: int
    anzahlTeilzeitBeschaeftigte: int


class Gewerbemeldung(Strict):
    """One stored Satz: the Anzeige as filed, its metadata, and the resulting Betrieb."""

    aktenzeichen: str = Field(pattern=AKTENZEICHEN_PATTERN)
    uuid: UUID = Field(description="Kennung dieses Satzes (XGewerbeanzeige ``uuid``).")
    satzErstellung: datetime = Field(description="Eingang beim Gewerbeamt (UTC).")
    datumMeldung: date
    gemeindeSchluessel: str = Field(pattern=r"^[0-9]{8}$")
    gewerbebetriebID: UUID = Field(description="Dauerhafte Kennung des Betriebs.")
    anzeige: Gewerbeanzeige
    betrieb: BetriebDaten
    status: Literal["aktiv", "abgemeldet"] = Field(description="Stand nach dieser Anzeige.")


class Eingangsbestaetigung(Strict):
    """The receipt for a filed Anzeige."""

    aktenzeichen: str = Field(pattern=AKTENZEICHEN_PATTERN)
    anzeigeart: Literal["anmeldung", "ummeldung", "abmeldung"]
    gewerbebetriebID: UUID
    uuid: UUID
    eingegangenAm: datetime


class BetriebEintrag(Strict):
    """One Betrieb in a search answer, in its current state."""

    gewerbebetriebID: UUID
    status: Literal["aktiv", "abgemeldet"]
    beginn: date
    aufgabe: date | None
    aktenzeichen: list[str] = Field(description="Alle Anzeigen zu diesem Betrieb, älteste zuerst.")
    betrieb: BetriebDaten


class Suchergebnis(Strict):
    anzahl: int
    unvollstaendig: bool = Field(description=f"true, wenn mehr als {MAX_TREFFER} Betriebe passen.")
    betriebe: list[BetriebEintrag]


def ihk_benachrichtigung(meldung: Gewerbemeldung) -> dict[str, Any]:
    """The subset of a Satz the chamber of commerce receives (§ 14 Abs. 8 GewO).

    The IHK needs to identify and contact its new member and classify the Betrieb; it does
    not get birth place, nationality, sex, birth name or contact data of the Inhaber. The
    IHK endpoint (:mod:`registries.ihk`) refuses any field beyond this set.
    """
    betrieb = meldung.betrieb
    inhaber = betrieb.betriebsinhaber
    if isinstance(inhaber, NatuerlichePerson):
        inhaber_daten: dict[str, Any] = inhaber.model_dump(
            mode="json",
            include={"art", "familienname", "vorname", "doktorgrad", "geburtsdatum", "anschrift"},
        )
    else:
        inhaber_daten = inhaber.model_dump(mode="json")
    anzeige = meldung.anzeige
    grund: str
    if isinstance(anzeige, Gewerbeanmeldung):
        grund = anzeige.grundAnmeldungSchluessel
    elif isinstance(anzeige, Gewerbeummeldung):
        grund = ",".join(anzeige.grundUmmeldungSchluessel)
    else:
        grund = anzeige.grundAbmeldungSchluessel
    return {
        "aktenzeichen": meldung.aktenzeichen,
        "anzeigeart": anzeige.anzeigeart,
        "gemeindeSchluessel": meldung.gemeindeSchluessel,
        "gewerbebetriebID": str(meldung.gewerbebetriebID),
        "datumMeldung": meldung.datumMeldung.isoformat(),
        "gueltigAb": anzeige.gueltigAb.isoformat(),
        "grund": grund,
        "betriebsinhaber": inhaber_daten,
        "geschaeftsbezeichnung": betrieb.geschaeftsbezeichnung,
        "betriebsstaette": betrieb.betriebsstaette.model_dump(mode="json"),
        "taetigkeit": betrieb.taetigkeit.model_dump(
            mode="json", include={"beschreibung", "taetigkeitSchluessel"}
        ),
        "betriebArt": betrieb.betriebArt,
        "anzahlVollzeitBeschaeftigte": betrieb.anzahlVollzeitBeschaeftigte,
        "anzahlTeilzeitBeschaeftigte": betrieb.anzahlTeilzeitBeschaeftigte,
    }
