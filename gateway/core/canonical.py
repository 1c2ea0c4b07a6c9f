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
from typing import Any

MAX_DEPTH = 8
MAX_INT = 2**53 - 1  # the integers every JSON implementation reads exactly


class NotCanonicalError(ValueError):
    """The bytes are not the canonical form of a JSON object."""


def canonical_json(value: dict[str, Any]) -> bytes:
    """Serialise to canonical bytes."""
    _check_value(value, 0)
    return _dumps(value)


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


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


def parse_canonical(data: bytes) -> dict[str, Any]:
    """Parse bytes that must be the canonical form of a JSON object."""
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
