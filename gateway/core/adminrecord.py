"""One administrative change of a node, as its Merkle log records it (docs/message-log.md 13).

Who changed what, with which key and role, from which value to which, and when: an
``AdminRecord``. Its canonical JSON (:meth:`AdminRecord.to_bytes`) is what the node's
signing key signs and what the log's leaf commits to, so an auditor holding the log's
tree heads can prove that an access right granted once and removed later left two
records, neither of which can be dropped or edited without breaking the tree.

Pure: no I/O, the time is a field the caller sets.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from gateway.core.canonical import NotCanonicalError, canonical_json, parse_canonical
from gateway.core.encoding import format_time
from gateway.core.roles import ApiRole

__all__ = [
    "ADMIN_RECORD_TYPE",
    "AdminRecord",
    "AdminRecordError",
    "admin_message_id",
]

ADMIN_RECORD_TYPE: Final = "gateway-admin-record/v1"
"""The record's ``type``: never mistaken for a signed message header or a tree head,
which the same member key signs."""

_ACTION: Final = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*")
"""``access.grant``, ``service.add``, ``maintenance.enter``: dotted lower-case words."""
_TIME: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
MAX_ACTION: Final = 64
MAX_ACTOR: Final = 200
MAX_TARGET: Final = 1024
_FIELDS: Final = frozenset({"type", "at", "actor", "role", "action", "target", "before", "after"})


class AdminRecordError(ValueError):
    """The bytes or values are not an admin record; the message says which part."""


def _check_json(name: str, value: object) -> None:
    try:
        canonical_json({name: value})
    except NotCanonicalError as exc:
        raise AdminRecordError(f"{name} is not a JSON value the log can sign: {exc}") from None


@dataclass(frozen=True, slots=True)
class AdminRecord:
    """One change: ``actor`` (``gateway.core.roles.key_actor``) holding ``role`` did
    ``action`` on ``target``, turning ``before`` into ``after`` (JSON values, None for
    nothing) at ``at``.

    ``at`` is kept to the millisecond in UTC (the log's precision), so a record read back
    equals the one written. Values the log could not sign the same way twice (floats,
    nesting deeper than the canonical form allows) are refused here, when the change is
    made, not later when an auditor reads it.
    """

    at: datetime
    actor: str
    role: str
    action: str
    target: str
    before: object | None
    after: object | None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise AdminRecordError("at must be timezone-aware")
        at = self.at.astimezone(UTC)
        object.__setattr__(self, "at", at.replace(microsecond=at.microsecond // 1000 * 1000))
        if not isinstance(self.actor, str) or not 0 < len(self.actor) <= MAX_ACTOR:
            raise AdminRecordError(f"actor must be 1 to {MAX_ACTOR} characters")
        if self.role not in set(ApiRole):
            raise AdminRecordError(f"role {self.role!r} is not one of {[str(r) for r in ApiRole]}")
        if (
            not isinstance(self.action, str)
            or len(self.action) > MAX_ACTION
            or not _ACTION.fullmatch(self.action)
        ):
            raise AdminRecordError(
                f"action {self.action!r} is not dotted lower-case words (e.g. access.grant)"
            )
        if not isinstance(self.target, str) or len(self.target) > MAX_TARGET:
            raise AdminRecordError(f"target must be text of at most {MAX_TARGET} characters")
        _check_json("before", self.before)
        _check_json("after", self.after)

    @property
    def created(self) -> str:
        """``at`` as the record carries it: RFC 3339 UTC with milliseconds."""
        return format_time(self.at)

    def to_bytes(self) -> bytes:
        """The canonical JSON that is signed and committed to by the log's leaf."""
        return canonical_json(
            {
                "type": ADMIN_RECORD_TYPE,
                "at": self.created,
                "actor": self.actor,
                "role": str(self.role),
                "action": self.action,
                "target": self.target,
                "before": self.before,
                "after": self.after,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AdminRecord:
        """Read a record, refusing any bytes that are not exactly one record's canonical
        form (so a record can be re-signed or re-hashed and give the same bytes)."""
        try:
            value: dict[str, Any] = parse_canonical(data)
        except NotCanonicalError as exc:
            raise AdminRecordError(f"not an admin record: {exc}") from None
        if set(value) != _FIELDS or value["type"] != ADMIN_RECORD_TYPE:
            raise AdminRecordError(
                f"not a {ADMIN_RECORD_TYPE} record: fields {sorted(value)}, "
                f"type {value.get('type')!r}"
            )
        for name in ("at", "actor", "role", "action", "target"):
            if not isinstance(value[name], str):
                raise AdminRecordError(f"{name} must be a string")
        if not _TIME.fullmatch(value["at"]):
            raise AdminRecordError(f"at {value['at']!r} is not RFC 3339 UTC with milliseconds")
        try:
            at = datetime.fromisoformat(value["at"].replace("Z", "+00:00"))
        except ValueError:
            raise AdminRecordError(f"at {value['at']!r} is not a time") from None
        return cls(
            at=at,
            actor=value["actor"],
            role=value["role"],
            action=value["action"],
            target=value["target"],
            before=value["before"],
            after=value["after"],
        )


def admin_message_id(data: bytes) -> str:
    """The ``message_id`` of the log entry holding the record ``data``.

    Derived from the record's bytes, so the id cannot name another record without the
    verifier noticing; an admin entry is never mistaken for an exchange (whose ids are
    UUIDs).
    """
    return "admin-" + hashlib.sha256(data).hexdigest()[:32]
