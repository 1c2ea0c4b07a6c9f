"""The portal's tables: signed-in sessions and cases (Vorgänge).

The tables hang off the portal's own SQLAlchemy registry, because the demo and the tests
run the portal in one process with the registries, whose tables must not clash with these.
"""

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Engine
from sqlalchemy.orm import registry
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

__all__ = ["Sitzung", "Vorgang", "create_tables", "utc"]


class _PortalBase(SQLModel, registry=registry()):
    """Binds the portal's tables to its own metadata (several apps share a process)."""


class Sitzung(_PortalBase, table=True):
    """A signed-in citizen; the cookie holds the token, the table only its hash."""

    id: int | None = SQLField(default=None, primary_key=True)
    token_sha256: str = SQLField(unique=True, max_length=64)
    csrf: str = SQLField(max_length=64)
    familienname: str = SQLField(max_length=100)
    vornamen: str = SQLField(max_length=100)
    geburtsdatum: date
    idnr: str = SQLField(max_length=11)
    """The citizen's steuerliche Identifikationsnummer from the sign-in: what the data
    trackers are asked about (docs/portal.md, "Meine Daten")."""
    angemeldet_am: datetime


class Vorgang(_PortalBase, table=True):
    """One application (case) and everything recorded about it."""

    id: int | None = SQLField(default=None, primary_key=True)
    nummer: str = SQLField(unique=True, max_length=40)
    sitzung_id: int = SQLField(index=True)
    familienname: str = SQLField(max_length=100)
    vornamen: str = SQLField(max_length=100)
    geburtsdatum: date
    stand: str = SQLField(max_length=20)  # abruf_fehlgeschlagen, zur_pruefung, eingereicht
    angelegt_am: datetime
    antrag: dict[str, Any] = SQLField(sa_column=Column(JSON, nullable=False))
    meldedaten: dict[str, Any] | None = SQLField(default=None, sa_column=Column(JSON))
    abgerufen_am: datetime | None = None
    abruf_fehler: str | None = SQLField(default=None, max_length=500)
    bestaetigt_am: datetime | None = None
    bestaetigung: dict[str, Any] | None = SQLField(default=None, sa_column=Column(JSON))
    quittung: dict[str, Any] | None = SQLField(default=None, sa_column=Column(JSON))


def create_tables(engine: Engine) -> None:
    """Create the portal's tables in ``engine``'s database if they do not exist yet."""
    _PortalBase.metadata.create_all(engine)


def utc(value: datetime | None) -> datetime | None:
    """SQLite drops the zone; everything stored is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
