"""A company's registry card, read the short way: one row by its key, on the event loop.

Through FastAPI's stack a card cost about 0.6 ms of CPU: the middleware stack, the sync
route's hand-off to a thread pool and back, an ORM session and its mapped instance, for
one read of one row by its primary key. :class:`Cards` reads the row with one statement
on a connection of its own, on the event loop (a read of a key takes microseconds; no
commit, since the register is read only), and answers from it exactly as the route did.
:class:`AriregisterApp` answers ``GET /ettevotted/{registry code}`` itself when the code
is one FastAPI's path pattern accepts (eight digits); anything else, a malformed code
included, goes to FastAPI, so its 422 stays its own.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Final, cast

from fastapi import FastAPI, Response
from sqlalchemy import Engine, Table
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.pool import PoolProxiedConnection
from starlette.types import Receive, Scope, Send

from registries.ariregister.models import Ettevote
from registries.ariregister.storage import Company
from registries.common import Fehler, json_response

__all__ = ["AriregisterApp", "Cards"]

_TABLE: Final = cast(Table, Company.__table__)  # type: ignore[attr-defined]
_DIALECT: Final = sqlite_dialect()
_READ_JSON: Final = _TABLE.c.andmed.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None)
"""SQLAlchemy's own decoding of the column, so the card reads as the ORM read it."""
_CARD: Final = "SELECT andmed FROM ettevote WHERE ariregistri_kood = ?"
_PATH: Final = re.compile(r"/ettevotted/([0-9]{8})")
"""The route's path with a code its pattern (``REGISTRIKOOD``) accepts."""


class Cards:
    """The registry cards of one register file, read on one connection of its own."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: PoolProxiedConnection | None = None

    def card(self, ariregistri_kood: str) -> Response:
        """The company's card (200), or the refusal of a code not registered (404)."""
        if self._conn is None:
            self._conn = self._engine.raw_connection()
        driver = self._conn.driver_connection
        assert isinstance(driver, sqlite3.Connection) and _READ_JSON is not None
        row = driver.execute(_CARD, (ariregistri_kood,)).fetchone()
        if row is None:
            return json_response(
                Fehler(fehler="ei_leitud", detail=f"{ariregistri_kood} is not registered"), 404
            )
        return json_response(Ettevote.model_validate(_READ_JSON(row[0])), 200)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class AriregisterApp(FastAPI):
    """A FastAPI app that answers a plain ``GET`` of a registry card itself (:attr:`cards`),
    before FastAPI's middleware stack and router."""

    cards: Cards | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.cards is not None and scope["type"] == "http" and scope["method"] == "GET":
            code = _PATH.fullmatch(scope["path"])
            if code is not None:
                response = self.cards.card(code.group(1))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
