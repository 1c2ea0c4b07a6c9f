"""The central authority's web app: TUF repository, admin API, registration API.

- ``/tuf/metadata/`` and ``/tuf/targets/``: the TUF repository, read-only static files
  (nodes trust signatures, not this server, so plain HTTP is enough);
- ``/admin/v1/...``: the operator's API; each endpoint needs an API key whose role holds
  the endpoint's permission (:mod:`gateway.core.roles`), and the audit trail names that
  key; every change is audited and republished before the call returns;
- ``/registration/v1/...``: what joining nodes call; the signatures inside the request
  are the authentication.

A background task re-signs the timestamp every third of its expiry so nodes never see
stale metadata while the central runs; at start-up, before the first request, it
re-signs one that expired or fell due while the central was stopped.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError

from gateway.central import apikeys, registry, requests, versions
from gateway.central.errors import CentralCode, CentralError
from gateway.central.service import Central
from gateway.core.roles import CentralPermission

log = logging.getLogger(__name__)

MIN_REFRESH_WAIT = 0.5
"""Seconds between scheduler rounds at the least, so a clock or setting that makes the
timestamp look due forever cannot turn the scheduler into a busy loop."""

MAX_BODY_BYTES = 256 * 1024
"""Default limit of a request body on every endpoint: registrations and admin calls are a
few kilobytes (certificates and signatures); anything near this is not one of them."""

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: refuse a body over ``limit`` with 413 before reading it in full.

    The registration API is unauthenticated, so the body size must be checked before
    anything else: a declared ``Content-Length`` over the limit is refused without
    reading a byte of it, and a streamed (chunked) body is counted as it arrives and
    refused as soon as it passes the limit. A body within the limit is buffered here and
    handed on unchanged, so the application never sees a partial one.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            declared = value.strip()
            if (
                name.lower() == b"content-length"
                and declared.isdigit()
                and int(declared) > self.limit
            ):
                await self._refuse(scope, receive, send, f"{int(declared)} bytes declared")
                return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away; the app sees the disconnect
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send, f"more than {size - 1} bytes sent")
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(
        self, scope: MutableMapping[str, Any], receive: Receive, send: Send, what: str
    ) -> None:
        log.warning("refused a request body to %s: %s", scope.get("path"), what)
        error = CentralError(
            CentralCode.TOO_LARGE,
            f"the request body exceeds the limit of {self.limit} bytes ({what})",
        )
        response = JSONResponse(
            error.to_json(), status_code=error.status, headers={"Connection": "close"}
        )
        await response(scope, receive, send)


class MemberClassIn(BaseModel):
    code: str
    description: str = ""


class MemberIn(BaseModel):
    id: str
    name: str


class SubsystemIn(BaseModel):
    id: str


class NodeIn(BaseModel):
    id: str
    address: str
    auth_cert: str | None = Field(default=None, description="PEM of the node's auth certificate")
    clients: list[str] = []


class NodePatch(BaseModel):
    address: str | None = None
    enabled: bool | None = Field(default=None, description="false removes it from the document")
    add_clients: list[str] = []
    remove_clients: list[str] = []


class GroupIn(BaseModel):
    description: str = ""
    members: list[str] = []


class CaIn(BaseModel):
    cert: str
    ocsp_urls: list[str] = []


class TsaIn(BaseModel):
    name: str
    url: str
    cert: str


class RejectIn(BaseModel):
    reason: str


class ApiKeyIn(BaseModel):
    name: str
    role: str = Field(description="system_administrator, security_officer, ...")
    expires: datetime | None = Field(
        default=None, description="RFC 3339 with offset; none: the key does not expire"
    )


class Need:
    """The dependency of one admin endpoint: a usable API key whose role holds
    ``permission``; yields the audit actor named after that key. Any ``X-Admin-User``
    header is ignored: the actor comes from the key alone."""

    def __init__(self, central: Central, permission: CentralPermission) -> None:
        self.central = central
        self.permission = permission

    def __call__(self, authorization: Annotated[str | None, Header()] = None) -> str:
        return apikeys.authenticate(self.central, authorization, self.permission)


def route_permissions(router: APIRouter) -> dict[tuple[str, str], CentralPermission]:
    """Each route's ``(METHOD, path)`` and the permission its :class:`Need` asks for,
    read from the routes themselves, so the table cannot drift from the code."""
    found: dict[tuple[str, str], CentralPermission] = {}
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        for dep in route.dependant.dependencies:
            if isinstance(dep.call, Need):
                for method in route.methods or ():
                    found[(method, route.path)] = dep.call.permission
    return found


def admin_permissions(app: FastAPI) -> dict[tuple[str, str], CentralPermission]:
    """The admin endpoints of an app made by :func:`create_app` and their permissions
    (for the documentation test and the role matrix)."""
    table: dict[tuple[str, str], CentralPermission] = app.state.admin_permissions
    return table


def create_app(
    central: Central,
    refresh_seconds: float | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The app for one central directory; ``refresh_seconds`` overrides expiry/3, and
    ``max_body_bytes`` limits every request body (:class:`BodyLimit`)."""
    apikeys.ensure_table(central)
    P = CentralPermission
    Reader = Annotated[str, Depends(Need(central, P.READ))]
    Registrar = Annotated[str, Depends(Need(central, P.REGISTRY_WRITE))]
    Decider = Annotated[str, Depends(Need(central, P.REQUESTS_DECIDE))]
    Trust = Annotated[str, Depends(Need(central, P.TRUST_WRITE))]
    Settings = Annotated[str, Depends(Need(central, P.SETTINGS_WRITE))]
    KeyAdmin = Annotated[str, Depends(Need(central, P.KEYS_MANAGE))]

    def period() -> timedelta:
        seconds = refresh_seconds or central.int_setting("timestamp_expiry_seconds") / 3
        return timedelta(seconds=seconds)

    async def refresh_due() -> float:
        """Re-sign what is due; seconds until the next round."""
        try:
            wait = await asyncio.to_thread(central.refresh_if_due, period())
        except Exception:  # keep trying: a missed round only shortens the margin
            log.exception("re-signing the timestamp failed")
            wait = period()
        return max(wait.total_seconds(), MIN_REFRESH_WAIT)

    async def refresher(wait: float) -> None:
        while True:
            await asyncio.sleep(wait)
            wait = await refresh_due()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Before the first request: a timestamp that expired or fell due while the
        # central was stopped is re-signed now, not a scheduler period later.
        task = asyncio.create_task(refresher(await refresh_due()))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="Once-only gateway central authority", lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=max_body_bytes)

    @app.exception_handler(CentralError)
    async def central_error(_: Request, exc: CentralError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status)

    @app.exception_handler(OperationalError)
    async def database_error(_: Request, exc: OperationalError) -> JSONResponse:
        # The registry's server went away mid-call: the transaction was not committed.
        error = CentralError(CentralCode.UNAVAILABLE, "the registry database is unreachable")
        return JSONResponse(error.to_json(), status_code=error.status)

    repo = central.repo()
    app.mount("/tuf/metadata", StaticFiles(directory=repo.metadata_dir), name="tuf-metadata")
    app.mount("/tuf/targets", StaticFiles(directory=repo.targets_dir), name="tuf-targets")

    a = APIRouter(prefix="/admin/v1", tags=["admin"])

    @a.get("/member-classes")
    def member_classes(_: Reader) -> list[dict[str, str]]:
        return registry.list_member_classes(central)

    @a.post("/member-classes", status_code=201)
    def add_member_class(body: MemberClassIn, actor: Registrar) -> dict[str, str]:
        return registry.add_member_class(central, actor, body.code, body.description)

    @a.get("/members")
    def members(_: Reader) -> list[dict[str, Any]]:
        return registry.list_members(central)

    @a.post("/members", status_code=201)
    def add_member(body: MemberIn, actor: Registrar) -> dict[str, Any]:
        return registry.add_member(central, actor, body.id, body.name)

    @a.delete("/members/{member_id:path}", status_code=204)
    def delete_member(member_id: str, actor: Registrar) -> None:
        registry.delete_member(central, actor, member_id)

    @a.post("/subsystems", status_code=201)
    def add_subsystem(body: SubsystemIn, actor: Registrar) -> dict[str, Any]:
        return registry.add_subsystem(central, actor, body.id)

    @a.delete("/subsystems/{subsystem_id:path}", status_code=204)
    def delete_subsystem(subsystem_id: str, actor: Registrar) -> None:
        registry.delete_subsystem(central, actor, subsystem_id)

    @a.get("/nodes")
    def nodes(_: Reader) -> list[dict[str, Any]]:
        return registry.list_nodes(central)

    @a.post("/nodes", status_code=201)
    def add_node(body: NodeIn, actor: Registrar) -> dict[str, Any]:
        return registry.add_node(
            central, actor, body.id, body.address, body.auth_cert, tuple(body.clients)
        )

    @a.patch("/nodes/{node_id:path}")
    def patch_node(node_id: str, body: NodePatch, actor: Registrar) -> dict[str, Any]:
        return registry.update_node(
            central, actor, node_id, body.address, body.enabled,
            tuple(body.add_clients), tuple(body.remove_clients),
        )  # fmt: skip

    @a.delete("/nodes/{node_id:path}", status_code=204)
    def delete_node(node_id: str, actor: Registrar) -> None:
        registry.delete_node(central, actor, node_id)

    @a.get("/groups")
    def groups(_: Reader) -> list[dict[str, Any]]:
        return registry.list_groups(central)

    @a.put("/groups/{group_id:path}")
    def put_group(group_id: str, body: GroupIn, actor: Registrar) -> dict[str, Any]:
        return registry.put_group(central, actor, group_id, body.description, tuple(body.members))

    @a.delete("/groups/{group_id:path}", status_code=204)
    def delete_group(group_id: str, actor: Registrar) -> None:
        registry.delete_group(central, actor, group_id)

    @a.get("/cas")
    def cas(_: Reader) -> list[dict[str, Any]]:
        return registry.list_cas(central)

    @a.post("/cas", status_code=201)
    def add_ca(body: CaIn, actor: Trust) -> dict[str, Any]:
        return registry.add_ca(central, actor, body.cert, tuple(body.ocsp_urls))

    @a.delete("/cas/{sha256}", status_code=204)
    def delete_ca(sha256: str, actor: Trust) -> None:
        registry.delete_ca(central, actor, sha256)

    @a.get("/tsas")
    def tsas(_: Reader) -> list[dict[str, Any]]:
        return registry.list_tsas(central)

    @a.post("/tsas", status_code=201)
    def add_tsa(body: TsaIn, actor: Trust) -> dict[str, Any]:
        return registry.add_tsa(central, actor, body.name, body.url, body.cert)

    @a.delete("/tsas/{name}", status_code=204)
    def delete_tsa(name: str, actor: Trust) -> None:
        registry.delete_tsa(central, actor, name)

    @a.get("/settings")
    def settings(_: Reader) -> dict[str, str]:
        return registry.get_settings(central)

    @a.patch("/settings")
    def patch_settings(body: dict[str, str], actor: Settings) -> dict[str, str]:
        return registry.put_settings(central, actor, body)

    @a.get("/configuration")
    def configuration(_: Reader) -> dict[str, Any]:
        """The last published document, as nodes receive it."""
        return central.current().to_json()

    @a.get("/configuration/versions")
    def configuration_versions(_: Reader) -> dict[str, Any]:
        """The versions nodes can still fetch, their serials and expiry, and the root."""
        return versions.configuration_versions(central)

    @a.get("/audit")
    def audit(_: Reader, limit: int = 100) -> list[dict[str, Any]]:
        return central.audit(limit)

    @a.get("/requests")
    def list_requests(_: Reader, status: str | None = None) -> list[dict[str, Any]]:
        return requests.list_requests(central, status)

    @a.post("/requests/{request_id}/approve")
    def approve(request_id: str, actor: Decider) -> dict[str, Any]:
        return requests.approve(central, actor, request_id)

    @a.post("/requests/{request_id}/reject")
    def reject(request_id: str, body: RejectIn, actor: Decider) -> dict[str, Any]:
        return requests.reject(central, actor, request_id, body.reason)

    @a.get("/whoami")
    def whoami(actor: Reader) -> dict[str, Any]:
        """The calling key (never its secret) and what its role may do, so a client such as
        the console can offer only what the key permits."""
        return apikeys.whoami(central, actor)

    @a.get("/api-keys")
    def list_keys(_: KeyAdmin) -> list[dict[str, Any]]:
        return apikeys.list_keys(central)

    @a.post("/api-keys", status_code=201)
    def create_key(body: ApiKeyIn, actor: KeyAdmin) -> dict[str, Any]:
        """A new key; ``key`` in the answer is its secret, shown this once only."""
        return apikeys.create_key(central, actor, body.name, body.role, body.expires)

    @a.delete("/api-keys/{key_id}")
    def revoke_key(key_id: str, actor: KeyAdmin) -> dict[str, Any]:
        """Revoke a key at once; it stays listed, marked with the time."""
        return apikeys.revoke_key(central, actor, key_id)

    r = APIRouter(prefix="/registration/v1", tags=["registration"])

    @r.post("/auth-cert", status_code=202)
    def register_auth_cert(body: dict[str, Any]) -> dict[str, Any]:
        """Register a node's auth certificate: document + auth and member signatures."""
        return requests.submit_auth_cert(central, body)

    @r.post("/client", status_code=202)
    def register_client(body: dict[str, Any]) -> dict[str, Any]:
        """Register a client (member or subsystem) on a node: document + member signature."""
        return requests.submit_client(central, body)

    @r.get("/requests/{request_id}")
    def request_status(request_id: str) -> dict[str, Any]:
        return requests.get_request(central, request_id)

    app.state.admin_permissions = route_permissions(a)
    app.include_router(a)
    app.include_router(r)
    return app
