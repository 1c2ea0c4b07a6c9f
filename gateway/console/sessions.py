"""Console sessions: held in the console's memory, named by a random id in a cookie.

The session is where the signed-in user's API key lives (ADR 0039): the browser only
ever holds the session id, so no page, URL or cookie carries a key. Each session has its
own CSRF token, sent with every form. Sessions end when idle for ``idle_seconds``, on
sign-out, and when the console restarts (signing in again is the remedy, and nothing is
lost: all state is in the APIs). Times are passed in (``time.monotonic`` in the app).
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

IDLE_SECONDS = 30 * 60
MAX_SESSIONS = 10_000
"""Anyone who loads a page gets a session (the sign-in form needs its CSRF token), so the
store is bounded: past this many, the least recently used session is dropped."""


@dataclass
class ConsoleSession:
    """One browser's session; ``keys`` are set by sign-in only, one per API."""

    id: str
    csrf: str
    seen: float
    language: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    """The signed-in API keys by API (``central``, ``node``); never sent to the browser."""
    who: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per API, who the key is as the API described it at sign-in (never the secret)."""
    notices: list[tuple[str, str]] = field(default_factory=list)
    """Messages for the next page shown (kind, text), then dropped."""

    @property
    def signed_in(self) -> bool:
        return bool(self.keys)

    def may(self, api: str, permission: str) -> bool:
        """Whether the API said the key's role holds ``permission``: only to decide which
        forms a page offers; the API still decides every call."""
        return permission in self.who.get(api, {}).get("permissions", ())

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class SessionStore:
    """The sessions of one console process, least recently used first."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self.idle_seconds = idle_seconds
        self.limit = limit
        self._sessions: OrderedDict[str, ConsoleSession] = OrderedDict()

    def new(self, now: float, language: str | None = None) -> ConsoleSession:
        session = ConsoleSession(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            seen=now,
            language=language,
        )
        self._sessions[session.id] = session
        while len(self._sessions) > self.limit:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None, now: float) -> ConsoleSession | None:
        """The live session of that id, marked as seen; None if unknown or idle too long."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if now - session.seen > self.idle_seconds:
            del self._sessions[session_id]
            return None
        session.seen = now
        self._sessions.move_to_end(session_id)
        return session

    def renew(self, old: ConsoleSession, now: float) -> ConsoleSession:
        """A fresh id and CSRF token for a session that changes privilege (sign-in), so an
        id someone planted or saw before cannot ride on it; keys already signed in stay."""
        self.drop(old.id)
        session = self.new(now, old.language)
        session.keys, session.who = dict(old.keys), dict(old.who)
        return session

    def drop(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)
