"""Refusals of the console itself, each with a stable code, an HTTP status and a meaning.

A refusal of the API behind a page is shown with the API's own code
(``central.forbidden`` and so on); these codes are only for what the console refuses
before it calls anything. docs/protocol.md documents them (a test holds the document to
``CONSOLE_ERROR_TABLE``).
"""

from __future__ import annotations

from enum import StrEnum

from gateway.core.errors import ErrorSpec


class ConsoleCode(StrEnum):
    """Stable codes; people and scripts match on them, so never rename a value."""

    CSRF = "console.csrf"
    NOT_SIGNED_IN = "console.not_signed_in"
    SIGN_IN_REFUSED = "console.sign_in_refused"
    NOT_CONFIGURED = "console.not_configured"
    API_UNREACHABLE = "console.api_unreachable"
    BAD_UPLOAD = "console.bad_upload"
    NOT_FOUND = "console.not_found"
    INTERNAL = "console.internal_error"


CONSOLE_ERROR_TABLE: dict[ConsoleCode, ErrorSpec] = {
    ConsoleCode.CSRF: ErrorSpec(
        403,
        "A form was sent without the session's CSRF token, or with another session's; "
        "nothing was done. Reload the page and send the form again.",
    ),
    ConsoleCode.NOT_SIGNED_IN: ErrorSpec(
        401,
        "The page or form needs a signed-in session (none, or it expired after being idle).",
    ),
    ConsoleCode.SIGN_IN_REFUSED: ErrorSpec(
        401,
        "The API refused the key given at sign-in: unknown, expired, revoked, or of a role "
        "that may not read.",
    ),
    ConsoleCode.NOT_CONFIGURED: ErrorSpec(
        404,
        "The console was started without the URL of that API (`--central-url`).",
    ),
    ConsoleCode.API_UNREACHABLE: ErrorSpec(
        502,
        "The API behind the page did not answer, or answered with something that is not "
        "its JSON; nothing is shown as done.",
    ),
    ConsoleCode.BAD_UPLOAD: ErrorSpec(
        400,
        "The auditor page needs an audit bundle and an anchor file, each within the "
        "upload limit, and an anchor the verifier can read; a certificate upload needs "
        "one PEM file within the limits.",
    ),
    ConsoleCode.NOT_FOUND: ErrorSpec(404, "No such page."),
    ConsoleCode.INTERNAL: ErrorSpec(
        500,
        "The console failed to show an answer of the API (its log has the details); a "
        "change the API confirmed is done, one it did not is not.",
    ),
}


class ConsoleError(Exception):
    """A refusal of the console, shown on an error page with its code."""

    def __init__(self, code: ConsoleCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return CONSOLE_ERROR_TABLE[self.code].status
