"""What every console page shares: the app's state, the session of a request, rendering
in the request's language, notices and safe redirects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from aiohttp import web

from gateway.console.apiclient import ApiClient
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
            path=request.path,
            notices=notices,
            **context,
        )
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


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


def central_client(request: web.Request) -> ApiClient:
    client = request.app.get(CENTRAL)
    if client is None:
        raise ConsoleError(
            ConsoleCode.NOT_CONFIGURED, "this console was started without --central-url"
        )
    return client
