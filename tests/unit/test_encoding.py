"""The base spellings: strict base64url and the one RFC 3339 formatter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

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
