"""The node keeps freed large bodies' pages for the next ones (gateway/net/heap.py).

Measured in a child process each, by the page faults of joining 10 MiB bodies four
exchanges at a time: with glibc's default thresholds the heap's top goes back to the
kernel and is faulted in again; with the node's, the pages are reused."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

CHILD = """
import json, resource, sys
from gateway.net.heap import keep_freed_pages
kept = keep_freed_pages() if sys.argv[1] == "kept" else None
pieces = [bytes([n]) * (256 * 1024) for n in range(40)]  # a 10 MiB body in its pieces
live = []
def exchange():
    live.append(b"".join(pieces))
    live.append(b"".join(pieces))
    if len(live) > 8:
        del live[0:2]
for _ in range(20):
    exchange()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    exchange()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
body = b"".join(pieces)
print(json.dumps({"kept": kept, "faults": faults, "body": body == b"".join(pieces)}))
"""


def _faults(mode: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, check=True, timeout=120
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_freed_body_pages_are_reused_instead_of_faulted_in_again() -> None:
    default, kept = _faults("default"), _faults("kept")
    assert kept["kept"] is True
    assert default["body"] is True and kept["body"] is True
    # 80 bodies of 10 MiB: the default gives pages back and faults them in again (some
    # 40,000 faults here); kept, the heap's pages are reused.
    assert isinstance(default["faults"], int) and isinstance(kept["faults"], int)
    assert default["faults"] > 2000
    assert kept["faults"] * 10 < default["faults"]
