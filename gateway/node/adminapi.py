"""The node's management API, ``/api/v1`` on the admin listener: what an operator reads.

Every route names the one permission it needs (:class:`ApiRoute`); the key in
``Authorization: Bearer`` is checked against the node's key store
(:mod:`gateway.node.apikeys`) before the handler runs, so no handler can forget it. The
same table builds the OpenAPI document (:mod:`gateway.node.openapi`), so the document
cannot describe a route the node does not serve or miss one it does. Refusals are
``{"type", "message", "detail"}`` with an ``admin.*`` code (docs/protocol.md 13.2).

The read-only endpoints are here; changes of subsystems, services, access rights and
local groups are in :mod:`gateway.node.adminchanges`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.conf.directory import NodeInfo
from gateway.core.adminrecord import AdminRecord
from gateway.core.encoding import format_time
from gateway.core.errors import AdminCode, AdminError, GatewayError
from gateway.core.ids import MemberId, SubsystemId
from gateway.core.roles import NODE_ROLE_PERMISSIONS, NodePermission, permits
from gateway.messagelog import LogStoreError, MessageLogError
from gateway.node.apikeys import KeyHolder, NodeKeyStore
from gateway.node.context import NodeContext
from gateway.node.health import Health
from gateway.node.monitoring import query_bound
from gateway.node.ocsp import OwnCertificate, OwnStatusUnavailable

log = logging.getLogger("gateway.node.admin")

PREFIX = "/api/v1"
PEER_PROBE_SECONDS = 2.0
"""How long diagnostics waits for a TCP connection to each peer node's port."""

