"""What the registries' short-way tests share: each runs a registry with its short way
past FastAPI and one with it off, and compares the answers.

``count_routed`` tells which requests entered FastAPI's stack (the short way answers
before it); ``answer`` is what two answers must agree on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

__all__ = ["answer", "count_routed"]


def count_routed(app: FastAPI, routed: list[str]) -> None:
    """Append the path of every request that reaches FastAPI's middleware to ``routed``."""

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Any:
        routed.append(request.url.path)
        return await call_next(request)


def answer(resp: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of an answer; without ``Date``, which differs by the
    second between two otherwise identical answers."""
    return resp.status_code, {k: v for k, v in resp.headers.items() if k != "date"}, resp.content
