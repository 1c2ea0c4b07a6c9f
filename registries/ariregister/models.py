"""What the register answers: one company, in the e-Business Register's own terms.

Field names follow the register's open data (``ariregistri_kood``, ``nimi``,
``oiguslik_vorm``, ``aadress``, ``kaardile_kantud_isikud``), so a German caller reads
the Estonian source's words and its own mapping is the one place they are translated.
Only what a trade office needs for a branch registration is published: no personal
identification codes of board members, only their names and roles.
"""

from datetime import date
from typing import Annotated, Literal

from pydantic import StringConstraints

from registries.common import Strict

__all__ = ["REGISTRIKOOD", "Aadress", "Ettevote", "Isik", "Otsing"]

REGISTRIKOOD = r"^[0-9]{8}$"
"""A registry code: eight digits (the register assigns them; the last is a check digit)."""

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Aadress(Strict):
    """The registered address (``aadress``)."""

    tanav: Text
    """Street and house number."""
    linn: Text
    postiindeks: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
    riik: Literal["EST"] = "EST"


class Isik(Strict):
    """A person entered on the registry card (``kaardile_kantud_isikud``)."""

    nimi: Text
    roll: Literal["juhatuse liige", "juhatuse esimees", "prokurist"]
    """Board member, chair of the board, or authorised signatory (prokurist)."""
    alates: date


class Ettevote(Strict):
    """One company as the register publishes it."""

    ariregistri_kood: Annotated[str, StringConstraints(pattern=REGISTRIKOOD)]
    nimi: Text
    oiguslik_vorm: Literal["osaühing", "aktsiaselts", "täisühing", "usaldusühing"]
    staatus: Literal["registrisse kantud", "likvideerimisel", "kustutatud"]
    esmakande_kuupaev: date
    aadress: Aadress
    kaardile_kantud_isikud: tuple[Isik, ...]


class Otsing(Strict):
    """The answer to a search by name."""

    leitud: int
    ettevotted: tuple[Ettevote, ...]
