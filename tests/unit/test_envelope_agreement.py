"""The envelope's quick checks and writers against the rules as first written.

The signed headers are checked and written on every exchange, so some checks take a
shorter way: ``str.isascii``/``isprintable`` instead of a regular expression, a set of
header names already matched, the canonical bytes written from the fields
(``gateway.core.headerjson``), the verification of a payload given as its base64url.
Each test here holds one of them to a reference written as the rule reads, on valid and
invalid input alike: the same result, or the same refusal with the same message.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.canonical import NotCanonicalError, canonical_json
from gateway.core.encoding import b64url
from gateway.core.envelope import (
    MAX_HEADER_NAME,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MAX_TEXT,
    EnvelopeError,
    RequestHeader,
    ResponseHeader,
    _text,
    check_headers,
)
from gateway.core.headerjson import _quick_request, _quick_response
from tests.unit.test_envelope import NOW, _request, _response, _signer, _verifier

# ------------------------------------------------------------------ printable text

_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def test_isascii_and_isprintable_hold_of_exactly_the_printable_ascii() -> None:
    """Both tests ask the same of every character, so one code point at a time decides."""
    for point in range(sys.maxunicode + 1):
        char = chr(point)
        assert (char.isascii() and char.isprintable()) == bool(_PRINTABLE.fullmatch(char))


def _reference_text(value: Any, what: str, *, optional: bool = False, limit: int = MAX_TEXT) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, str) and len(value) > limit:
        raise EnvelopeError(
            "malformed", f"{what} is {len(value)} characters, over the limit of {limit}"
        )
    if not isinstance(value, str) or not _PRINTABLE.fullmatch(value):
        raise EnvelopeError("malformed", f"{what} must be printable ASCII up to {limit} chars")
    return value


def _outcome(check: Callable[[], Any]) -> Any:
    try:
        return ("value", check())
    except (EnvelopeError, NotCanonicalError) as exc:
        return (type(exc).__name__, str(exc), getattr(exc, "reason", None))
    except (TypeError, UnicodeEncodeError) as exc:
        return (type(exc).__name__, str(exc))


_texts = st.text(max_size=12) | st.text(st.characters(max_codepoint=0x7F), max_size=12)
_values = _texts | st.none() | st.integers() | st.lists(st.text(max_size=2), max_size=2)


@settings(max_examples=500, deadline=None)
@given(_values, st.booleans(), st.integers(min_value=0, max_value=13))
def test_text_check_agrees_with_the_reference(value: Any, optional: bool, limit: int) -> None:
    assert _outcome(lambda: _text(value, "field", optional=optional, limit=limit)) == _outcome(
        lambda: _reference_text(value, "field", optional=optional, limit=limit)
    )


# ------------------------------------------------------------------ header lists

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def _reference_headers(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        raise EnvelopeError("malformed", "headers must be a list of [name, value] pairs")
    if len(value) > MAX_HEADERS:
        raise EnvelopeError(
            "malformed", f"{len(value)} end-to-end headers, over the limit of {MAX_HEADERS}"
        )
    result = []
    for pair in value:
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(isinstance(p, str) for p in pair)
        ):
            raise EnvelopeError("malformed", "each header must be a [name, value] pair")
        name, val = pair
        if len(name) > MAX_HEADER_NAME:
            raise EnvelopeError(
                "malformed",
                f"header name {name[:64]!r}... is {len(name)} characters, "
                f"over the limit of {MAX_HEADER_NAME}",
            )
        if not _TOKEN.fullmatch(name):
            raise EnvelopeError("malformed", f"header name {name!r} is not a lower-case token")
        if len(val) > MAX_HEADER_VALUE:
            raise EnvelopeError(
                "malformed",
                f"header {name!r} is {len(val)} characters long, "
                f"over the limit of {MAX_HEADER_VALUE}",
            )
        if not _FIELD_VALUE.fullmatch(val):
            raise EnvelopeError("malformed", f"header {name!r} has a forbidden character")
        result.append((name, val))
    return tuple(result)


_names = (
    st.sampled_from(["content-type", "accept", "x-trace", "Content-Type", "a b", "", "é"])
    | st.text(st.characters(max_codepoint=0x7F), max_size=6)
    | st.text(max_size=4)
)
_header_values = (
    st.sampled_from(["application/json", "café\tx", "a\r\nb", "\x7f", "\x00", "\u0100"])
    | st.text(st.characters(max_codepoint=0xFF), max_size=8)
    | st.text(max_size=4)
)
_pairs = (
    st.tuples(_names, _header_values).map(list)
    | st.tuples(_names, _header_values)
    | st.lists(st.text(max_size=3), max_size=3)
    | st.integers()
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_pairs, max_size=4) | st.tuples(_pairs) | st.none())
def test_header_check_agrees_with_the_reference(value: Any) -> None:
    """Twice: a name accepted once is not matched again, and must still be judged alike."""
    for _ in range(2):
        assert _outcome(lambda: check_headers(value)) == _outcome(lambda: _reference_headers(value))


@pytest.mark.parametrize(
    "value",
    [
        [["a" * MAX_HEADER_NAME, "x"]],
        [["a" * (MAX_HEADER_NAME + 1), "x"]],
        [["a", "x" * MAX_HEADER_VALUE]],
        [["a", "x" * (MAX_HEADER_VALUE + 1)]],
        [["a", "x"]] * MAX_HEADERS,
        [["a", "x"]] * (MAX_HEADERS + 1),
        [["a", "x", "y"]],
        [("a", 1)],
    ],
)
def test_header_limits_agree_with_the_reference(value: Any) -> None:
    assert _outcome(lambda: check_headers(value)) == _outcome(lambda: _reference_headers(value))


# ------------------------------------------------------------------ header bytes


def _reference_request_bytes(header: RequestHeader) -> bytes:
    optional = (
        {"represented_party": header.represented_party}
        if header.represented_party is not None
        else {}
    )
    return canonical_json(
        {
            **optional,
            "v": 1,
            "type": "request",
            "id": header.message_id,
            "xroad_id": header.xroad_id,
            "client": str(header.client),
            "service": str(header.service),
            "method": header.method,
            "path": header.path,
            "query": header.query,
            "headers": [list(h) for h in header.headers],
            "user_id": header.user_id,
            "issue": header.issue,
            "created": header.created,
            "body_sha256": header.body_sha256,
            "body_length": header.body_length,
        }
    )


def _reference_response_bytes(header: ResponseHeader) -> bytes:
    return canonical_json(
        {
            "v": 1,
            "type": "response",
            "id": header.message_id,
            "xroad_id": header.xroad_id,
            "client": str(header.client),
            "service": str(header.service),
            "request_hash": header.request_hash,
            "status": header.status,
            "headers": [list(h) for h in header.headers],
            "created": header.created,
            "body_sha256": header.body_sha256,
            "body_length": header.body_length,
        }
    )


class _Text(str):
    """A str subclass: not the exact type the quick writer takes."""


# Any text a field might hold, escapes and lone surrogates included, and values of
# types a header does not declare (the writer must hand them to canonical_json).
_field_texts = st.text(max_size=6) | st.sampled_from(['"', "\\", "\x00\x1f", "\ud800", "é☃😀"])
_odd = (
    st.floats(allow_nan=True)
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.booleans()
    | st.lists(st.integers(), max_size=2)
    | _field_texts.map(_Text)
)
_int_range = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
_out_of_range = st.integers(min_value=2**53, max_value=2**60) | st.integers(
    min_value=-(2**60), max_value=-(2**53)
)
_pair_lists = st.lists(st.tuples(_field_texts, _field_texts), max_size=3).map(tuple)
_odd_pairs = (
    st.lists(st.tuples(_field_texts, _odd), min_size=1, max_size=2).map(tuple)
    | st.lists(
        st.lists(_field_texts, min_size=2, max_size=3).map(tuple), min_size=1, max_size=2
    ).map(tuple)
    | st.lists(st.lists(_field_texts, min_size=2, max_size=2), max_size=2)
)
_REQUEST_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    # field: (its declared type, values of other types or out of range)
    "message_id": (_field_texts, _odd),
    "xroad_id": (_field_texts, _odd),
    "method": (_field_texts, _odd),
    "path": (_field_texts, _odd),
    "query": (_field_texts, _odd),
    "headers": (_pair_lists, _odd_pairs),
    "user_id": (st.none() | _field_texts, _odd),
    "issue": (st.none() | _field_texts, _odd),
    "created": (_field_texts, _odd),
    "body_sha256": (_field_texts, _odd),
    "body_length": (_int_range, _out_of_range | _odd),
    "represented_party": (st.none() | _field_texts, _odd),
}
_RESPONSE_FIELDS = {
    name: _REQUEST_FIELDS[name]
    for name in ("message_id", "xroad_id", "headers", "created", "body_sha256", "body_length")
} | {"request_hash": (_field_texts, _odd), "status": (_int_range, _out_of_range | _odd)}


def _fields(
    data: st.DataObject, kinds: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]]
) -> dict[str, Any]:
    """Every field of its declared type, then none, one or two of them of another."""
    fields = {name: data.draw(declared) for name, (declared, _) in kinds.items()}
    for name in data.draw(st.lists(st.sampled_from(sorted(kinds)), max_size=2, unique=True)):
        fields[name] = data.draw(kinds[name][1])
    return fields


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_request_bytes_agree_with_canonical_json(data: st.DataObject) -> None:
    header = replace(_request(), **_fields(data, _REQUEST_FIELDS))
    assert _outcome(header.to_bytes) == _outcome(lambda: _reference_request_bytes(header))


@settings(max_examples=250, deadline=None)
@given(st.data())
def test_response_bytes_agree_with_canonical_json(data: st.DataObject) -> None:
    header = replace(_response(), **_fields(data, _RESPONSE_FIELDS))
    assert _outcome(header.to_bytes) == _outcome(lambda: _reference_response_bytes(header))


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "message_id": _field_texts,
            "path": _field_texts,
            "headers": st.lists(st.tuples(_field_texts, _field_texts), max_size=3).map(tuple),
            "user_id": st.none() | _field_texts,
            "body_length": st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
            "represented_party": st.none() | _field_texts,
        }
    )
)
def test_a_header_of_the_declared_types_is_written_the_quick_way(fields: dict[str, Any]) -> None:
    """The agreement above is not the slow way agreeing with itself: a header whose
    fields have the declared types is written as one string, the bytes
    ``canonical_json`` gives (or, for a lone surrogate, its error)."""
    header = replace(_request(), **fields)
    quick = _outcome(
        lambda: _quick_request(
            1,
            header.message_id,
            header.xroad_id,
            str(header.client),
            str(header.service),
            header.method,
            header.path,
            header.query,
            header.headers,
            header.user_id,
            header.issue,
            header.created,
            header.body_sha256,
            header.body_length,
            header.represented_party,
        )
    )
    assert quick != ("value", None)
    assert quick == _outcome(lambda: _reference_request_bytes(header))


def test_a_response_of_the_declared_types_is_written_the_quick_way() -> None:
    header = _response()
    quick = _quick_response(
        1,
        header.message_id,
        header.xroad_id,
        str(header.client),
        str(header.service),
        header.request_hash,
        header.status,
        header.headers,
        header.created,
        header.body_sha256,
        header.body_length,
    )
    assert quick is not None
    assert quick == _reference_response_bytes(header)


# ------------------------------------------------------------------ verification


def _verified(check: Callable[[], Any]) -> Any:
    try:
        result = check()
    except EnvelopeError as exc:
        return ("refused", exc.reason, exc.message)
    return ("verified", result.signer, result.cert_ref, result.jws_header, result.jws)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_verify_encoded_agrees_with_verify(data: st.DataObject) -> None:
    """Over the payload's base64url as a node received it, or the payload's bytes: the
    same signer, or the same refusal, for good and damaged signatures and payloads."""
    payload = _request().to_bytes()
    jws = _signer().sign(payload)
    if data.draw(st.booleans()):
        at = data.draw(st.integers(min_value=0, max_value=len(jws) - 1))
        jws = jws[:at] + data.draw(st.sampled_from("Aa0_-.=")) + jws[at + 1 :]
    if data.draw(st.booleans()):
        at = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
        payload = payload[:at] + bytes([payload[at] ^ 1]) + payload[at + 1 :]
    verifier = _verifier()
    assert _verified(lambda: verifier.verify_encoded(jws, b64url(payload), NOW)) == _verified(
        lambda: verifier.verify(jws, payload, NOW)
    )
