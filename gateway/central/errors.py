"""Refusals of the central authority, each with a stable code, an HTTP status and a meaning.

Kept apart from the node's error table (``gateway.core.errors``): these codes reach
central operators and joining cities, never an X-Road message exchange. ``gateway
errors`` prints both tables, and docs/protocol.md documents both (a test holds the
document to ``CENTRAL_ERROR_TABLE``).
"""

from __future__ import annotations

from enum import StrEnum

from gateway.core.errors import ErrorSpec


class CentralCode(StrEnum):
    """Stable codes; clients match on them, so never rename a value."""

    UNAUTHORIZED = "central.unauthorized"
    FORBIDDEN = "central.forbidden"
    NOT_FOUND = "central.not_found"
    CONFLICT = "central.conflict"
    INVALID = "central.invalid"
    PUBLISH_FAILED = "central.publish_failed"
    TOO_LARGE = "central.request_too_large"
    UNAVAILABLE = "central.database_unavailable"
    REG_MALFORMED = "registration.malformed"
    REG_SIGNATURE = "registration.bad_signature"
    REG_CERTIFICATE = "registration.untrusted_certificate"
    REG_MISMATCH = "registration.owner_mismatch"
    REG_STATE = "registration.not_pending"


CENTRAL_ERROR_TABLE: dict[CentralCode, ErrorSpec] = {
    CentralCode.UNAUTHORIZED: ErrorSpec(
        401,
        "The admin API needs `Authorization: Bearer <API key>` with a key the central "
        "issued that is neither expired nor revoked.",
    ),
    CentralCode.FORBIDDEN: ErrorSpec(
        403,
        "The API key is valid but its role may not make this call (see the permission "
        "table in docs/global-configuration.md).",
    ),
    CentralCode.NOT_FOUND: ErrorSpec(
        404, "No such member, subsystem, node, group, CA, TSA, setting or request."
    ),
    CentralCode.CONFLICT: ErrorSpec(
        409, "The object already exists, or is still in use by another one."
    ),
    CentralCode.INVALID: ErrorSpec(
        400,
        "The input is malformed, or the change would make the configuration invalid "
        "(nothing is stored or published).",
    ),
    CentralCode.PUBLISH_FAILED: ErrorSpec(
        500,
        "The change was stored but its configuration could not be published, so it was "
        "undone; nothing changed and the call may be repeated.",
    ),
    CentralCode.TOO_LARGE: ErrorSpec(
        413,
        "The request body is larger than the central accepts (`--max-body-bytes`, default "
        "256 KiB); it is refused before it is read in full, on every endpoint.",
    ),
    CentralCode.UNAVAILABLE: ErrorSpec(
        503,
        "The registry's database cannot be reached, or is not at the schema revision this "
        "central needs (`gateway central db upgrade`); nothing was changed, retry later.",
    ),
    CentralCode.REG_MALFORMED: ErrorSpec(
        400,
        "A registration request is not a well-formed signed document for this instance, "
        "or its creation time is too old or in the future.",
    ),
    CentralCode.REG_SIGNATURE: ErrorSpec(
        400,
        "A registration signature does not verify, or was not made with the key of the "
        "certificate being registered (no proof of possession).",
    ),
    CentralCode.REG_CERTIFICATE: ErrorSpec(
        400, "A certificate in a registration request does not chain to an approved CA."
    ),
    CentralCode.REG_MISMATCH: ErrorSpec(
        400,
        "A certificate in a registration request names another node or member than the request.",
    ),
    CentralCode.REG_STATE: ErrorSpec(
        409, "The registration request was already approved or rejected."
    ),
}

STATUS: dict[CentralCode, int] = {code: spec.status for code, spec in CENTRAL_ERROR_TABLE.items()}


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
