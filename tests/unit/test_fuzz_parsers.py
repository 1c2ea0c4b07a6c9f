"""Every parser that takes bytes from outside, given arbitrary and damaged input, either
returns a value or refuses with its documented error (``tests/fuzz/targets.py`` lists
them and what each may raise); round trips hold where the format has one spelling.

A few dozen examples per target keep ``make test`` fast; ``make fuzz`` runs the same
targets coverage-guided for as long as it is given (docs/reliability.md, "Fuzzing").
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.core.canonical import MAX_DEPTH, MAX_INT, canonical_json, parse_canonical
from gateway.core.ids import MemberId, NodeId, ServiceId, SubsystemId
from tests.fuzz.mutate import apply_edits, inputs
from tests.fuzz.targets import TARGETS, Target, refused

EXAMPLES = {"tuf": 25, "registries": 40, "bundle": 40, "open_request": 60}
"""Examples per target in the suite where one example costs more (default 80)."""


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_are_accepted(name: str) -> None:
    """A seed is a valid input, so the damaged ones start from a parser's success path
    (the deliberately invalid canonical-JSON, header and error-response seeds aside)."""
    target = TARGETS[name]
    with target.open() as run:
        outcomes = [refused(target, run, seed) for seed in target.seeds()]
    assert any(outcome is None for outcome in outcomes), outcomes


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_damaged_input_is_parsed_or_refused_as_documented(name: str) -> None:
    target: Target = TARGETS[name]
    with target.open() as run:

        @settings(
            max_examples=EXAMPLES.get(name, 80),
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(inputs(target.seeds()))
        def check(data: bytes) -> None:
            refused(target, run, data)

        check()


def test_edits_change_a_seed_as_described() -> None:
    seed = b"abcdef"
    assert apply_edits(seed, []) == seed
    assert apply_edits(seed, [(0, 0, 0, 1)]) == b"`bcdef"
    assert apply_edits(seed, [(1, 2, 1, ord("x"))]) == b"abxxcdef"
    assert apply_edits(seed, [(2, 1, 1, 0)]) == b"adef"
    assert apply_edits(seed, [(3, 4, 0, 0)]) == b"abcd"
    assert apply_edits(seed, [(4, 0, 1, 0)]) == b"ababcdef"


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_INT, MAX_INT) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_text, _json, max_size=5))
def test_canonical_json_round_trips(value: dict[str, Any]) -> None:
    assume(_depth(value) <= MAX_DEPTH)
    encoded = canonical_json(value)
    assert parse_canonical(encoded) == value


_part = st.text(st.sampled_from("ABCXYZabcxyz0189'()+,-.=?"), min_size=1, max_size=12).filter(
    lambda p: p not in (".", "..")
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([MemberId, SubsystemId, ServiceId, NodeId]), st.data())
def test_identifiers_round_trip(kind: type[MemberId], data: st.DataObject) -> None:
    parts = [data.draw(_part) for _ in kind.PART_NAMES]
    value = kind(*parts)
    assert kind.parse(str(value)) == value
