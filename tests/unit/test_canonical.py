"""Canonical JSON: one byte string per value, and nothing else is accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.canonical import (
    MAX_DEPTH,
    NotCanonicalError,
    _parse_strict,
    canonical_json,
    parse_canonical,
)


def _nested(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    result: dict[str, Any] = value
    return result


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({}, b"{}"),
        ({"b": 1, "a": 2}, b'{"a":2,"b":1}'),
        ({"z": {"y": 1, "x": [3, 2, 1]}, "a": None}, b'{"a":null,"z":{"x":[3,2,1],"y":1}}'),
        ({"t": True, "f": False, "n": None}, b'{"f":false,"n":null,"t":true}'),
        ({"a": 1, "B": 2, "_": 3, "aa": 4, "": 5}, b'{"":5,"B":2,"_":3,"a":1,"aa":4}'),
        ({"i": -9007199254740991, "j": 0, "k": 42}, b'{"i":-9007199254740991,"j":0,"k":42}'),
        ({"l": [[], {}, [{}]]}, b'{"l":[[],{},[{}]]}'),
    ],
)
def test_canonical_output(value: dict[str, Any], expected: bytes) -> None:
    assert canonical_json(value) == expected
    assert parse_canonical(expected) == value


def test_unicode_is_raw_utf8() -> None:
    value = {"name": "Tõnis Mägi", "snow": "☃", "emoji": "😀", "nbsp": "\u00a0"}
    data = canonical_json(value)
    assert data == '{"emoji":"😀","name":"Tõnis Mägi","nbsp":"\u00a0","snow":"☃"}'.encode()
    assert b"\\u" not in data
    assert parse_canonical(data) == value


def test_non_ascii_keys_sort_by_code_point() -> None:
    data = canonical_json({"é": 1, "z": 2, "a": 3})
    assert data == '{"a":3,"z":2,"é":1}'.encode()


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ('"', b'\\"'),
        ("\\", b"\\\\"),
        ("\b", b"\\b"),
        ("\f", b"\\f"),
        ("\n", b"\\n"),
        ("\r", b"\\r"),
        ("\t", b"\\t"),
        ("\x00", b"\\u0000"),
        ("\x1f", b"\\u001f"),
        ("/", b"/"),
        ("\x7f", b"\x7f"),
        ("\u2028", "\u2028".encode()),
    ],
)
def test_escapes(text: str, escaped: bytes) -> None:
    data = canonical_json({"s": text})
    assert data == b'{"s":"' + escaped + b'"}'
    assert parse_canonical(data) == {"s": text}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"a":1,"a":2}', id="duplicate"),
        pytest.param(b'{"a":1,"a":1}', id="duplicate-same-value"),
        pytest.param(b'{"a":{"b":1,"b":1}}', id="duplicate-nested"),
        pytest.param(b'{"a":[{"b":1,"b":2}]}', id="duplicate-in-array"),
    ],
)
def test_rejects_duplicate_keys(data: bytes) -> None:
    with pytest.raises(NotCanonicalError, match="duplicate key"):
        parse_canonical(data)


@pytest.mark.parametrize(
    "data",
    [b'{"a":1.0}', b'{"a":1.5}', b'{"a":1e2}', b'{"a":1E2}', b'{"a":-0.0}', b'{"a":[0.1]}'],
)
def test_rejects_floats_in_bytes(data: bytes) -> None:
    with pytest.raises(NotCanonicalError, match="non-integer"):
        parse_canonical(data)


@pytest.mark.parametrize("data", [b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}'])
def test_rejects_nan_and_infinity(data: bytes) -> None:
    with pytest.raises(NotCanonicalError, match="not allowed"):
        parse_canonical(data)


@pytest.mark.parametrize(
    "value",
    [{"a": 1.0}, {"a": float("nan")}, {"a": float("inf")}, {"a": [1, {"b": 0.5}]}],
)
def test_serialiser_refuses_floats(value: dict[str, Any]) -> None:
    with pytest.raises(NotCanonicalError, match="float"):
        canonical_json(value)


@pytest.mark.parametrize(
    "value",
    [{"a": b"x"}, {"a": (1, 2)}, {"a": {1, 2}}, {1: "a"}, {"a": {None: 1}}, {"a": object()}],
)
def test_serialiser_refuses_other_types(value: dict[Any, Any]) -> None:
    with pytest.raises(NotCanonicalError):
        canonical_json(value)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"a":1}x', id="garbage"),
        pytest.param(b'{"a":1}\n', id="newline"),
        pytest.param(b'{"a":1}{"b":2}', id="second-object"),
        pytest.param(b'{"a":1}\x00', id="nul"),
    ],
)
def test_rejects_trailing_bytes(data: bytes) -> None:
    with pytest.raises(NotCanonicalError):
        parse_canonical(data)


@pytest.mark.parametrize(
    "data",
    [b' {"a":1}', b'{ "a":1}', b'{"a" :1}', b'{"a": 1}', b'{"a":1 }', b'{"a":[1, 2]}', b"{\n}"],
)
def test_rejects_whitespace(data: bytes) -> None:
    with pytest.raises(NotCanonicalError, match="canonical form"):
        parse_canonical(data)


@pytest.mark.parametrize(
    "data",
    [
        b'{"b":1,"a":2}',
        b'{"a":"\\u0041"}',
        b'{"a":"\\/"}',
        b'{"a":"\\u001F"}',
        b'{"a":"\\u000a"}',
        b'{"a":"\\u00e9"}',
        b'{"a":-0}',
    ],
)
def test_rejects_alternative_spellings(data: bytes) -> None:
    with pytest.raises(NotCanonicalError, match="canonical form"):
        parse_canonical(data)


@pytest.mark.parametrize("data", [b"[]", b"[1]", b'"a"', b"1", b"null", b"true"])
def test_rejects_non_objects(data: bytes) -> None:
    with pytest.raises(NotCanonicalError, match="not a JSON object"):
        parse_canonical(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b'{"a":}', b'{"a":01}', b'{"a":+1}', b'{"a":"\x01"}', b"\xef\xbb\xbf{}"],
)
def test_rejects_invalid_json(data: bytes) -> None:
    with pytest.raises(NotCanonicalError, match="not JSON"):
        parse_canonical(data)


@pytest.mark.parametrize("data", [b'{"a":"\xff"}', b'{"a":"\xc0\xaf"}', b'{"a":"\xed\xa0\x80"}'])
def test_rejects_invalid_utf8(data: bytes) -> None:
    with pytest.raises(NotCanonicalError, match="not UTF-8"):
        parse_canonical(data)


def test_depth_limit() -> None:
    deepest = _nested(MAX_DEPTH)
    assert parse_canonical(canonical_json(deepest)) == deepest
    with pytest.raises(NotCanonicalError, match="too deep"):
        canonical_json(_nested(MAX_DEPTH + 1))
    with pytest.raises(NotCanonicalError, match="too deep"):
        parse_canonical(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)


@pytest.mark.parametrize("leaf", ["text", 1, None, True])
@pytest.mark.parametrize("in_list", [False, True])
def test_depth_limit_is_the_same_for_every_kind_of_leaf(leaf: Any, in_list: bool) -> None:
    """A string leaf is not checked by a call of its own, yet counts like any other."""

    def nested(depth: int) -> dict[str, Any]:
        value: Any = leaf
        for level in range(depth - 1):
            value = [value] if in_list and level % 2 == 0 else {"a": value}
        return {"top": value}

    deepest = nested(MAX_DEPTH)
    assert parse_canonical(canonical_json(deepest)) == deepest
    too_deep = nested(MAX_DEPTH + 1)
    with pytest.raises(NotCanonicalError, match="too deep"):
        canonical_json(too_deep)
    with pytest.raises(NotCanonicalError, match="too deep"):
        parse_canonical(json.dumps(too_deep, separators=(",", ":")).encode())


def test_parser_and_serialiser_agree_on_depth() -> None:
    too_deep = json.dumps(_nested(MAX_DEPTH + 1), separators=(",", ":")).encode()
    with pytest.raises(NotCanonicalError, match="too deep"):
        parse_canonical(too_deep)


def test_rejects_lone_surrogate_escape() -> None:
    with pytest.raises(NotCanonicalError):
        parse_canonical(b'{"a":"\\ud800"}')


def test_rejects_huge_integer() -> None:
    with pytest.raises(NotCanonicalError):
        parse_canonical(b'{"a":' + b"9" * 5000 + b"}")


# --------------------------------------------------------------------------- property

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(st.characters(codec="utf-8"), max_size=20)
)
_keys = st.text(st.characters(codec="utf-8"), max_size=8)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_keys, _json, max_size=6))
def test_round_trip(value: dict[str, Any]) -> None:
    if _depth(value) > MAX_DEPTH:
        with pytest.raises(NotCanonicalError):
            canonical_json(value)
        return
    data = canonical_json(value)
    assert parse_canonical(data) == value
    assert canonical_json(parse_canonical(data)) == data
    # Same meaning as the standard library reads it, and no insignificant white space.
    assert json.loads(data) == value
    assert data == json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_keys, _json, min_size=1, max_size=6), st.data())
def test_any_inserted_space_is_refused(value: dict[str, Any], data: st.DataObject) -> None:
    if _depth(value) > MAX_DEPTH:
        return
    canonical = canonical_json(value)
    at = data.draw(st.integers(min_value=0, max_value=len(canonical)))
    altered = canonical[:at] + b" " + canonical[at:]
    try:
        parsed = parse_canonical(altered)
    except NotCanonicalError:
        return
    # Only a space inside a string can survive, and then it changes the value.
    assert parsed != value


# ------------------------------------------------- the fast path and the strict parser


def _outcome(parse: Any, data: bytes) -> Any:
    try:
        return ("value", parse(data))
    except NotCanonicalError as exc:
        return ("refused", str(exc))


def _both_agree(data: bytes) -> None:
    """``parse_canonical`` (its one-pass try first) accepts exactly what the strict
    parser accepts, with the same value, and refuses the rest with the same message."""
    assert _outcome(parse_canonical, data) == _outcome(_parse_strict, data)


_out_of_range = st.integers(min_value=2**53, max_value=2**70) | st.integers(
    max_value=-(2**53), min_value=-(2**70)
)
_any_scalar = _scalars | _out_of_range | st.floats() | st.text(max_size=6)
_any_json = st.recursive(
    _any_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=250, deadline=None)
@given(st.dictionaries(_keys, _any_json, max_size=5), st.booleans())
def test_fast_path_agrees_with_the_strict_parser_on_serialised_values(
    value: dict[str, Any], ascii_only: bool
) -> None:
    """Floats, NaN, integers out of range, lone surrogates (escaped when
    ``ascii_only``), nesting beyond the limit: each is refused as the strict parser
    refuses it."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only)
    _both_agree(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=250, deadline=None)
