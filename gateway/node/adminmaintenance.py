"""``/api/v1/maintenance``: maintenance mode through the management API.

A toggle is an admin record in the node's Merkle log like a settings change, written
before the mode changes: the mode is never entered or left without its durable record.
The mode itself (:class:`~gateway.node.maintenance.Maintenance`) refuses new exchanges
with X-Road's ``maintenance_mode`` code while those in flight finish.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gateway.core.adminrecord import AdminRecord
from gateway.core.encoding import format_time
from gateway.core.errors import AdminCode, AdminError
from gateway.core.roles import NodePermission
from gateway.messagelog import MessageLogError
from gateway.node.adminapi import PREFIX, ApiRoute, json_body
from gateway.node.apikeys import KeyHolder
from gateway.node.context import NodeContext

MAINTENANCE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["enabled"],
    "properties": {"enabled": {"type": "boolean"}, "reason": {"type": "string"}},
}


class MaintenanceApi:
    """Read and toggle the node's maintenance mode, one toggle at a time."""

    def __init__(self, context: NodeContext) -> None:
        self._ctx = context
        self._lock = asyncio.Lock()

    def routes(self) -> list[ApiRoute]:
        path = f"{PREFIX}/maintenance"
        return [
            ApiRoute(
                "GET",
                path,
                NodePermission.READ,
                "Whether the node is in maintenance mode, since when, why, and the "
                "exchanges in flight.",
                self.status,
                tags=("maintenance",),
            ),
            ApiRoute(
                "PUT",
                path,
                NodePermission.MAINTENANCE,
                'Enter ({"enabled": true, "reason": ...}) or leave maintenance mode.',
                self.toggle,
                body=MAINTENANCE_BODY,
                tags=("maintenance",),
            ),
        ]

    def _state(self) -> dict[str, Any]:
        mode = self._ctx.maintenance
        since = mode.since
        return {
            "enabled": mode.enabled,
            "since": None if since is None else format_time(since),
            "reason": mode.reason or None,
            "in_flight": mode.in_flight,
        }

    async def status(self, request: web.Request, holder: KeyHolder) -> web.Response:
        return web.json_response({"node": str(self._ctx.id), **self._state()})

    async def toggle(self, request: web.Request, holder: KeyHolder) -> web.Response:
        body = await json_body(request)
        enabled, reason = body.get("enabled"), body.get("reason", "maintenance")
        if not isinstance(enabled, bool):
            raise AdminError(AdminCode.INVALID, "enabled must be true or false")
        if not isinstance(reason, str) or not 0 < len(reason) <= 200:
            raise AdminError(AdminCode.INVALID, "reason must be a text of 1 to 200 characters")
        ctx = self._ctx
        async with self._lock:
            before = self._state()
            if before["enabled"] == enabled:
                raise AdminError(
                    AdminCode.CONFLICT,
                    f"maintenance mode is already {'on' if enabled else 'off'}",
                )
            signer = ctx.signers.get(ctx.id.owner) or next(iter(ctx.signers.values()), None)
            if signer is None:
                raise AdminError(AdminCode.UNAVAILABLE, "the node holds no key to sign the change")
            now = ctx.clock.now()
            after = {"enabled": enabled, "reason": reason if enabled else None}
            record = AdminRecord(
                at=now,
                actor=holder.actor,
                role=holder.role,
                action="maintenance.enter" if enabled else "maintenance.leave",
                target=str(ctx.id),
                before={"enabled": before["enabled"], "reason": before["reason"]},
                after=after,
            )
            try:
                receipt = await ctx.log.append_admin(record, signer)
            except MessageLogError as exc:
                raise AdminError(
                    AdminCode.UNAVAILABLE,
                    f"the change could not be logged, so it was not made: {exc}",
                ) from None
            if enabled:
                ctx.maintenance.enter(reason, now)
            else:
                ctx.maintenance.leave()
        return web.json_response(
            {
                "action": record.action,
                "target": record.target,
                "entry_id": receipt.entry_id,
                "node": str(ctx.id),
                **self._state(),
            }
        )
