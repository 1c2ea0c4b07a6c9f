"""Refusals of the central authority, each with a stable code and an HTTP status.

Kept apart from the node's error table (``gateway.core.errors``): these codes reach
central operators and joining cities, never an X-Road message exchange.
"""

from __future__ import annotations

from enum import StrEnum


class CentralCode(StrEnum):
    """Stable codes; clients match on them, so never rename a value."""

    UNAUTHORIZED = "central.unauthorized"
    NOT_FOUND = "central.not_found"
    CONFLICT = "central.conflict"
    INVALID = "central.invalid"
    REG_MALFORMED = "registration.malformed"
    REG_SIGNATURE = "registration.bad_signature"
    REG_CERTIFICATE = "registration.untrusted_certificate"
    REG_MISMATCH = "registration.owner_mismatch"
    REG_STATE = "registration.not_pending"


STATUS: dict[CentralCode, int] = {
    CentralCode.UNAUTHORIZED: 401,
    CentralCode.NOT_FOUND: 404,
    CentralCode.CONFLICT: 409,
    CentralCode.INVALID: 400,
    CentralCode.REG_MALFORMED: 400,
    CentralCode.REG_SIGNATURE: 400,
    CentralCode.REG_CERTIFICATE: 400,
    CentralCode.REG_MISMATCH: 400,
    CentralCode.REG_STATE: 409,
}


class CentralError(ValueError):
    """A refusal with a stable code; rendered as ``{"type", "message"}``."""

    def __init__(self, code: CentralCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def to_json(self) -> dict[str, str]:
        return {"type": self.code.value, "message": self.message}
