"""The node's auditor API: signed tree heads, proofs and entries of its message log.

Two doors, because the callers authenticate differently:

* the **peer port** (mutual TLS, ``/gw/v1/log/...`` and ``/gw/v1/witness/...``): the TLS
  client certificate decides. An auditor certificate (its SHA-256 fingerprint listed in
  ``[audit] auditor_cert_sha256``, and like every client certificate there chaining to
  an instance CA) reads everything. A registered peer node (its authentication
  certificate in the global configuration) reads what witnessing needs: the latest
  signed tree head, consistency proofs, and the co-signatures this node made;
* the **consumer port** (the local network of the member's information systems,
  ``/audit/v1/...``): ``Authorization: Bearer <token>`` with the token of
  ``[audit] admin_token_file`` reads everything; an information system that names a
  client hosted at this node in ``X-Road-Client`` *and* presents, on the consumer TLS
  port, a TLS client certificate registered for that client (gateway/node/clientauth.py)
  reads only the entries of exchanges it took part in (as client or as provider
  subsystem) and their inclusion proofs. The header alone reads nothing.

Refusals are X-Road error documents with ``client.audit_access_denied`` and
``client.audit_not_found`` (docs/message-log.md section 10). Reads go through the log's
``LogStore`` in a worker thread, never through the writer.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, Final

from gateway.core.encoding import b64url
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import InvalidIdentifierError, parse_client
from gateway.messagelog.context import LogContext
from gateway.messagelog.proofs import consistency, inclusion
from gateway.messagelog.records import NotProvableError, StoredEntry
from gateway.messagelog.witness import CONSISTENCY_PATH, COSIGNATURES_PATH, STH_PATH, Witness
from gateway.net.http1server import HttpResponse, Request, Routes, json_response
from gateway.node.config import ConfigError
from gateway.node.tls import peer_fingerprint

__all__ = ["MAX_ENTRIES", "Access", "Auditor"]

log = logging.getLogger(__name__)

MAX_ENTRIES: Final = 1000
"""Entries per page of ``entries``; page on with ``after`` (the last id seen)."""

_Handler = Callable[[Request], Awaitable[HttpResponse]]


class Access(Enum):
    """Who is asking, as far as the log is concerned."""

    FULL = "full"  # auditor certificate or admin token
    PEER = "peer"  # a registered node: witnessing only
    CLIENT = "client"  # an information system hosted here: its own exchanges only


def _int(request: Request, name: str, default: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise GatewayError(Code.BAD_REQUEST, f"query parameter {name} is required")
        return default
    if not raw.isdigit() or len(raw) > 18:
        raise GatewayError(Code.BAD_REQUEST, f"{name} must be a non-negative integer")
    return int(raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _entry_json(entry: StoredEntry) -> dict[str, object]:
    """An entry as the API shows it: every column but the subjects salt (which would
    let a reader test guesses of who an entry disclosed), bytes in base64."""
    return {
        "id": entry.id,
        "leaf_index": entry.leaf_index,
        "leaf_hash": None if entry.leaf_hash is None else entry.leaf_hash.hex(),
        "logged_at": entry.logged_at,
        "role": str(entry.role),
        "kind": str(entry.kind),
        "message_id": entry.message_id,
        "xroad_id": entry.xroad_id,
        "client": entry.client,
        "service": entry.service,
        "created": entry.created,
        "header": _b64(entry.header),
        "body": _b64(entry.body),
        "signature": entry.signature,
        "cert_ref": entry.cert_ref,
        "ocsp_ref": entry.ocsp_ref,
        "body_sha256": entry.body_sha256,
        "body_omitted": entry.body_omitted,
        "subjects_sha256": entry.subjects_sha256,
    }


class Auditor:
    """Routes of the auditor API for one node; ``add_*_routes`` mount them."""

    def __init__(self, node: LogContext, witness: Witness) -> None:
        self._node = node
        self._witness = witness
        self._store = node.log.store
        self._token: bytes | None = None
        token_file = node.audit.admin_token_file
        if token_file is not None:
            try:
                token = token_file.read_text("utf-8").strip().encode()
            except OSError as exc:
                raise ConfigError(f"[audit] admin_token_file: cannot read it: {exc}") from None
            if len(token) < 16:
                raise ConfigError(f"{token_file}: an admin token needs at least 16 characters")
            self._token = token
        self._auditors = frozenset(node.audit.auditor_cert_sha256)

    # ------------------------------------------------------------------ mounting

    def add_peer_routes(self, routes: Routes) -> None:
        """The mutual-TLS door (peer port)."""
        routes.add_get(STH_PATH, self._on_peer(self.sth, Access.PEER))
        routes.add_get(CONSISTENCY_PATH, self._on_peer(self.consistency, Access.PEER))
        routes.add_get(COSIGNATURES_PATH, self._on_peer(self.cosignatures, Access.PEER))
        routes.add_get("/gw/v1/log/inclusion", self._on_peer(self.inclusion, Access.FULL))
        routes.add_get("/gw/v1/log/entries", self._on_peer(self.entries, Access.FULL))

    def add_consumer_routes(self, routes: Routes) -> None:
        """The local door (consumer port); mount before any catch-all route."""
        for name, handler in (
            ("sth", self.sth),
            ("consistency", self.consistency),
            ("inclusion", self.inclusion),
            ("entries", self.entries),
            ("witness", self.witness),
        ):
            routes.add_get(f"/audit/v1/{name}", self._on_consumer(handler))

    # ------------------------------------------------------------------ access control

    def _peer_access(self, request: Request) -> Access:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        fingerprint = peer_fingerprint(ssl_object)
        if fingerprint is not None and fingerprint in self._auditors:
            return Access.FULL
        if fingerprint is not None and self._node.directory().node_by_auth_cert(fingerprint):
            return Access.PEER
        raise GatewayError(
            Code.AUDIT_ACCESS_DENIED,
            "the TLS client certificate is neither an auditor's nor a registered node's",
        )

    def _consumer_access(self, request: Request) -> tuple[Access, str | None]:
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if (
                self._token is not None
                and scheme.lower() == "bearer"
                and hmac.compare_digest(token.strip().encode(), self._token)
            ):
                return Access.FULL, None
            raise GatewayError(Code.AUDIT_ACCESS_DENIED, "the bearer token is not the admin's")
        raw = request.headers.get("X-Road-Client")
        if raw is None:
            raise GatewayError(
                Code.AUDIT_ACCESS_DENIED, "send the admin bearer token or X-Road-Client"
            )
        try:
            client = parse_client(raw)
        except InvalidIdentifierError as exc:
            raise GatewayError(Code.INVALID_CLIENT_IDENTIFIER, str(exc)) from None
        if not self._node.hosts(client):
            raise GatewayError(
                Code.AUDIT_ACCESS_DENIED, f"{client} is not a client hosted at {self._node.node_id}"
            )
        # The header names the client; only its registered TLS certificate proves it,
        # whatever its connection type: the entries hold the exchanged bodies.
        try:
            self._node.authenticate_client(request.transport, client)
        except GatewayError as exc:
            raise GatewayError(
                Code.AUDIT_ACCESS_DENIED,
                f"X-Road-Client alone does not authenticate: {exc.message}; connect to the "
                "consumer TLS port with a certificate registered for the client, or send "
                "the admin bearer token",
            ) from None
        return Access.CLIENT, str(client)

    def _wrap(
        self,
        handler: Callable[[Request, Access, str | None], Awaitable[dict[str, Any]]],
        decide: Callable[[Request], tuple[Access, str | None]],
    ) -> _Handler:
        async def route(request: Request) -> HttpResponse:
            try:
                access, party = decide(request)
                return json_response(await handler(request, access, party))
            except GatewayError as refusal:
                log.warning(
                    "%s auditor API refused (%s): %s", self._node.node_id, refusal.detail, refusal
                )
                return json_response(
                    refusal.body(), refusal.status, [("X-Road-Error", refusal.code.value)]
                )
            except Exception:
                failure = GatewayError(Code.SP_INTERNAL_ERROR, "unexpected error")
                log.exception(
                    "%s auditor API internal error (%s)", self._node.node_id, failure.detail
                )
                return json_response(
                    failure.body(), failure.status, [("X-Road-Error", failure.code.value)]
                )

        return route

    def _on_peer(
        self,
        handler: Callable[[Request, Access, str | None], Awaitable[dict[str, Any]]],
        needs: Access,
    ) -> _Handler:
        def decide(request: Request) -> tuple[Access, str | None]:
            access = self._peer_access(request)
            if needs is Access.FULL and access is not Access.FULL:
                raise GatewayError(Code.AUDIT_ACCESS_DENIED, f"{request.path} is for auditors only")
            return access, None

        return self._wrap(handler, decide)

    def _on_consumer(
        self, handler: Callable[[Request, Access, str | None], Awaitable[dict[str, Any]]]
    ) -> _Handler:
        return self._wrap(handler, self._consumer_access)

    @staticmethod
    def _full_only(access: Access, what: str) -> None:
        if access is Access.CLIENT:
            raise GatewayError(
                Code.AUDIT_ACCESS_DENIED, f"a client may read only its own entries, not {what}"
            )

    # ------------------------------------------------------------------ handlers

    async def sth(self, request: Request, access: Access, party: str | None) -> dict[str, Any]:
        """The latest signed tree head: the document and the owner's JWS."""
        head = await asyncio.to_thread(self._store.latest_signed_head)
        if head is None:
            raise GatewayError(Code.AUDIT_NOT_FOUND, "no signed tree head yet")
        ocsp = b""
        if head.ocsp_ref:
            found = await asyncio.to_thread(self._store.ocsp_responses, {head.ocsp_ref})
            ocsp = found.get(head.ocsp_ref, b"")
        return {
            "tree_size": head.tree_size,
            "document": base64.b64encode(head.document).decode("ascii"),
            "signature": head.signature,
            # The signer certificate's OCSP status when the head was signed (base64url
            # DER, as in X-Gw-Sign-Ocsp), so a witness never co-signs a revoked key's head.
            "ocsp": b64url(ocsp) if ocsp else None,
        }

    async def consistency(
        self, request: Request, access: Access, party: str | None
    ) -> dict[str, Any]:
        """RFC 9162 PROOF(first, D[second])."""
        self._full_only(access, "consistency proofs")
        first, second = _int(request, "first"), _int(request, "second")
        try:
            proof = await asyncio.to_thread(consistency, self._store, first, second)
        except NotProvableError as exc:
            raise GatewayError(Code.AUDIT_NOT_FOUND, str(exc)) from None
        return {"first": first, "second": second, "proof": [p.hex() for p in proof]}

    async def inclusion(
        self, request: Request, access: Access, party: str | None
    ) -> dict[str, Any]:
        """RFC 9162 PATH(leaf, D[tree_size]); a client only for a leaf of its own."""
        leaf, size = _int(request, "leaf"), _int(request, "tree_size")
        store = self._store
        if access is Access.CLIENT:
            own = await asyncio.to_thread(store.entries, leaf_index=leaf, party=party, limit=1)
            if not own:
                raise GatewayError(
                    Code.AUDIT_ACCESS_DENIED, f"leaf {leaf} is not an entry of {party}"
                )
        try:
            leaf_hash, proof = await asyncio.to_thread(inclusion, store, leaf, size)
        except NotProvableError as exc:
            raise GatewayError(Code.AUDIT_NOT_FOUND, str(exc)) from None
        return {
            "leaf_index": leaf,
            "tree_size": size,
            "leaf_hash": leaf_hash.hex(),
            "path": [p.hex() for p in proof],
        }

    async def entries(self, request: Request, access: Access, party: str | None) -> dict[str, Any]:
        """Entries in id order after ``after``, at most ``limit``; by ``message_id``."""
        after = _int(request, "after", 0)
        limit = min(_int(request, "limit", 100), MAX_ENTRIES)
        message_id = request.query.get("message_id")
        rows = await asyncio.to_thread(
            self._store.entries,
            after=after,
            limit=limit,
            message_id=message_id,
            party=party if access is Access.CLIENT else None,
        )
        if message_id is not None and not rows:
            raise GatewayError(
                Code.AUDIT_NOT_FOUND,
                f"no entry of message {message_id}"
                + (f" that {party} took part in" if party else ""),
            )
        return {
            "entries": [_entry_json(r) for r in rows],
            "next": rows[-1].id if len(rows) == limit else None,
        }

    async def witness(self, request: Request, access: Access, party: str | None) -> dict[str, Any]:
        """What witnessing found: recorded alerts (split views first of all) and the
        outcome of the last round per peer."""
        self._full_only(access, "witness alerts")
        alerts = await asyncio.to_thread(self._store.witness_alerts)
        return {
            "alerts": [
                {
                    "id": a.id,
                    "peer": a.peer,
                    "code": a.code,
                    "detail": a.detail,
                    "evidence": json.loads(a.evidence),
                    "detected_at": a.detected_at,
                }
                for a in alerts
            ],
            "last_round": [
                {
                    "peer": o.peer,
                    "tree_size": o.tree_size,
                    "code": None if o.code is None else o.code.value,
                    "detail": o.detail,
                }
                for o in self._witness.last_round
            ],
        }

    async def cosignatures(
        self, request: Request, access: Access, party: str | None
    ) -> dict[str, Any]:
        """The co-signatures this node made, as a witness, over ``node``'s tree heads."""
        log_node = request.query.get("node")
        if not log_node:
            raise GatewayError(Code.BAD_REQUEST, "query parameter node is required")
        rows = await asyncio.to_thread(
            self._store.cosignatures, log_node=log_node, witness=str(self._node.node_id)
        )
        ocsp = await asyncio.to_thread(
            self._store.ocsp_responses, {r.ocsp_ref for r in rows if r.ocsp_ref}
        )
        return {
            "witness": str(self._node.node_id),
            "cosignatures": [
                {
                    "tree_size": r.tree_size,
                    "document": base64.b64encode(r.document).decode("ascii"),
                    "cosignature": r.cosignature,
                    "ocsp": base64.b64encode(ocsp.get(r.ocsp_ref, b"")).decode("ascii"),
                }
                for r in rows
            ],
        }
