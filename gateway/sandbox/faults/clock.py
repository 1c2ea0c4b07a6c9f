"""A node's wall clock moved while it runs, from outside the process: libfaketime.

The product has no switch to shift its own clock, and should not: a clock fault is the
machine's. The harness starts one node with ``LD_PRELOAD`` of libfaketime (Debian
package ``faketime``) and ``FAKETIME_TIMESTAMP_FILE``: the offset is read from that file
on every call (``FAKETIME_NO_CACHE``), so writing ``+120`` into it jumps the node's
``CLOCK_REALTIME`` two minutes forward at once, and ``+0`` brings it back. The monotonic
clock is left alone (``FAKETIME_DONT_FAKE_MONOTONIC``): timeouts and the event loop keep
running; only what the node believes the date is moves.
"""

from __future__ import annotations

import glob
from pathlib import Path

LIBRARY_GLOB = "/usr/lib/*/faketime/libfaketime.so.1"
"""Where Debian's ``faketime`` puts the library, whatever the architecture."""


def find_libfaketime() -> Path | None:
    """The installed libfaketime, or None: then the harness skips the clock faults."""
    found = sorted(glob.glob(LIBRARY_GLOB))
    return Path(found[0]) if found else None


class FakeClock:
    """The offset file of one node's faked clock, and the environment that reads it."""

    def __init__(self, library: Path, offset_file: Path) -> None:
        self.library = library
        self.offset_file = offset_file
        self.set(0)

    def env(self) -> dict[str, str]:
        """What the node's process gets: the library preloaded, reading ``offset_file``."""
        return {
            "LD_PRELOAD": str(self.library),
            "FAKETIME_TIMESTAMP_FILE": str(self.offset_file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def set(self, seconds: int) -> None:
        """Move the node's clock to ``seconds`` from the true time, at once."""
        self.offset_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.offset_file.with_suffix(".tmp")
        tmp.write_text(f"{seconds:+d}\n", "ascii")
        tmp.replace(self.offset_file)  # never a half-written offset
