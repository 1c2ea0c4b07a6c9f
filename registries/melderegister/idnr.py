"""The steuerliche Identifikationsnummer (IDNr, § 139b AO): format and check digit.

The IDNr is the person's key in the data tracker (docs/adr/0014-idnr-as-data-subject.md):
the Melderegister keeps it (BMG § 3 Abs. 2, a purpose-bound field), the
Registermodernisierungsgesetz (IDNrG) makes it the identifier that connects a person's
entries across registers, and the citizen's eID/BundID sign-in supplies it. A typo must
not silently turn into somebody else's number, so every IDNr that enters the system
passes :func:`check_idnr`.

The rules, as the Bundeszentralamt für Steuern publishes them for the IDNr:

* eleven decimal digits, the first one not ``0``;
* among the first ten digits exactly one digit occurs twice or three times, every other
  digit at most once; a digit that occurs three times must not fill three adjacent
  positions (numbers issued since 2016 may have the triple, older ones only the pair);
* the eleventh digit is the check digit of ISO/IEC 7064, MOD 11,10 over the first ten.

Pure logic: no web, database or network code.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

__all__ = ["IDNR_LENGTH", "IdnrError", "check_digit", "check_idnr", "is_idnr"]

IDNR_LENGTH: Final = 11


class IdnrError(ValueError):
    """Not a valid IDNr; the message says which rule it breaks (in German, user-facing)."""


def check_digit(first_ten: str) -> int:
    """The ISO/IEC 7064 MOD 11,10 check digit of ten decimal digits.

    The running product starts at 10; for each digit the sum ``(digit + product) mod 10``
    (a zero counts as 10) is doubled modulo 11. The check digit makes the final product
    1, i.e. it is ``11 - product`` with 10 written as 0.
    """
    if len(first_ten) != IDNR_LENGTH - 1 or not first_ten.isascii() or not first_ten.isdigit():
        raise IdnrError("die Prüfziffer wird über genau zehn Ziffern berechnet")
    product = 10
    for char in first_ten:
        total = (int(char) + product) % 10 or 10
        product = (total * 2) % 11
    digit = 11 - product
    return 0 if digit == 10 else digit


def _check_structure(first_ten: str) -> None:
    counts = Counter(first_ten)
    repeated = [d for d, n in counts.items() if n > 1]
    if len(repeated) != 1 or counts[repeated[0]] > 3:
        raise IdnrError(
            "in den ersten zehn Ziffern muss genau eine Ziffer zwei- oder dreimal vorkommen"
        )
    digit = repeated[0]
    if counts[digit] == 3 and digit * 3 in first_ten:
        raise IdnrError(
            "eine dreifach vorkommende Ziffer darf nicht dreimal direkt hintereinander stehen"
        )


def check_idnr(value: str) -> str:
    """``value`` unchanged if it is a valid IDNr, else :class:`IdnrError` naming the rule.

    No normalisation (spaces, separators) happens here: callers that accept typed input
    strip it themselves, so a stored or transmitted IDNr has exactly one spelling.
    """
    if len(value) != IDNR_LENGTH or not value.isascii() or not value.isdigit():
        raise IdnrError("die Identifikationsnummer hat genau elf Ziffern")
    if value[0] == "0":
        raise IdnrError("die Identifikationsnummer beginnt nicht mit 0")
    _check_structure(value[:10])
    if check_digit(value[:10]) != int(value[10]):
        raise IdnrError("die Prüfziffer stimmt nicht (Tippfehler?)")
    return value


def is_idnr(value: str) -> bool:
    """True if :func:`check_idnr` accepts ``value`` (for filters, not for refusals)."""
    try:
        check_idnr(value)
    except IdnrError:
        return False
    return True
