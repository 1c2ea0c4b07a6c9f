"""``getSecurityServerOperationalData``: a client member's operational records, asked of
the node over the exchange path (X-Road's operational monitoring query).

The owner reads every record on its admin listener (``/operational``); any other client
of the instance may ask a node, through its own node, for the records of the exchanges
it took part in there: those it called (``client`` is the caller) and those that called
its services (the service's provider subsystem is the caller). The node owner's member
and its subsystems see all. The caller is the signed request's client, so it cannot be
claimed; no access right is needed, as in X-Road, because nothing but the caller's own
records is answered.

Both bounds are required (``since`` inclusive, ``until`` exclusive, RFC 3339 with a
zone), and an answer holds at most :data:`MAX_OPDATA_RECORDS` records, oldest first;
``next_records_from`` then says where the next query starts (X-Road's
``nextRecordsFrom``). A record whose time equals that bound may come again in the next
answer; ``message_id`` tells them apart.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Final
from urllib.parse import parse_qs

from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ClientId, InvalidIdentifierError, NodeId, ServiceId
from gateway.messagelog import LogStore, LogStoreError, OpRecord
from gateway.node.monitoring import query_bound

OPDATA_SERVICE: Final = "getSecurityServerOperationalData"
"""The metadata service code (X-Road's name)."""
MAX_OPDATA_RECORDS: Final = 1_000
"""The most records one answer holds; a caller pages on with ``next_records_from``."""


def opdata_bounds(query: str) -> tuple[str, str]:
    """``since`` and ``until`` of the query string, as the log stores times, or refuse
    with ``server.serverproxy.invalid_operational_query``."""
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise GatewayError(
            Code.SP_INVALID_OPERATIONAL_QUERY, "the query string is malformed"
        ) from None
    bounds: list[str] = []
    for name in ("since", "until"):
        values = params.get(name, [])
        if len(values) != 1:
            raise GatewayError(
                Code.SP_INVALID_OPERATIONAL_QUERY,
                f"{OPDATA_SERVICE} needs exactly one {name} (RFC 3339 with a zone)",
            )
        try:
            bounds.append(query_bound(name, values[0]))
        except ValueError as exc:
            raise GatewayError(Code.SP_INVALID_OPERATIONAL_QUERY, str(exc)) from None
    since, until = bounds
    if not since < until:
        raise GatewayError(Code.SP_INVALID_OPERATIONAL_QUERY, "since must be before until")
    return since, until


def sees_all(caller: ClientId, node: NodeId) -> bool:
    """The node owner's member and its subsystems read every record."""
    return caller.member == node.owner


def took_part(record: OpRecord, caller: ClientId) -> bool:
    """Whether ``caller`` called in ``record``'s exchange or provides its service."""
    if record.client == str(caller):
        return True
    try:
        return ServiceId.parse(record.service).provider == caller
    except InvalidIdentifierError:  # a refusal before the service was known
        return False


async def operational_data(
    store: LogStore, node: NodeId, caller: ClientId, query: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """The answer of ``getSecurityServerOperationalData`` for ``caller``: JSON
    ``{"node", "client", "records", "next_records_from"}``."""
    since, until = opdata_bounds(query)
    everything = sees_all(caller, node)
    try:
        rows = await asyncio.to_thread(
            store.operational_records,
            since=since,
            until=until,
            party=None if everything else str(caller),
            limit=MAX_OPDATA_RECORDS + 1,
        )
    except LogStoreError as exc:
        raise GatewayError(Code.SP_INTERNAL_ERROR, f"cannot read the records: {exc}") from None
    # The store selects by text prefix; the exact provider is checked on the identifier.
    records = rows if everything else [r for r in rows if took_part(r, caller)]
    more = len(rows) > MAX_OPDATA_RECORDS
    shown = records[:MAX_OPDATA_RECORDS]
    body = {
        "node": str(node),
        "client": str(caller),
        "records": [asdict(r) for r in shown],
        "next_records_from": rows[MAX_OPDATA_RECORDS].request_in if more else None,
    }
    return 200, [("content-type", "application/json")], json.dumps(body).encode()
