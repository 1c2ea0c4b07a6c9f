"""Running a server's event loop: uvloop where it is installed, asyncio otherwise.

The node and the trust services are started from different command modules
(``gateway.cli``, ``gateway.trust.cli``); both run their loop the same way, from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["run"]


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to completion on a new event loop (uvloop when available)."""
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)
