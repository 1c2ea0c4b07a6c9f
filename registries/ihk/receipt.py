"""Receiving one notification: the store and its answer, and the short way to them.

Through FastAPI's stack a notification cost about 2 ms of CPU: the sync route's hand-off
to a thread pool and back, the ORM's session and unit of work, the re-read of the new
row after the commit (``refresh``) and the middleware stack, on top of the validation
the IHK needs. Here the notification is stored with two plain statements (the lookup of
its key and the INSERT) in a :class:`registries.common.GroupCommit` transaction, whose
commit is on disk before the answer goes out, and the answer is built from what was
written (the row reads back as written: the same JSON, the same instant to the
microsecond), so it is the one the ORM's re-read gave.

:class:`IhkApp` answers ``POST /benachrichtigungen`` itself when the body is JSON that
FastAPI would accept as it stands: it parses it as FastAPI does (``json.loads``) and
validates it with the call FastAPI makes (``model_validate(..., from_attributes=True)``),
and hands the route's own handler the result. Anything else (another content type, JSON
that does not parse, a notification that does not validate) goes to FastAPI with the body
it would have read, so every refusal keeps FastAPI's exact 422.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

from fastapi import FastAPI, Response
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from starlette.types import Message, Receive, Scope, Send

from registries.common import Clock, Fehler, GroupCommit, json_response
from registries.ihk.models import Benachrichtigung, Eintrag
from registries.ihk.storage import Notification, received_utc

__all__ = ["IhkApp", "Receipt"]

_TABLE: Final = cast(Table, Notification.__table__)  # type: ignore[attr-defined]
_DIALECT: Final = sqlite_dialect()
_TIME: Final = _TABLE.c.empfangen_am.type.dialect_impl(_DIALECT)
_JSON: Final = _TABLE.c.inhalt.type.dialect_impl(_DIALECT)
_STORE_TIME: Final = _TIME.bind_processor(_DIALECT)
_READ_TIME: Final = _TIME.result_processor(_DIALECT, None)
_STORE_JSON: Final = _JSON.bind_processor(_DIALECT)
_READ_JSON: Final = _JSON.result_processor(_DIALECT, None)
"""The columns' own conversions as SQLAlchemy's SQLite dialect applies them, so a row
written here reads back through the ORM (``GET /benachrichtigungen``) as one it wrote."""

_EXISTING: Final = (
    "SELECT id, empfangen_am, inhalt FROM benachrichtigung "
    "WHERE aktenzeichen = ? AND anzeigeart = ?"
)
_INSERT: Final = (
    "INSERT INTO benachrichtigung "
    "(aktenzeichen, anzeigeart, gewerbebetrieb_id, empfangen_am, inhalt) VALUES (?, ?, ?, ?, ?)"
)
_PATH: Final = "/benachrichtigungen"


@dataclass(frozen=True, slots=True)
class _Stored:
    """A notification as its row holds it, and whether this request wrote it."""

    id: int
    empfangen_am: datetime
    inhalt: dict[str, Any]
    new: bool


def _existing(conn: sqlite3.Connection, meldung: Benachrichtigung) -> _Stored | None:
    row = conn.execute(_EXISTING, (meldung.aktenzeichen, meldung.anzeigeart)).fetchone()
    if row is None:
        return None
    assert _READ_TIME is not None and _READ_JSON is not None
    received = cast(datetime, _READ_TIME(row[1]))
    inhalt = cast(dict[str, Any], _READ_JSON(row[2]))
    return _Stored(row[0], received, inhalt, new=False)


def _store(
    conn: sqlite3.Connection,
    meldung: Benachrichtigung,
    inhalt: dict[str, Any],
    received: datetime,
) -> _Stored:
    """The stored notification of this key, written now unless there is one already."""
    found = _existing(conn, meldung)
    if found is not None:
        return found
    assert _STORE_TIME is not None and _STORE_JSON is not None
    cursor = conn.execute(
        _INSERT,
        (
            meldung.aktenzeichen,
            meldung.anzeigeart,
            str(meldung.gewerbebetriebID),
            _STORE_TIME(received),
            _STORE_JSON(inhalt),
        ),
    )
    row_id = cursor.lastrowid
    assert row_id is not None
    return _Stored(row_id, received.replace(tzinfo=None), inhalt, new=True)


class Receipt:
    """The route's handler: store a notification once, answer it (201, a retry's 200, or
    409 for the same key with other content)."""

    def __init__(self, writes: GroupCommit, clock: Clock) -> None:
        self._writes = writes
        self._now = clock

    async def __call__(self, meldung: Benachrichtigung) -> Response:
        """Store ``meldung`` once; a retry returns the stored entry.

        The unique constraint, not the lookup before the INSERT, is what guarantees a
        single row: should another writer of the file store the same key between the two,
        the INSERT fails, and the notification is answered as a retry of the row that won.
        """
        inhalt = meldung.model_dump(mode="json")
        received = self._now().astimezone(UTC)
        try:
            stored = await self._writes.run(lambda conn: _store(conn, meldung, inhalt, received))
        except sqlite3.IntegrityError:
            winner = await self._writes.run(lambda conn: _existing(conn, meldung))
            assert winner is not None
            stored = winner
        if not stored.new and stored.inhalt != inhalt:  # both JSON-shaped
            return json_response(
                Fehler(
                    fehler="abweichender_inhalt",
                    detail="Zu diesem Aktenzeichen und dieser Anzeigeart liegt bereits eine "
                    "Benachrichtigung mit anderem Inhalt vor.",
                ),
                409,
            )
        return json_response(_eintrag(stored, meldung), 201 if stored.new else 200)


def _eintrag(stored: _Stored, meldung: Benachrichtigung) -> Eintrag:
    """The entry as :func:`registries.ihk.storage.eintrag` gives it for the stored row.

    A row stored by this request holds ``meldung`` dumped as JSON, which validates back to
    ``meldung`` itself, so that is taken as it is instead of validated a second time; a
    stored row (a retry's) is validated as the ORM's reading of it was.
    """
    return Eintrag(
        id=stored.id,
        empfangenAm=received_utc(stored.empfangen_am),
        benachrichtigung=meldung if stored.new else Benachrichtigung.model_validate(stored.inhalt),
    )


def plainly_valid(headers: list[tuple[bytes, bytes]], body: bytes) -> Benachrichtigung | None:
    """The notification FastAPI's route would get from this request, or None to let
    FastAPI decide (and refuse) it: the body JSON by its content type, parsed and
    validated as FastAPI does."""
    content_type = next((v for k, v in headers if k.lower() == b"content-type"), None)
    if content_type != b"application/json" or not body:
        return None
    try:
        document = json.loads(body)
        return Benachrichtigung.model_validate(document, from_attributes=True)
    except (ValueError, ValidationError):  # json.JSONDecodeError is a ValueError
        return None


class IhkApp(FastAPI):
    """A FastAPI app that receives a plainly valid notification itself, with the route's
    own handler (:attr:`receipt`), before FastAPI's middleware stack and router."""

    receipt: Callable[[Benachrichtigung], Awaitable[Response]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.receipt is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == _PATH
        ):
            messages = await _read_request(receive)
            body = b"".join(m.get("body", b"") for m in messages)
            whole = messages[-1]["type"] == "http.request"
            meldung = plainly_valid(scope["headers"], body) if whole else None
            if meldung is not None:
                response = await self.receipt(meldung)
                await response(scope, receive, send)
                return
            receive = _replaying(messages, receive)
        await super().__call__(scope, receive, send)


async def _read_request(receive: Receive) -> list[Message]:
    """The request's messages up to its last body part (or a disconnect)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` as it was before ``messages`` were taken from it."""
    queued = list(messages)

    async def replay() -> Message:
        if queued:
            return queued.pop(0)
        return await receive()

    return replay
