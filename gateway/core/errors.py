"""The one error table: every refusal the gateway can give, with a stable code and status.

Codes follow X-Road's dotted snake-case style (7.8+): ``client.*`` for what the caller got
wrong, ``server.clientproxy.*`` for failures on the consumer's node and
``server.serverproxy.*`` for refusals by the provider's node. X-Road answers ``client.*``
with 400 and ``server.*`` with 500; a few codes use a more specific status where HTTP
has one (413 for oversize bodies, 417 for an ``Expect`` other than ``100-continue``, 505
for a request line that is not HTTP/1.x), which
X-Road clients still see as an error because the ``X-Road-Error`` header is set.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

R = TypeVar("R", bound=StrEnum)


class Code(StrEnum):
    """Stable error codes. Never rename a value: clients match on it."""

    BAD_REQUEST = "client.bad_request"
    INVALID_CLIENT_IDENTIFIER = "client.invalid_client_identifier"
    INVALID_SERVICE_IDENTIFIER = "client.invalid_service_identifier"
    UNKNOWN_CLIENT = "client.unknown_member"
    HTTP_VERSION_NOT_SUPPORTED = "client.http_version_not_supported"
    EXPECTATION_FAILED = "client.expectation_failed"
    REQUEST_TOO_LARGE = "client.request_too_large"
    CLIENT_SSL_AUTHENTICATION_FAILED = "client.ssl_authentication_failed"

    CP_UNKNOWN_MEMBER = "server.clientproxy.unknown_member"
    CP_NETWORK_ERROR = "server.clientproxy.network_error"
    CP_SSL_AUTHENTICATION_FAILED = "server.clientproxy.ssl_authentication_failed"
    CP_INVALID_SIGNATURE = "server.clientproxy.invalid_signature_value"
    CP_INVALID_CERTIFICATE = "server.clientproxy.invalid_certificate"
    CP_INCONSISTENT_RESPONSE = "server.clientproxy.inconsistent_response"
    CP_INVALID_MESSAGE = "server.clientproxy.invalid_message"
    CP_MESSAGELOG_FAILED = "server.clientproxy.messagelog_failed"
    CP_TIMESTAMPING_FAILED = "server.clientproxy.timestamping_failed"
    CP_CLOCK_SKEW = "server.clientproxy.clock_skew"
    CP_CERT_VALIDATION = "server.clientproxy.cert_validation"
    CP_OCSP_UNAVAILABLE = "server.clientproxy.ocsp_unavailable"
    CP_GLOBAL_CONF_OUTDATED = "server.clientproxy.global_conf_outdated"
    CP_MAINTENANCE_MODE = "server.clientproxy.maintenance_mode"
    CP_INTERNAL_ERROR = "server.clientproxy.internal_error"
    CP_INSTANCE_NOT_FEDERATED = "server.clientproxy.instance_not_federated"
    CP_FEDERATED_CONF_OUTDATED = "server.clientproxy.federated_conf_outdated"
    CP_WRONG_INSTANCE_CA = "server.clientproxy.wrong_instance_ca"

    SP_UNKNOWN_MEMBER = "server.serverproxy.unknown_member"
    SP_SSL_AUTHENTICATION_FAILED = "server.serverproxy.ssl_authentication_failed"
    SP_INVALID_MESSAGE = "server.serverproxy.invalid_message"
    SP_INVALID_SIGNATURE = "server.serverproxy.invalid_signature_value"
    SP_INVALID_CERTIFICATE = "server.serverproxy.invalid_certificate"
    SP_SIGNER_MISMATCH = "server.serverproxy.signer_mismatch"
    SP_MESSAGE_EXPIRED = "server.serverproxy.message_expired"
    SP_REPLAY_DETECTED = "server.serverproxy.replay_detected"
    SP_UNKNOWN_SERVICE = "server.serverproxy.unknown_service"
    SP_SERVICE_DISABLED = "server.serverproxy.service_disabled"
    SP_ACCESS_DENIED = "server.serverproxy.access_denied"
    SP_MISSING_ISSUE = "server.serverproxy.missing_issue"
    SP_MISSING_USER_ID = "server.serverproxy.missing_user_id"
    SP_INVALID_DATA_SUBJECT = "server.serverproxy.service_failed.invalid_data_subject"
    SP_REQUEST_TOO_LARGE = "server.serverproxy.request_too_large"
    SP_SERVICE_TIMEOUT = "server.serverproxy.service_failed.timeout"
    SP_SERVICE_NETWORK_ERROR = "server.serverproxy.service_failed.network_error"
    SP_SERVICE_SSL_FAILED = "server.serverproxy.service_failed.ssl_authentication_failed"
    SP_RESPONSE_TOO_LARGE = "server.serverproxy.service_failed.response_too_large"
    SP_INVALID_RESPONSE = "server.serverproxy.service_failed.invalid_response"
    SP_MESSAGELOG_FAILED = "server.serverproxy.messagelog_failed"
    SP_TIMESTAMPING_FAILED = "server.serverproxy.timestamping_failed"
    SP_CLOCK_SKEW = "server.serverproxy.clock_skew"
    SP_CERT_VALIDATION = "server.serverproxy.cert_validation"
    SP_OCSP_UNAVAILABLE = "server.serverproxy.ocsp_unavailable"
    SP_GLOBAL_CONF_OUTDATED = "server.serverproxy.global_conf_outdated"
    SP_MAINTENANCE_MODE = "server.serverproxy.maintenance_mode"
    SP_INTERNAL_ERROR = "server.serverproxy.internal_error"
    SP_INSTANCE_NOT_FEDERATED = "server.serverproxy.instance_not_federated"
    SP_FEDERATED_CONF_OUTDATED = "server.serverproxy.federated_conf_outdated"
    SP_WRONG_INSTANCE_CA = "server.serverproxy.wrong_instance_ca"

    AUDIT_ACCESS_DENIED = "client.audit_access_denied"
    AUDIT_NOT_FOUND = "client.audit_not_found"
    WITNESS_SPLIT_VIEW = "server.clientproxy.witness_split_view"
    WITNESS_PEER_FAILED = "server.clientproxy.witness_failed"
    SP_INVALID_OPERATIONAL_QUERY = "server.serverproxy.invalid_operational_query"

    # The node's management functions (service descriptions, keys and certificates):
    # refusals an operator gets, never an exchange's.
    DESCRIPTION_UNREACHABLE = "client.service_description.unreachable"
    DESCRIPTION_TOO_LARGE = "client.service_description.too_large"
    DESCRIPTION_NOT_JSON = "client.service_description.not_json"
    DESCRIPTION_NOT_OPENAPI = "client.service_description.not_openapi"
    DESCRIPTION_NO_PATHS = "client.service_description.no_paths"
    KEY_NOT_FOUND = "client.key.not_found"
    KEY_EXISTS = "client.key.exists"
    CERT_INVALID = "client.certificate.invalid"
    CERT_NO_MATCHING_KEY = "client.certificate.no_matching_key"
    CERT_UNTRUSTED = "client.certificate.untrusted"
    CERT_EXPIRED = "client.certificate.expired"
    CERT_WRONG_USAGE = "client.certificate.wrong_usage"
    CERT_ALREADY_INSTALLED = "client.certificate.already_installed"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One row of the error table."""

    status: int
    meaning: str


