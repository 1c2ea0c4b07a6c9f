"""Where a request's head and body end, over the bytes of one connection.

The connection guard (``guard.py``) times only what a client owes it: a head, then a
body. To know which, it follows each request's framing (``Content-Length`` or chunked)
without parsing it; the server behind still parses and validates every request. Kept
apart from the guard's timers and caps, which is where the connection's policy lives.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["CHUNK_LINE_LIMIT", "HEAD_LIMIT", "Framing", "Phase"]

HEAD_LIMIT = 512 * 1024
"""A head longer than this is refused by every server behind the guard; stop buffering.
It is the lean server's ``MAX_HEAD``: were it lower, a head between the two would turn the
framing opaque, and that head and every later one on the connection would escape the
head timeout (timed only as a body, a byte per ``body_timeout`` enough)."""
CHUNK_LINE_LIMIT = 4096


_EMPTY_LINE: Final = re.compile(rb"\n\r?\n")
"""The end of a head's last line and the empty line after it. It starts with a fixed
character, which the regex engine scans for in C; the pattern the guard had first,
``\r?\n\r?\n``, began with an optional one and was tried at every offset."""


def _head_end(buf: bytes | bytearray, start: int) -> tuple[int, int] | None:
    """Where the first empty line (``\r?\n\r?\n``) after ``start`` begins and ends.

    One search for ``\n\r?\n``: two substring searches for ``\n\r\n`` and ``\n\n``
    ran CPython's general search over a node's OCSP headers (a few KiB) byte by byte,
    and cost 11 µs of an 8 KiB peer request head.
    """
    found = _EMPTY_LINE.search(buf, start)
    if found is None:
        return None
    newline, end = found.span()
    begin = newline - 1 if newline > start and buf[newline - 1] == 0x0D else newline
    return begin, end


class Phase:
    """Where in a request the client is; plain constants keep the hot path cheap."""

    HEAD = 0
    LENGTH = 1
    CHUNK_SIZE = 2
    CHUNK_DATA = 3
    CHUNK_END = 4
    TRAILER = 5
    OPAQUE = 6
    """A framing the guard does not follow (invalid length, unknown coding, oversized
    head): only the body stall timeout applies, and the server will refuse it anyway."""


class Framing:
    """Follows HTTP/1.1 request framing over the bytes of one connection.

    Only the boundaries matter: the server behind parses (and validates) the request
    itself, so anything unusual here falls back to ``Phase.OPAQUE`` rather than failing.
    """

    def __init__(self) -> None:
        self.phase = Phase.HEAD
        self.head = bytearray()
        self.remaining = 0
        self.line = bytearray()
        self.completed = 0
        """Requests whose head and body were received in full."""

    @property
    def head_started(self) -> bool:
        return self.phase == Phase.HEAD and bool(self.head)

    @property
    def in_body(self) -> bool:
        return self.phase != Phase.HEAD

    def feed(self, data: bytes) -> None:
        # Offsets into ``data``, not slices: a large piece of body is never copied.
        pos, end = 0, len(data)
        while pos < end:
            pos = self._step(data, pos)

    def _step(self, data: bytes, pos: int) -> int:
        phase = self.phase
        if phase == Phase.OPAQUE:
            return len(data)
        if phase == Phase.HEAD:
            return self._head(data, pos)
        if phase == Phase.LENGTH or phase == Phase.CHUNK_DATA:
            taken = min(self.remaining, len(data) - pos)
            self.remaining -= taken
            if self.remaining == 0:
                if phase == Phase.LENGTH:
                    self._done()
                else:
                    self.phase = Phase.CHUNK_END
            return pos + taken
        # CHUNK_SIZE, CHUNK_END, TRAILER: line by line.
        newline = data.find(b"\n", pos)
        if newline < 0:
            self.line += data[pos:]
            if len(self.line) > CHUNK_LINE_LIMIT:
                self.phase = Phase.OPAQUE
            return len(data)
        line = (bytes(self.line) + data[pos:newline]).rstrip(b"\r")
        self.line.clear()
        if phase == Phase.CHUNK_END:
            self.phase = Phase.CHUNK_SIZE
        elif phase == Phase.CHUNK_SIZE:
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.phase = Phase.OPAQUE
                return newline + 1
            if size == 0:
                self.phase = Phase.TRAILER
            else:
                self.remaining = size
                self.phase = Phase.CHUNK_DATA
        elif not line:  # the empty line that ends the trailer section
            self._done()
        return newline + 1

    def _head(self, data: bytes, pos: int) -> int:
        if not self.head:
            # RFC 9112 §2.2: a server should ignore empty lines before a request line.
            while pos < len(data) and data[pos] in b"\r\n":
                pos += 1
            if pos == len(data):
                return pos
            found = _head_end(data, pos)
            if found is not None:  # the usual case: a whole head in one piece
                self._framing(data[pos : found[0]])
                return found[1]
            self.head += data[pos:]
        else:
            seen = len(self.head)
            self.head += data[pos:]
            found = _head_end(self.head, max(0, seen - 3))
            if found is not None:
                self._framing(bytes(self.head[: found[0]]))
                self.head.clear()
                return pos + found[1] - seen
        if len(self.head) > HEAD_LIMIT:
            self.head.clear()
            self.phase = Phase.OPAQUE
        return len(data)

    def _framing(self, head: bytes) -> None:
        # Split at LF alone: a line's CR is whitespace every use below strips (names,
        # the length, the codings), and turning a 7 KiB head's CRLFs into LFs first
        # cost more than the rest of this method.
        lines = head.split(b"\n")
        length: int | None = None
        chunked = False
        other_coding = False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            key = name.strip().lower()
            if key == b"content-length":
                text = value.strip()
                if not text.isdigit() or (length is not None and length != int(text)):
                    self.phase = Phase.OPAQUE
                    return
                length = int(text)
            elif key == b"transfer-encoding":
                codings = [c.strip().lower() for c in value.split(b",") if c.strip()]
                chunked = bool(codings) and codings[-1] == b"chunked"
                other_coding = not chunked
        if other_coding or lines[0].upper().startswith(b"CONNECT "):
            self.phase = Phase.OPAQUE
        elif chunked:
            self.phase = Phase.CHUNK_SIZE
        elif length:
            self.remaining = length
            self.phase = Phase.LENGTH
        else:
            self._done()

    def _done(self) -> None:
        self.completed += 1
        self.phase = Phase.HEAD
