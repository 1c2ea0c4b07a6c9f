"""X-Road's metadata services (docs/protocol.md section 12).

``listClients`` is answered by the consumer's node from its directory; ``listMethods``,
``allowedMethods``, ``getOpenAPI``, the built-in ``findUsage`` and
``getSecurityServerOperationalData`` (``opdata.py``) travel like any service and are
answered by the provider's node: routed here by
:class:`~gateway.node.serverproxy.ServerProxy` after the same signature, freshness and
replay checks as an ordinary service, so they are logged like one.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from gateway.core.envelope import RequestHeader
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ClientId, InvalidIdentifierError, MemberId, ServiceId, SubsystemId
from gateway.messagelog.tracker import FIND_USAGE, check_purpose, required_headers
from gateway.net.http1server import HttpResponse, Request, json_response, text_response
from gateway.node.config import ServiceSection
from gateway.node.context import NodeContext
from gateway.node.opdata import OPDATA_SERVICE, operational_data
from gateway.node.settings.snapshot import SettingsSnapshot
from gateway.node.transport import RegistryClient

METADATA_SERVICES = frozenset(
    {"listMethods", "allowedMethods", "getOpenAPI", FIND_USAGE, OPDATA_SERVICE}
)
"""Service codes a provider's node answers itself, whatever member they are called on."""

Answer = tuple[int, list[tuple[str, str]], bytes]
"""Status, end-to-end headers and body of a service's answer, before it is signed."""


class MetadataServices:
    """Routing of the metadata services, for both sides of a node."""

    def __init__(self, context: NodeContext, registry: RegistryClient) -> None:
        self._ctx = context
        self._registry = registry

    # ------------------------------------------------------------------ consumer side

    async def handle_list_clients(self, request: Request) -> HttpResponse:
        """``listClients``: the instance's members and subsystems, answered locally."""
        directory = self._ctx.directory
        instance = request.query.get("xRoadInstance", directory.instance)
        members: list[dict[str, Any]] = []
        for info in directory.members():
            if info.id.instance != instance:
                continue
            ids: list[MemberId | SubsystemId] = [info.id, *info.subsystems]
            for client in ids:
                entry: dict[str, Any] = {
                    "member_class": client.member_class,
                    "member_code": client.member_code,
                    "object_type": client.object_type,
                    "xroad_instance": client.instance,
                }
                if isinstance(client, SubsystemId):
                    entry["subsystem_code"] = client.subsystem_code
                members.append({"id": entry, "name": info.name})
        accept = request.headers.get("Accept", "")
        if "json" in accept:
            return json_response({"member": members})
        rows = "".join(
            '<member><id object_type="{}">{}</id><name>{}</name></member>'.format(
                m["id"]["object_type"],
                "".join(
                    f"<{k}>{escape(str(v))}</{k}>" for k, v in m["id"].items() if k != "object_type"
                ),
                escape(m["name"]),
            )
            for m in members
        )
        return text_response(f"<clientList>{rows}</clientList>", content_type="application/xml")

    # ------------------------------------------------------------------ provider side

    def authorize(
        self, header: RequestHeader, groups: frozenset[Any], settings: SettingsSnapshot
    ) -> ServiceSection | None:
        """Protocol.md section 9, steps 10a to 10d and the metadata services (section
        12): the section of the service the request may call (for ``getOpenAPI``, the
        described service), or refuse. ``settings`` is the exchange's snapshot."""
        client, service = header.client, header.service
        if service.service_code in METADATA_SERVICES:
            if service.service_code == "getOpenAPI":
                return self._openapi_target(header, client, groups, settings)
            if service.service_code == FIND_USAGE:  # a provider policy, like any service
                settings.policy.check(client, groups, service, header.method, header.path)
            # getSecurityServerOperationalData needs no grant: it answers only the
            # caller's own records (opdata.py).
            return None
        section = settings.services.get(service)
        if section is None:
            raise GatewayError(Code.SP_UNKNOWN_SERVICE, f"{service} is not provided here")
        if not section.enabled:
            raise GatewayError(Code.SP_SERVICE_DISABLED, f"{service} is disabled")
        settings.policy.check(client, groups, service, header.method, header.path)
        check_purpose(section, header)
        return section

    def _openapi_target(
        self,
        header: RequestHeader,
        client: ClientId,
        groups: frozenset[Any],
        settings: SettingsSnapshot,
    ) -> ServiceSection:
        codes = parse_qs(header.query).get("serviceCode", [])
        if len(codes) != 1:
            raise GatewayError(Code.SP_UNKNOWN_SERVICE, "getOpenAPI needs one serviceCode")
        try:
            target = header.service.provider.service(codes[0])
        except InvalidIdentifierError as exc:
            raise GatewayError(Code.SP_UNKNOWN_SERVICE, exc.message) from None
        section = settings.services.get(target)
        if section is None or section.openapi_url is None:
            raise GatewayError(Code.SP_UNKNOWN_SERVICE, f"{target} has no OpenAPI description")
        if not settings.policy.grants_for(client, groups, target):
            raise GatewayError(Code.SP_ACCESS_DENIED, f"{client} has no access right to {target}")
        return section

    async def answer(
        self,
        header: RequestHeader,
        groups: frozenset[Any],
        section: ServiceSection | None,
        settings: SettingsSnapshot,
    ) -> Answer:
        """The answer of the metadata service ``header`` calls (already authorized),
        from the exchange's settings snapshot."""
        ctx = self._ctx
        service, client = header.service, header.client
        json_type = [("content-type", "application/json")]
        if service.service_code == FIND_USAGE:
            return await ctx.tracker.answer(header)
        if service.service_code == OPDATA_SERVICE:
            return await operational_data(ctx.log.store, ctx.id, client, header.query)
        if service.service_code == "getOpenAPI":
            assert section is not None and section.openapi_url is not None
            document = await self._registry.get_json_document(
                section.openapi_url,
                section.timeout_seconds,
                service=section.service_id,
                tls=settings.registry_tls.get(section.service_id),
            )
            return 200, json_type, document
        only_allowed = service.service_code == "allowedMethods"
        listed = []
        for sid, sec in settings.services.items():
            if sid.provider != service.provider:
                continue
            grants = settings.policy.grants_for(client, groups, sid)
            if only_allowed and not grants:
                continue
            endpoints = [{"method": e.method, "path": e.path} for e in sec.endpoints]
            if only_allowed:
                endpoints = [
                    e
                    for e in endpoints
                    if any(
                        g.methods is None or e["method"] == "*" or e["method"] in g.methods
                        for g in grants
                    )
                ]
            required = required_headers(sec)
            listed.append(
                {
                    **({"required_headers": required} if required else {}),
                    "xroad_instance": sid.instance,
                    "member_class": sid.member_class,
                    "member_code": sid.member_code,
                    "subsystem_code": sid.subsystem_code,
                    "service_code": sid.service_code,
                    "object_type": "SERVICE",
                    "service_type": "OPENAPI" if sec.openapi_url else "REST",
                    "endpoint_list": endpoints,
                }
            )
        return 200, json_type, json.dumps({"service": listed}, sort_keys=True).encode()


def is_metadata(service: ServiceId) -> bool:
    """Whether the provider's node answers ``service`` itself."""
    return service.service_code in METADATA_SERVICES