ERROR_TABLE: dict[Code, ErrorSpec] = {
    Code.BAD_REQUEST: ErrorSpec(400, "The request is not a valid X-Road REST r1 request."),
    Code.INVALID_CLIENT_IDENTIFIER: ErrorSpec(
        400, "X-Road-Client is missing or is not a valid client identifier."
    ),
    Code.INVALID_SERVICE_IDENTIFIER: ErrorSpec(
        400, "The service identifier in the request path is not valid."
    ),
    Code.UNKNOWN_CLIENT: ErrorSpec(400, "X-Road-Client is not a client registered at this node."),
    Code.HTTP_VERSION_NOT_SUPPORTED: ErrorSpec(
        505, "The request line names an HTTP version other than 1.0 or 1.1."
    ),
    Code.EXPECTATION_FAILED: ErrorSpec(
        417, "The request's Expect header names an expectation other than 100-continue."
    ),
    Code.REQUEST_TOO_LARGE: ErrorSpec(413, "The request body exceeds the node's limit."),
    Code.CLIENT_SSL_AUTHENTICATION_FAILED: ErrorSpec(
        400,
        "The connection does not satisfy the connection type of the client it names "
        "(plain HTTP for an https or https-no-auth client; no TLS client certificate, "
        "or one not registered for that client or not valid now, for an https client).",
    ),
    Code.CP_UNKNOWN_MEMBER: ErrorSpec(500, "No node is known that hosts the service's provider."),
    Code.CP_NETWORK_ERROR: ErrorSpec(500, "The provider's node could not be reached in time."),
    Code.CP_SSL_AUTHENTICATION_FAILED: ErrorSpec(
        500, "The provider's node did not authenticate with its registered certificate."
    ),
    Code.CP_INVALID_SIGNATURE: ErrorSpec(500, "The response signature does not verify."),
    Code.CP_INVALID_CERTIFICATE: ErrorSpec(
        500, "The response was signed with a certificate that is not trusted."
    ),
    Code.CP_INCONSISTENT_RESPONSE: ErrorSpec(
        500, "The signed response does not belong to the request that was sent."
    ),
    Code.CP_INVALID_MESSAGE: ErrorSpec(500, "The provider's node sent a malformed message."),
    Code.CP_MESSAGELOG_FAILED: ErrorSpec(500, "The exchange could not be logged durably."),
    Code.CP_TIMESTAMPING_FAILED: ErrorSpec(
        500, "The consumer's node could not timestamp its message log for too long."
    ),
    Code.CP_CLOCK_SKEW: ErrorSpec(
        500,
        "The consumer's node's clock is further from the TSA's time than "
        "max_clock_skew_seconds allows.",
    ),
    Code.CP_CERT_VALIDATION: ErrorSpec(
        500,
        "The provider's node sent no valid OCSP status for its authentication or signing "
        "certificate (missing, malformed, forged, revoked, unknown, stale, expired or "
        "not yet valid).",
    ),
    Code.CP_OCSP_UNAVAILABLE: ErrorSpec(
        500,
        "This node has no valid OCSP status for its own certificate (revoked, or the "
        "responder has not answered within the freshness window), so it sends nothing.",
    ),
    Code.CP_GLOBAL_CONF_OUTDATED: ErrorSpec(
        500,
        "The consumer's node holds no valid global configuration (its signed metadata "
        "expired and no fresh one could be fetched), so it sends nothing.",
    ),
    Code.CP_MAINTENANCE_MODE: ErrorSpec(
        500,
        "The consumer's node is in maintenance mode: it finishes the exchanges in flight "
        "and starts no new one; send the request to another node of the member, or later.",
    ),
    Code.CP_INTERNAL_ERROR: ErrorSpec(500, "Internal error on the consumer's node."),
    Code.CP_INSTANCE_NOT_FEDERATED: ErrorSpec(
        500,
        "The service's provider is in an instance this node's instance does not federate with.",
    ),
    Code.CP_FEDERATED_CONF_OUTDATED: ErrorSpec(
        500,
        "The provider's instance is federated, but this node holds no valid signed "
        "configuration of it (expired, never obtained, or only a rolled-back or otherwise"
        " refused version offered), so it sends nothing to that instance.",
    ),
    Code.CP_WRONG_INSTANCE_CA: ErrorSpec(
        500,
        "The provider's node or signer presented a certificate issued by another "
        "instance's CA; a CA certifies members and nodes of its own instance only.",
    ),
    Code.SP_UNKNOWN_MEMBER: ErrorSpec(500, "The client is not known in this instance."),
    Code.SP_SSL_AUTHENTICATION_FAILED: ErrorSpec(
        500, "The sending node is not registered, or does not host the client."
    ),
    Code.SP_INVALID_MESSAGE: ErrorSpec(500, "The message envelope is malformed."),
    Code.SP_INVALID_SIGNATURE: ErrorSpec(500, "The request signature does not verify."),
    Code.SP_INVALID_CERTIFICATE: ErrorSpec(
        500, "The signing certificate is not trusted, not valid now, or not a signing certificate."
    ),
    Code.SP_SIGNER_MISMATCH: ErrorSpec(500, "The request was not signed by the client's member."),
    Code.SP_MESSAGE_EXPIRED: ErrorSpec(
        500, "The message's creation time is outside the accepted window."
    ),
    Code.SP_REPLAY_DETECTED: ErrorSpec(500, "This message was received before."),
    Code.SP_UNKNOWN_SERVICE: ErrorSpec(500, "The service is not provided by this node."),
    Code.SP_SERVICE_DISABLED: ErrorSpec(500, "The service is disabled."),
    Code.SP_ACCESS_DENIED: ErrorSpec(500, "The client has no access right to this service."),
    Code.SP_MISSING_ISSUE: ErrorSpec(
        500, "The service requires a case number (X-Road-Issue) and the request has none."
    ),
    Code.SP_MISSING_USER_ID: ErrorSpec(
        500, "The service requires the end user (X-Road-UserId) and the request names none."
    ),
    Code.SP_INVALID_DATA_SUBJECT: ErrorSpec(
        500,
        "The registry's X-Data-Subject header is malformed, so the answer's data subjects "
        "cannot be recorded; nothing is returned.",
    ),
    Code.SP_REQUEST_TOO_LARGE: ErrorSpec(500, "The request body exceeds the provider's limit."),
    Code.SP_SERVICE_TIMEOUT: ErrorSpec(500, "The registry did not answer within the timeout."),
    Code.SP_SERVICE_NETWORK_ERROR: ErrorSpec(500, "The registry could not be reached."),
    Code.SP_SERVICE_SSL_FAILED: ErrorSpec(
        500,
        "TLS with the service's https:// registry failed: its certificate matches neither "
        "the service's pinned fingerprint nor its configured CA (or the handshake failed), "
        "so the registry was sent nothing.",
    ),
    Code.SP_RESPONSE_TOO_LARGE: ErrorSpec(500, "The registry's response exceeds the limit."),
    Code.SP_INVALID_RESPONSE: ErrorSpec(
        500,
        "The registry's response breaks a limit of the signed response header (status, "
        "number, length or characters of its headers, or their total size), so the "
        "provider's node signs and returns nothing.",
    ),
    Code.SP_MESSAGELOG_FAILED: ErrorSpec(500, "The exchange could not be logged durably."),
    Code.SP_TIMESTAMPING_FAILED: ErrorSpec(
        500, "The provider's node could not timestamp its message log for too long."
    ),
    Code.SP_CLOCK_SKEW: ErrorSpec(
        500,
        "The provider's node's clock is further from the TSA's time than "
        "max_clock_skew_seconds allows.",
    ),
    Code.SP_CERT_VALIDATION: ErrorSpec(
        500,
        "The sending node sent no valid OCSP status for its authentication or signing "
        "certificate (missing, malformed, forged, revoked, unknown, stale, expired or "
        "not yet valid).",
    ),
    Code.SP_OCSP_UNAVAILABLE: ErrorSpec(
        500,
        "The provider's node has no valid OCSP status for its own certificate (revoked, "
        "or the responder has not answered within the freshness window), so it answers "
        "nothing.",
    ),
    Code.SP_GLOBAL_CONF_OUTDATED: ErrorSpec(
        500,
        "The provider's node holds no valid global configuration (its signed metadata "
        "expired and no fresh one could be fetched), so it answers nothing.",
    ),
    Code.SP_MAINTENANCE_MODE: ErrorSpec(
        500,
        "The provider's node is in maintenance mode: it finishes the exchanges in flight "
        "and accepts no new one; the registry was not called.",
    ),
    Code.SP_INTERNAL_ERROR: ErrorSpec(500, "Internal error on the provider's node."),
    Code.SP_INSTANCE_NOT_FEDERATED: ErrorSpec(
        500,
        "The client is in an instance this node's instance does not federate with.",
    ),
    Code.SP_FEDERATED_CONF_OUTDATED: ErrorSpec(
        500,
        "The client's instance is federated, but this node holds no valid signed "
        "configuration of it (expired, never obtained, or only a rolled-back or otherwise"
        " refused version offered), so it answers nothing.",
    ),
    Code.SP_WRONG_INSTANCE_CA: ErrorSpec(
        500,
        "The sending node or signer presented a certificate issued by another instance's "
        "CA; a CA certifies members and nodes of its own instance only.",
    ),
    Code.AUDIT_ACCESS_DENIED: ErrorSpec(
        400,
        "The log's auditor API needs an auditor certificate, the admin token, or (for its "
        "own exchanges only) a client hosted at this node that presents its registered "
        "TLS client certificate.",
    ),
    Code.AUDIT_NOT_FOUND: ErrorSpec(
        400, "No such log entry, tree size or signed tree head in this node's log."
    ),
    Code.WITNESS_SPLIT_VIEW: ErrorSpec(
        500, "A peer signed two tree heads that cannot both belong to one append-only log."
    ),
    Code.WITNESS_PEER_FAILED: ErrorSpec(
        500, "A peer's signed tree head or consistency proof could not be fetched or verified."
    ),
    Code.SP_INVALID_OPERATIONAL_QUERY: ErrorSpec(
        500,
        "getSecurityServerOperationalData needs since and until (RFC 3339 with a zone, "
        "since before until) and at most one of each; nothing is returned otherwise.",
    ),
    Code.DESCRIPTION_UNREACHABLE: ErrorSpec(
        400,
        "The service description's URL could not be fetched: no connection, a TLS "
        "failure, no answer within the timeout, or an answer other than HTTP 200.",
    ),
    Code.DESCRIPTION_TOO_LARGE: ErrorSpec(
        400, "The service description is larger than the node reads (max_bytes)."
    ),
    Code.DESCRIPTION_NOT_JSON: ErrorSpec(
        400, "The service description is not a JSON object (UTF-8)."
    ),
    Code.DESCRIPTION_NOT_OPENAPI: ErrorSpec(
        400,
        "The service description is not an OpenAPI 3 document: no openapi field of 3.x, "
        "no info with a title and version, or a paths member that is not an object of "
        "path items.",
    ),
    Code.DESCRIPTION_NO_PATHS: ErrorSpec(
        400, "The OpenAPI document describes no operation (no path with an HTTP method)."
    ),
    Code.KEY_NOT_FOUND: ErrorSpec(
        400,
        "The node holds no key file for that owner: not this node's id, a member without "
        "a [[signing]] entry, a key file that does not exist, or a signing key in a "
        "PKCS#11 token (made on the token with gateway node token init-key).",
    ),
    Code.KEY_EXISTS: ErrorSpec(
        400,
        "A new key was asked for but a key file (or a pending new key) already exists at "
        "its path; key files are never overwritten.",
    ),
    Code.CERT_INVALID: ErrorSpec(
        400,
        "The certificate is not PEM, does not follow the profile, or names another owner "
        "than the key it belongs to.",
    ),
    Code.CERT_NO_MATCHING_KEY: ErrorSpec(
        400, "The certificate's public key is not the public key of any key the node holds."
    ),
    Code.CERT_UNTRUSTED: ErrorSpec(
        400,
        "The certificate does not chain to a CA the global configuration trusts.",
    ),
    Code.CERT_EXPIRED: ErrorSpec(400, "The certificate is expired or not yet valid."),
    Code.CERT_WRONG_USAGE: ErrorSpec(
        400,
        "The certificate's key usage does not fit the key it belongs to: a signing key "
        "needs a signing certificate, the authentication key an authentication one.",
    ),
    Code.CERT_ALREADY_INSTALLED: ErrorSpec(
        400, "The certificate is already the one installed for its key."
    ),
}


