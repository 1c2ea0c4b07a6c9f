"""The signed message envelope exchanged between nodes.

A message is a canonical JSON header (routing ids, message id, method, path, query, kept
headers, creation time, body digest) plus the body. The header is the payload of a JWS
(RFC 7515) with a detached payload, made and checked by ``gateway.core.jws``; this module
holds the headers themselves, their limits and the checks of their fields. The body is
bound by its SHA-256 digest inside the header, so the signature can be checked before
the body is read. The response header carries the request's hash, which binds it to one
request.

Verification raises :class:`EnvelopeError`; it never returns a boolean.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import unquote

from gateway.core.canonical import NotCanonicalError, parse_canonical
from gateway.core.encoding import EncodingError, b64url, b64url_decode, format_time
from gateway.core.errors import Code
from gateway.core.headerjson import request_json, response_json
from gateway.core.ids import (
    ClientId,
    InvalidIdentifierError,
    ServiceId,
    parse_client,
)

PROTOCOL_VERSION = 1

# The limits of a signed header, in one place. The receiving node refuses a header over
# any of them (``from_bytes``); the sending node checks the same constants before it
# signs (``check_path``, ``check_query``, ``check_headers``,
# ``RequestHeader.checked_bytes``, ``ResponseHeader.checked_bytes``), so an oversize
# request is refused as the caller's mistake and an oversize answer as the service's.
MAX_TEXT = 1024
"""Longest client id, service id and ``X-Road-Issue`` (characters)."""
MAX_SHORT_TEXT = 255
"""Longest ``X-Road-Id``, ``X-Road-UserId`` and ``X-Road-Represented-Party`` (characters)."""
MAX_PATH = 4096
"""Longest path after the service id (characters, still percent-encoded)."""
MAX_QUERY = 4096
"""Longest query string (characters, without the ``?``)."""
MAX_HEADERS = 100
"""Most end-to-end headers one message carries."""
MAX_HEADER_NAME = 256
"""Longest end-to-end header name (characters)."""
MAX_HEADER_VALUE = 8192
"""Longest end-to-end header value (characters)."""
MAX_HEADER_FIELD = 64 * 1024
"""Longest HTTP header field (name and value) a node reads on either of its ports and
from a peer or a registry; the signed header travels in one such field."""
MAX_ENVELOPE = MAX_HEADER_FIELD - 64
"""Longest base64url of a signed header (the ``X-Gw-Envelope`` value): one header field,
less room for the field's name and separator."""
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_METHOD = re.compile(r"[A-Z]{1,16}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_PCHAR = r"A-Za-z0-9\-._~!$&'()*+,;=:@%"
_PATH = re.compile(f"[{_PCHAR}/]*")
_QUERY = re.compile(f"[{_PCHAR}/?]*")
_ID_PART = r"[A-Za-z0-9'()+,\-.=?]{1,255}"
_REPRESENTED_PARTY = re.compile(f"(?:{_ID_PART}/)?{_ID_PART}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Header names that matched ``_TOKEN``: the same few names arrive on every message.
_TOKENS_SEEN: set[str] = set()
_MAX_TOKENS_SEEN = 4096

Reason = Literal["malformed", "signature", "certificate", "expired"]


class EnvelopeError(Exception):
    """A message that must be refused; ``reason`` selects the error code per side."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def decode_segment(text: str) -> bytes:
    """A base64url field of the wire format (:func:`b64url_decode`), refused as malformed.

    The envelope, its JWS segments and the OCSP headers travel base64url-encoded; a
    spelling that is not the one canonical form is a malformed message.
    """
    try:
        return b64url_decode(text)
    except EncodingError as exc:
        raise EnvelopeError("malformed", str(exc)) from None


def check_path(path: str) -> str:
    """A REST path as forwarded: empty or ``/``-led, RFC 3986 path characters only,
    and no dot segments, in plain or percent-encoded form, at most ``MAX_PATH`` long.

    Access rights match this exact string and the registry receives it unchanged; an
    HTTP client that resolved ``..`` afterwards would reach a path no right covered.
    """
    if len(path) > MAX_PATH:
        raise EnvelopeError(
            "malformed", f"path is {len(path)} characters, over the limit of {MAX_PATH}"
        )
    if path and (not path.startswith("/") or not _PATH.fullmatch(path)):
        raise EnvelopeError("malformed", "path must be empty or '/' followed by path characters")
    for segment in path.split("/"):
        if unquote(segment) in (".", ".."):
            raise EnvelopeError("malformed", "dot segments are not allowed in the path")
    return path


def check_query(query: str) -> str:
    """A query string as forwarded: RFC 3986 query characters, at most ``MAX_QUERY``."""
    if len(query) > MAX_QUERY:
        raise EnvelopeError(
            "malformed", f"query is {len(query)} characters, over the limit of {MAX_QUERY}"
        )
    if not _QUERY.fullmatch(query):
        raise EnvelopeError("malformed", "query has characters outside RFC 3986")
    return query


def parse_time(text: str) -> datetime:
    if not _TIME.fullmatch(text):
        raise EnvelopeError("malformed", f"creation time {text!r} is not RFC 3339 UTC with ms")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise EnvelopeError("malformed", f"creation time {text!r} is not a valid date") from None


def body_sha256(body: bytes) -> str:
    return b64url(hashlib.sha256(body).digest())


def body_sha256_hex(header_digest: str) -> str:
    """The hex form the message log stores of a signed header's ``body_sha256``: the
    node logs a body whose digest it has just computed or checked, without hashing it
    again."""
    return b64url_decode(header_digest).hex()


def request_hash(header_bytes: bytes) -> str:
    """``X-Road-Request-Hash``: base64 SHA-512 of the signed request header.

    The header commits to the body's digest, so this hash covers the whole request.
    """
    return base64.b64encode(hashlib.sha512(header_bytes).digest()).decode("ascii")


def _text(value: Any, what: str, *, optional: bool = False, limit: int = MAX_TEXT) -> Any:
    # isascii() and isprintable() hold of exactly the strings of U+0020 to U+007E
    # (tests/unit/test_envelope_agreement.py checks every code point): printable ASCII
    # without a regular expression. A header has some twenty such fields to check.
    if type(value) is str and len(value) <= limit and value.isascii() and value.isprintable():
        return value
    if value is None and optional:
        return None
    if isinstance(value, str) and len(value) > limit:
        raise EnvelopeError(
            "malformed", f"{what} is {len(value)} characters, over the limit of {limit}"
        )
    if not isinstance(value, str) or not (value.isascii() and value.isprintable()):
        raise EnvelopeError("malformed", f"{what} must be printable ASCII up to {limit} chars")
    return value


def _int(value: Any, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise EnvelopeError("malformed", f"{what} must be an integer in [{low}, {high}]")
    return value


def check_headers(value: Any) -> tuple[tuple[str, str], ...]:
    """Header names must be lower-case tokens and values free of CR, LF and NUL, within
    the count and length limits; each refusal says which rule the header broke."""
    if not isinstance(value, list):
        raise EnvelopeError("malformed", "headers must be a list of [name, value] pairs")
    if len(value) > MAX_HEADERS:
        raise EnvelopeError(
            "malformed",
            f"{len(value)} end-to-end headers, over the limit of {MAX_HEADERS}",
        )
    result = []
    for pair in value:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise EnvelopeError("malformed", "each header must be a [name, value] pair")
        name, val = pair
        if not isinstance(name, str) or not isinstance(val, str):
            raise EnvelopeError("malformed", "each header must be a [name, value] pair")
        if len(name) > MAX_HEADER_NAME:
            raise EnvelopeError(
                "malformed",
                f"header name {name[:64]!r}... is {len(name)} characters, "
                f"over the limit of {MAX_HEADER_NAME}",
            )
        if name not in _TOKENS_SEEN:
            if not _TOKEN.fullmatch(name):
                raise EnvelopeError("malformed", f"header name {name!r} is not a lower-case token")
            if len(_TOKENS_SEEN) < _MAX_TOKENS_SEEN:
                _TOKENS_SEEN.add(name)
        if len(val) > MAX_HEADER_VALUE:
            raise EnvelopeError(
                "malformed",
                f"header {name!r} is {len(val)} characters long, "
                f"over the limit of {MAX_HEADER_VALUE}",
            )
        # Printable ASCII is within ``_FIELD_VALUE``: most values need no regular expression.
        if not (val.isascii() and val.isprintable()) and not _FIELD_VALUE.fullmatch(val):
            raise EnvelopeError("malformed", f"header {name!r} has a forbidden character")
        result.append((name, val))
    return tuple(result)


def check_envelope_size(
    header_bytes: bytes,
    *,
    advice: str = "send fewer or shorter headers, a shorter path or a shorter query",
) -> None:
    """The signed header must fit one HTTP header field once encoded (``MAX_ENVELOPE``):
    a longer one is refused by the receiving node's HTTP parser, before that node can
    answer in X-Road's error format. ``advice`` tells whoever can shorten it how."""
    encoded = (4 * len(header_bytes) + 2) // 3  # base64url without padding
    if encoded > MAX_ENVELOPE:
        raise EnvelopeError(
            "malformed",
            f"the signed header would be {encoded} characters of base64url, over the limit "
            f"of {MAX_ENVELOPE} (one {MAX_HEADER_FIELD // 1024} KiB header field); {advice}",
        )


def check_represented_party(value: Any) -> str:
    """``X-Road-Represented-Party``: ``[CLASS/]CODE``, each part in X-Road's identifier
    characters (letters, digits and ``'()+,-.=?``), at most ``MAX_SHORT_TEXT`` in all.

    The registry receives it as a header and may record it as the party a request was
    made for; anything that could be read as another header or a second party is
    refused rather than cleaned up.
    """
    if (
        not isinstance(value, str)
        or len(value) > MAX_SHORT_TEXT
        or not _REPRESENTED_PARTY.fullmatch(value)
    ):
        raise EnvelopeError(
            "malformed",
            "X-Road-Represented-Party must be [CLASS/]CODE, each part letters, digits or "
            f"'()+,-.=? only, at most {MAX_SHORT_TEXT} characters",
        )
    return value


def check_message_id(value: Any) -> str:
    if isinstance(value, str) and _UUID.fullmatch(value):
        return value
    raise EnvelopeError("malformed", "message id must be a lower-case UUID")


def _ids(data: dict[str, Any]) -> tuple[ClientId, ServiceId]:
    """Ids in a signed header must be in printed form: one spelling per id."""
    return _printed_ids(_text(data.get("client"), "client"), _text(data.get("service"), "service"))


@lru_cache(maxsize=4096)
def _printed_ids(client_text: str, service_text: str) -> tuple[ClientId, ServiceId]:
    """The ids of a signed header, once per distinct pair (a refused one never cached)."""
    try:
        client = parse_client(client_text, Code.BAD_REQUEST)
        service = ServiceId.parse(service_text)
    except InvalidIdentifierError as exc:
        raise EnvelopeError("malformed", exc.message) from None
    if str(client) != client_text or str(service) != service_text:
        raise EnvelopeError("malformed", "ids in a signed header must be in printed form")
    return client, service


def _load(
    data: bytes, kind: str, keys: frozenset[str], optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    try:
        obj = parse_canonical(data)
    except NotCanonicalError as exc:
        raise EnvelopeError("malformed", f"header is not canonical JSON: {exc}") from None
    if obj.get("v") != PROTOCOL_VERSION or obj.get("type") != kind:
        raise EnvelopeError("malformed", f"not a version {PROTOCOL_VERSION} {kind} header")
    names = obj.keys()
    if not (names >= keys and (names <= keys or names <= keys | optional)):
        extra = f", and optionally {sorted(optional)}" if optional else ""
        raise EnvelopeError(
            "malformed", f"{kind} header fields must be exactly {sorted(keys)}{extra}"
        )
    return obj


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """What a consumer's node signs for one request."""

    message_id: str
    xroad_id: str
    client: ClientId
    service: ServiceId
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    user_id: str | None
    issue: str | None
    created: str
    body_sha256: str
    body_length: int
    represented_party: str | None = None
    """``X-Road-Represented-Party``; absent from the signed header when not given, so
    a header without it is byte for byte what it was before the field existed."""

    OPTIONAL_FIELDS = frozenset({"represented_party"})
    """Fields a request header carries only when set (never as ``null``)."""

    FIELDS = frozenset(
        {
            "v",
            "type",
            "id",
            "xroad_id",
            "client",
            "service",
            "method",
            "path",
            "query",
            "headers",
            "user_id",
            "issue",
            "created",
            "body_sha256",
            "body_length",
        }
    )

    def to_bytes(self) -> bytes:
        return request_json(
            PROTOCOL_VERSION,
            self.message_id,
            self.xroad_id,
            str(self.client),
            str(self.service),
            self.method,
            self.path,
            self.query,
            self.headers,
            self.user_id,
            self.issue,
            self.created,
            self.body_sha256,
            self.body_length,
            self.represented_party,
        )

    def checked_bytes(self) -> bytes:
        """``to_bytes()``, or ``EnvelopeError`` if the provider's node would refuse the
        header for one of its limits.

        The sending node calls this before it signs: the same constants as
        ``from_bytes``, named as the caller knows them, so an oversize request is the
        caller's ``client.bad_request`` instead of a refusal from the provider's node.
        """
        _text(self.xroad_id, "X-Road-Id", limit=MAX_SHORT_TEXT)
        _text(str(self.client), "the client id")
        _text(str(self.service), "the service id")
        check_path(self.path)
        check_query(self.query)
        check_headers([list(h) for h in self.headers])
        _text(self.user_id, "X-Road-UserId", optional=True, limit=MAX_SHORT_TEXT)
        _text(self.issue, "X-Road-Issue", optional=True)
        if self.represented_party is not None:
            check_represented_party(self.represented_party)
        data = self.to_bytes()
        check_envelope_size(data)
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> RequestHeader:
        obj = _load(data, "request", cls.FIELDS, cls.OPTIONAL_FIELDS)
        client, service = _ids(obj)
        method = obj["method"]
        if not isinstance(method, str) or not _METHOD.fullmatch(method):
            raise EnvelopeError("malformed", "method must be an upper-case HTTP method")
        path = check_path(_text(obj["path"], "path", limit=MAX_PATH))
        parse_time(_text(obj["created"], "created"))
        return cls(
            message_id=check_message_id(obj["id"]),
            xroad_id=_text(obj["xroad_id"], "xroad_id", limit=MAX_SHORT_TEXT),
            client=client,
            service=service,
            method=method,
            path=path,
            query=check_query(_text(obj["query"], "query", limit=MAX_QUERY)),
            headers=check_headers(obj["headers"]),
            user_id=_text(obj["user_id"], "user_id", optional=True, limit=MAX_SHORT_TEXT),
            issue=_text(obj["issue"], "issue", optional=True),
            created=obj["created"],
            body_sha256=_text(obj["body_sha256"], "body_sha256", limit=64),
            body_length=_int(obj["body_length"], "body_length", 0, 2**53),
            represented_party=(
                check_represented_party(obj["represented_party"])
                if "represented_party" in obj
                else None
            ),
        )


@dataclass(frozen=True, slots=True)
class ResponseHeader:
    """What a provider's node signs for one response; bound to the request's hash."""

    message_id: str
    xroad_id: str
    client: ClientId
    service: ServiceId
    request_hash: str
    status: int
    headers: tuple[tuple[str, str], ...]
    created: str
    body_sha256: str
    body_length: int

    FIELDS = frozenset(
        {
            "v",
            "type",
            "id",
            "xroad_id",
            "client",
            "service",
            "request_hash",
            "status",
            "headers",
            "created",
            "body_sha256",
            "body_length",
        }
    )

    def to_bytes(self) -> bytes:
        return response_json(
            PROTOCOL_VERSION,
            self.message_id,
            self.xroad_id,
            str(self.client),
            str(self.service),
            self.request_hash,
            self.status,
            self.headers,
            self.created,
            self.body_sha256,
            self.body_length,
        )

    def checked_bytes(self) -> bytes:
        """``to_bytes()``, or ``EnvelopeError`` if the consumer's node would refuse the
        header for one of its limits.

        The provider's node calls this before it signs, with the same constants as
        ``from_bytes``: a registry answer with a status, header count, header name or
        value, or total header size that a response header cannot carry is then the
        service's refusal by the provider's node, instead of a signed and logged response
        the consumer's node cannot open.
        """
        _text(self.xroad_id, "X-Road-Id", limit=MAX_SHORT_TEXT)
        _text(str(self.client), "the client id")
        _text(str(self.service), "the service id")
        _text(self.request_hash, "request_hash", limit=128)
        _int(self.status, "status", 100, 599)
        check_headers([list(h) for h in self.headers])
        data = self.to_bytes()
        check_envelope_size(data, advice="the registry must send fewer or shorter headers")
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> ResponseHeader:
        obj = _load(data, "response", cls.FIELDS)
        client, service = _ids(obj)
        parse_time(_text(obj["created"], "created"))
        return cls(
            message_id=check_message_id(obj["id"]),
            xroad_id=_text(obj["xroad_id"], "xroad_id", limit=MAX_SHORT_TEXT),
            client=client,
            service=service,
            request_hash=_text(obj["request_hash"], "request_hash", limit=128),
            status=_int(obj["status"], "status", 100, 599),
            headers=check_headers(obj["headers"]),
            created=obj["created"],
            body_sha256=_text(obj["body_sha256"], "body_sha256", limit=64),
            body_length=_int(obj["body_length"], "body_length", 0, 2**53),
        )


def check_body(body_digest: str, body_length: int, body: bytes) -> None:
    """The body must be the one the signed header names."""
    if len(body) != body_length or body_sha256(body) != body_digest:
        raise EnvelopeError("signature", "the body does not match the signed digest")


def check_created(created: str, now: datetime, window: timedelta) -> datetime:
    """Refuse a message created outside ``now ± window`` (bounds how long ids are kept)."""
    moment = parse_time(created)
    if abs(now - moment) > window:
        raise EnvelopeError(
            "expired",
            f"created {created}, outside {int(window.total_seconds())} s of {format_time(now)}",
        )
    return moment
