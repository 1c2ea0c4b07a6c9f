"""Pure changes of :class:`NodeSettings`, for the management API and the CLI.

Each function takes the settings in force and returns new ones, or raises a
:class:`SettingsError` whose code says what was wrong with the change (an unknown
service, a duplicate, ...). They are meant as the ``mutate`` argument of
``SettingsManager.change`` (e.g. ``lambda s: grant_access(s, service, client=c)``), so a
change is computed from the version it replaces, under the manager's lock, and a
refused one changes nothing. The new settings are checked as a whole as well
(``NodeSettings.__post_init__``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from gateway.core.ids import InvalidIdentifierError, ServiceId, SubsystemId, parse_client
from gateway.messagelog.tracker import FIND_USAGE
from gateway.node.clientauth import ConnectionType
from gateway.node.config import AccessSection, ClientSection, Endpoint, ServiceSection
from gateway.node.localgroup import LocalGroupSection
from gateway.node.settings.errors import SettingsCode, SettingsError
from gateway.node.settings.model import NodeSettings, section_of

SettingsChange = Callable[[NodeSettings], NodeSettings]
"""What ``SettingsManager.change`` applies: the settings in force to the new ones."""

SERVICE_FIELDS = frozenset(ServiceSection.model_fields) - {"id"}
"""What ``update_service`` may change."""


def _subsystem(text: str) -> str:
    try:
        return str(SubsystemId.parse(text))
    except InvalidIdentifierError as exc:
        raise SettingsError(SettingsCode.INVALID, exc.message) from None


def _service_id(text: str) -> str:
    try:
        return str(ServiceId.parse(text))
    except InvalidIdentifierError as exc:
        raise SettingsError(SettingsCode.INVALID, exc.message) from None


# ---------------------------------------------------------------------- clients


def add_subsystem(
    settings: NodeSettings, subsystem: str, connection_type: ConnectionType = ConnectionType.HTTPS
) -> NodeSettings:
    """List a hosted subsystem with its connection type."""
    subsystem = _subsystem(subsystem)
    if any(c.id == subsystem for c in settings.clients):
        raise SettingsError(SettingsCode.DUPLICATE, f"{subsystem} is already a client")
    entry = ClientSection(id=subsystem, connection_type=connection_type)
    return replace(settings, clients=(*settings.clients, entry))


def remove_subsystem(settings: NodeSettings, subsystem: str) -> NodeSettings:
    """Forget a subsystem's entry (its information systems then connect as ``https``)."""
    subsystem = _subsystem(subsystem)
    kept = tuple(c for c in settings.clients if c.id != subsystem)
    if len(kept) == len(settings.clients):
        raise SettingsError(SettingsCode.UNKNOWN_CLIENT, f"{subsystem} is not a client")
    return replace(settings, clients=kept)


def set_connection_type(
    settings: NodeSettings, subsystem: str, connection_type: ConnectionType
) -> NodeSettings:
    """Change how a listed subsystem's information systems must connect."""
    subsystem = _subsystem(subsystem)
    if not any(c.id == subsystem for c in settings.clients):
        raise SettingsError(SettingsCode.UNKNOWN_CLIENT, f"{subsystem} is not a client")
    clients = tuple(
        ClientSection(id=c.id, connection_type=connection_type) if c.id == subsystem else c
        for c in settings.clients
    )
    return replace(settings, clients=clients)


# ---------------------------------------------------------------------- services


def add_service(settings: NodeSettings, fields: Mapping[str, Any]) -> NodeSettings:
    """Provide a new service; ``fields`` are a ``[[services]]`` entry's."""
    section: ServiceSection = section_of(ServiceSection, fields)
    if settings.service(section.id) is not None:
        raise SettingsError(SettingsCode.DUPLICATE, f"{section.id} is already provided")
    return replace(settings, services=(*settings.services, section))


def _existing(settings: NodeSettings, service: str) -> ServiceSection:
    service = _service_id(service)
    section = settings.service(service)
    if section is None:
        raise SettingsError(SettingsCode.UNKNOWN_SERVICE, f"{service} is not provided here")
    return section


def remove_service(settings: NodeSettings, service: str) -> NodeSettings:
    """Stop providing a service; its access rights go with it, so a service added
    later under the same id starts with none."""
    section = _existing(settings, service)
    return replace(
        settings,
        services=tuple(s for s in settings.services if s.id != section.id),
        access=tuple(a for a in settings.access if a.service != section.id),
    )


