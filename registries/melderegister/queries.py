"""A lookup's statements, as SQL text on the driver's connection, and its rows decoded.

The statements are written once with SQLAlchemy Core (so they follow the tables of
:mod:`registries.melderegister.storage`) and compiled to SQL text at import; a lookup
runs them on the ``sqlite3`` connection its :class:`registries.common.GroupCommit`
transaction hands it. SQLAlchemy's execution of a compiled statement (its cache key, its
result set-up and per-row processing) cost more CPU than SQLite's running of the search,
and bought nothing a lookup needs. Each column of a row is converted by the very
function SQLAlchemy's SQLite dialect converts it with (dates, JSON lists, booleans), so a
row reads as it did through SQLAlchemy: a :class:`PersonRow` has every column of
:class:`~registries.melderegister.storage.Person` as an attribute of the same name, which
is all the search and the projections read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, Final, NamedTuple, cast

from sqlalchemy import Table, bindparam, exists, insert
from sqlalchemy import select as core_select
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from registries.melderegister.storage import Abruf, GesetzlicheVertretung, Person

__all__ = ["candidates_born_on", "protocol", "vertreter_of"]

_DIALECT: Final = sqlite_dialect(paramstyle="named")
_PERSON: Final = cast(Table, Person.__table__)  # type: ignore[attr-defined]
_VERTRETUNG: Final = cast(Table, GesetzlicheVertretung.__table__)  # type: ignore[attr-defined]
_ABRUF: Final = cast(Table, Abruf.__table__)  # type: ignore[attr-defined]
_BLOCKED_VERTRETER: Final = _PERSON.alias("blocked_vertreter")

_CANDIDATES_BORN_ON: Final = str(
    core_select(_PERSON)
    .where(
        _PERSON.c.geburtsdatum == bindparam("geburtsdatum"),
        _PERSON.c.auskunftssperre.is_(False),
        ~exists().where(
            _VERTRETUNG.c.person_id == _PERSON.c.id,
            _VERTRETUNG.c.vertreter_id == _BLOCKED_VERTRETER.c.id,
            _BLOCKED_VERTRETER.c.auskunftssperre.is_(True),
        ),
    )
    .compile(dialect=_DIALECT)
)
"""Everyone born on the day who may be disclosed: a person with an Auskunftssperre, or
whose gesetzlicher Vertreter has one, is left out here, in the query (§ 38(2))."""

_VERTRETER_OF: Final = str(
    core_select(_PERSON)
    .join(_VERTRETUNG, _VERTRETUNG.c.vertreter_id == _PERSON.c.id)
    .where(_VERTRETUNG.c.person_id == bindparam("person_id"))
    .order_by(_PERSON.c.id)
    .compile(dialect=_DIALECT)
)

_ABRUF_COLUMNS: Final = tuple(c.name for c in _ABRUF.columns if c.name != "id")
_INSERT_ABRUF: Final = str(
    insert(_ABRUF).compile(dialect=_DIALECT, column_keys=list(_ABRUF_COLUMNS))
)
"""The protocol row is all strings, so the INSERT needs no conversion at all."""

_STORE_DATE: Final = cast(
    Callable[[date], str],
    _PERSON.c.geburtsdatum.type.dialect_impl(_DIALECT).bind_processor(_DIALECT),
)

PersonRow = NamedTuple(  # type: ignore[misc]  # the columns, read from the table
    "PersonRow", [(c.name, Any) for c in _PERSON.columns]
)
"""One ``person`` row with its columns decoded, each an attribute of its own name."""

_CONVERT: Final = tuple(
    c.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None) for c in _PERSON.columns
)
"""Per column, SQLAlchemy's SQLite conversion of the stored value (None: as stored)."""


def _persons(cursor: sqlite3.Cursor) -> list[Person]:
    rows = [
        PersonRow._make(
            [v if convert is None else convert(v) for convert, v in zip(_CONVERT, row, strict=True)]
        )
        for row in cursor.fetchall()
    ]
    # The search and the projections read attributes of a Person only; a row has each.
    return cast(list[Person], rows)


def candidates_born_on(conn: sqlite3.Connection, geburtsdatum: date) -> Sequence[Person]:
    """The disclosable persons born on ``geburtsdatum``, to be matched in Python."""
    return _persons(conn.execute(_CANDIDATES_BORN_ON, {"geburtsdatum": _STORE_DATE(geburtsdatum)}))


def vertreter_of(conn: sqlite3.Connection, person_id: int) -> Sequence[Person]:
    """The gesetzliche Vertreter of a person, in the order of their rows."""
    return _persons(conn.execute(_VERTRETER_OF, {"person_id": person_id}))


def protocol(conn: sqlite3.Connection, row: dict[str, str | None]) -> None:
    """Write the protocol row in the transaction that read the person; the group commit
    (:class:`registries.common.GroupCommit`) commits it before the answer goes out."""
    conn.execute(_INSERT_ABRUF, row)
