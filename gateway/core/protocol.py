"""Opening a signed message: the receiver's checks, in one order, in one place.

A node receives a request (provider side) or a response (consumer side) as an
``X-Gw-Envelope`` (base64url of a signed header), an ``X-Gw-Signature`` (a detached
JWS over those bytes) and a body. :func:`open_request` and :func:`open_response` run
every protocol check on them in the order docs/protocol.md sections 9 and 10 give, and
either return the opened message or raise one :class:`ProtocolError` whose
:class:`Reason` names the check that failed. The node maps a reason to its
provider-side or consumer-side error code once, through one table
(``gateway.node.wire.REFUSALS``).

The rules kept here:

1. Nothing in the header is acted on before it decoded as a valid header, and nothing
   the header claims is trusted before its signature verified.
2. A request is signed by the client's member, a response by the service's member.
3. The body is bound by the digest and length in the signed header.
4. A message created outside ``now ± window`` is refused: it bounds how long a
   message id must be remembered (section 5.4).
5. A response answers exactly the request that was sent: same request hash, id,
   X-Road id, client and service.

The order of a request (``open_request``):

====  ======================================================  ==============
step  check                                                   reason
====  ======================================================  ==============
1     envelope and signature are present; the envelope is     ``MALFORMED``
      strict base64url of a valid request header (5.1)
2     ``admit(header)``: the caller's check of the sender
      (the client is known; the sending node hosts it)
3     the JWS verifies over the envelope's bytes (6)          ``MALFORMED``,
                                                              ``SIGNATURE``,
                                                              ``CERTIFICATE``
4     the signer is the client's member                       ``SIGNER``
5     ``vouch(signature)``: the caller's check of the
      signing certificate's status (OCSP, 8.3)
6     ``created`` is within ``now ± window``                  ``EXPIRED``
7     :meth:`OpenedRequest.check_body`: the body matches      ``BODY``
      the signed digest and length
====  ======================================================  ==============

Step 7 is a second call on purpose: the signed header carries the body's digest so
that the provider can run its access checks before it reads a body at all (protocol.md
section 9, steps 9 to 12).

The order of a response (``open_response``):

====  ======================================================  ==============
step  check                                                   reason
====  ======================================================  ==============
1     the envelope is strict base64url; the JWS verifies      ``MALFORMED``,
      over its bytes (6)                                      ``SIGNATURE``,
                                                              ``CERTIFICATE``
2     the envelope is a valid response header (5.2)           ``MALFORMED``
3     the signer is the service's member                      ``SIGNER``
4     ``vouch(signature)``: the caller's check of the
      signing certificate's status (OCSP, 8.3)
5     the body matches the signed digest and length           ``BODY``
6     the response answers the request that was sent          ``INCONSISTENT``
7     ``created`` is within ``now ± window``                  ``EXPIRED``
====  ======================================================  ==============

``admit`` and ``vouch`` are the node's own checks, which need its directory and OCSP
cache; they run at their place in the order and raise the node's own errors, which
pass through unchanged. Everything here is pure: time comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from gateway.core.envelope import (
    EnvelopeError,
    RequestHeader,
    ResponseHeader,
    check_body,
    check_created,
    decode_segment,
    request_hash,
)
from gateway.core.errors import ReasonedError
from gateway.core.jws import SignatureVerifier, VerifiedSignature

T = TypeVar("T")


class Reason(StrEnum):
    """Which check refused a message. Never rename a value: logs and tables use it."""

    MALFORMED = "malformed"
    """Missing, not strict base64url, not a valid header, or a JWS that does not parse."""
    SIGNATURE = "signature"
    """The JWS does not verify over the header's bytes."""
    CERTIFICATE = "certificate"
    """The signing certificate's chain is not valid now under the trusted roots."""
    SIGNER = "signer"
    """Signed by a member other than the one the message must be signed by."""
    BODY = "body"
    """The body is not the one the signed header names."""
    EXPIRED = "expired"
    """Created outside ``now ± window``."""
    INCONSISTENT = "inconsistent"
    """A response that does not answer the request that was sent."""


