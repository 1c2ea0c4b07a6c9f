"""The management API's log browser: search the node's message log, download one
exchange's proof bundle.

The bodies are personal data (a Melderegister answer names a person), so the search
never returns them and the plain bundle carries only their SHA-256 (the auditor's
``--no-bodies`` bundle: every signature, inclusion proof and time stamp still
verifies). A bundle with the bodies is its own route needing ``log.bodies``, which
only the system administrator and the security officer hold, as X-Road keeps its
message log to them (docs/node-admin.md, "The log browser").

The search reads through the store's public ``entries`` in pages from a cursor and
filters here: every call reads at most :data:`SCAN_LIMIT` entries, so a search over a
large log is a sequence of bounded calls (``next_after``), never one long scan.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.audit.export import ExportError, Selection, export_bundle
from gateway.core.errors import AdminCode, AdminError
from gateway.core.roles import NodePermission
from gateway.messagelog import (
    LogStoreError,
    StoredEntry,
    configuration_history,
    foreign_versions,
)
from gateway.node.adminapi import PREFIX, ApiRoute
from gateway.node.apikeys import KeyHolder
from gateway.node.context import NodeContext
from gateway.node.monitoring import query_bound

SEARCH_LIMIT = 1000
"""The most entries one search answers with (and its default: 100)."""
SCAN_LIMIT = 20_000
"""The most entries one search reads before it answers with a cursor."""
PAGE = 1000
LOG_QUERY = (
    ("xroad_id", "Only the exchange with this X-Road-Id."),
    ("issue", "Only exchanges made for this case number (X-Road-Issue)."),
    ("client", "Only exchanges of this client subsystem."),
    ("service", "Only exchanges with this service."),
    ("since", "Logged from this RFC 3339 time (inclusive)."),
    ("until", "Logged before this RFC 3339 time (exclusive)."),
    ("after", "Only entries with a larger id (the previous answer's next_after)."),
    ("limit", f"At most this many entries (1 to {SEARCH_LIMIT}; default 100)."),
)


@dataclass(frozen=True, slots=True)
class LogQuery:
    """A search, parsed and checked before any entry is read."""

    xroad_id: str | None
    issue: str | None
    client: str | None
    service: str | None
    since: str | None
    until: str | None
    after: int
    limit: int

    def matches(self, entry: StoredEntry, header: dict[str, Any]) -> bool:
        return (
            (self.xroad_id is None or entry.xroad_id == self.xroad_id)
            and (self.issue is None or header.get("issue") == self.issue)
            and (self.client is None or entry.client == self.client)
            and (self.service is None or entry.service == self.service)
            and (self.since is None or entry.logged_at >= self.since)
            and (self.until is None or entry.logged_at < self.until)
        )


def _count(query: Any, name: str, default: int, top: int) -> int:
    text = query.get(name, str(default))
    if not text.isdigit() or not (name == "after" or int(text) > 0) or int(text) > top:
        low = 0 if name == "after" else 1
        raise AdminError(AdminCode.INVALID, f"{name} must be a whole number {low} to {top}")
    return int(text)


def parse_query(query: Any) -> LogQuery:
    """The search's parameters from a request's query, or ``admin.invalid`` naming the
    malformed one."""
    bounds: dict[str, str | None] = {}
    for name in ("since", "until"):
        value = query.get(name)
        if value is not None:
            try:
                value = query_bound(name, value)
            except ValueError as exc:
                raise AdminError(AdminCode.INVALID, str(exc)) from None
        bounds[name] = value
    texts = {k: query.get(k) or None for k in ("xroad_id", "issue", "client", "service")}
    return LogQuery(
        **texts,
        since=bounds["since"],
        until=bounds["until"],
        after=_count(query, "after", 0, 2**62),
        limit=_count(query, "limit", 100, SEARCH_LIMIT),
    )


def listed(entry: StoredEntry, header: dict[str, Any]) -> dict[str, Any]:
    """One entry as the search shows it: what identifies the exchange, never its body."""
    return {
        "entry_id": entry.id,
        "logged_at": entry.logged_at,
        "role": str(entry.role),
        "kind": str(entry.kind),
        "message_id": entry.message_id,
        "xroad_id": entry.xroad_id,
        "client": entry.client,
        "service": entry.service,
        "issue": header.get("issue"),
        "user_id": header.get("user_id"),
        "body_bytes": len(entry.body) if not entry.body_omitted else None,
        "body_sha256": entry.body_sha256,
        "leaf_index": entry.leaf_index,
    }


def _header(entry: StoredEntry) -> dict[str, Any]:
    try:
        parsed = json.loads(entry.header)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def search(read: Callable[[int, int], list[StoredEntry]], query: LogQuery) -> dict[str, Any]:
    """The entries ``query`` selects, oldest first, reading pages with ``read(after,
    limit)``; ``next_after`` is the cursor to continue from, or None at the log's end."""
    found: list[dict[str, Any]] = []
    after, scanned = query.after, 0
    # The case and user of each request read, by message id: a response's header does
    # not repeat them, and its request is logged in the same commit, just before it.
    purposes: dict[str, dict[str, Any]] = {}
    while scanned < SCAN_LIMIT:
        page = read(after, min(PAGE, SCAN_LIMIT - scanned))
        for entry in page:
            after, scanned = entry.id, scanned + 1
            header = _header(entry)
            if entry.kind == "request":
                purposes[entry.message_id] = {
                    k: header.get(k) for k in ("issue", "user_id") if header.get(k)
                }
            else:
                header = {**purposes.pop(entry.message_id, {}), **header}
            if query.matches(entry, header):
                found.append(listed(entry, header))
                if len(found) == query.limit:
                    return {"entries": found, "next_after": after}
        if len(page) < PAGE:
            return {"entries": found, "next_after": None}
    return {"entries": found, "next_after": after}


