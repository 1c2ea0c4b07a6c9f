"""A node's subsystems and services as an operator edits them: connection types and
information-system certificates of hosted subsystems; a service's description refreshed
from its OpenAPI document, its endpoints, enabled or disabled.

Each form is one call of the node's management API (docs/node-admin.md), sent with the
signed-in key; the node validates and decides, and its refusal is shown with its code.
Identifiers travel in form fields, and in the API's paths in X-Road's ``:`` form.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.console.frame import (
    change_api,
    done_message,
    form_field,
    in_path,
    read_api,
    render,
)
from gateway.console.node_manage import pem_upload

API = "node"
CONNECTION_TYPES = ("https", "https-no-auth", "http")


# ------------------------------------------------------------------ subsystems


async def subsystems(request: web.Request) -> web.StreamResponse:
    """Each hosted subsystem with its connection type and its registered certificates."""
    read = await read_api(request, API, "/subsystems", "/client-certificates")
    if isinstance(read, web.Response):
        return read
    certificates: dict[str, list[dict[str, Any]]] = {}
    for cert in read[1]["certificates"]:
        certificates.setdefault(str(cert.get("client")), []).append(cert)
    rows = [
        {**client, "certificates": certificates.get(str(client.get("id")), [])}
        for client in read[0]["clients"]
    ]
    return render(
        request, "node_subsystems.html", "subsystems", clients=rows, kinds=CONNECTION_TYPES
    )


async def connection_type(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    subsystem, kind = form_field(form, "id"), form_field(form, "connection_type")
    path = f"/subsystems/{in_path(subsystem)}/connection-type"
    done = done_message(request, "connection_changed_msg", f"{subsystem}: {kind}")
    body = {"connection_type": kind}
    return await change_api(request, API, "PUT", path, body, done, "/node/subsystems")


async def add_client_certificate(request: web.Request) -> web.StreamResponse:
    """An information system's TLS certificate, uploaded as PEM, registered by the node."""
    form = await request.post()
    subsystem = form_field(form, "id")
    pem, name = pem_upload(form)
    path = f"/subsystems/{in_path(subsystem)}/certificates"
    done = done_message(request, "registered_msg", f"{subsystem}: {name}")
    return await change_api(request, API, "POST", path, {"pem": pem}, done, "/node/subsystems")


async def remove_client_certificate(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    subsystem, sha256 = form_field(form, "id"), form_field(form, "sha256")
    path = f"/subsystems/{in_path(subsystem)}/certificates/{quote(sha256, safe='')}"
    done = done_message(request, "removed_msg", f"{subsystem}: {sha256[:16]}")
    return await change_api(request, API, "DELETE", path, None, done, "/node/subsystems")


# ------------------------------------------------------------------ services


async def refresh_service(request: web.Request) -> web.StreamResponse:
    """Refetch the service's OpenAPI document; its endpoints become the operations it
    lists (the node's answer names those added and removed, the page shows the result)."""
    service = form_field(await request.post(), "id")
    path = f"/services/{in_path(service)}/refresh"
    done = done_message(request, "refreshed_msg", service)
    return await change_api(request, API, "POST", path, None, done, "/node/services")


async def enable_service(request: web.Request) -> web.StreamResponse:
    """Enable (``enabled=on``) or disable a service: a disabled one is refused to every
    client while its access rights stay."""
    form = await request.post()
    service, enabled = form_field(form, "id"), form_field(form, "enabled") == "on"
    key = "enabled_msg" if enabled else "disabled_msg"
    path = f"/services/{in_path(service)}"
    body = {"enabled": enabled}
    done = done_message(request, key, service)
    return await change_api(request, API, "PATCH", path, body, done, "/node/services")


async def endpoint(request: web.Request) -> web.StreamResponse:
    """Add (``action=add``) or remove one endpoint (method and path) of a service."""
    form = await request.post()
    service = form_field(form, "id")
    body = {"method": form_field(form, "method").upper(), "path": form_field(form, "path")}
    method = "DELETE" if form_field(form, "action") == "remove" else "POST"
    key = "removed_msg" if method == "DELETE" else "added_msg"
    done = done_message(request, key, f"{body['method']} {body['path']}")
    path = f"/services/{in_path(service)}/endpoints"
    return await change_api(request, API, method, path, body, done, "/node/services")


async def remove_service(request: web.Request) -> web.StreamResponse:
    """Stop providing a service; the node drops its access rights with it."""
    service = form_field(await request.post(), "id")
    path = f"/services/{in_path(service)}"
    done = done_message(request, "removed_msg", service)
    return await change_api(request, API, "DELETE", path, None, done, "/node/services")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/node/subsystems", subsystems)
    app.router.add_post("/node/subsystems/connection-type", connection_type)
    app.router.add_post("/node/subsystems/certificates/add", add_client_certificate)
    app.router.add_post("/node/subsystems/certificates/remove", remove_client_certificate)
    app.router.add_post("/node/services/refresh", refresh_service)
    app.router.add_post("/node/services/enabled", enable_service)
    app.router.add_post("/node/services/endpoints", endpoint)
    app.router.add_post("/node/services/remove", remove_service)