class AdminCode(StrEnum):
    """Refusals of a node's management API (``/api/v1`` on its admin listener). Apart
    from :class:`Code`: they answer an operator, never an X-Road message exchange, so
    they use HTTP's own statuses (401, 403, 404, 409). Never rename a value."""

    UNAUTHORIZED = "admin.unauthorized"
    FORBIDDEN = "admin.forbidden"
    NOT_FOUND = "admin.not_found"
    INVALID = "admin.invalid"
    CONFLICT = "admin.conflict"
    UNAVAILABLE = "admin.unavailable"
    INTERNAL = "admin.internal_error"


ADMIN_ERROR_TABLE: dict[AdminCode, ErrorSpec] = {
    AdminCode.UNAUTHORIZED: ErrorSpec(
        401,
        "The node's management API needs `Authorization: Bearer <API key>` with a key of "
        "this node that is neither expired nor revoked.",
    ),
    AdminCode.FORBIDDEN: ErrorSpec(
        403,
        "The API key is valid but its role may not make this call (see the permission "
        "table in docs/node-admin.md).",
    ),
    AdminCode.NOT_FOUND: ErrorSpec(
        404, "No such path, subsystem, service, access right, local group, API key or log entry."
    ),
    AdminCode.INVALID: ErrorSpec(
        400,
        "The input is malformed (not JSON, a field missing or of the wrong type, an "
        "identifier or time that does not parse) or the change is not valid; nothing "
        "changed.",
    ),
    AdminCode.CONFLICT: ErrorSpec(
        409,
        "The object already exists, or is already in the state asked for; or the log entry "
        "asked for is not yet covered by a timestamped tree head.",
    ),
    AdminCode.UNAVAILABLE: ErrorSpec(
        503,
        "The node cannot do this now (its message log cannot be read, or the "
        "feature is not available on this node).",
    ),
    AdminCode.INTERNAL: ErrorSpec(500, "Internal error of the management API; see the node's log."),
}


