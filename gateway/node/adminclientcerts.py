"""``/api/v1/client-certificates`` and ``/api/v1/subsystems/{subsystem}/certificates``:
the information-system certificates a hosted subsystem's ``https`` connection type
accepts (X-Road's "internal TLS certificates" of a client), through the management API.

They live in the node's :class:`~gateway.node.clientauth.ClientCertStore` file, not in
the settings (the consumer TLS port reads that file at each handshake, as
``gateway node client-cert`` writes it), so a change here is an admin record of its own
(:func:`~gateway.node.adminapi.record_admin`), not a settings version. Adding and
removing need ``clients.connection``, the permission of the connection type itself: who
may say a subsystem's systems must present a certificate decides which ones count.

A change is in the file before it is recorded; if the record cannot be made durable the
change is undone and the call answers ``admin.unavailable``, so nothing is in force
that the log does not show.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web
from cryptography import x509

from gateway.core.encoding import format_time
from gateway.core.errors import AdminCode, AdminError
from gateway.core.ids import InvalidIdentifierError, SubsystemId
from gateway.core.roles import NodePermission
from gateway.node.adminapi import PREFIX, ApiRoute, json_body, record_admin
from gateway.node.apikeys import KeyHolder
from gateway.node.clientauth import ClientCertError, ClientCertStore, RegisteredCert
from gateway.node.context import NodeContext
from gateway.node.settings.manager import SettingsManager
from gateway.pki.keys import fingerprint_sha256

MAX_PEM_CHARS = 32 * 1024
"""One certificate in PEM is a few kilobytes; the API's JSON limit is larger."""
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

CERT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["pem"],
    "properties": {"pem": {"type": "string", "description": "one X.509 certificate, PEM"}},
}


def described(entry: RegisteredCert) -> dict[str, Any]:
    """A registered certificate as the API shows it (never more than the public part)."""
    cert = entry.certificate
    return {
        "client": entry.client,
        "sha256": entry.sha256,
        "subject": entry.subject,
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": format_time(cert.not_valid_before_utc),
        "not_after": format_time(cert.not_valid_after_utc),
    }


def _subsystem(text: str) -> SubsystemId:
    """A subsystem id from a path segment, ``:`` between its four parts."""
    if "/" in text or text.count(":") != 3:
        raise AdminError(
            AdminCode.INVALID, f"{text!r} is not a subsystem id with ':' between parts"
        )
    try:
        return SubsystemId.parse(text.replace(":", "/"))
    except InvalidIdentifierError as exc:
        raise AdminError(AdminCode.INVALID, f"subsystem: {exc.message}") from None


def _certificate(body: dict[str, Any]) -> x509.Certificate:
    pem = body.get("pem")
    if not isinstance(pem, str) or not pem.strip():
        raise AdminError(AdminCode.INVALID, "pem must be one certificate in PEM")
    if len(pem) > MAX_PEM_CHARS:
        raise AdminError(AdminCode.INVALID, f"pem is longer than {MAX_PEM_CHARS} characters")
    try:
        found = x509.load_pem_x509_certificates(pem.encode("ascii"))
    except (UnicodeEncodeError, ValueError) as exc:
        raise AdminError(AdminCode.INVALID, f"pem is not a PEM certificate: {exc}") from None
    if len(found) != 1:
        raise AdminError(AdminCode.INVALID, f"pem must hold one certificate, not {len(found)}")
    return found[0]


class ClientCertsApi:
    """List, add and remove the information-system certificates of hosted subsystems."""

    def __init__(self, context: NodeContext, settings: SettingsManager | None) -> None:
        self._ctx = context
        self._settings = settings
        self._lock = asyncio.Lock()

    @property
    def _store(self) -> ClientCertStore:
        return self._ctx.client_certs

    def routes(self) -> list[ApiRoute]:
        write = NodePermission.CONNECTION_WRITE
        one = f"{PREFIX}/subsystems/{{subsystem}}/certificates"
        return [
            ApiRoute(
                "GET",
                f"{PREFIX}/client-certificates",
                NodePermission.READ,
                "The information-system certificates registered for hosted subsystems "
                "(their https connection type), with subject, issuer and validity.",
                self.list_,
                tags=("subsystems",),
            ),
            ApiRoute(
                "POST",
                one,
                write,
                "Register an information-system certificate (PEM) for a hosted subsystem; "
                "it authenticates from the next TLS handshake on.",
                self.add,
                body=CERT_BODY,
                tags=("subsystems",),
            ),
            ApiRoute(
                "DELETE",
                one + "/{sha256}",
                write,
                "Unregister a subsystem's information-system certificate by its SHA-256.",
                self.remove,
                tags=("subsystems",),
            ),
        ]

    def _read(self) -> list[RegisteredCert]:
        try:
            self._store.refresh()
        except ClientCertError as exc:
            raise AdminError(AdminCode.UNAVAILABLE, str(exc)) from None
        return self._store.entries()

    async def list_(self, request: web.Request, holder: KeyHolder) -> web.Response:
        entries = await asyncio.to_thread(self._read)
        return web.json_response({"certificates": [described(e) for e in entries]})

    def _hosted(self, subsystem: SubsystemId) -> None:
        if self._settings is None:
            return
        if all(c.id != str(subsystem) for c in self._settings.current.settings.clients):
            raise AdminError(AdminCode.NOT_FOUND, f"{subsystem} is not hosted by this node")

    async def add(self, request: web.Request, holder: KeyHolder) -> web.Response:
        subsystem = _subsystem(request.match_info["subsystem"])
        cert = _certificate(await json_body(request))
        self._hosted(subsystem)
        async with self._lock:
            entries = await asyncio.to_thread(self._read)
            sha256 = fingerprint_sha256(cert)
            if any(e.sha256 == sha256 for e in entries):
                owner = next(e.client for e in entries if e.sha256 == sha256)
                raise AdminError(
                    AdminCode.CONFLICT, f"certificate {sha256} is already registered for {owner}"
                )
            try:
                entry = await asyncio.to_thread(self._store.add, subsystem, cert)
            except ClientCertError as exc:
                raise AdminError(AdminCode.CONFLICT, str(exc)) from None
            try:
                entry_id = await record_admin(
                    self._ctx, holder, "client_certificate.add", str(subsystem), None,
                    described(entry),
                )  # fmt: skip
            except AdminError:
                await asyncio.to_thread(self._store.remove, subsystem, entry.sha256)
                raise
        return web.json_response({**described(entry), "entry_id": entry_id})

    async def remove(self, request: web.Request, holder: KeyHolder) -> web.Response:
        subsystem = _subsystem(request.match_info["subsystem"])
        sha256 = request.match_info["sha256"].lower()
        if not SHA256_HEX.match(sha256):
            raise AdminError(AdminCode.INVALID, "sha256 must be 64 hexadecimal digits")
        async with self._lock:
            try:
                await asyncio.to_thread(self._read)
                entry = await asyncio.to_thread(self._store.remove, subsystem, sha256)
            except ClientCertError as exc:
                raise AdminError(AdminCode.NOT_FOUND, str(exc)) from None
            try:
                entry_id = await record_admin(
                    self._ctx, holder, "client_certificate.remove", str(subsystem),
                    described(entry), None,
                )  # fmt: skip
            except AdminError:
                await asyncio.to_thread(self._store.add, subsystem, entry.certificate)
                raise
        return web.json_response({**described(entry), "entry_id": entry_id})
