"""What every console page shares: the app's state, the session of a request, rendering
in the request's language, notices and safe redirects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from gateway.console.apiclient import ApiClient, ApiRefusal
from gateway.console.errors import CONSOLE_ERROR_TABLE, ConsoleCode, ConsoleError
from gateway.console.i18n import negotiate, translate
from gateway.console.sessions import ConsoleSession, SessionStore

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
"""Default limit of a request body: the auditor page's bundle and anchor together."""


@dataclass(frozen=True)
class ConsoleConfig:
    """How one console is started (``gateway console serve``)."""

    central_url: str | None = None
    node_url: str | None = None
    max_upload_bytes: int = MAX_UPLOAD_BYTES


CONFIG = web.AppKey("config", ConsoleConfig)
STORE = web.AppKey("store", SessionStore)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
CENTRAL = web.AppKey("central", ApiClient)
NODE = web.AppKey("node", ApiClient)
APIS = {"central": CENTRAL, "node": NODE}
"""The APIs a console can sit on, by the name sessions and forms use."""


def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def session_of(request: web.Request) -> ConsoleSession:
    session: ConsoleSession = request["session"]
    return session


def language_of(request: web.Request) -> str:
    return session_of(request).language or negotiate(request.headers.get("Accept-Language"))


def render(
    request: web.Request, template: str, heading: str, status: int = 200, **context: Any
) -> web.Response:
    """A page of ``template`` in the request's language; notices waiting in the session
    are shown on it and dropped."""
    session = session_of(request)
    language = language_of(request)
    notices, session.notices = session.notices, []
    html = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(
            t=lambda key: translate(key, language),
            lang=language,
            heading=translate(heading, language),
            session=session,
            central=request.app[CONFIG].central_url is not None,
            node=request.app[CONFIG].node_url is not None,
            path=request.path,
            notices=notices,
            may=lambda permission: permission in _node_permissions(session),
            **context,
        )
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _node_permissions(session: ConsoleSession) -> list[str]:
    """What the node's ``whoami`` said the signed-in key may do: pages show only those
    forms (the node still decides each call)."""
    held = session.who.get("node", {}).get("permissions")
    return held if isinstance(held, list) else []


def render_error(request: web.Request, code: str, message: str, status: int) -> web.Response:
    return render(request, "error.html", "error", status=status, code=code, message=message)


def console_error_page(request: web.Request, exc: ConsoleError) -> web.Response:
    return render_error(request, exc.code.value, exc.message, CONSOLE_ERROR_TABLE[exc.code].status)


def safe_next(target: str | None, default: str = "/") -> str:
    """A redirect target that stays on this console: a path, never ``//host`` or a URL."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def see_other(location: str) -> web.Response:
    """303 after a form: the browser fetches the page with GET, so a reload sends nothing."""
    return web.Response(status=303, headers={"Location": location})


def api_client(request: web.Request, api: str) -> ApiClient:
    """The client of ``api`` (``central`` or ``node``); ``console.not_configured`` when the
    console was started without its URL."""
    key = APIS.get(api)
    client = None if key is None else request.app.get(key)
    if client is None:
        raise ConsoleError(
            ConsoleCode.NOT_CONFIGURED, f"this console was started without --{api}-url"
        )
    return client


async def read_api(request: web.Request, api: str, *paths: str) -> list[Any] | web.Response:
    """The answers of the GET calls ``paths`` to ``api`` with the session's key, or the
    page to show instead: sign-in when not signed in there, the API's refusal if it
    refused."""
    client = api_client(request, api)
    key = session_of(request).keys.get(api)
    if key is None:
        return see_other(f"/signin?api={api}&next={quote(request.path)}")
    answers: list[Any] = []
    for path in paths:
        try:
            answers.append(await client.call("GET", path, key))
        except ApiRefusal as refusal:
            return render_error(request, refusal.code, refusal.message, refusal.status)
    return answers


async def change_api(
    request: web.Request, api: str, method: str, path: str, body: Any, done: str, back: str
) -> web.Response:
    """One change through ``api``; the outcome (``done``, or the API's refusal with its
    code) is a notice on the page at ``back``, where the browser is sent."""
    client = api_client(request, api)
    session = session_of(request)
    key = session.keys.get(api)
    if key is None:
        raise ConsoleError(ConsoleCode.NOT_SIGNED_IN, f"sign in to the {api} first")
    language = language_of(request)
    try:
        await client.call(method, path, key, body)
    except ApiRefusal as refusal:
        session.notices.append(
            ("error", f"{translate('refused', language)}: {refusal.code}: {refusal.message}")
        )
    else:
        session.notices.append(("ok", done))
    return see_other(back)


def form_field(form: Any, name: str) -> str:
    """A form field as text, trimmed; a missing field or a file upload reads as empty,
    so the API, not the console, says what is wrong with it."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def in_path(identifier: str) -> str:
    """An identifier as the API's path writes it: ``:`` between its parts, quoted."""
    return quote(identifier.replace("/", ":"), safe=":")


def done_message(request: web.Request, key: str, what: str) -> str:
    """The confirmation shown after a change, in the page's language."""
    return f"{translate(key, language_of(request))}: {what}"
