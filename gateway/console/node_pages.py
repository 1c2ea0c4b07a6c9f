"""A node's pages: each a read of its management API (``/api/v1``), each form one call.

The forms shown are those the signed-in key's role may use (the node's ``whoami`` at
sign-in names its permissions); the node still decides each call, and a refusal
(``admin.forbidden``) is shown on the page with its code. Identifiers go in JSON bodies,
never in URLs the console builds. The management forms are in
:mod:`gateway.console.node_manage`, the log browser in :mod:`gateway.console.node_log`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.console.frame import (
    change_api,
    form_field,
    language_of,
    read_api,
    render,
)
from gateway.console.i18n import translate
from gateway.console.traffic import since, traffic

API = "node"
AUDIT_LIMIT = 200
TRAFFIC_HOURS = 6
SUBJECTS = ("client", "group", "local_group")


async def diagnostics(request: web.Request) -> web.StreamResponse:
    read = await read_api(request, API, "/diagnostics")
    if isinstance(read, web.Response):
        return read
    return render(request, "node_diagnostics.html", "diagnostics", d=read[0])


async def certificates(request: web.Request) -> web.StreamResponse:
    read = await read_api(request, API, "/certificates")
    if isinstance(read, web.Response):
        return read
    return render(request, "node_certificates.html", "certificates", certs=read[0])


async def services(request: web.Request) -> web.StreamResponse:
    read = await read_api(request, API, "/services", "/access")
    if isinstance(read, web.Response):
        return read
    listed, access = read[0]["services"], read[1]["access"]
    rows = []
    for service in listed:
        rights = []
        for right in access:
            if right.get("service") != service.get("id"):
                continue
            kind = next((k for k in SUBJECTS if right.get(k)), "client")
            rights.append(
                {
                    "kind": kind,
                    "subject": right.get(kind),
                    "methods": right.get("methods") or [],
                    "paths": right.get("paths") or [],
                }
            )
        shown = {
            "id": service.get("id"),
            "url": service.get("url", ""),
            "openapi_url": service.get("openapi_url"),
            "enabled": service.get("enabled", True),
            "endpoints": service.get("endpoints") or [],
        }
        rows.append({"service": shown, "rights": rights})
    return render(request, "node_services.html", "services", rows=rows, subjects=SUBJECTS)


def _right(form: Any) -> dict[str, Any]:
    """An access right from a form: the service, one subject, optional method and path."""
    kind = form_field(form, "kind")
    body: dict[str, Any] = {"service": form_field(form, "service")}
    body[kind if kind in SUBJECTS else "client"] = form_field(form, "subject")
    for many, one in (("methods", "method"), ("paths", "path")):
        values = [v for v in form_field(form, one).split(",") if v.strip()]
        if values:
            body[many] = [v.strip() for v in values]
    return body


async def grant(request: web.Request) -> web.StreamResponse:
    body = _right(await request.post())
    done = f"{translate('granted_msg', language_of(request))}: {body['service']}"
    return await change_api(request, API, "POST", "/access", body, done, "/node/services")


async def revoke(request: web.Request) -> web.StreamResponse:
    body = _right(await request.post())
    done = f"{translate('revoked_msg', language_of(request))}: {body['service']}"
    return await change_api(request, API, "DELETE", "/access", body, done, "/node/services")


async def maintenance(request: web.Request) -> web.StreamResponse:
    read = await read_api(request, API, "/maintenance")
    if isinstance(read, web.Response):
        return read
    return render(request, "node_maintenance.html", "maintenance", mode=read[0])


async def set_maintenance(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body: dict[str, Any] = {"enabled": form_field(form, "enabled") == "on"}
    if form_field(form, "reason"):
        body["reason"] = form_field(form, "reason")
    key = "maintenance_on" if body["enabled"] else "maintenance_off"
    done = translate(key, language_of(request))
    return await change_api(request, API, "PUT", "/maintenance", body, done, "/node/maintenance")


async def audit(request: web.Request) -> web.StreamResponse:
    read = await read_api(request, API, f"/audit?limit={AUDIT_LIMIT}")
    if isinstance(read, web.Response):
        return read
    records = list(reversed(read[0]["records"]))  # newest first, as the central's trail
    return render(request, "node_audit.html", "node_audit", records=records)


async def traffic_page(request: web.Request) -> web.StreamResponse:
    now = datetime.now(UTC)
    start = since(now, TRAFFIC_HOURS).strftime("%Y-%m-%dT%H:%M:%SZ")
    read = await read_api(request, API, "/operational?" + urlencode({"since": start}))
    if isinstance(read, web.Response):
        return read
    counted = traffic(read[0]["records"], now, TRAFFIC_HOURS)
    return render(request, "node_traffic.html", "traffic", traffic=counted, hours=TRAFFIC_HOURS)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/node/diagnostics", diagnostics)
    app.router.add_get("/node/certificates", certificates)
    app.router.add_get("/node/services", services)
    app.router.add_post("/node/access/grant", grant)
    app.router.add_post("/node/access/revoke", revoke)
    app.router.add_get("/node/maintenance", maintenance)
    app.router.add_post("/node/maintenance", set_maintenance)
    app.router.add_get("/node/audit", audit)
    app.router.add_get("/node/traffic", traffic_page)
