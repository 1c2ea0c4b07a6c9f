"""The node's log browser: a search of its message log and one exchange's proof bundle,
both through the node's API (``GET /api/v1/log``, ``.../bundle``).

The search terms travel in the console's own query string (a search is a GET, so it
can be bookmarked and reloaded); the API answers entries without bodies. The bundle
is passed to the browser as the node made it, ready for ``gateway audit verify``; the
bundle with bodies is offered only to a role holding ``log.bodies``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from gateway.console.apiclient import ApiRefusal
from gateway.console.errors import ConsoleCode, ConsoleError
from gateway.console.frame import api_client, read_api, render, render_error, session_of

API = "node"
FIELDS = ("xroad_id", "issue", "client", "service", "since", "until")
PAGE = 100


async def log_page(request: web.Request) -> web.StreamResponse:
    terms = {k: request.query.get(k, "").strip() for k in FIELDS}
    after = request.query.get("after", "").strip()
    searched = any(terms.values()) or "search" in request.query
    result: dict[str, object] = {"entries": [], "next_after": None}
    if searched:
        query = {k: v for k, v in terms.items() if v}
        query["limit"] = str(PAGE)
        if after:
            query["after"] = after
        read = await read_api(request, API, "/log?" + urlencode(query))
        if isinstance(read, web.Response):
            return read
        result = read[0]
    more = None
    if result.get("next_after") is not None:
        more = urlencode({**{k: v for k, v in terms.items() if v}, "search": "1",
                          "after": str(result["next_after"])})  # fmt: skip
    return render(
        request,
        "node_log.html",
        "log_browser",
        terms=terms,
        searched=searched,
        entries=result["entries"],
        more=more,
    )


async def bundle(request: web.Request) -> web.StreamResponse:
    """The proof bundle of one entry's exchange as a download (``?bodies=1``: with the
    message bodies, if the key's role may have them)."""
    entry = request.match_info["entry_id"]
    if not entry.isdigit():
        raise ConsoleError(ConsoleCode.NOT_FOUND, f"no log entry {entry!r}")
    key = session_of(request).keys.get(API)
    if key is None:
        raise ConsoleError(ConsoleCode.NOT_SIGNED_IN, "sign in to the node first")
    suffix = "bundle-with-bodies" if request.query.get("bodies") == "1" else "bundle"
    try:
        data = await api_client(request, API).download(f"/log/{entry}/{suffix}", key)
    except ApiRefusal as refusal:
        return render_error(request, refusal.code, refusal.message, refusal.status)
    return web.Response(
        body=data,
        content_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="entry-{entry}.jsonl"'},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/node/log", log_page)
    app.router.add_get("/node/log/{entry_id}/bundle", bundle)
