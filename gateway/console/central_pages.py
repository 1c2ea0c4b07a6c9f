"""The central authority's pages: each a read of its admin API, each form one call.

The page offers a form only when ``GET /whoami`` said the key's role holds the call's
permission; the API decides anyway, and its refusal (``central.forbidden``, ...) is
shown as it came.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.console.frame import change_api, language_of, read_api, render, session_of
from gateway.console.i18n import translate

AUDIT_LIMIT = 200
API = "central"


async def members(request: web.Request) -> web.StreamResponse:
    read = await read_api(request, API, "/members", "/nodes")
    if isinstance(read, web.Response):
        return read
    member_list, node_list = read
    return render(request, "central_members.html", "members", members=member_list,
                  nodes=node_list)  # fmt: skip


async def requests(request: web.Request) -> web.StreamResponse:
    show_all = request.query.get("status") == "all"
    read = await read_api(request, API, "/requests" if show_all else "/requests?status=pending")
    if isinstance(read, web.Response):
        return read
    (listed,) = read
    listed = sorted(listed, key=lambda r: str(r.get("created", "")), reverse=True)
    return render(
        request,
        "central_requests.html",
        "requests",
        requests=listed,
        show_all=show_all,
        may_decide=session_of(request).may(API, "requests.decide"),
    )


async def groups(request: web.Request) -> web.StreamResponse:
    read = await read_api(request, API, "/groups")
    if isinstance(read, web.Response):
        return read
    return render(request, "central_groups.html", "groups", groups=read[0])


async def configuration(request: web.Request) -> web.StreamResponse:
    read = await read_api(request, API, "/configuration/versions")
    if isinstance(read, web.Response):
        return read
    return render(request, "central_configuration.html", "configuration", info=read[0])


async def audit(request: web.Request) -> web.StreamResponse:
    read = await read_api(request, API, f"/audit?limit={AUDIT_LIMIT}")
    if isinstance(read, web.Response):
        return read
    return render(request, "central_audit.html", "audit_trail", entries=read[0])


async def _decide(request: web.Request, verb: str, body: Any, done: str) -> web.Response:
    request_id = request.match_info["request_id"]
    path = f"/requests/{quote(request_id, safe='')}/{verb}"
    text = f"{translate(done, language_of(request))}: {request_id}"
    return await change_api(request, API, "POST", path, body, text, "/central/requests")


async def approve(request: web.Request) -> web.StreamResponse:
    return await _decide(request, "approve", None, "approved_msg")


async def reject(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    reason = form.get("reason")
    return await _decide(
        request, "reject", {"reason": reason if isinstance(reason, str) else ""}, "rejected_msg"
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/central/members", members)
    app.router.add_get("/central/requests", requests)
    app.router.add_post("/central/requests/{request_id}/approve", approve)
    app.router.add_post("/central/requests/{request_id}/reject", reject)
    app.router.add_get("/central/groups", groups)
    app.router.add_get("/central/configuration", configuration)
    app.router.add_get("/central/audit", audit)