class AdminError(Exception):
    """A refusal of the management API, answered as ``{"type", "message", "detail"}``
    like X-Road's errors so one client reads both."""

    def __init__(self, code: AdminCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.detail = str(uuid.uuid4())

    @property
    def status(self) -> int:
        return ADMIN_ERROR_TABLE[self.code].status

    def body(self) -> dict[str, Any]:
        return {"type": self.code.value, "message": self.message, "detail": self.detail}


class GatewayError(Exception):
    """A refusal with a stable code; rendered to callers as X-Road's error format.

    ``detail`` is the log-correlation id X-Road puts in the same field, so an operator can
    find the node's log line for a refusal a client reports. ``headers`` go out with the
    refusal: the consumer's node adds the exchange's ``X-Road-Id`` and
    ``X-Road-Request-Id`` once it has made the message, so a caller can match a refused
    exchange with what the provider's node may have logged.
    """

    def __init__(self, code: Code, message: str, *, detail: str | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.detail = detail or str(uuid.uuid4())
        self.headers: dict[str, str] = {}

    @property
    def status(self) -> int:
        return ERROR_TABLE[self.code].status

    def body(self) -> dict[str, Any]:
        """X-Road's JSON error document."""
        return {"type": self.code.value, "message": self.message, "detail": self.detail}


class ReasonedError(Exception, Generic[R]):
    """A refusal that names why: ``reason`` for programs, ``detail`` for people.

    The checks of certificates, OCSP responses, time stamps, proofs and tree heads each
    refuse with a value of their own failure enum, whose values are stable because
    callers and scripts match on them; the message is ``"<reason>: <detail>"``. Each
    check subclasses this once (``class OcspError(ReasonedError[OcspFailure])``) so a
    caller catches one check's refusals by name and reads ``reason`` with its enum type.
    """

    def __init__(self, reason: R, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason: R = reason
        self.detail = detail