class LogApi:
    """``GET /api/v1/log`` and an entry's bundle (with or without bodies)."""

    def __init__(self, context: NodeContext) -> None:
        self._ctx = context

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute(
                "GET",
                f"{PREFIX}/log",
                NodePermission.READ,
                "Search the message log by X-Road-Id, case number, client, service and "
                "time; entries without their bodies, oldest first.",
                self.search,
                query=LOG_QUERY,
                tags=("log",),
            ),
            ApiRoute(
                "GET",
                f"{PREFIX}/log/configurations",
                NodePermission.READ,
                "The global configuration versions the node applied, oldest first: its "
                "own instance's and each federated instance's (expiry, root fingerprint).",
                self.configurations,
                tags=("log",),
            ),
            ApiRoute(
                "GET",
                f"{PREFIX}/log/{{entry_id}}/bundle",
                NodePermission.READ,
                "The audit bundle of the entry's exchange on this node (request and "
                "response), body digests only; gateway audit verify checks it.",
                self.bundle,
                tags=("log",),
            ),
            ApiRoute(
                "GET",
                f"{PREFIX}/log/{{entry_id}}/bundle-with-bodies",
                NodePermission.LOG_BODIES,
                "The same bundle with the message bodies (personal data).",
                self.bundle_with_bodies,
                tags=("log",),
            ),
        ]

    async def search(self, request: web.Request, holder: KeyHolder) -> web.Response:
        query = parse_query(request.query)
        store = self._ctx.log.store

        def read(after: int, limit: int) -> list[StoredEntry]:
            return store.entries(after=after, limit=limit)

        try:
            found = await asyncio.to_thread(search, read, query)
        except LogStoreError as exc:
            raise AdminError(AdminCode.UNAVAILABLE, f"cannot read the log: {exc}") from None
        return web.json_response({"node": str(self._ctx.id), **found})

    async def configurations(self, request: web.Request, holder: KeyHolder) -> web.Response:
        """Which configuration, own and foreign, each entry was logged under: the last
        version of that instance applied before the entry's ``logged_at``."""
        store, location = self._ctx.log.store, self._ctx.config.node.log_location

        def read() -> list[dict[str, object]]:
            return configuration_history(store.configuration_versions(), foreign_versions(location))

        try:
            versions = await asyncio.to_thread(read)
        except LogStoreError as exc:
            raise AdminError(AdminCode.UNAVAILABLE, f"cannot read the log: {exc}") from None
        return web.json_response({"node": str(self._ctx.id), "versions": versions})

    async def bundle(self, request: web.Request, holder: KeyHolder) -> web.StreamResponse:
        return await self._bundle(request, bodies=False)

    async def bundle_with_bodies(
        self, request: web.Request, holder: KeyHolder
    ) -> web.StreamResponse:
        return await self._bundle(request, bodies=True)

    async def _bundle(self, request: web.Request, *, bodies: bool) -> web.StreamResponse:
        text = request.match_info["entry_id"]
        if not text.isdigit():
            raise AdminError(AdminCode.INVALID, f"entry id {text!r} is not a number")
        store = self._ctx.log.store
        now = self._ctx.clock.now()
        try:
            data = await asyncio.to_thread(_export_one, store, int(text), now, bodies)
        except LogStoreError as exc:
            raise AdminError(AdminCode.UNAVAILABLE, f"cannot read the log: {exc}") from None
        return web.Response(
            body=data,
            content_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="entry-{text}.jsonl"'},
        )


def _export_one(store: Any, entry_id: int, now: datetime, bodies: bool) -> bytes:
    """The bundle of ``entry_id``'s exchange; ``admin.not_found`` for no such entry,
    ``admin.conflict`` while no timestamped tree head covers it yet."""
    entry = store.entry(entry_id)
    if entry is None:
        raise AdminError(AdminCode.NOT_FOUND, f"no log entry {entry_id}")
    with tempfile.TemporaryDirectory(prefix="gateway-bundle-") as tmp:
        out = Path(tmp) / "bundle.jsonl"
        try:
            result = export_bundle(
                store, out, Selection(message_id=entry.message_id), now=now, bodies=bodies
            )
        except ExportError as exc:
            raise AdminError(AdminCode.UNAVAILABLE, f"cannot export: {exc}") from None
        if result.entries == 0:
            raise AdminError(
                AdminCode.CONFLICT,
                f"entry {entry_id} is not yet covered by a timestamped tree head; "
                "try again after the next batch",
            )
        return out.read_bytes()
