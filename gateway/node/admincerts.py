"""``/api/v1/certificates/...``: the security officer's duties through the management API.

A CSR for the node's authentication key or a member's signing key, and the import of the
certificate a CA issued; the checks, the files kept and the installation at run time are
:mod:`gateway.node.keyadmin`'s, refusing with its ``client.key.*`` and
``client.certificate.*`` codes. Each success is an admin record of the node's log (who
asked for which key's certificate, which certificate was installed), written before the
answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gateway.core.errors import AdminCode, AdminError
from gateway.core.ids import InvalidIdentifierError, MemberId, NodeId
from gateway.core.roles import NodePermission
from gateway.node.adminapi import PREFIX, ApiRoute, json_body, record_admin
from gateway.node.apikeys import KeyHolder
from gateway.node.context import NodeContext
from gateway.node.keyadmin import import_certificate, make_csr

CSR_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["owner"],
    "properties": {
        "owner": {"type": "string", "description": "this node's id, or a member it signs for"},
        "new_key": {"type": "boolean"},
        "organisation": {"type": "string"},
        "country": {"type": "string"},
    },
}
IMPORT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["pem"],
    "properties": {"pem": {"type": "string", "description": "the leaf first, then its CAs"}},
}


def _owner(text: object) -> NodeId | MemberId:
    """A node id (four parts) or a member id (three)."""
    if not isinstance(text, str):
        raise AdminError(AdminCode.INVALID, "owner must be a node or member id")
    try:
        return NodeId.parse(text) if text.count("/") == 3 else MemberId.parse(text)
    except InvalidIdentifierError as exc:
        raise AdminError(AdminCode.INVALID, f"owner: {exc.message}") from None


class CertificatesApi:
    """CSRs and certificate import (``certificates.write``)."""

    def __init__(self, context: NodeContext) -> None:
        self._ctx = context
        self._lock = asyncio.Lock()

    def routes(self) -> list[ApiRoute]:
        write = NodePermission.CERTIFICATES_WRITE
        return [
            ApiRoute(
                "POST",
                f"{PREFIX}/certificates/csr",
                write,
                "A certificate signing request for the authentication key or a member's "
                "signing key; with new_key a new key is made (never over an existing one).",
                self.csr,
                body=CSR_BODY,
                tags=("certificates",),
            ),
            ApiRoute(
                "POST",
                f"{PREFIX}/certificates",
                write,
                "Import an issued certificate (PEM) for a key the node holds; a signing "
                "certificate is in use at once, an authentication certificate after a restart.",
                self.import_,
                body=IMPORT_BODY,
                tags=("certificates",),
            ),
        ]

    async def csr(self, request: web.Request, holder: KeyHolder) -> web.Response:
        body = await json_body(request)
        owner = _owner(body.get("owner"))
        new_key = body.get("new_key", False)
        organisation, country = body.get("organisation"), body.get("country")
        if not isinstance(new_key, bool):
            raise AdminError(AdminCode.INVALID, "new_key must be true or false")
        for name, value in (("organisation", organisation), ("country", country)):
            if value is not None and not isinstance(value, str):
                raise AdminError(AdminCode.INVALID, f"{name} must be a string")
        async with self._lock:
            result = await asyncio.to_thread(
                make_csr,
                self._ctx.config,
                owner,
                new_key=new_key,
                organisation=organisation,
                country=country,
                passphrase=self._ctx.key_passphrase,
            )
            after = {"role": result.role.value, "new_key": result.new_key}
            entry_id = await record_admin(
                self._ctx, holder, "certificate.csr", str(owner), None, after
            )
        return web.json_response(
            {
                "role": result.role.value,
                "owner": result.owner,
                "csr": result.csr_pem.decode("ascii"),
                "key_path": str(result.key_path),
                "new_key": result.new_key,
                "entry_id": entry_id,
            }
        )

    async def import_(self, request: web.Request, holder: KeyHolder) -> web.Response:
        pem = (await json_body(request)).get("pem")
        if not isinstance(pem, str) or not pem.strip():
            raise AdminError(AdminCode.INVALID, "pem must be the certificate in PEM")
        async with self._lock:
            result = await import_certificate(self._ctx, pem.encode("ascii", "replace"))
            answer = {
                "role": result.role.value,
                "owner": result.owner,
                "serial": result.serial,
                "cert_path": str(result.cert_path),
                "cert_backup": None if result.cert_backup is None else str(result.cert_backup),
                "key_backup": None if result.key_backup is None else str(result.key_backup),
                "installed": result.installed,
                "restart_required": result.restart_required,
                "ocsp": result.ocsp.value,
            }
            entry_id = await record_admin(
                self._ctx,
                holder,
                "certificate.import",
                result.owner,
                None,
                {k: answer[k] for k in ("role", "serial", "installed", "restart_required")},
            )
        return web.json_response({**answer, "entry_id": entry_id})