Handler = Callable[[web.Request, KeyHolder], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """One route of the management API: what it needs and how the document describes it."""

    method: str
    path: str
    permission: NodePermission
    summary: str
    handler: Handler
    query: Sequence[tuple[str, str]] = ()
    """Query parameters, (name, description)."""
    body: dict[str, Any] | None = None
    """The JSON schema of the request body, if the route takes one."""
    tags: Sequence[str] = field(default=())


def error_json(err: AdminError) -> web.Response:
    return web.json_response(err.body(), status=err.status)


def authorized(
    store: NodeKeyStore, ctx: NodeContext, route: ApiRoute
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``route``'s handler behind the key check, every refusal answered as JSON."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            holder = store.authenticate(
                request.headers.get("Authorization"), route.permission, ctx.clock.now()
            )
            return await route.handler(request, holder)
        except AdminError as refused:
            log.warning("%s %s refused (%s): %s", ctx.id, request.path, refused.detail, refused)
            return error_json(refused)
        except GatewayError as refused:  # a node function's own documented code
            log.warning("%s %s refused (%s): %s", ctx.id, request.path, refused.detail, refused)
            return web.json_response(refused.body(), status=refused.status)
        except web.HTTPException:
            raise
        except Exception:
            failure = AdminError(AdminCode.INTERNAL, "unexpected error; see the node's log")
            log.exception("%s %s internal error (%s)", ctx.id, request.path, failure.detail)
            return error_json(failure)

    return wrapped


async def json_body(request: web.Request, limit: int = 64 * 1024) -> dict[str, Any]:
    """The request's JSON object, or ``admin.invalid`` saying what is wrong with it."""
    if request.content_length is not None and request.content_length > limit:
        raise AdminError(AdminCode.INVALID, f"the body is larger than {limit} bytes")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise AdminError(AdminCode.INVALID, f"the body is larger than {limit} bytes")
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise AdminError(AdminCode.INVALID, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise AdminError(AdminCode.INVALID, "the body must be a JSON object")
    return body


async def record_admin(
    ctx: NodeContext,
    holder: KeyHolder,
    action: str,
    target: str,
    before: object | None,
    after: object | None,
) -> int:
    """Append one admin record (not a settings change) to the node's log, signed with
    the owner's key, and return its entry id once durable; ``admin.unavailable`` if it
    could not be written."""
    signer = ctx.signers.get(ctx.id.owner) or next(iter(ctx.signers.values()), None)
    if signer is None:
        raise AdminError(AdminCode.UNAVAILABLE, "the node holds no key to sign the record")
    record = AdminRecord(
        at=ctx.clock.now(),
        actor=holder.actor,
        role=holder.role,
        action=action,
        target=target,
        before=before,
        after=after,
    )
    try:
        receipt = await ctx.log.append_admin(record, signer)
    except MessageLogError as exc:
        raise AdminError(AdminCode.UNAVAILABLE, f"the record could not be logged: {exc}") from None
    return receipt.entry_id


def _seconds(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 3)


class ReadApi:
    """The read-only endpoints: diagnostics, certificates, operational data, audit."""

    def __init__(self, context: NodeContext) -> None:
        self._ctx = context
        self._health = Health(context)

    def routes(self) -> list[ApiRoute]:
        read = NodePermission.READ
        return [
            ApiRoute(
                "GET",
                f"{PREFIX}/whoami",
                read,
                "The calling key (never its secret): id, name, role and the permissions "
                "the role holds, so a client can offer only what the key may do.",
                self.whoami,
                tags=("meta",),
            ),
            ApiRoute(
                "GET",
                f"{PREFIX}/diagnostics",
                read,
                "Global configuration, OCSP, timestamping, message log and peers, as the "
                "exchange path sees them now.",
                self.diagnostics,
                tags=("diagnostics",),
            ),
            ApiRoute(
                "GET",
                f"{PREFIX}/certificates",
                read,
                "The node's own authentication and signing certificates with expiry and "
                "OCSP status.",
                self.certificates,
                tags=("certificates",),
            ),
            ApiRoute(
                "GET",
                f"{PREFIX}/operational",
                read,
                "Operational monitoring records of the node's exchanges, oldest first.",
                self.operational,
                query=OPERATIONAL_QUERY,
                tags=("monitoring",),
            ),
            ApiRoute(
                "GET",
                f"{PREFIX}/audit",
                read,
                "The admin audit records (leaves of the node's message log), oldest first.",
                self.audit,
                query=AUDIT_QUERY,
                tags=("audit",),
            ),
        ]

    async def whoami(self, request: web.Request, holder: KeyHolder) -> web.Response:
        held = sorted(
            p.value for p in NodePermission if permits(NODE_ROLE_PERMISSIONS, holder.role, p)
        )
        body = {
            "id": holder.key_id,
            "name": holder.name,
            "role": holder.role,
            "permissions": held,
            "node": str(self._ctx.id),
        }
        return web.json_response(body)

    # ------------------------------------------------------------------ diagnostics

    async def diagnostics(self, request: web.Request, holder: KeyHolder) -> web.Response:
        ctx = self._ctx
        now = ctx.clock.now()
        checks = await self._health.checks()
        source = ctx.globalconf
        globalconf: dict[str, Any] = {"source": "fixed directory"}
        if source is not None:
            current = source.current
            globalconf = {
                "source": "global configuration",
                "serial": current.conf.serial,
                "valid_until": format_time(current.valid_until, "seconds"),
                "age_seconds": _seconds(now, source.last_success),
            }
        backlog = ctx.log.backlog()
        body = {
            "node": str(ctx.id),
            "at": format_time(now),
            "ready": all(c.ok for c in checks),
            "checks": [asdict(c) for c in checks],
            "globalconf": globalconf,
            "ocsp": [self._ocsp(own, now) for own in ctx.own_ocsp.certificates],
            "timestamping": {
                "pending_entries": backlog.pending,
                "tree_size": backlog.tree_size,
                "stamped_size": backlog.stamped_size,
                "last_tree_head_age_seconds": _seconds(now, backlog.last_stamp),
                "oldest_pending_age_seconds": _seconds(now, backlog.oldest_pending),
                "failing": ctx.timestamper.failing,
                "last_error": ctx.timestamper.last_error,
            },
            "messagelog": {"queue_depth": ctx.log.queue_depth},
            "peers": await self._peers(),
        }
        return web.json_response(body)

    def _ocsp(self, own: OwnCertificate, now: datetime) -> dict[str, Any]:
        """One certificate's status as the exchange path would use it now."""
        ctx = self._ctx
        evidence = own.evidence
        try:
            ctx.own_ocsp.evidence(own.cert_ref, now)
            status, detail = "good", None
        except OwnStatusUnavailable as exc:
            status = "revoked" if own.revoked is not None else "unavailable"
            detail = str(exc)
        return {
            "certificate": own.label,
            "status": status,
            "detail": detail,
            "this_update": None if evidence is None else format_time(evidence.this_update),
            "age_seconds": None if evidence is None else _seconds(now, evidence.this_update),
            "fetched_from": own.fetched_from,
            "last_error": own.last_error,
        }

    async def _peers(self) -> list[dict[str, Any]]:
        """Every other node of the directory: whether its peer port accepts a TCP
        connection now (no request is sent)."""
        ctx = self._ctx
        directory = ctx.directory
        found: dict[str, NodeInfo] = {}
        for member in directory.members():
            clients: list[MemberId | SubsystemId] = [member.id, *member.subsystems]
            for client in clients:
                for info in directory.nodes_hosting(client):
                    found.setdefault(str(info.id), info)
        others = [found[k] for k in sorted(found) if found[k].id != ctx.id]

        async def probe(address: str) -> str | None:
            rest = address.split("://", 1)[-1].split("/", 1)[0]
            host, _, port = rest.rpartition(":")
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host.strip("[]"), int(port)), PEER_PROBE_SECONDS
                )
            except (OSError, ValueError, TimeoutError) as exc:
                return str(exc) or type(exc).__name__
            writer.close()
            return None

        failures = await asyncio.gather(*(probe(n.address) for n in others))
        return [
            {"node": str(n.id), "address": n.address, "reachable": error is None, "error": error}
            for n, error in zip(others, failures, strict=True)
        ]

    # ------------------------------------------------------------------ certificates

    async def certificates(self, request: web.Request, holder: KeyHolder) -> web.Response:
        ctx = self._ctx
        now = ctx.clock.now()
        members = {s.cert_ref: str(m) for m, s in ctx.signers.items()}
        listed = []
        for own in ctx.own_ocsp.certificates:
            cert = own.cert
            auth = own.cert_ref == ctx.auth_ref
            not_after = cert.not_valid_after_utc
            listed.append(
                {
                    "role": "authentication" if auth else "signing",
                    "owner": str(ctx.id) if auth else members.get(own.cert_ref),
                    "subject": cert.subject.rfc4514_string(),
                    "issuer": cert.issuer.rfc4514_string(),
                    "serial": format(cert.serial_number, "x"),
                    "sha256": own.cert_ref,
                    "not_before": format_time(cert.not_valid_before_utc, "seconds"),
                    "not_after": format_time(not_after, "seconds"),
                    "days_left": round((not_after - now).total_seconds() / 86_400, 1),
                    "ocsp": self._ocsp(own, now),
                }
            )
        return web.json_response({"node": str(ctx.id), "certificates": listed})

    # ------------------------------------------------------------------ operational data

    async def operational(self, request: web.Request, holder: KeyHolder) -> web.Response:
        """The node's operational records; ``since`` and ``until`` RFC 3339 (``until``
        exclusive), ``client`` one client subsystem."""
        query = request.query
        bounds: dict[str, str | None] = {}
        for name in ("since", "until"):
            value = query.get(name)
            if value is not None:
                try:
                    value = query_bound(name, value)
                except ValueError as exc:
                    raise AdminError(AdminCode.INVALID, str(exc)) from None
            bounds[name] = value
        store = self._ctx.log.store
        try:
            records = await asyncio.to_thread(
                store.operational_records,
                since=bounds["since"],
                until=bounds["until"],
                client=query.get("client"),
            )
        except LogStoreError as exc:
            raise AdminError(AdminCode.UNAVAILABLE, f"cannot read the records: {exc}") from None
        return web.json_response(
            {"node": str(self._ctx.id), "records": [asdict(r) for r in records]}
        )

    # ------------------------------------------------------------------ audit

    async def audit(self, request: web.Request, holder: KeyHolder) -> web.Response:
        """Who changed what, from the log's admin leaves; ``since`` RFC 3339 (inclusive),
        ``limit`` the most to return (default and cap 10 000)."""
        since = request.query.get("since")
        if since is not None:
            try:
                since = query_bound("since", since)
            except ValueError as exc:
                raise AdminError(AdminCode.INVALID, str(exc)) from None
        text = request.query.get("limit", str(AUDIT_LIMIT))
        if not text.isdigit() or not 0 < int(text) <= AUDIT_LIMIT:
            raise AdminError(AdminCode.INVALID, f"limit must be 1 to {AUDIT_LIMIT}")
        try:
            stored = await asyncio.to_thread(self._ctx.log.store.admin_records, since, int(text))
        except LogStoreError as exc:
            raise AdminError(AdminCode.UNAVAILABLE, f"cannot read the records: {exc}") from None
        records = [
            {
                "entry_id": s.entry_id,
                "leaf_index": s.leaf_index,
                "logged_at": s.logged_at,
                "at": format_time(s.record.at),
                "actor": s.record.actor,
                "role": s.record.role,
                "action": s.record.action,
                "target": s.record.target,
                "before": s.record.before,
                "after": s.record.after,
                "cert_ref": s.cert_ref,
            }
            for s in stored
        ]
        return web.json_response({"node": str(self._ctx.id), "records": records})


