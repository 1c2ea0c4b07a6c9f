"""Undoing one committed registry change when its publication fails.

The central authority commits a change to its database *before* it publishes the
configuration that reflects it: nodes must never act on a version the database could
still lose (a failed commit after a successful publication would be exactly that). The
price is the opposite window: a publication can fail after the commit (a key file gone,
a full disk). Then the change is taken back, so the database never claims a registry
state that no published configuration shows; the admin call fails with
``central.publish_failed`` and can simply be repeated.

:class:`UndoLog` records, while the change's session flushes, what each row looked like
before (SQLAlchemy's attribute history), and :meth:`UndoLog.revert` restores exactly
those rows in a new transaction. Rows the change did not touch, such as registration
requests submitted meanwhile, are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import UOWTransaction
from sqlmodel import Session


@dataclass(frozen=True, slots=True)
class _Step:
    """How to take back one row's change: delete it, insert it again, or restore columns."""

    kind: str  # "delete" | "insert" | "update"
    model: type[Any]
    key: tuple[Any, ...]
    values: dict[str, Any]


def _columns(obj: Any) -> dict[str, Any]:
    state = inspect(obj)
    return {attr.key: attr.loaded_value for attr in state.attrs}


def _key(obj: Any) -> tuple[Any, ...]:
    mapper = inspect(type(obj))
    return tuple(getattr(obj, column.key) for column in mapper.primary_key)


class UndoLog:
    """Collects the inverse of every flush of one session (attach before the change)."""

    def __init__(self, session: Session) -> None:
        self._steps: list[_Step] = []
        event.listen(session, "before_flush", self._before_flush)
        event.listen(session, "after_flush", self._after_flush)
        self._pending_new: list[Any] = []

    def _before_flush(self, session: OrmSession, context: UOWTransaction, instances: Any) -> None:
        for obj in session.dirty:
            if not session.is_modified(obj):
                continue
            state = inspect(obj)
            old: dict[str, Any] = {}
            for attr in state.attrs:
                history = attr.history
                if history.has_changes():
                    old[attr.key] = history.deleted[0] if history.deleted else None
            if old:
                self._steps.append(_Step("update", type(obj), _key(obj), old))
        for obj in session.deleted:
            self._steps.append(_Step("insert", type(obj), _key(obj), _columns(obj)))
        # Keys of new rows may be assigned by the database: read them after the flush.
        self._pending_new = list(session.new)

    def _after_flush(self, session: OrmSession, context: UOWTransaction) -> None:
        for obj in self._pending_new:
            self._steps.append(_Step("delete", type(obj), _key(obj), {}))
        self._pending_new = []

    @property
    def empty(self) -> bool:
        return not self._steps

    def revert(self, session: Session) -> None:
        """Apply the inverse steps, newest first, in ``session`` (the caller commits)."""
        for step in reversed(self._steps):
            key = step.key[0] if len(step.key) == 1 else step.key
            row = session.get(step.model, key)
            if step.kind == "delete":
                if row is not None:
                    session.delete(row)
            elif step.kind == "insert":
                if row is None:
                    session.add(step.model(**step.values))
            else:
                if row is not None:
                    for name, value in step.values.items():
                        setattr(row, name, value)
                    session.add(row)
            session.flush()
