"""The quick admission checks of an append give the strict readings' verdicts.

``check_record`` reads a record's eight leaf text fields in one join and one encode and
only falls back to reading them one by one when that fails; ``check_certs`` and
``check_ocsp`` remember a reference already hashed with the DER it matched. Each is
compared here with the strict reading on arbitrary and near-miss values: the same
acceptance, and the same refusal with the same message, so no append that the log
would have refused before gets into a batch now.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.messagelog import Kind, LogRecord, Role
from gateway.messagelog.admission import (
    _LEAF_TEXT_FIELDS,
    check_certs,
    check_leaf_texts,
    check_ocsp,
    check_record,
)

_RECORD = LogRecord(
    role=Role.PROVIDER,
    kind=Kind.REQUEST,
    message_id="6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f",
    xroad_id="DE-NRW-6f1c1d2e",
    client="DE-NRW/GOV/05974040/gewerbeamt",
    service="DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
    created="2026-12-07T16:00:00.123Z",
    header=b"{}",
    body=b"",
    signature="e30..c2ln",
    cert_ref="a" * 64,
    ocsp_ref="b" * 64,
)


class _Text(str):
    """A str subclass: the strict check's ``isinstance`` accepts it."""


def _verdict(check: Any, record: LogRecord) -> tuple[type[Exception], str] | None:
    try:
        check(record)
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)
    return None


_values = st.one_of(
    st.text(),
    # lone surrogates: a str that UTF-8 cannot encode
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
    st.text().map(_Text),
    st.binary(),
    st.none(),
    st.integers(),
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(_LEAF_TEXT_FIELDS), _values))
def test_check_record_agrees_with_the_field_by_field_reading(changes: dict[str, Any]) -> None:
    record = replace(_RECORD, **changes)
    assert _verdict(check_record, record) == _verdict(check_leaf_texts, record)


@pytest.mark.parametrize("name", _LEAF_TEXT_FIELDS)
@pytest.mark.parametrize(
    ("value", "refusal"),
    [
        (b"id", (TypeError, "{} must be a str")),
        (None, (TypeError, "{} must be a str")),
        ("ok\ud800", (ValueError, "{} is not valid Unicode text")),
    ],
)
def test_check_record_names_the_bad_field(
    name: str, value: Any, refusal: tuple[type[Exception], str]
) -> None:
    # A bad value anywhere among good ones; the one-by-one reading names it.
    record = replace(_RECORD, **{name: value})
    assert _verdict(check_record, record) == (refusal[0], refusal[1].format(name))


def test_check_record_names_the_first_of_two_bad_fields() -> None:
    record = replace(_RECORD, client="\udc80", signature=cast(str, None))
    assert _verdict(check_record, record) == (ValueError, "client is not valid Unicode text")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=64), st.booleans()), min_size=1, max_size=6))
def test_remembered_references_refuse_what_hashing_refuses(pairs: list[tuple[bytes, bool]]) -> None:
    # Each DER offered under its own reference (remembered once accepted) or under a
    # reference another DER was accepted with: the verdict is always the hash's.
    accepted: list[str] = []
    for der, borrow in pairs:
        ref = accepted[-1] if borrow and accepted else hashlib.sha256(der).hexdigest()
        honest = hashlib.sha256(der).hexdigest() == ref
        if honest:
            assert check_certs({ref: (der, "hdr")}) == ((ref, der, "hdr"),)
            assert check_ocsp({ref: der}) == ((ref, der),)
        else:
            with pytest.raises(ValueError, match=r"cert_ref .* is not the SHA-256"):
                check_certs({ref: (der, "hdr")})
            with pytest.raises(ValueError, match=r"ocsp_ref .* is not the SHA-256"):
                check_ocsp({ref: der})
        if honest:
            accepted.append(ref)


def test_a_remembered_reference_with_other_bytes_is_refused() -> None:
    der = b"0\x82certificate"
    ref = hashlib.sha256(der).hexdigest()
    assert check_certs({ref: (der, "hdr")}) == ((ref, der, "hdr"),)
    assert check_ocsp({ref: der}) == ((ref, der),)
    with pytest.raises(ValueError, match="cert_ref"):
        check_certs({ref: (der + b"x", "hdr")})
    with pytest.raises(ValueError, match="ocsp_ref"):
        check_ocsp({ref: der[:-1]})
