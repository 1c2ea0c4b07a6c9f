"""The IDNr check (registries/melderegister/idnr.py): structure rules and check digit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registries.melderegister.idnr import IdnrError, check_digit, check_idnr, is_idnr

# Computed by hand with ISO 7064 MOD 11,10 (see check_digit's docstring), one per shape:
# a pair, a triple that is not adjacent, a pair of adjacent equal digits.
VALID = ["52693074139", "65929970489", "57549285017", "86095742719", "18852763496"]


def test_hand_computed_check_digit() -> None:
    # Running product over 5 2 6 9 3 0 7 4 1 3: 10 4 9 5 5 10 3 3 8 2, so 11 - 2 = 9.
    assert check_digit("5269307413") == 9
    # Here the product ends at 1, so the check value is 10, which is written as 0.
    assert check_digit("8591740062") == 0
    assert is_idnr("85917400620")


@pytest.mark.parametrize("idnr", VALID)
def test_known_valid_numbers(idnr: str) -> None:
    assert check_idnr(idnr) == idnr
    assert is_idnr(idnr)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("5269307413", "elf Ziffern"),
        ("526930741390", "elf Ziffern"),
        ("5269307413a", "elf Ziffern"),
        ("5269 307413", "elf Ziffern"),
        ("５２６９３０７４１３９", "elf Ziffern"),  # noqa: RUF001 (full-width digits, on purpose)
        ("02693074139", "nicht mit 0"),
        ("1234567890" + str(check_digit("1234567890")), "genau eine Ziffer"),  # no repeat
        ("1122345678" + str(check_digit("1122345678")), "genau eine Ziffer"),  # two pairs
        ("1111234567" + str(check_digit("1111234567")), "genau eine Ziffer"),  # four times
        ("1112345678" + str(check_digit("1112345678")), "direkt hintereinander"),
        ("52693074138", "Prüfziffer"),
    ],
)
def test_invalid_numbers_name_the_rule(value: str, rule: str) -> None:
    with pytest.raises(IdnrError, match=rule):
        check_idnr(value)
    assert not is_idnr(value)


@given(st.sampled_from(VALID), st.integers(0, 10), st.integers(1, 9))
def test_every_single_digit_typo_is_caught(idnr: str, position: int, delta: int) -> None:
    """MOD 11,10 detects every change of one digit (the structure rules aside)."""
    digits = list(idnr)
    digits[position] = str((int(digits[position]) + delta) % 10)
    assert not is_idnr("".join(digits))


def test_check_digit_needs_ten_digits() -> None:
    with pytest.raises(IdnrError):
        check_digit("123")
