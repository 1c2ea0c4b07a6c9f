"""What a node puts on and reads off the wire, shared by its consumer and provider side.

The ``X-Gw-*`` header names of the node-to-node protocol (docs/protocol.md section 3),
X-Road's error format, the one table that turns a protocol check's
:class:`~gateway.core.protocol.Reason` into the consumer-side or provider-side error
code, and the wrapper that answers every refusal in that format.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from xml.sax.saxutils import escape

from gateway.core.errors import Code, GatewayError
from gateway.core.protocol import ProtocolError, Reason
from gateway.net.http1messages import EXPECT_ECHO
from gateway.net.http1server import ClientGone, HttpResponse, Request

log = logging.getLogger("gateway.node")

ENVELOPE_HEADER = "X-Gw-Envelope"
"""The signed header (base64url of its canonical JSON)."""
SIGNATURE_HEADER = "X-Gw-Signature"
"""The detached JWS over the signed header."""
SIGN_OCSP_HEADER = "X-Gw-Sign-Ocsp"
"""OCSP response (base64url DER) for the certificate that signed this message."""
AUTH_OCSP_HEADER = "X-Gw-Auth-Ocsp"
"""OCSP response (base64url DER) for the sending node's TLS authentication certificate."""

_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))

Handler = Callable[[Request], Awaitable[HttpResponse]]

REFUSALS: dict[Reason, tuple[Code, Code]] = {
    Reason.MALFORMED: (Code.SP_INVALID_MESSAGE, Code.CP_INVALID_MESSAGE),
    Reason.SIGNATURE: (Code.SP_INVALID_SIGNATURE, Code.CP_INVALID_SIGNATURE),
    Reason.CERTIFICATE: (Code.SP_INVALID_CERTIFICATE, Code.CP_INVALID_CERTIFICATE),
    Reason.SIGNER: (Code.SP_SIGNER_MISMATCH, Code.CP_INVALID_SIGNATURE),
    Reason.BODY: (Code.SP_INVALID_SIGNATURE, Code.CP_INVALID_SIGNATURE),
    Reason.EXPIRED: (Code.SP_MESSAGE_EXPIRED, Code.CP_INCONSISTENT_RESPONSE),
    Reason.INCONSISTENT: (Code.SP_INVALID_MESSAGE, Code.CP_INCONSISTENT_RESPONSE),
}
"""Reason -> (provider-side code, consumer-side code): protocol.md sections 9 and 10.

A provider never opens a response, so its ``INCONSISTENT`` entry is only there to make
the table total."""


def refusal(exc: ProtocolError, *, provider: bool) -> GatewayError:
    """The error a node answers for a message the protocol refused."""
    provider_code, consumer_code = REFUSALS[exc.reason]
    return GatewayError(provider_code if provider else consumer_code, exc.message)


def error_response(err: GatewayError, accept: str | None = None) -> HttpResponse:
    """X-Road's error format: ``X-Road-Error`` plus JSON (or XML if asked for)."""
    headers = [*err.headers.items(), ("X-Road-Error", err.code.value)]
    wants_xml = accept is not None and "xml" in accept and "json" not in accept
    if wants_xml:
        body = (
            f"<error><type>{escape(err.code.value)}</type><message>{escape(err.message)}"
            f"</message><detail>{escape(err.detail)}</detail></error>"
        )
        return HttpResponse(err.status, body.encode(), headers, "application/xml; charset=utf-8")
    return HttpResponse(err.status, json.dumps(err.body()).encode(), headers, "application/json")


def version_refusal(version: str) -> HttpResponse:
    """505 in X-Road's error format for a request line that is not HTTP/1.x (``version``
    as the request line spells it after ``HTTP/``); the server answers it as HTTP/1.1
    and closes the connection."""
    return error_response(
        GatewayError(
            Code.HTTP_VERSION_NOT_SUPPORTED,
            f"HTTP/{version} is not supported; use HTTP/1.1",
        )
    )


def expectation_refusal(expect: str) -> HttpResponse:
    """417 in X-Road's error format for an ``Expect`` other than ``100-continue``
    (RFC 9110 §10.1.1); no route runs, nothing is read, signed or logged."""
    return error_response(
        GatewayError(
            Code.EXPECTATION_FAILED,
            f"Expect: {expect[:EXPECT_ECHO]!r} cannot be met; only 100-continue is",
        )
    )


def guarded(handler: Handler, *, provider: bool, who: str) -> Handler:
    """Turn every refusal into X-Road's error format; never leak a traceback.

    A wrapper per route: the server has no middleware chain. ``who`` names the node in
    its log. A request whose client went away within its body (``ClientGone``) gets no
    answer: nobody is left to read one.
    """
    internal = Code.SP_INTERNAL_ERROR if provider else Code.CP_INTERNAL_ERROR

    async def wrapped(request: Request) -> HttpResponse:
        try:
            return await handler(request)
        except GatewayError as refused:
            log.warning("%s refused (%s): %s", who, refused.detail, refused)
            return error_response(refused, request.headers.get("Accept"))
        except ClientGone:
            raise
        except Exception:
            failure = GatewayError(internal, "unexpected error; see the node's log")
            log.exception("%s internal error (%s)", who, failure.detail)
            return error_response(failure, request.headers.get("Accept"))

    return wrapped


def optional_text(request: Request, name: str, limit: int) -> str | None:
    """Last value of an optional X-Road header, refused if it could smuggle anything."""
    values = request.headers.getall(name, [])
    if not values:
        return None
    value = values[-1]
    if len(value) > limit or not set(value) <= _PRINTABLE:
        raise GatewayError(
            Code.BAD_REQUEST, f"{name} must be printable ASCII of at most {limit} characters"
        )
    return value


async def read_body(request: Request, limit: int, code: Code) -> bytes:
    """The request body as sent, or refuse with ``code`` if it is over ``limit`` bytes.

    A client that closes the connection within the body, or stalls until the connection
    guard closes it, raises ``ClientGone``: nobody is left to answer, and it is not the
    node's fault (no internal error)."""
    if request.content_length is not None and request.content_length > limit:
        raise GatewayError(code, f"body of {request.content_length} bytes exceeds the limit")
    body = await request.read(limit)
    if body is None:
        raise GatewayError(code, f"body exceeds the limit of {limit} bytes")
    return body
