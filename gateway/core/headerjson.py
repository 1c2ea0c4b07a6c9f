"""The canonical bytes of the two signed headers, written straight from their fields.

A request or response header is the canonical JSON (``gateway.core.canonical``) of a
fixed set of keys, and every node writes one per exchange. Its text is known up to the
values, so it is written as one string with the keys in their sorted order and each
value spelled as the canonical serialiser spells it (``encode_basestring``, ``null``,
the integer's digits), instead of building a dictionary, walking it and sorting its
keys on every message.

That shortcut is taken only for fields of exactly the types the header declares
(``str``, ``int`` within the canonical range, ``None`` where optional, a tuple of
``(str, str)`` pairs); anything else is handed to ``canonical_json`` as before, so a
value it refuses is refused with the same error. Both give the same bytes
(``tests/unit/test_envelope.py`` checks it on arbitrary fields).
"""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

from gateway.core.canonical import MAX_INT, canonical_json

__all__ = ["request_json", "response_json"]

_str = str


def _pairs(headers: Any) -> str | None:
    """``[["name","value"],...]``, or None if ``headers`` is not a tuple of str pairs."""
    if type(headers) is not tuple:
        return None
    parts = []
    for pair in headers:
        if type(pair) is not tuple or len(pair) != 2:
            return None
        name, value = pair
        if type(name) is not _str or type(value) is not _str:
            return None
        parts.append(f"[{encode_basestring(name)},{encode_basestring(value)}]")
    return f"[{','.join(parts)}]"


def _int(value: Any) -> bool:
    return type(value) is int and -MAX_INT <= value <= MAX_INT


def _optional(value: Any) -> str | None:
    """A JSON ``null`` or string, or None if ``value`` is neither None nor a str."""
    if value is None:
        return "null"
    return encode_basestring(value) if type(value) is _str else None


def request_json(
    version: int,
    message_id: Any,
    xroad_id: Any,
    client: str,
    service: str,
    method: Any,
    path: Any,
    query: Any,
    headers: Any,
    user_id: Any,
    issue: Any,
    created: Any,
    body_sha256: Any,
    body_length: Any,
    represented_party: Any,
) -> bytes:
    """A request header's canonical bytes; ``represented_party`` only when not None."""
    quick = _quick_request(
        version,
        message_id,
        xroad_id,
        client,
        service,
        method,
        path,
        query,
        headers,
        user_id,
        issue,
        created,
        body_sha256,
        body_length,
        represented_party,
    )
    if quick is not None:
        return quick
    optional = {"represented_party": represented_party} if represented_party is not None else {}
    return canonical_json(
        {
            **optional,
            "v": version,
            "type": "request",
            "id": message_id,
            "xroad_id": xroad_id,
            "client": client,
            "service": service,
            "method": method,
            "path": path,
            "query": query,
            "headers": [list(h) for h in headers],
            "user_id": user_id,
            "issue": issue,
            "created": created,
            "body_sha256": body_sha256,
            "body_length": body_length,
        }
    )


def _quick_request(
    version: Any,
    message_id: Any,
    xroad_id: Any,
    client: Any,
    service: Any,
    method: Any,
    path: Any,
    query: Any,
    headers: Any,
    user_id: Any,
    issue: Any,
    created: Any,
    body_sha256: Any,
    body_length: Any,
    represented_party: Any,
) -> bytes | None:
    """``request_json`` written as one string, or None unless every field has its
    declared type."""
    pairs = _pairs(headers)
    user = _optional(user_id)
    ticket = _optional(issue)
    party = "" if represented_party is None else _optional(represented_party)
    if (
        pairs is not None
        and user is not None
        and ticket is not None
        and party is not None
        and _int(body_length)
        and _int(version)
        and type(message_id) is _str
        and type(xroad_id) is _str
        and type(client) is _str
        and type(service) is _str
        and type(method) is _str
        and type(path) is _str
        and type(query) is _str
        and type(created) is _str
        and type(body_sha256) is _str
    ):
        if party:
            party = f',"represented_party":{party}'
        q = encode_basestring
        return (
            f'{{"body_length":{body_length},"body_sha256":{q(body_sha256)},'
            f'"client":{q(client)},"created":{q(created)},"headers":{pairs},'
            f'"id":{q(message_id)},"issue":{ticket},"method":{q(method)},'
            f'"path":{q(path)},"query":{q(query)}{party},"service":{q(service)},'
            f'"type":"request","user_id":{user},"v":{version},"xroad_id":{q(xroad_id)}}}'
        ).encode()
    return None


def response_json(
    version: int,
    message_id: Any,
    xroad_id: Any,
    client: str,
    service: str,
    request_hash: Any,
    status: Any,
    headers: Any,
    created: Any,
    body_sha256: Any,
    body_length: Any,
) -> bytes:
    """A response header's canonical bytes."""
    quick = _quick_response(
        version,
        message_id,
        xroad_id,
        client,
        service,
        request_hash,
        status,
        headers,
        created,
        body_sha256,
        body_length,
    )
    if quick is not None:
        return quick
    return canonical_json(
        {
            "v": version,
            "type": "response",
            "id": message_id,
            "xroad_id": xroad_id,
            "client": client,
            "service": service,
            "request_hash": request_hash,
            "status": status,
            "headers": [list(h) for h in headers],
            "created": created,
            "body_sha256": body_sha256,
            "body_length": body_length,
        }
    )


def _quick_response(
    version: Any,
    message_id: Any,
    xroad_id: Any,
    client: Any,
    service: Any,
    request_hash: Any,
    status: Any,
    headers: Any,
    created: Any,
    body_sha256: Any,
    body_length: Any,
) -> bytes | None:
    """``response_json`` written as one string, or None unless every field has its
    declared type."""
    pairs = _pairs(headers)
    if (
        pairs is not None
        and _int(status)
        and _int(body_length)
        and _int(version)
        and type(message_id) is _str
        and type(xroad_id) is _str
        and type(client) is _str
        and type(service) is _str
        and type(request_hash) is _str
        and type(created) is _str
        and type(body_sha256) is _str
    ):
        q = encode_basestring
        return (
            f'{{"body_length":{body_length},"body_sha256":{q(body_sha256)},'
            f'"client":{q(client)},"created":{q(created)},"headers":{pairs},'
            f'"id":{q(message_id)},"request_hash":{q(request_hash)},'
            f'"service":{q(service)},"status":{status},"type":"response",'
            f'"v":{version},"xroad_id":{q(xroad_id)}}}'
        ).encode()
    return None