AUDIT_LIMIT = 10_000
AUDIT_QUERY = (
    ("since", "From this RFC 3339 time (inclusive)."),
    ("limit", f"At most this many records (1 to {AUDIT_LIMIT}, the default)."),
)
OPERATIONAL_QUERY = (
    ("since", "From this RFC 3339 time (inclusive)."),
    ("until", "To this RFC 3339 time (exclusive)."),
    ("client", "Only this client subsystem's records."),
)


KEY_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["name", "role"],
    "properties": {
        "name": {"type": "string"},
        "role": {"type": "string"},
        "expires": {"type": "string", "format": "date-time"},
    },
}


class KeysApi:
    """The node's API keys over the API (the system administrator's): the same store
    ``gateway node keys`` changes offline."""

    def __init__(self, context: NodeContext, store: NodeKeyStore) -> None:
        self._ctx = context
        self._store = store

    def routes(self) -> list[ApiRoute]:
        manage = NodePermission.KEYS_MANAGE
        return [
            ApiRoute(
                "GET", f"{PREFIX}/api-keys", manage, "The API keys.", self.list_keys, tags=("keys",)
            ),
            ApiRoute(
                "POST",
                f"{PREFIX}/api-keys",
                manage,
                "Make an API key; the answer holds its secret, the only time it is shown.",
                self.create,
                body=KEY_BODY,
                tags=("keys",),
            ),
            ApiRoute(
                "DELETE",
                f"{PREFIX}/api-keys/{{key_id}}",
                manage,
                "Revoke an API key from now on.",
                self.revoke,
                tags=("keys",),
            ),
        ]

    async def list_keys(self, request: web.Request, holder: KeyHolder) -> web.Response:
        now = self._ctx.clock.now()
        return web.json_response({"keys": [k.listed(now) for k in self._store.listed()]})

    async def create(self, request: web.Request, holder: KeyHolder) -> web.Response:
        body = await json_body(request)
        name, role, expires = body.get("name"), body.get("role"), body.get("expires")
        if not isinstance(name, str) or not isinstance(role, str):
            raise AdminError(AdminCode.INVALID, "name and role are required strings")
        when = None
        if expires is not None:
            try:
                when = datetime.fromisoformat(str(expires))
            except ValueError:
                raise AdminError(
                    AdminCode.INVALID, f"expires {expires!r} is not RFC 3339"
                ) from None
        now = self._ctx.clock.now()
        row, secret = await asyncio.to_thread(
            self._store.create, holder.actor, name, role, when, now
        )
        listed = row.listed(now)
        entry_id = await record_admin(self._ctx, holder, "api_key.create", row.id, None, listed)
        return web.json_response({**listed, "key": secret, "entry_id": entry_id}, status=201)

    async def revoke(self, request: web.Request, holder: KeyHolder) -> web.Response:
        now = self._ctx.clock.now()
        row = await asyncio.to_thread(self._store.revoke, request.match_info["key_id"], now)
        after = row.listed(now)
        entry_id = await record_admin(
            self._ctx, holder, "api_key.revoke", row.id, {"revoked": None}, {"revoked": row.revoked}
        )
        return web.json_response({**after, "entry_id": entry_id})
