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


def _check_value(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise NotCanonicalError("nesting too deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotCanonicalError("object keys must be strings")
            _check_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)
    elif isinstance(value, float):
        raise NotCanonicalError("floats are not allowed")
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
        )
    except UnicodeDecodeError as exc:
        raise NotCanonicalError(f"not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise NotCanonicalError(f"not JSON: {exc}") from None
    except RecursionError:
        raise NotCanonicalError("nesting too deep") from None
    if not isinstance(value, dict):
        raise NotCanonicalError("not a JSON object")
    # json.loads with the hooks above yields only the allowed types, so no type walk.
    if _dumps(value) != data:
        raise NotCanonicalError("bytes are not in canonical form")
    return value
