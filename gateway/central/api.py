"""The central authority's web app: TUF repository, admin API, registration API.

- ``/tuf/metadata/`` and ``/tuf/targets/``: the TUF repository, read-only static files
  (nodes trust signatures, not this server, so plain HTTP is enough);
- ``/admin/v1/...``: the operator's API, bearer token compared in constant time; every
  change is audited and republished before the call returns;
- ``/registration/v1/...``: what joining nodes call; the signatures inside the request
  are the authentication.

A background task re-signs the timestamp every third of its expiry so nodes never see
stale metadata while the central runs; at start-up, before the first request, it
re-signs one that expired or fell due while the central was stopped.
"""

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from gateway.central import registry, requests
from gateway.central.errors import CentralCode, CentralError
from gateway.central.service import Central

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


def create_app(
    central: Central,
    refresh_seconds: float | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The app for one central directory; ``refresh_seconds`` overrides expiry/3, and
    ``max_body_bytes`` limits every request body (:class:`BodyLimit`)."""
    token = central.admin_token().encode()

    def admin(
        authorization: Annotated[str | None, Header()] = None,
        x_admin_user: Annotated[str | None, Header()] = None,
    ) -> str:
        """The acting operator, once the bearer token matches (constant time)."""
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
            raise CentralError(CentralCode.UNAUTHORIZED, "a valid admin bearer token is required")
        return f"admin:{x_admin_user or 'token'}"

    Actor = Annotated[str, Depends(admin)]

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

    repo = central.repo()
    app.mount("/tuf/metadata", StaticFiles(directory=repo.metadata_dir), name="tuf-metadata")
    app.mount("/tuf/targets", StaticFiles(directory=repo.targets_dir), name="tuf-targets")

    a = APIRouter(prefix="/admin/v1", tags=["admin"])

    @a.get("/member-classes")
    def member_classes(_: Actor) -> list[dict[str, str]]:
        return registry.list_member_classes(central)

    @a.post("/member-classes", status_code=201)
    def add_member_class(body: MemberClassIn, actor: Actor) -> dict[str, str]:
        return registry.add_member_class(central, actor, body.code, body.description)

    @a.get("/members")
    def members(_: Actor) -> list[dict[str, Any]]:
        return registry.list_members(central)

    @a.post("/members", status_code=201)
    def add_member(body: MemberIn, actor: Actor) -> dict[str, Any]:
        return registry.add_member(central, actor, body.id, body.name)

    @a.delete("/members/{member_id:path}", status_code=204)
    def delete_member(member_id: str, actor: Actor) -> None:
        registry.delete_member(central, actor, member_id)

    @a.post("/subsystems", status_code=201)
    def add_subsystem(body: SubsystemIn, actor: Actor) -> dict[str, Any]:
        return registry.add_subsystem(central, actor, body.id)

    @a.delete("/subsystems/{subsystem_id:path}", status_code=204)
    def delete_subsystem(subsystem_id: str, actor: Actor) -> None:
        registry.delete_subsystem(central, actor, subsystem_id)

    @a.get("/nodes")
    def nodes(_: Actor) -> list[dict[str, Any]]:
        return registry.list_nodes(central)

    @a.post("/nodes", status_code=201)
    def add_node(body: NodeIn, actor: Actor) -> dict[str, Any]:
        return registry.add_node(
            central, actor, body.id, body.address, body.auth_cert, tuple(body.clients)
        )

    @a.patch("/nodes/{node_id:path}")
    def patch_node(node_id: str, body: NodePatch, actor: Actor) -> dict[str, Any]:
        return registry.update_node(
            central, actor, node_id, body.address, body.enabled,
            tuple(body.add_clients), tuple(body.remove_clients),
        )  # fmt: skip

    @a.delete("/nodes/{node_id:path}", status_code=204)
    def delete_node(node_id: str, actor: Actor) -> None:
        registry.delete_node(central, actor, node_id)

    @a.get("/groups")
    def groups(_: Actor) -> list[dict[str, Any]]:
        return registry.list_groups(central)

    @a.put("/groups/{group_id:path}")
    def put_group(group_id: str, body: GroupIn, actor: Actor) -> dict[str, Any]:
        return registry.put_group(central, actor, group_id, body.description, tuple(body.members))

    @a.delete("/groups/{group_id:path}", status_code=204)
    def delete_group(group_id: str, actor: Actor) -> None:
        registry.delete_group(central, actor, group_id)

    @a.get("/cas")
    def cas(_: Actor) -> list[dict[str, Any]]:
        return registry.list_cas(central)

    @a.post("/cas", status_code=201)
    def add_ca(body: CaIn, actor: Actor) -> dict[str, Any]:
        return registry.add_ca(central, actor, body.cert, tuple(body.ocsp_urls))

    @a.delete("/cas/{sha256}", status_code=204)
    def delete_ca(sha256: str, actor: Actor) -> None:
        registry.delete_ca(central, actor, sha256)

    @a.get("/tsas")
    def tsas(_: Actor) -> list[dict[str, Any]]:
        return registry.list_tsas(central)

    @a.post("/tsas", status_code=201)
    def add_tsa(body: TsaIn, actor: Actor) -> dict[str, Any]:
        return registry.add_tsa(central, actor, body.name, body.url, body.cert)

    @a.delete("/tsas/{name}", status_code=204)
    def delete_tsa(name: str, actor: Actor) -> None:
        registry.delete_tsa(central, actor, name)

    @a.get("/settings")
    def settings(_: Actor) -> dict[str, str]:
        return registry.get_settings(central)

    @a.patch("/settings")
    def patch_settings(body: dict[str, str], actor: Actor) -> dict[str, str]:
        return registry.put_settings(central, actor, body)

    @a.get("/configuration")
    def configuration(_: Actor) -> dict[str, Any]:
        """The last published document, as nodes receive it."""
        return central.current().to_json()

    @a.get("/audit")
    def audit(_: Actor, limit: int = 100) -> list[dict[str, Any]]:
        return central.audit(limit)

    @a.get("/requests")
    def list_requests(_: Actor, status: str | None = None) -> list[dict[str, Any]]:
        return requests.list_requests(central, status)

    @a.post("/requests/{request_id}/approve")
    def approve(request_id: str, actor: Actor) -> dict[str, Any]:
        return requests.approve(central, actor, request_id)

    @a.post("/requests/{request_id}/reject")
    def reject(request_id: str, body: RejectIn, actor: Actor) -> dict[str, Any]:
        return requests.reject(central, actor, request_id, body.reason)

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

    app.include_router(a)
    app.include_router(r)
    return app
