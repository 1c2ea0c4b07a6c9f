"""The management API's changes: subsystems, services, access rights, local groups.

Each change is one call of ``SettingsManager.change`` with a pure mutation of
:mod:`gateway.node.settings.mutations`: validated, written to the log as an admin
record together with the new settings version, and only then in force (ADR 0030). The
answer carries the new state of what was changed, the settings version and the admin
record's log entry id. The actor is the key (``key:<id>:<name>``), never a header.

Identifiers in a path are written with ``:`` between their parts, as X-Road's REST API
writes them (``DE-NRW:GOV:05974040:gewerbeamt``): no part may contain ``:`` or ``/``, so
the form is unambiguous and needs no percent-encoding. A local group is its owner
subsystem and its code (``DE-NRW:GOV:05974040:gewerbeamt:pruefer``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from gateway.core.errors import AdminCode, AdminError
from gateway.core.roles import NodePermission
from gateway.node.adminapi import PREFIX, ApiRoute, json_body
from gateway.node.apikeys import KeyHolder
from gateway.node.clientauth import ConnectionType
from gateway.node.config import Endpoint
from gateway.node.servicedesc import config_endpoints, diff_endpoints, fetch_description
from gateway.node.settings import mutations as m
from gateway.node.settings.errors import SettingsCode, SettingsError
from gateway.node.settings.manager import ChangeResult, SettingsManager
from gateway.node.settings.model import NodeSettings

DESCRIPTION_TIMEOUT = 30.0
"""How long fetching a service's OpenAPI document may take."""
DESCRIPTION_MAX_BYTES = 4 * 1024 * 1024
"""The largest OpenAPI document the node reads."""


def config_endpoints_of(endpoints: list[dict[str, Any]]) -> list[Endpoint]:
    return [Endpoint(**e) for e in endpoints]


_STATUS_OF: dict[SettingsCode, AdminCode] = {
    SettingsCode.INVALID: AdminCode.INVALID,
    SettingsCode.TLS: AdminCode.INVALID,
    SettingsCode.DUPLICATE: AdminCode.CONFLICT,
    SettingsCode.IN_USE: AdminCode.CONFLICT,
    SettingsCode.UNKNOWN_CLIENT: AdminCode.NOT_FOUND,
    SettingsCode.UNKNOWN_SERVICE: AdminCode.NOT_FOUND,
    SettingsCode.UNKNOWN_LOCAL_GROUP: AdminCode.NOT_FOUND,
    SettingsCode.UNKNOWN_ACCESS: AdminCode.NOT_FOUND,
    SettingsCode.UNKNOWN_MEMBER: AdminCode.NOT_FOUND,
    SettingsCode.PERSIST_FAILED: AdminCode.UNAVAILABLE,
    SettingsCode.CONFLICT: AdminCode.CONFLICT,
}
"""A refused settings change as the API answers it; the settings code is the reason."""

Mutation = Callable[[NodeSettings], NodeSettings]

ID_PARAM = "Parts joined with ':' (DE-NRW:GOV:05974040:gewerbeamt)."


def path_id(text: str) -> str:
    """An identifier from a path segment (``:`` between parts) in its usual form."""
    if "/" in text or ":" not in text:
        raise AdminError(AdminCode.INVALID, f"{text!r} is not an identifier with ':' between parts")
    return text.replace(":", "/")