@given(st.dictionaries(_keys, _json, min_size=1, max_size=5), st.data())
def test_fast_path_agrees_with_the_strict_parser_on_altered_bytes(
    value: dict[str, Any], data: st.DataObject
) -> None:
    canonical = canonical_json(value) if _depth(value) <= MAX_DEPTH else b"{}"
    at = data.draw(st.integers(min_value=0, max_value=len(canonical)))
    cut = data.draw(st.integers(min_value=0, max_value=3))
    insert = data.draw(
        st.sampled_from([b"", b" ", b",", b'"a":1,', b"1.0", b"-0", b"NaN", b"\xff", b"\\u0041"])
        | st.binary(max_size=3)
    )
    _both_agree(canonical[:at] + insert + canonical[at + cut :])


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1,"a":1}',
        b'{"a":[{"b":1,"b":1}]}',
        b'{"a":1.0}',
        b'{"a":1e5}',
        b'{"a":NaN}',
        b'{"a":-Infinity}',
        b'{"a":-0}',
        b'{"a":9007199254740991}',
        b'{"a":9007199254740992}',
        b'{"a":-9007199254740992}',
        b'{"a":' + b"9" * 5000 + b"}",
        b'{"a":"\\ud800"}',
        b'{"a":"\\u00e9"}',
        b" {}",
        b"{} ",
        b"",
        b"[]",
        b"\xef\xbb\xbf{}",
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        json.dumps(_nested(MAX_DEPTH), separators=(",", ":")).encode(),
        json.dumps(_nested(MAX_DEPTH + 1), separators=(",", ":")).encode(),
        b'{"a":' * MAX_DEPTH + b"[]" + b"}" * MAX_DEPTH,
        b'{"a":' * MAX_DEPTH + b"[1]" + b"}" * MAX_DEPTH,
        b'{"a":' * MAX_DEPTH + b'{"b":"x"}' + b"}" * MAX_DEPTH,
    ],
)
def test_fast_path_agrees_with_the_strict_parser_on_edge_cases(data: bytes) -> None:
    _both_agree(data)
