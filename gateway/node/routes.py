"""The route tables of a node's consumer and peer ports, served by the lean server.

Each route's handler is wrapped by :func:`gateway.node.wire.guarded`, so every refusal
is in X-Road's error format; a request line that is not HTTP/1.x is answered by
:func:`gateway.node.wire.version_refusal` and an ``Expect`` other than ``100-continue``
by :func:`gateway.node.wire.expectation_refusal`, before any route runs. The admin port stays
on aiohttp (``gateway/node/admin.py``); docs/adr/0068-lean-http-server-on-the-node-ports.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.core.errors import Code, GatewayError
from gateway.messagelog.auditor import Auditor
from gateway.net.http1server import HttpResponse, Request, Routes, json_response
from gateway.node.clientproxy import ClientProxy
from gateway.node.health import Health
from gateway.node.metadata import MetadataServices
from gateway.node.serverproxy import ServerProxy
from gateway.node.wire import expectation_refusal, guarded, version_refusal


def consumer_routes(
    who: str,
    proxy: ClientProxy,
    metadata: MetadataServices,
    health: Health,
    auditor: Auditor,
    globalconf_status: Callable[[], dict[str, Any] | None],
) -> Routes:
    """The consumer ports (plain and TLS): X-Road REST ``r1``, ``listClients``, health,
    the auditor's local door, and a refusal in X-Road's format for any other path."""
    routes = Routes(version_refusal, expectation_refusal)
    routes.add_prefix(None, "/r1/", guarded(proxy.handle_consumer, provider=False, who=who))
    routes.add_get("/listClients", guarded(metadata.handle_list_clients, provider=False, who=who))

    async def handle_health(request: Request) -> HttpResponse:
        """The node and its global configuration's state, always 200: for operators.
        Load balancers ask ``/health/ready`` (``gateway/node/health.py``)."""
        body: dict[str, Any] = {"status": "ok", "node": who}
        status = globalconf_status()
        if status is not None:
            body["globalconf"] = status
        return json_response(body)

    routes.add_get("/health", handle_health)
    routes.add_get("/health/live", health.handle_live)
    routes.add_get("/health/ready", health.handle_ready)
    auditor.add_consumer_routes(routes)
    routes.add_prefix(None, "/", guarded(handle_not_r1, provider=False, who=who))
    return routes


def peer_routes(who: str, proxy: ServerProxy, auditor: Auditor) -> Routes:
    """The peer port: the exchange and the auditor's mutual-TLS door."""
    routes = Routes(version_refusal, expectation_refusal)
    routes.add(("POST",), "/gw/v1/exchange", guarded(proxy.handle_exchange, provider=True, who=who))
    auditor.add_peer_routes(routes)
    return routes


async def handle_not_r1(request: Request) -> HttpResponse:
    raise GatewayError(Code.BAD_REQUEST, f"{request.path} is not an X-Road REST r1 path")
