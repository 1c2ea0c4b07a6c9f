"""The console's web app (aiohttp): the frame, sign-in, the language switch and the
auditor page; the central's pages are :mod:`gateway.console.central_pages`.

Every request passes :func:`guard`: it finds or starts the session, refuses a form
without the session's CSRF token before any handler runs, and sets the session cookie
(``HttpOnly``, ``SameSite=Strict``, ``Secure`` over TLS) and headers that keep pages
out of caches, frames and other origins' scripts.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources

from aiohttp import web

from gateway.console import central_pages, node_clients, node_log, node_manage, node_pages
from gateway.console.apiclient import ApiClient, ApiRefusal
from gateway.console.auditor import verify_upload
from gateway.console.errors import ConsoleCode, ConsoleError
from gateway.console.frame import (
    CENTRAL,
    CONFIG,
    NODE,
    STORE,
    TEMPLATES,
    ConsoleConfig,
    api_client,
    console_error_page,
    render,
    render_error,
    safe_next,
    see_other,
    session_of,
    templates,
)
from gateway.console.i18n import LANGUAGES
from gateway.console.sessions import IDLE_SECONDS, SessionStore
from gateway.net.guard import GuardSettings, guarded_site

log = logging.getLogger("gateway.console")

COOKIE = "gw_console"
SAFE_METHODS = frozenset({"GET", "HEAD"})
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _check_csrf(request: web.Request, fresh: bool) -> None:
    """Refuse a form that does not carry this session's token (``console.csrf``)."""
    if fresh:
        raise ConsoleError(ConsoleCode.CSRF, "no session: load the page before sending a form")
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise ConsoleError(
            ConsoleCode.BAD_UPLOAD,
            f"the upload is larger than {request.app[CONFIG].max_upload_bytes} bytes",
        ) from None
    token = form.get("csrf")
    if not session_of(request).csrf_matches(token if isinstance(token, str) else None):
        raise ConsoleError(ConsoleCode.CSRF, "the form's CSRF token is missing or wrong")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    store = request.app[STORE]
    now = time.monotonic()
    session = store.get(request.cookies.get(COOKIE), now)
    fresh = session is None
    request["session"] = session or store.new(now)
    response: web.StreamResponse
    try:
        if request.method not in SAFE_METHODS:
            await _check_csrf(request, fresh)
        response = await handler(request)
    except ConsoleError as exc:
        response = console_error_page(request, exc)
    except web.HTTPNotFound:
        response = render_error(request, ConsoleCode.NOT_FOUND.value, request.path, 404)
    except web.HTTPMethodNotAllowed as exc:
        response = render_error(request, ConsoleCode.NOT_FOUND.value, request.path, 405)
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
    except web.HTTPException:
        raise
    except Exception:
        log.exception("console: %s %s failed", request.method, request.path)
        response = console_error_page(
            request, ConsoleError(ConsoleCode.INTERNAL, "the page could not be shown")
        )
    current = session_of(request)
    if store.get(current.id, now) is None:
        response.del_cookie(COOKIE, path="/")
    else:
        response.set_cookie(
            COOKIE, current.id, path="/", httponly=True, samesite="Strict", secure=request.secure
        )
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def start(request: web.Request) -> web.StreamResponse:
    return render(request, "start.html", "title")


async def language(request: web.Request) -> web.StreamResponse:
    chosen = request.match_info["language"]
    if chosen in LANGUAGES:
        session_of(request).language = chosen
    return see_other(safe_next(request.query.get("next")))


SIGN_IN_CHECK = {"central": "/whoami", "node": "/whoami"}
"""The call that proves a key at sign-in: each API's ``whoami`` names the key, its role
and its permissions, so the pages offer only the forms the role may use."""
LANDING = {"central": "/central/members", "node": "/node/diagnostics"}


def _api(request: web.Request, given: object) -> str:
    """The API a sign-in is for: the one named if configured, else the first configured."""
    config = request.app[CONFIG]
    configured = [a for a, url in (("central", config.central_url), ("node", config.node_url))
                  if url is not None]  # fmt: skip
    if not configured:
        raise ConsoleError(ConsoleCode.NOT_CONFIGURED, "this console has no API to sign in to")
    return given if isinstance(given, str) and given in configured else configured[0]


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    api = _api(request, request.query.get("api"))
    target = safe_next(request.query.get("next"), LANDING[api])
    return render(request, "signin.html", "sign_in", api=api, next=target)