def update_service(settings: NodeSettings, service: str, **changes: Any) -> NodeSettings:
    """Change fields of a service (url, timeout_seconds, enabled, openapi_url,
    endpoints, require_issue, require_user_id, the TLS settings); the result is
    validated as a whole, as ``node.toml`` would be."""
    section = _existing(settings, service)
    unknown = set(changes) - SERVICE_FIELDS
    if unknown:
        raise SettingsError(
            SettingsCode.INVALID, f"a service has no field(s) {', '.join(sorted(unknown))}"
        )
    fields = {**section.model_dump(), **changes}
    updated: ServiceSection = section_of(ServiceSection, fields)
    services = tuple(updated if s.id == section.id else s for s in settings.services)
    return replace(settings, services=services)


def enable_service(settings: NodeSettings, service: str) -> NodeSettings:
    return update_service(settings, service, enabled=True)


def disable_service(settings: NodeSettings, service: str) -> NodeSettings:
    """Refuse the service's calls (``server.serverproxy.service_disabled``), rights kept."""
    return update_service(settings, service, enabled=False)


def set_service_url(settings: NodeSettings, service: str, url: str) -> NodeSettings:
    return update_service(settings, service, url=url)


def set_service_timeout(settings: NodeSettings, service: str, seconds: float) -> NodeSettings:
    return update_service(settings, service, timeout_seconds=seconds)


def set_purpose_binding(
    settings: NodeSettings,
    service: str,
    *,
    require_issue: bool | None = None,
    require_user_id: bool | None = None,
) -> NodeSettings:
    """Require (or stop requiring) ``X-Road-Issue`` / ``X-Road-UserId`` on a service."""
    changes: dict[str, Any] = {}
    if require_issue is not None:
        changes["require_issue"] = require_issue
    if require_user_id is not None:
        changes["require_user_id"] = require_user_id
    return update_service(settings, service, **changes)


def add_endpoint(settings: NodeSettings, service: str, method: str, path: str) -> NodeSettings:
    section = _existing(settings, service)
    endpoint: Endpoint = section_of(Endpoint, {"method": method.upper(), "path": path})
    if endpoint in section.endpoints:
        raise SettingsError(
            SettingsCode.DUPLICATE, f"{section.id} already lists {endpoint.method} {path}"
        )
    endpoints = [e.model_dump() for e in (*section.endpoints, endpoint)]
    return update_service(settings, service, endpoints=endpoints)


def remove_endpoint(settings: NodeSettings, service: str, method: str, path: str) -> NodeSettings:
    section = _existing(settings, service)
    kept = [e for e in section.endpoints if (e.method, e.path) != (method.upper(), path)]
    if len(kept) == len(section.endpoints):
        raise SettingsError(
            SettingsCode.INVALID, f"{section.id} lists no endpoint {method.upper()} {path}"
        )
    return update_service(settings, service, endpoints=[e.model_dump() for e in kept])


# ---------------------------------------------------------------------- access rights


def _access(
    settings: NodeSettings,
    service: str,
    client: str | None,
    group: str | None,
    local_group: str | None,
    methods: Iterable[str] | None,
    paths: Iterable[str] | None,
) -> AccessSection:
    service = _service_id(service)
    if settings.service(service) is None and ServiceId.parse(service).service_code != FIND_USAGE:
        raise SettingsError(SettingsCode.UNKNOWN_SERVICE, f"{service} is not provided here")
    if client is not None:
        try:
            client = str(parse_client(client))
        except InvalidIdentifierError as exc:
            raise SettingsError(SettingsCode.INVALID, exc.message) from None
    access: AccessSection = section_of(
        AccessSection,
        {
            "service": service,
            "client": client,
            "group": group,
            "local_group": local_group,
            "methods": None if methods is None else sorted({m.upper() for m in methods}),
            "paths": None if paths is None else list(paths),
        },
    )
    try:
        access.grant()
    except ValueError as exc:
        raise SettingsError(SettingsCode.INVALID, str(exc)) from None
    return access


def grant_access(
    settings: NodeSettings,
    service: str,
    *,
    client: str | None = None,
    group: str | None = None,
    local_group: str | None = None,
    methods: Iterable[str] | None = None,
    paths: Iterable[str] | None = None,
) -> NodeSettings:
    """Grant one client, global group or local group (of the service's subsystem) the
    service, or only some methods and paths of it (endpoint level)."""
    access = _access(settings, service, client, group, local_group, methods, paths)
    if access in settings.access:
        raise SettingsError(SettingsCode.DUPLICATE, f"this access right on {service} exists")
    return replace(settings, access=(*settings.access, access))


