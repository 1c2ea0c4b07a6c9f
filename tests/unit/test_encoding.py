"""The base spellings: strict base64url and the one RFC 3339 formatter."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.encoding import EncodingError, TimeSpec, b64url, b64url_decode, format_time
from gateway.core.envelope import EnvelopeError, decode_segment, parse_time
from gateway.core.treehead import parse_sth, sth_document

MOMENT = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timespec", "text"),
    [
        ("seconds", "2025-06-01T12:00:00Z"),
        ("milliseconds", "2025-06-01T12:00:00.123Z"),
        ("microseconds", "2025-06-01T12:00:00.123456Z"),
        ("auto", "2025-06-01T12:00:00.123456Z"),
    ],
)
def test_format_time_precisions(timespec: TimeSpec, text: str) -> None:
    assert format_time(MOMENT, timespec) == text


def test_format_time_defaults_to_the_envelope_spelling() -> None:
    assert format_time(MOMENT) == "2025-06-01T12:00:00.123Z"
    assert parse_time(format_time(MOMENT)) == MOMENT.replace(microsecond=123000)


def test_auto_leaves_out_a_zero_fraction() -> None:
    assert format_time(MOMENT.replace(microsecond=0), "auto") == "2025-06-01T12:00:00Z"


def test_format_time_converts_to_utc() -> None:
    berlin = MOMENT.astimezone(timezone(timedelta(hours=2)))
    assert format_time(berlin, "seconds") == "2025-06-01T12:00:00Z"


def test_format_time_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2025, 6, 1, 12, 0))


def test_a_tree_head_uses_the_same_formatter_at_microseconds() -> None:
    document = sth_document("EE/GOV/70000001/node-1", 3, bytes(32), MOMENT)
    assert format_time(MOMENT, "microseconds").encode() in document
    assert parse_sth(document).timestamp == MOMENT


@pytest.mark.parametrize("text", ["A", "AAAAA", "a+b", "ab==", "é", "AB"])
def test_b64url_decode_refuses_non_canonical_text(text: str) -> None:
    with pytest.raises(EncodingError):
        b64url_decode(text)


def test_b64url_round_trip() -> None:
    data = bytes(range(256))
    assert b64url_decode(b64url(data)) == data
    assert "=" not in b64url(data)


def test_the_envelope_refuses_the_same_text_as_malformed() -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode_segment("AB")
    assert caught.value.reason == "malformed"
    assert caught.value.message == "not canonical base64url"


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(timezones=st.just(UTC)),
    st.sampled_from(["auto", "seconds", "milliseconds", "microseconds"]),
)
def test_a_utc_time_is_written_as_when_converted(moment: datetime, timespec: TimeSpec) -> None:
    """A time already in UTC skips the conversion: the same text as the same instant
    given in another zone."""
    elsewhere = moment.astimezone(timezone(timedelta(hours=-1)))
    assert format_time(moment, timespec) == format_time(elsewhere, timespec)
    assert format_time(moment, timespec).endswith("Z")


# The strict decoder as first written: the alphabet by a regular expression, canonical
# form by re-encoding. ``b64url_decode`` must accept and refuse exactly as it does.
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _reference_decode(text: str) -> bytes:
    if not re.fullmatch(f"[{re.escape(_ALPHABET)}]*", text) or len(text) % 4 == 1:
        raise EncodingError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != text:
        raise EncodingError("not canonical base64url")
    return data


def _decoded(decode: object, text: str) -> object:
    assert callable(decode)
    try:
        return decode(text)
    except EncodingError as exc:
        return ("refused", str(exc))


@settings(max_examples=1000, deadline=None)
@given(
    st.text(alphabet=_ALPHABET)
    | st.text(alphabet=_ALPHABET + "+/=\n \t\x00.é\u0660")
    | st.text(max_size=12)
)
def test_b64url_decode_agrees_with_the_reference(text: str) -> None:
    assert _decoded(b64url_decode, text) == _decoded(_reference_decode, text)


@pytest.mark.parametrize("size", range(7))
def test_every_last_character_is_judged_as_the_reference_judges_it(size: int) -> None:
    """Each of the 64 last characters after each length of prefix: only those whose
    unused low bits are zero decode."""
    prefix = "QUJD"[: size % 4] + "QUJD" * (size // 4)
    for last in _ALPHABET + "=+/.":
        text = prefix + last
        assert _decoded(b64url_decode, text) == _decoded(_reference_decode, text)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_b64url_is_urlsafe_base64_without_padding(data: bytes) -> None:
    assert b64url(data) == base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
    assert b64url_decode(b64url(data)) == data