async def sign_in(request: web.Request) -> web.StreamResponse:
    """Sign in with an API key: the API must accept it; the session gets a new id, and
    the key stays in it, server-side."""
    form = await request.post()
    api = _api(request, form.get("api"))
    client = api_client(request, api)
    key = form.get("key")
    target = safe_next(str(form.get("next", "")), LANDING[api])
    given = key.strip() if isinstance(key, str) else ""
    try:
        if not given:
            raise ApiRefusal(401, ConsoleCode.SIGN_IN_REFUSED.value, "no key given")
        who = await client.call("GET", SIGN_IN_CHECK[api], given)
    except ApiRefusal as refusal:
        return render(
            request,
            "signin.html",
            "sign_in",
            status=401,
            api=api,
            next=target,
            refusal=f"{ConsoleCode.SIGN_IN_REFUSED.value}: {refusal.code}: {refusal.message}",
        )
    session = request.app[STORE].renew(session_of(request), time.monotonic())
    session.keys[api] = given
    fields = ("id", "name", "role", "permissions", "node")
    session.who[api] = {k: who.get(k) for k in fields if isinstance(who, dict) and k in who}
    request["session"] = session
    return see_other(target)


async def sign_out(request: web.Request) -> web.StreamResponse:
    request.app[STORE].drop(session_of(request).id)
    return see_other("/")


async def audit_form(request: web.Request) -> web.StreamResponse:
    return render(request, "auditor.html", "auditor", verdict=None)


async def audit_verify(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    parts: list[bytes] = []
    for name in ("bundle", "anchor"):
        field = form.get(name)
        if not isinstance(field, web.FileField):
            raise ConsoleError(ConsoleCode.BAD_UPLOAD, f"no {name} file was sent")
        parts.append(field.file.read())
    verdict = await asyncio.to_thread(verify_upload, parts[0], parts[1])
    return render(
        request, "auditor.html", "auditor", status=200 if verdict.ok else 422, verdict=verdict
    )


async def stylesheet(_: web.Request) -> web.StreamResponse:
    css = resources.files("gateway.console").joinpath("static/console.css").read_bytes()
    return web.Response(body=css, content_type="text/css", headers={"Cache-Control": "max-age=300"})


def create_app(config: ConsoleConfig, idle_seconds: float = IDLE_SECONDS) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=config.max_upload_bytes)
    app[CONFIG] = config
    app[STORE] = SessionStore(idle_seconds)
    app[TEMPLATES] = templates()

    async def api_clients(app: web.Application) -> AsyncIterator[None]:
        if config.central_url is not None:
            app[CENTRAL] = ApiClient(config.central_url, "/admin/v1")
        if config.node_url is not None:
            app[NODE] = ApiClient(config.node_url, "/api/v1")
        yield
        for key in (CENTRAL, NODE):
            if key in app:
                await app[key].close()

    app.cleanup_ctx.append(api_clients)
    app.router.add_get("/", start)
    app.router.add_get("/language/{language}", language)
    app.router.add_get("/signin", sign_in_form)
    app.router.add_post("/signin", sign_in)
    app.router.add_post("/signout", sign_out)
    app.router.add_get("/audit", audit_form)
    app.router.add_post("/audit", audit_verify)
    app.router.add_get("/static/console.css", stylesheet)
    central_pages.add_routes(app)
    node_pages.add_routes(app)
    node_manage.add_routes(app)
    node_log.add_routes(app)
    node_clients.add_routes(app)
    return app


async def serve_console(
    config: ConsoleConfig,
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    limits: GuardSettings | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, every connection under the guard; ``ready`` gets the
    console's URL once the socket is bound."""
    runner = web.AppRunner(create_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = guarded_site(
            runner, host, port, limits or GuardSettings(), ssl_context=tls, name="console"
        )
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        if ready is not None:
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            ready(f"{'https' if tls else 'http'}://{shown}:{bound_port}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
