"""A node's management forms: subsystems, services from a registry's OpenAPI document,
local groups, CSRs and certificate uploads. Each form is one call of the node's API.

Identifiers come in form fields and go to the API in JSON bodies or, where the API names
the object in its path, in X-Road's ``:`` form (docs/node-admin.md), quoted; the console
checks nothing itself: the node validates and refuses with its own code, which the page
shows.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.console.apiclient import ApiRefusal
from gateway.console.errors import ConsoleCode, ConsoleError
from gateway.console.frame import (
    api_client,
    change_api,
    done_message,
    form_field,
    in_path,
    language_of,
    read_api,
    render,
    see_other,
    session_of,
)
from gateway.console.i18n import translate

API = "node"
MAX_CERTIFICATE_BYTES = 64 * 1024
"""A PEM certificate is a few kilobytes; more is not a certificate (the node's own JSON
limit is the same)."""


# ------------------------------------------------------------------ subsystems


async def add_subsystem(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body = {"id": form_field(form, "id"), "connection_type": form_field(form, "connection_type")}
    done = done_message(request, "added_msg", body["id"])
    return await change_api(request, API, "POST", "/subsystems", body, done, "/node/subsystems")


async def remove_subsystem(request: web.Request) -> web.StreamResponse:
    subsystem = form_field(await request.post(), "id")
    path = f"/subsystems/{in_path(subsystem)}"
    done = done_message(request, "removed_msg", subsystem)
    return await change_api(request, API, "DELETE", path, None, done, "/node/subsystems")


# ------------------------------------------------------------------ services


async def import_service(request: web.Request) -> web.StreamResponse:
    """A service whose endpoints the node reads from the registry's OpenAPI document
    (X-Road's REST service description)."""
    form = await request.post()
    body: dict[str, Any] = {
        "id": form_field(form, "id"),
        "url": form_field(form, "url"),
        "openapi_url": form_field(form, "openapi_url"),
        "from_openapi": True,
    }
    done = done_message(request, "added_msg", str(body["id"]))
    return await change_api(request, API, "POST", "/services", body, done, "/node/services")


# ------------------------------------------------------------------ local groups


async def groups(request: web.Request) -> web.StreamResponse:
    read = await read_api(request, API, "/local-groups")
    if isinstance(read, web.Response):
        return read
    return render(request, "node_groups.html", "local_groups", groups=read[0]["local_groups"])


async def add_group(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body = {"owner": form_field(form, "owner"), "code": form_field(form, "code")}
    if form_field(form, "description"):
        body["description"] = form_field(form, "description")
    done = done_message(request, "added_msg", body["code"])
    return await change_api(request, API, "POST", "/local-groups", body, done, "/node/groups")


async def remove_group(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    group = f"{form_field(form, 'owner')}:{form_field(form, 'code')}"
    path = f"/local-groups/{in_path(group)}"
    done = done_message(request, "removed_msg", form_field(form, "code"))
    return await change_api(request, API, "DELETE", path, None, done, "/node/groups")


async def group_members(request: web.Request) -> web.StreamResponse:
    """Add (``action=add``) or remove one member of a local group."""
    form = await request.post()
    group = f"{form_field(form, 'owner')}:{form_field(form, 'code')}"
    member = form_field(form, "member")
    method = "DELETE" if form_field(form, "action") == "remove" else "POST"
    path = f"/local-groups/{in_path(group)}/members"
    key = "removed_msg" if method == "DELETE" else "added_msg"
    done = done_message(request, key, member)
    return await change_api(request, API, method, path, {"members": [member]}, done, "/node/groups")


# ------------------------------------------------------------------ certificates


async def csr(request: web.Request) -> web.StreamResponse:
    """A CSR from the node, handed to the browser as a ``.pem`` download; a refusal is
    a notice on the certificates page."""
    form = await request.post()
    body: dict[str, Any] = {
        "owner": form_field(form, "owner"),
        "new_key": form.get("new_key") == "on",
    }
    key = session_of(request).keys.get(API)
    if key is None:
        raise ConsoleError(ConsoleCode.NOT_SIGNED_IN, "sign in to the node first")
    try:
        answer = await api_client(request, API).call("POST", "/certificates/csr", key, body)
    except ApiRefusal as refusal:
        refused = translate("refused", language_of(request))
        session_of(request).notices.append(
            ("error", f"{refused}: {refusal.code}: {refusal.message}")
        )
        return see_other("/node/certificates")
    name = f"{answer.get('role', 'csr')}-{body['owner'].replace('/', '_')}.csr.pem"
    return web.Response(
        body=str(answer.get("csr", "")).encode("ascii"),
        content_type="application/pkcs10",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def pem_upload(form: Any) -> tuple[str, str]:
    """The PEM text and file name of the ``certificate`` file in ``form``; the console
    only bounds it and checks it is text, the node judges the certificate."""
    upload = form.get("certificate")
    if not isinstance(upload, web.FileField):
        raise ConsoleError(ConsoleCode.BAD_UPLOAD, "no certificate file was sent")
    data = upload.file.read(MAX_CERTIFICATE_BYTES + 1)
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise ConsoleError(
            ConsoleCode.BAD_UPLOAD, f"a certificate is at most {MAX_CERTIFICATE_BYTES} bytes"
        )
    try:
        pem = data.decode("ascii")
    except UnicodeDecodeError:
        raise ConsoleError(ConsoleCode.BAD_UPLOAD, "the certificate is not PEM text") from None
    return pem, upload.filename or "certificate"


async def upload_certificate(request: web.Request) -> web.StreamResponse:
    """A certificate the CA issued, uploaded as a PEM file, imported by the node."""
    pem, name = pem_upload(await request.post())
    done = done_message(request, "imported_msg", name)
    return await change_api(
        request, API, "POST", "/certificates", {"pem": pem}, done, "/node/certificates"
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/node/subsystems/add", add_subsystem)
    app.router.add_post("/node/subsystems/remove", remove_subsystem)
    app.router.add_post("/node/services/import", import_service)
    app.router.add_get("/node/groups", groups)
    app.router.add_post("/node/groups/add", add_group)
    app.router.add_post("/node/groups/remove", remove_group)
    app.router.add_post("/node/groups/members", group_members)
    app.router.add_post("/node/certificates/csr", csr)
    app.router.add_post("/node/certificates/import", upload_certificate)
