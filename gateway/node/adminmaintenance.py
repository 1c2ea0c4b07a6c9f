"""``/api/v1/maintenance``: maintenance mode through the management API.

A toggle is an admin record in the node's Merkle log like a settings change, written
before the mode changes: the mode is never entered or left without its durable record.
The mode itself (:class:`~gateway.node.maintenance.Maintenance`) refuses new exchanges
with X-Road's ``maintenance_mode`` code while those in flight finish. It is the node's
on this machine: the toggle writes the node's maintenance file under its lock, and every
process of the node (the workers behind a shared admin port) follows the file within
``WATCH_SECONDS`` (``maintenance_file.py``, docs/adr/0059). The status reads the file
first, so whichever process answers reports the node's state; ``in_flight`` is that
process's own count.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from aiohttp import web

from gateway.core.encoding import format_time
from gateway.core.errors import AdminCode, AdminError
from gateway.core.roles import NodePermission
from gateway.node.adminapi import PREFIX, ApiRoute, json_body, record_admin
from gateway.node.apikeys import KeyHolder
from gateway.node.context import NodeContext
from gateway.node.maintenance_file import MaintenanceRecord

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
        """The node's state, as the maintenance file says now, and this process's
        exchanges in flight (``pid`` tells which process of several answered)."""
        self._ctx.maintenance_watch.sync()
        mode = self._ctx.maintenance
        since = mode.since
        return {
            "enabled": mode.enabled,
            "since": None if since is None else format_time(since),
            "reason": mode.reason or None,
            "in_flight": mode.in_flight,
            "pid": os.getpid(),
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
        watch = ctx.maintenance_watch
        async with self._lock, watch.file.locked():
            before = self._state()
            if before["enabled"] == enabled:
                raise AdminError(
                    AdminCode.CONFLICT,
                    f"maintenance mode is already {'on' if enabled else 'off'}",
                )
            now = ctx.clock.now()
            action = "maintenance.enter" if enabled else "maintenance.leave"
            entry_id = await record_admin(
                ctx,
                holder,
                action,
                str(ctx.id),
                {"enabled": before["enabled"], "reason": before["reason"]},
                {"enabled": enabled, "reason": reason if enabled else None},
            )
            try:
                if enabled:
                    await asyncio.to_thread(watch.file.write, MaintenanceRecord(now, reason))
                else:
                    await asyncio.to_thread(watch.file.clear)
            except OSError as exc:
                raise AdminError(
                    AdminCode.INTERNAL,
                    f"maintenance mode recorded as {action} (entry {entry_id}) but not "
                    f"switched: cannot write {watch.file.path}: {exc}",
                ) from None
            watch.sync()
        return web.json_response(
            {
                "action": action,
                "target": str(ctx.id),
                "entry_id": entry_id,
                "node": str(ctx.id),
                **self._state(),
            }
        )
