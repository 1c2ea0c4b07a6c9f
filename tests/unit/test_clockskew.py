"""The node's clock against a TSA's genTime, the request's round trip taken out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.clockskew import clock_skew

ASKED = datetime(2025, 6, 1, 8, 0, 0, tzinfo=UTC)
ANSWERED = ASKED + timedelta(seconds=3)


@pytest.mark.parametrize(
    ("gen_time", "skew"),
    [
        (ASKED, 0.0),
        (ASKED + timedelta(seconds=1.5), 0.0),
        (ANSWERED, 0.0),
        (ASKED - timedelta(seconds=120), 120.0),
        (ASKED - timedelta(milliseconds=1), 0.001),
        (ANSWERED + timedelta(seconds=120), -120.0),
        (ANSWERED + timedelta(milliseconds=250), -0.25),
    ],
)
def test_skew_is_the_least_one_the_round_trip_allows(gen_time: datetime, skew: float) -> None:
    assert clock_skew(ASKED, ANSWERED, gen_time) == timedelta(seconds=skew)


def test_a_slow_answer_never_makes_a_true_clock_look_skewed() -> None:
    slow = ASKED + timedelta(seconds=30)
    assert clock_skew(ASKED, slow, ASKED + timedelta(seconds=29)) == timedelta(0)


def test_an_answer_before_the_request_is_an_error() -> None:
    with pytest.raises(ValueError, match="before the request"):
        clock_skew(ANSWERED, ASKED, ASKED)
