"""How bytes and instants are spelled in signed documents: base64url and RFC 3339 UTC.

A base module: ``gateway.pki`` may use it as well as ``gateway.core``'s protocol
modules, so it imports nothing of either (docs/adr/0016). Both spellings are strict and
single: one text per byte string and one text per instant at a given precision, because
the texts are signed, hashed or compared, and a second spelling of the same value would
be a second message.
"""

from __future__ import annotations

import binascii
from datetime import UTC, datetime
from typing import Final, Literal

__all__ = ["EncodingError", "TimeSpec", "b64url", "b64url_decode", "format_time"]

_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
# base64url to standard base64 for binascii's strict decoder; every byte outside the
# base64url alphabet (``+``, ``/`` and ``=`` included) becomes ``!``, which it refuses.
_FROM_URLSAFE: Final = bytes(
    ord("+") if i == ord("-") else ord("/") if i == ord("_") else i if i in _ALPHABET else ord("!")
    for i in range(256)
)
_PADDING: Final = (b"", b"", b"==", b"=")
# The low bits of a last character that encode no data, by ``len(text) % 4``: they
# must be zero, or several texts would decode to one byte string.
_UNUSED_BITS: Final = (0, 0, 0x0F, 0x03)
_VALUE: Final = {chr(c): i for i, c in enumerate(_ALPHABET)}

TimeSpec = Literal["auto", "seconds", "milliseconds", "microseconds"]
"""The fraction of a second :func:`format_time` writes (``datetime.isoformat``'s names):
``auto`` writes microseconds only when there are any."""


class EncodingError(ValueError):
    """Text that is not the one spelling of a value; the message says which rule failed."""


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding: exactly one spelling per byte string.

    Lenient decoders ignore the unused low bits of the last character, which would let
    several spellings of one signature verify. Raises :class:`EncodingError`.

    One pass of binascii's strict decoder over the text (every character outside the
    alphabet refused) and a look at the last character's unused bits: the same
    acceptance as matching the alphabet and comparing the text with the re-encoding
    of what it decodes to, run on every envelope, signature and digest an exchange
    reads.
    """
    rest = len(text) % 4
    if rest == 1:
        raise EncodingError("not base64url")
    try:
        data = binascii.a2b_base64(
            text.encode("ascii").translate(_FROM_URLSAFE) + _PADDING[rest],
            strict_mode=True,
        )
    except (binascii.Error, UnicodeEncodeError):
        raise EncodingError("not base64url") from None
    if rest and _VALUE[text[-1]] & _UNUSED_BITS[rest]:
        raise EncodingError("not canonical base64url")
    return data


def format_time(moment: datetime, timespec: TimeSpec = "milliseconds") -> str:
    """RFC 3339 in UTC with ``Z``: the one time formatter of the gateway.

    Milliseconds by default, the envelope's ``created`` and the log's ``logged_at``;
    tree heads use microseconds, the central authority's records seconds. A naive
    ``moment`` is refused with ``ValueError``: which instant it means depends on the
    machine's time zone, and a signed time must not.
    """
    if moment.tzinfo is UTC:  # the clock's own times: already UTC, no conversion
        return f"{moment.isoformat(timespec=timespec)[:-6]}Z"
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a time to be written must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
