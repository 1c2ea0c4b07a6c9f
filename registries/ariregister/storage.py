"""The register's one table: companies by registry code, seeded from ``data/``.

Each row holds the company as the register publishes it (a JSON document checked
against :class:`~registries.ariregister.models.Ettevote` when seeded and when read), so
the answer is exactly what was entered. The table hangs off its own SQLAlchemy registry,
so another sample registry's tables in the same process cannot clash.
"""

from typing import Any

from sqlalchemy import JSON, Column, Engine
from sqlalchemy.orm import registry
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel, select

from registries.ariregister.models import Ettevote
from registries.common import load_seed

__all__ = ["Company", "create_tables", "ettevote", "seed"]


class _AriregisterBase(SQLModel, registry=registry()):
    """Abstract base binding the table model to this module's own metadata."""


class Company(_AriregisterBase, table=True):
    __tablename__ = "ettevote"

    ariregistri_kood: str = SQLField(primary_key=True, max_length=8)
    nimi: str = SQLField(max_length=200)
    otsinimi: str = SQLField(index=True, max_length=200)
    """The name case-folded in Python: SQLite folds ASCII only, and names are Estonian."""
    andmed: dict[str, Any] = SQLField(sa_column=Column(JSON, nullable=False))


def create_tables(engine: Engine) -> None:
    _AriregisterBase.metadata.create_all(engine)


def ettevote(row: Company) -> Ettevote:
    return Ettevote.model_validate(row.andmed)


def seed(engine: Engine) -> None:
    """Fill an empty register from ``data/ettevotted.json``; a broken file stops the start."""
    with Session(engine) as session:
        if session.exec(select(Company)).first() is not None:
            return
        for raw in load_seed("registries.ariregister", "ettevotted.json"):
            company = Ettevote.model_validate(raw)
            session.add(
                Company(
                    ariregistri_kood=company.ariregistri_kood,
                    nimi=company.nimi,
                    otsinimi=company.nimi.casefold(),
                    andmed=company.model_dump(mode="json"),
                )
            )
        session.commit()
