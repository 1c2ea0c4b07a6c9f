"""The one canonical serialisation used by every signer and verifier.

Signed headers are JSON objects with string, integer, boolean, null, list and object
values only. Their canonical form is JSON with keys sorted, no insignificant white space
and UTF-8 output; for this subset (no floats) it coincides with RFC 8785 (JCS). A
receiver refuses any header whose bytes are not exactly the canonical form of what they
parse to, so duplicate keys, trailing bytes or alternative escapes can never make two
parties read different meanings out of one signature.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Callable, Iterable
from typing import Any

MAX_DEPTH = 8
MAX_INT = 2**53 - 1  # the integers every JSON implementation reads exactly

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class NotCanonicalError(ValueError):
    """The bytes are not the canonical form of a JSON object."""


def canonical_json(value: dict[str, Any]) -> bytes:
    """Serialise to canonical bytes."""
    _check_value(value, 0)
    return _dumps(value)


def _c_encoder() -> Callable[[dict[str, Any], int], Any] | None:
    """CPython's C encoder with the canonical settings, made once, as ``json.dumps``
    would make it for every call; None without it.

    It keeps no circular-reference markers, so threads share no state through it: every
    value it gets is acyclic (it passed ``_check_value``'s depth limit, or it was
    parsed from JSON).
    """
    try:
        from _json import make_encoder
    except ImportError:  # pragma: no cover - not CPython
        return None
    return make_encoder(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", True, False, True
    )


_C_ENCODE = _c_encoder()


def _dumps(value: dict[str, Any]) -> bytes:
    """``json.dumps`` with the canonical settings, without an encoder made per call."""
    if _C_ENCODE is not None:
        return "".join(_C_ENCODE(value, 0)).encode()
    return _ENCODER.encode(value).encode()  # pragma: no cover - not CPython


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, val in pairs:
        if key in result:
            raise NotCanonicalError(f"duplicate key {key!r}")
        result[key] = val
    return result


def _reject_constant(name: str) -> Any:
    raise NotCanonicalError(f"{name} is not allowed")


def _reject_float(text: str) -> Any:
    raise NotCanonicalError(f"non-integer number {text!r} is not allowed")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 16 or abs(int(text)) > MAX_INT:
        raise NotCanonicalError(f"integer {text[:20]!r} is outside +-(2**53 - 1)")
    return int(text)


def _check_value(value: Any, depth: int) -> None:
    # A string within the depth limit needs no check: it is skipped without a call
    # (most of a signed header's values are strings, and this runs on every header
    # built or read, several times per exchange).
    if depth > MAX_DEPTH:
        raise NotCanonicalError("nesting too deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotCanonicalError("object keys must be strings")
            if type(item) is not str or depth >= MAX_DEPTH:
                _check_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            if type(item) is not str or depth >= MAX_DEPTH:
                _check_value(item, depth + 1)
    elif isinstance(value, float):
        raise NotCanonicalError("floats are not allowed")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise NotCanonicalError("integer outside +-(2**53 - 1)")
    elif value is not None and not isinstance(value, str | int | bool):
        raise NotCanonicalError(f"unsupported type {type(value).__name__}")


# Parses one JSON value at an offset, refusing only what it cannot turn back into the
# same text (floats, NaN, Infinity): the first try of ``parse_canonical``. The scanner
# takes its settings from a decoder (typeshed asks for a scanner there).
_scan = json.scanner.make_scanner(
    json.JSONDecoder(parse_float=_reject_float, parse_constant=_reject_constant)  # type: ignore[arg-type]
)


def _plain(container: dict[str, Any] | list[Any], depth: int) -> bool:
    """Whether a value parsed from JSON without floats passes ``_check_value``: every
    integer within +-MAX_INT and nothing nested deeper than MAX_DEPTH."""
    if depth >= MAX_DEPTH:
        return not container
    items: Iterable[Any] = container.values() if isinstance(container, dict) else container
    for item in items:
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if -MAX_INT <= item <= MAX_INT:
                continue
            return False
        if (kind is dict or kind is list) and _plain(item, depth + 1):
            continue
        return False
    return True


def parse_canonical(data: bytes) -> dict[str, Any]:
    """Parse bytes that must be the canonical form of a JSON object.

    Canonical bytes (every header an honest node sends) take one plain parse, one
    check of integers and depth and one comparison with their serialisation. Anything
    else goes through :func:`_parse_strict`, which names the rule it breaks, so every
    refusal and its message is that function's. The first try accepts nothing the
    strict parser refuses, and gives the same value: bytes equal to the serialisation
    of what they parse to repeat no key (it names each key once) and spell every
    number as an integer in its one form.
    """
    try:
        text = data.decode("utf-8")
        value, end = _scan(text, 0)
        if end == len(text) and type(value) is dict and _plain(value, 0) and _dumps(value) == data:
            return value
    except (ValueError, RecursionError, StopIteration):
        pass
    return _parse_strict(data)


def _parse_strict(data: bytes) -> dict[str, Any]:
    """``parse_canonical`` rule by rule: raises the first rule ``data`` breaks."""
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
            parse_float=_reject_float,
            parse_int=_bounded_int,
        )
    except NotCanonicalError:
        raise
    except UnicodeDecodeError as exc:
        raise NotCanonicalError(f"not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise NotCanonicalError(f"not JSON: {exc}") from None
    except RecursionError:
        raise NotCanonicalError("nesting too deep") from None
    except ValueError as exc:
        raise NotCanonicalError(f"not acceptable JSON: {exc}") from None
    if not isinstance(value, dict):
        raise NotCanonicalError("not a JSON object")
    _check_value(value, 0)
    try:
        canonical = _dumps(value)
    except UnicodeEncodeError:
        raise NotCanonicalError("string with a lone surrogate") from None
    if canonical != data:
        raise NotCanonicalError("bytes are not in canonical form")
    return value
