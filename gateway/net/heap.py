"""Keep the pages of freed large bodies for the next ones (glibc's ``malloc``).

A node holds each body it reads, sends and logs as one ``bytes`` object: a 10 MiB
exchange allocates and frees several 10 MiB blocks. glibc serves a block that large
from the top of its heap once one was freed, and gives the heap's top back to the
kernel whenever more than twice the largest freed block lies free there (its dynamic
``M_TRIM_THRESHOLD``). With four such exchanges in flight that happens over and over,
and each page taken back is faulted in and zeroed again when the next body is joined:
on this project's virtual machines a fresh page costs several times a reused one
(joining a 10 MiB body: 2.0 ms into pages given back, 1.1-1.2 ms into kept ones,
docs/performance.md "Large bodies").

:func:`keep_freed_pages` fixes both thresholds for the process: blocks under
:data:`MMAP_THRESHOLD` come from the heap, and up to :data:`TRIM_THRESHOLD` of free heap
is kept for reuse instead of being returned
(docs/adr/0075-large-bodies-commit-off-the-loop-and-reuse-freed-pages.md).
The cost is resident memory: after a burst of large bodies the process keeps up to that
much freed memory mapped, as it already kept part of it; small exchanges never grow the
heap that far. Elsewhere than glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Final

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_pages"]

log = logging.getLogger(__name__)

MMAP_THRESHOLD: Final = 32 * 1024 * 1024
"""Blocks of this size or more get their own mapping (glibc's own largest dynamic
threshold): a body under a node's default ``max_body_bytes`` of 10 MiB reuses the heap."""
TRIM_THRESHOLD: Final = 128 * 1024 * 1024
"""Free memory at the top of the heap kept for reuse rather than returned: the bodies of
four 10 MiB exchanges in flight, with room."""

_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3


def keep_freed_pages(
    mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD
) -> bool:
    """Fix glibc's thresholds for this process; False where there is no ``mallopt``
    (not glibc) or it refused a value."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        gnu = libc.gnu_get_libc_version  # glibc only: musl has no such function
    except (OSError, AttributeError):
        return False
    del gnu
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )
    if not done:
        log.warning("mallopt refused the heap thresholds; freed bodies' pages go back")
    return done