def _string(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise AdminError(AdminCode.INVALID, f"{name} must be a non-empty string")
    return value


def _strings(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AdminError(AdminCode.INVALID, f"{name} must be a list of strings")
    return list(value)


def _connection_type(body: dict[str, Any]) -> ConnectionType:
    text = _string(body, "connection_type")
    try:
        return ConnectionType(str(text))
    except ValueError:
        kinds = ", ".join(c.value for c in ConnectionType)
        raise AdminError(AdminCode.INVALID, f"connection_type must be one of {kinds}") from None


def _grant(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The service and the subject, methods and paths of an access right in ``body``."""
    service = _string(body, "service")
    assert service is not None
    subjects = {k: _string(body, k, required=False) for k in ("client", "group", "local_group")}
    if sum(v is not None for v in subjects.values()) != 1:
        raise AdminError(AdminCode.INVALID, "name exactly one of client, group, local_group")
    return service, {
        **subjects,
        "methods": _strings(body, "methods"),
        "paths": _strings(body, "paths"),
    }


SERVICE_BODY: dict[str, Any] = {
    "type": "object",
    "description": "A [[services]] entry of node.toml: id, url, timeout_seconds, enabled, "
    "openapi_url, endpoints, require_issue, require_user_id, TLS settings.",
    "required": ["id", "url"],
}
ACCESS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["service"],
    "description": "The service and exactly one of client, group, local_group; methods and "
    "paths limit the right to endpoints.",
    "properties": {k: {"type": "string"} for k in ("service", "client", "group", "local_group")}
    | {"methods": {"type": "array"}, "paths": {"type": "array"}},
}


class ChangeApi:
    """The routes that read and change the node's settings."""

    def __init__(self, manager: SettingsManager) -> None:
        self._manager = manager

    def routes(self) -> list[ApiRoute]:
        read = NodePermission.READ
        sub, svc = f"{PREFIX}/subsystems", f"{PREFIX}/services"
        acc, grp = f"{PREFIX}/access", f"{PREFIX}/local-groups"
        return [
            ApiRoute(
                "GET",
                sub,
                read,
                "Hosted subsystems and their connection types.",
                self.subsystems,
                tags=("subsystems",),
            ),
            ApiRoute(
                "POST",
                sub,
                NodePermission.CLIENTS_WRITE,
                "Add a hosted subsystem.",
                self.add_subsystem,
                body={"type": "object", "required": ["id"]},
                tags=("subsystems",),
            ),
            ApiRoute(
                "DELETE",
                sub + "/{subsystem}",
                NodePermission.CLIENTS_WRITE,
                "Remove a hosted subsystem.",
                self.remove_subsystem,
                tags=("subsystems",),
            ),
            ApiRoute(
                "PUT",
                sub + "/{subsystem}/connection-type",
                NodePermission.CONNECTION_WRITE,
                "Set a subsystem's connection type (http, https, https-no-auth).",
                self.connection_type,
                body={"type": "object", "required": ["connection_type"]},
                tags=("subsystems",),
            ),
            ApiRoute("GET", svc, read, "Provided services.", self.services, tags=("services",)),
            ApiRoute(
                "POST",
                svc,
                NodePermission.SERVICES_WRITE,
                "Provide a service.",
                self.add_service,
                body=SERVICE_BODY,
                tags=("services",),
            ),
            ApiRoute(
                "PATCH",
                svc + "/{service}",
                NodePermission.SERVICES_WRITE,
                'Change fields of a service; {"enabled": false} disables it.',
                self.update_service,
                body={"type": "object"},
                tags=("services",),
            ),
            ApiRoute(
                "POST",
                svc + "/{service}/refresh",
                NodePermission.SERVICES_WRITE,
                "Refetch the service's description (openapi_url) and set its endpoints to "
                "the operations it lists; the answer names those added and removed.",
                self.refresh_service,
                tags=("services",),
            ),
            ApiRoute(
                "DELETE",
                svc + "/{service}",
                NodePermission.SERVICES_WRITE,
                "Stop providing a service (its access rights go with it).",
                self.remove_service,
                tags=("services",),
            ),
            ApiRoute(
                "POST",
                svc + "/{service}/endpoints",
                NodePermission.SERVICES_WRITE,
                "Add an endpoint (method and path) to a service.",
                self.add_endpoint,
                body={"type": "object", "required": ["method", "path"]},
                tags=("services",),
            ),
            ApiRoute(
                "DELETE",
                svc + "/{service}/endpoints",
                NodePermission.SERVICES_WRITE,
                "Remove an endpoint (method and path in the body) from a service.",
                self.remove_endpoint,
                body={"type": "object", "required": ["method", "path"]},
                tags=("services",),
            ),
            ApiRoute("GET", acc, read, "Access rights.", self.access, tags=("access",)),
            ApiRoute(
                "POST",
                acc,
                NodePermission.ACCESS_WRITE,
                "Grant an access right.",
                self.grant,
                body=ACCESS_BODY,
                tags=("access",),
            ),
            ApiRoute(
                "DELETE",
                acc,
                NodePermission.ACCESS_WRITE,
                "Revoke the access right the body names (as granted).",
                self.revoke,
                body=ACCESS_BODY,
                tags=("access",),
            ),
            ApiRoute(
                "GET",
                grp,
                read,
                "Local groups and their members.",
                self.groups,
                tags=("local groups",),
            ),
            ApiRoute(
                "POST",
                grp,
                NodePermission.GROUPS_WRITE,
                "Add a local group of a hosted subsystem.",
                self.add_group,
                body={"type": "object", "required": ["owner", "code"]},
                tags=("local groups",),
            ),
            ApiRoute(
                "DELETE",
                grp + "/{group}",
                NodePermission.GROUPS_WRITE,
                "Remove a local group no access right names.",
                self.remove_group,
                tags=("local groups",),
            ),
            ApiRoute(
                "POST",
                grp + "/{group}/members",
                NodePermission.GROUPS_WRITE,
                'Add members ({"members": [...]}).',
                self.add_members,
                body={"type": "object", "required": ["members"]},
                tags=("local groups",),
            ),
            ApiRoute(
                "DELETE",
                grp + "/{group}/members",
                NodePermission.GROUPS_WRITE,
                'Remove members ({"members": [...]}).',
                self.remove_members,
                body={"type": "object", "required": ["members"]},
                tags=("local groups",),
            ),
        ]

    # ------------------------------------------------------------------ the one path

    def _section(self, name: str) -> list[Any]:
        document = self._manager.current.settings.to_document()
        section: list[Any] = document.get(name, [])
        return section

    async def _change(
        self,
        holder: KeyHolder,
        action: str,
        target: str,
        mutate: Mutation,
        section: str,
        **extra: Any,
    ) -> web.Response:
        """One change through the manager; the answer is the changed ``section`` as it
        now is, the version, what changed, the audit entry, and ``extra``."""
        try:
            result: ChangeResult = await self._manager.change(
                actor=holder.actor, role=holder.role, action=action, target=target, mutate=mutate
            )
        except SettingsError as exc:
            raise AdminError(_STATUS_OF.get(exc.code, AdminCode.INVALID), str(exc)) from None
        return web.json_response(
            {
                "action": action,
                "target": target,
                "version": result.version,
                "entry_id": result.entry_id,
                "before": result.before,
                "after": result.after,
                section: self._section(section),
                **extra,
            }
        )

    # ------------------------------------------------------------------ subsystems

    async def subsystems(self, request: web.Request, holder: KeyHolder) -> web.Response:
        return web.json_response({"clients": self._section("clients")})

    async def add_subsystem(self, request: web.Request, holder: KeyHolder) -> web.Response:
        body = await json_body(request)
        subsystem = _string(body, "id")
        assert subsystem is not None
        kind = _connection_type(body) if "connection_type" in body else ConnectionType.HTTPS
        return await self._change(
            holder,
            "subsystem.add",
            subsystem,
            lambda s: m.add_subsystem(s, subsystem, kind),
            "clients",
        )

    async def remove_subsystem(self, request: web.Request, holder: KeyHolder) -> web.Response:
        subsystem = path_id(request.match_info["subsystem"])
        return await self._change(
            holder,
            "subsystem.remove",
            subsystem,
            lambda s: m.remove_subsystem(s, subsystem),
            "clients",
        )

    async def connection_type(self, request: web.Request, holder: KeyHolder) -> web.Response:
        subsystem = path_id(request.match_info["subsystem"])
        kind = _connection_type(await json_body(request))
        return await self._change(
            holder,
            "subsystem.connection_type",
            subsystem,
            lambda s: m.set_connection_type(s, subsystem, kind),
            "clients",
        )

    # ------------------------------------------------------------------ services

    async def services(self, request: web.Request, holder: KeyHolder) -> web.Response:
        return web.json_response({"services": self._section("services")})

    async def _describe(self, url: object, service: str) -> list[dict[str, Any]]:
        """The endpoints of the OpenAPI document at ``url``, as a service lists them;
        an ``https://`` document is fetched with the service's registry TLS settings."""
        if not isinstance(url, str) or not url:
            raise AdminError(AdminCode.INVALID, f"{service} has no openapi_url to describe it")
        tls = None
        if url.startswith("https://"):
            for sid, context in self._manager.current.registry_tls.items():
                if str(sid) == service:
                    tls = context
        description = await fetch_description(
            url, timeout=DESCRIPTION_TIMEOUT, max_bytes=DESCRIPTION_MAX_BYTES, ssl=tls
        )
        return [e.model_dump() for e in config_endpoints(description)]

    async def add_service(self, request: web.Request, holder: KeyHolder) -> web.Response:
        body = await json_body(request)
        target = str(body.get("id", ""))
        from_openapi = body.pop("from_openapi", False)
        if not isinstance(from_openapi, bool):
            raise AdminError(AdminCode.INVALID, "from_openapi must be true or false")
        if from_openapi:
            # X-Road's REST service description: the endpoints come from the document.
            body["endpoints"] = await self._describe(body.get("openapi_url"), target)
        return await self._change(
            holder, "service.add", target, lambda s: m.add_service(s, body), "services"
        )

    async def update_service(self, request: web.Request, holder: KeyHolder) -> web.Response:
        service = path_id(request.match_info["service"])
        changes = await json_body(request)
        if not changes:
            raise AdminError(AdminCode.INVALID, "name at least one field to change")
        unknown = sorted(set(changes) - m.SERVICE_FIELDS)
        if unknown:
            raise AdminError(AdminCode.INVALID, f"no such service field: {', '.join(unknown)}")
        action = "service.update"
        if set(changes) == {"enabled"} and isinstance(changes["enabled"], bool):
            action = "service.enable" if changes["enabled"] else "service.disable"
        return await self._change(
            holder, action, service, lambda s: m.update_service(s, service, **changes), "services"
        )

    async def refresh_service(self, request: web.Request, holder: KeyHolder) -> web.Response:
        service = path_id(request.match_info["service"])
        section = self._manager.current.settings.service(service)
        if section is None:
            raise AdminError(AdminCode.NOT_FOUND, f"{service} is not provided here")
        endpoints = await self._describe(section.openapi_url, service)
        diff = diff_endpoints(section.endpoints, config_endpoints_of(endpoints))
        return await self._change(
            holder,
            "service.refresh",
            service,
            lambda s: m.update_service(s, service, endpoints=endpoints),
            "services",
            added=[asdict(e) for e in diff.added],
            removed=[asdict(e) for e in diff.removed],
        )

    async def remove_service(self, request: web.Request, holder: KeyHolder) -> web.Response:
        service = path_id(request.match_info["service"])
        return await self._change(
            holder, "service.remove", service, lambda s: m.remove_service(s, service), "services"
        )

    async def _endpoint(self, request: web.Request) -> tuple[str, str, str]:
        body = await json_body(request)
        method, path = _string(body, "method"), _string(body, "path")
        assert method is not None and path is not None
        return path_id(request.match_info["service"]), method, path

    async def add_endpoint(self, request: web.Request, holder: KeyHolder) -> web.Response:
        service, method, path = await self._endpoint(request)
        return await self._change(
            holder,
            "service.endpoint.add",
            service,
            lambda s: m.add_endpoint(s, service, method, path),
            "services",
        )

    async def remove_endpoint(self, request: web.Request, holder: KeyHolder) -> web.Response:
        service, method, path = await self._endpoint(request)
        return await self._change(
            holder,
            "service.endpoint.remove",
            service,
            lambda s: m.remove_endpoint(s, service, method, path),
            "services",
        )

    # ------------------------------------------------------------------ access rights

    async def access(self, request: web.Request, holder: KeyHolder) -> web.Response:
        return web.json_response({"access": self._section("access")})

    async def grant(self, request: web.Request, holder: KeyHolder) -> web.Response:
        service, fields = _grant(await json_body(request))
        return await self._change(
            holder,
            "access.grant",
            service,
            lambda s: m.grant_access(s, service, **fields),
            "access",
        )

    async def revoke(self, request: web.Request, holder: KeyHolder) -> web.Response:
        service, fields = _grant(await json_body(request))
        return await self._change(
            holder,
            "access.revoke",
            service,
            lambda s: m.revoke_access(s, service, **fields),
            "access",
        )

    # ------------------------------------------------------------------ local groups

    async def groups(self, request: web.Request, holder: KeyHolder) -> web.Response:
        return web.json_response({"local_groups": self._section("local_groups")})

    @staticmethod
    def _group_of(request: web.Request) -> tuple[str, str]:
        """The owner (a subsystem: four parts) and the code (the rest, which may hold
        ``:`` itself) of a local group in the path."""
        parts = request.match_info["group"].split(":", 4)
        if len(parts) != 5 or "/" in request.match_info["group"]:
            raise AdminError(
                AdminCode.INVALID, "a local group is INSTANCE:CLASS:MEMBER:SUBSYSTEM:CODE"
            )
        return "/".join(parts[:4]), parts[4]

    async def add_group(self, request: web.Request, holder: KeyHolder) -> web.Response:
        body = await json_body(request)
        owner, code = _string(body, "owner"), _string(body, "code")
        assert owner is not None and code is not None
        description = _string(body, "description", required=False) or ""
        members = _strings(body, "members") or []
        return await self._change(
            holder,
            "local_group.add",
            f"{owner}/{code}",
            lambda s: m.add_local_group(s, owner, code, description, members),
            "local_groups",
        )

    async def remove_group(self, request: web.Request, holder: KeyHolder) -> web.Response:
        owner, code = self._group_of(request)
        return await self._change(
            holder,
            "local_group.remove",
            f"{owner}/{code}",
            lambda s: m.remove_local_group(s, owner, code),
            "local_groups",
        )

    async def _members(self, request: web.Request) -> tuple[str, str, list[str]]:
        owner, code = self._group_of(request)
        members = _strings(await json_body(request), "members")
        if not members:
            raise AdminError(AdminCode.INVALID, "members must be a non-empty list of client ids")
        return owner, code, members

    async def add_members(self, request: web.Request, holder: KeyHolder) -> web.Response:
        owner, code, members = await self._members(request)
        return await self._change(
            holder,
            "local_group.members.add",
            f"{owner}/{code}",
            lambda s: m.add_local_group_members(s, owner, code, members),
            "local_groups",
        )

    async def remove_members(self, request: web.Request, holder: KeyHolder) -> web.Response:
        owner, code, members = await self._members(request)
        return await self._change(
            holder,
            "local_group.members.remove",
            f"{owner}/{code}",
            lambda s: m.remove_local_group_members(s, owner, code, members),
            "local_groups",
        )
