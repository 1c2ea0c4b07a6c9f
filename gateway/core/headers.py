"""Which HTTP headers travel end to end, and which stay on one hop.

One rule for both directions, so what a registry sees and what a client sees are
exactly the signed headers. Hop-by-hop headers (RFC 9110 section 7.6.1, plus any named
in ``Connection``), ``Host``, ``User-Agent`` and ``Server`` are dropped as X-Road does;
framing headers are recomputed by each hop; ``X-Road-*`` headers are protocol fields
carried in the signed header's own fields; ``X-Gw-*`` headers belong to the node-to-node
protocol and are never accepted from outside.
"""

from __future__ import annotations

from collections.abc import Iterable

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {"host", "user-agent", "server", "content-length", "date"}
PROTOCOL_PREFIXES = ("x-road-", "x-gw-")


def end_to_end_headers(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers to keep, lower-cased names, in their original order."""
    pairs = [(name.lower(), value) for name, value in items]
    named_in_connection = {
        token.strip().lower()
        for name, value in pairs
        if name == "connection"
        for token in value.split(",")
        if token.strip()
    }
    return [
        (name, value)
        for name, value in pairs
        if name not in NOT_FORWARDED
        and name not in named_in_connection
        and not name.startswith(PROTOCOL_PREFIXES)
    ]
