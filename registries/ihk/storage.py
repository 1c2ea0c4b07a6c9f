"""The IHK's one table: received notifications, unique on (Aktenzeichen, Anzeigeart).

The unique constraint is what makes receipt idempotent under concurrent retries; the
app's lookup before inserting is only the fast path. The table hangs off its own
SQLAlchemy registry, so another sample registry's tables in the same process cannot clash.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Engine, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from registries.ihk.models import Benachrichtigung, Eintrag

__all__ = ["Notification", "create_tables", "eintrag"]


class _IhkBase(SQLModel, registry=registry()):
    """Abstract base binding the table model to this module's own metadata."""


class Notification(_IhkBase, table=True):
    """One received notification; (aktenzeichen, anzeigeart) is the idempotency key."""

    __tablename__ = "benachrichtigung"
    __table_args__ = (UniqueConstraint("aktenzeichen", "anzeigeart"),)

    id: int | None = SQLField(default=None, primary_key=True)
    aktenzeichen: str = SQLField(max_length=40)
    anzeigeart: str = SQLField(max_length=20)
    gewerbebetrieb_id: str = SQLField(index=True, max_length=36)
    empfangen_am: datetime
    inhalt: dict[str, Any] = SQLField(sa_column=Column(JSON, nullable=False))


def create_tables(engine: Engine) -> None:
    """Create the notification table in ``engine``'s database if it does not exist yet."""
    _IhkBase.metadata.create_all(engine)


def received_utc(received: datetime) -> datetime:
    """A stored receipt time with its zone: SQLite drops it, and only UTC is ever stored."""
    return received.replace(tzinfo=UTC) if received.tzinfo is None else received


def eintrag(row: Notification) -> Eintrag:
    assert row.id is not None
    return Eintrag(
        id=row.id,
        empfangenAm=received_utc(row.empfangen_am),
        benachrichtigung=Benachrichtigung.model_validate(row.inhalt),
    )