class ProtocolError(ReasonedError[Reason]):
    """A message that must be refused: ``reason`` selects the error code per side;
    ``message`` (the detail) is what the refusal tells the caller."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(reason, message)
        self.message = message


def _refused(exc: EnvelopeError) -> ProtocolError:
    """The envelope layer's own reasons are a subset of this module's."""
    return ProtocolError(Reason(exc.reason), exc.message)


def _check_body(digest: str, length: int, body: bytes) -> None:
    try:
        check_body(digest, length, body)
    except EnvelopeError as exc:
        raise ProtocolError(Reason.BODY, exc.message) from None


@dataclass(frozen=True, slots=True)
class OpenedRequest(Generic[T]):
    """A request whose header, signature, signer and age passed (steps 1 to 6).

    ``status`` is what the caller's ``vouch`` returned for the signing certificate.
    """

    header: RequestHeader
    header_bytes: bytes
    signature: VerifiedSignature
    created: datetime
    status: T

    def check_body(self, body: bytes) -> None:
        """Step 7: ``body`` must be the one the signed header names."""
        _check_body(self.header.body_sha256, self.header.body_length, body)


@dataclass(frozen=True, slots=True)
class OpenedResponse(Generic[T]):
    """A response that passed every check: signed by the service's member, with the
    body it names, for the request that was sent, and fresh."""

    header: ResponseHeader
    header_bytes: bytes
    signature: VerifiedSignature
    status: T


def open_request(
    envelope: str | None,
    signature: str | None,
    *,
    verifier: SignatureVerifier,
    now: datetime,
    window: timedelta,
    admit: Callable[[RequestHeader], None],
    vouch: Callable[[VerifiedSignature], T],
) -> OpenedRequest[T]:
    """Open a request as the provider's node receives it (steps 1 to 6 above)."""
    if envelope is None or signature is None:
        raise ProtocolError(Reason.MALFORMED, "envelope or signature header missing")
    try:
        header_bytes = decode_segment(envelope)
        header = RequestHeader.from_bytes(header_bytes)
    except EnvelopeError as exc:
        raise _refused(exc) from None
    admit(header)
    try:
        # ``envelope`` decoded strictly: it is the one base64url of ``header_bytes``.
        verified = verifier.verify_encoded(signature, envelope, now)
    except EnvelopeError as exc:
        raise _refused(exc) from None
    if verified.signer != header.client.member:
        raise ProtocolError(
            Reason.SIGNER, f"signed by {verified.signer}, client is {header.client}"
        )
    status = vouch(verified)
    try:
        created = check_created(header.created, now, window)
    except EnvelopeError as exc:
        raise _refused(exc) from None
    return OpenedRequest(header, header_bytes, verified, created, status)


def open_response(
    envelope: str,
    signature: str,
    body: bytes,
    *,
    request: RequestHeader,
    request_bytes: bytes,
    verifier: SignatureVerifier,
    now: datetime,
    window: timedelta,
    vouch: Callable[[VerifiedSignature], T],
) -> OpenedResponse[T]:
    """Open the response to ``request`` (sent as ``request_bytes``) as the consumer's
    node receives it (steps 1 to 7 above)."""
    try:
        response_bytes = decode_segment(envelope)
        verified = verifier.verify_encoded(signature, envelope, now)
        response = ResponseHeader.from_bytes(response_bytes)
    except EnvelopeError as exc:
        raise _refused(exc) from None
    if verified.signer != request.service.member:
        raise ProtocolError(
            Reason.SIGNER,
            f"response signed by {verified.signer}, expected {request.service.member}",
        )
    status = vouch(verified)
    _check_body(response.body_sha256, response.body_length, body)
    if (
        response.request_hash != request_hash(request_bytes)
        or response.message_id != request.message_id
        or response.xroad_id != request.xroad_id
        or response.client != request.client
        or response.service != request.service
    ):
        raise ProtocolError(Reason.INCONSISTENT, "the signed response is for a different request")
    try:
        check_created(response.created, now, window)
    except EnvelopeError as exc:
        raise _refused(exc) from None
    return OpenedResponse(response, response_bytes, verified, status)
