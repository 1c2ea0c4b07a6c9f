"""How bytes and instants are spelled in signed documents: base64url and RFC 3339 UTC.

A base module: ``gateway.pki`` may use it as well as ``gateway.core``'s protocol
modules, so it imports nothing of either (docs/adr/0016). Both spellings are strict and
single: one text per byte string and one text per instant at a given precision, because
the texts are signed, hashed or compared, and a second spelling of the same value would
be a second message.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Final, Literal

__all__ = ["EncodingError", "TimeSpec", "b64url", "b64url_decode", "format_time"]

_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")

TimeSpec = Literal["auto", "seconds", "milliseconds", "microseconds"]
"""The fraction of a second :func:`format_time` writes (``datetime.isoformat``'s names):
``auto`` writes microseconds only when there are any."""


class EncodingError(ValueError):
    """Text that is not the one spelling of a value; the message says which rule failed."""


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding: exactly one spelling per byte string.

    Lenient decoders ignore the unused low bits of the last character, which would let
    several spellings of one signature verify. Raises :class:`EncodingError`.
    """
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise EncodingError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(data) != text:
        raise EncodingError("not canonical base64url")
    return data


def format_time(moment: datetime, timespec: TimeSpec = "milliseconds") -> str:
    """RFC 3339 in UTC with ``Z``: the one time formatter of the gateway.

    Milliseconds by default, the envelope's ``created`` and the log's ``logged_at``;
    tree heads use microseconds, the central authority's records seconds. A naive
    ``moment`` is refused with ``ValueError``: which instant it means depends on the
    machine's time zone, and a signed time must not.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a time to be written must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