def revoke_access(
    settings: NodeSettings,
    service: str,
    *,
    client: str | None = None,
    group: str | None = None,
    local_group: str | None = None,
    methods: Iterable[str] | None = None,
    paths: Iterable[str] | None = None,
) -> NodeSettings:
    """Take back exactly the access right ``grant_access`` with the same arguments gave."""
    access = _access(settings, service, client, group, local_group, methods, paths)
    kept = tuple(a for a in settings.access if a != access)
    if len(kept) == len(settings.access):
        raise SettingsError(SettingsCode.UNKNOWN_ACCESS, f"no such access right on {service}")
    return replace(settings, access=kept)


def revoke_all_access(settings: NodeSettings, service: str, *, client: str) -> NodeSettings:
    """Take back every access right naming ``client`` directly on ``service``, whatever
    methods and paths each narrows to."""
    service = _service_id(service)
    try:
        client = str(parse_client(client))
    except InvalidIdentifierError as exc:
        raise SettingsError(SettingsCode.INVALID, exc.message) from None
    kept = tuple(a for a in settings.access if not (a.service == service and a.client == client))
    if len(kept) == len(settings.access):
        raise SettingsError(
            SettingsCode.UNKNOWN_ACCESS, f"{client} has no access right on {service}"
        )
    return replace(settings, access=kept)


# ---------------------------------------------------------------------- local groups


def _group(settings: NodeSettings, owner: str, code: str) -> LocalGroupSection:
    owner = _subsystem(owner)
    for group in settings.local_groups:
        if group.owner == owner and group.code == code:
            return group
    raise SettingsError(SettingsCode.UNKNOWN_LOCAL_GROUP, f"{owner} has no local group {code!r}")


def _replace_group(settings: NodeSettings, old: LocalGroupSection, **changes: Any) -> NodeSettings:
    new: LocalGroupSection = section_of(LocalGroupSection, {**old.model_dump(), **changes})
    groups = tuple(new if g is old else g for g in settings.local_groups)
    return replace(settings, local_groups=groups)


def add_local_group(
    settings: NodeSettings,
    owner: str,
    code: str,
    description: str = "",
    members: Iterable[str] = (),
) -> NodeSettings:
    """A new local group of the hosted subsystem ``owner``."""
    owner = _subsystem(owner)
    if any(g.owner == owner and g.code == code for g in settings.local_groups):
        raise SettingsError(SettingsCode.DUPLICATE, f"{owner} already has local group {code!r}")
    fields = {"owner": owner, "code": code, "description": description, "members": list(members)}
    group: LocalGroupSection = section_of(LocalGroupSection, fields)
    return replace(settings, local_groups=(*settings.local_groups, group))


def remove_local_group(settings: NodeSettings, owner: str, code: str) -> NodeSettings:
    """Remove a local group no access right names (revoke those first: removing a
    group must not silently take rights away)."""
    group = _group(settings, owner, code)
    users = [
        a.service
        for a in settings.access
        if a.local_group == code and ServiceId.parse(a.service).provider == group.group_id.owner
    ]
    if users:
        raise SettingsError(
            SettingsCode.IN_USE,
            f"local group {code!r} of {owner} is granted {', '.join(sorted(set(users)))}",
        )
    return replace(settings, local_groups=tuple(g for g in settings.local_groups if g is not group))


def set_local_group_description(
    settings: NodeSettings, owner: str, code: str, description: str
) -> NodeSettings:
    return _replace_group(settings, _group(settings, owner, code), description=description)


def add_local_group_members(
    settings: NodeSettings, owner: str, code: str, members: Iterable[str]
) -> NodeSettings:
    group = _group(settings, owner, code)
    added = list(members)
    for member in added:
        if member in group.members:
            raise SettingsError(
                SettingsCode.DUPLICATE, f"{member} is already in local group {code!r}"
            )
    return _replace_group(settings, group, members=[*group.members, *added])


def remove_local_group_members(
    settings: NodeSettings, owner: str, code: str, members: Iterable[str]
) -> NodeSettings:
    group = _group(settings, owner, code)
    gone = set(members)
    missing = gone - set(group.members)
    if missing:
        raise SettingsError(
            SettingsCode.UNKNOWN_MEMBER,
            f"{', '.join(sorted(missing))} not in local group {code!r} of {owner}",
        )
    return _replace_group(settings, group, members=[m for m in group.members if m not in gone])
