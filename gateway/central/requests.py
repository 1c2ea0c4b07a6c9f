"""Storing and deciding registration requests; approval changes the configuration.

The proofs are checked on submission (:mod:`gateway.central.registration`), so what is
stored is already known to come from the key holders; the operator decides only whether
the instance wants this node or client. Approval goes through :meth:`Central.change`,
so it is audited and republished like any admin action.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlmodel import Session, col, select

from gateway.central.errors import CentralCode, CentralError
from gateway.central.models import ApprovedCa, Member, Node, RegistrationRequest, Subsystem
from gateway.central.registration import verify_auth_cert_request, verify_client_request
from gateway.central.registry import add_node_client, put_node
from gateway.central.service import Central, load_pem, pem_text
from gateway.core.encoding import format_time


def request_json(r: RegistrationRequest) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind,
        "status": r.status,
        "node_id": r.node_id,
        "client_id": r.client_id or None,
        "address": r.address or None,
        "created": r.created,
        "reason": r.reason or None,
        "decided_at": r.decided_at or None,
    }


def _roots(s: Session) -> list[Any]:
    return [load_pem(c.cert_pem, "CA") for c in s.exec(select(ApprovedCa))]


def _same_request(
    s: Session, kind: str, node_id: str, body: dict[str, Any], **fields: str
) -> RegistrationRequest | None:
    """The stored request a submission repeats, if any.

    Registration is idempotent, as a node resends when an answer is lost: the very same
    signed document (a replay, whatever the signatures' bytes) maps to the request it
    created, in whatever state that is now; a new document asking for exactly what a
    still pending request asks for maps to that request. Neither creates a second one,
    so an operator never sees duplicates and an approval is never applied twice.
    """
    query = select(RegistrationRequest).where(
        RegistrationRequest.kind == kind, RegistrationRequest.node_id == node_id
    )
    document = body["document"]
    pending_match: RegistrationRequest | None = None
    for row in s.exec(query.order_by(col(RegistrationRequest.created))):
        if json.loads(row.document).get("document") == document:
            return row
        if row.status == "pending" and all(getattr(row, k) == v for k, v in fields.items()):
            pending_match = pending_match or row
    return pending_match


def submit_auth_cert(central: Central, body: Any) -> dict[str, Any]:
    """Verify and store an auth-cert registration; returns the pending request (or the
    one this submission repeats, see ``_same_request``)."""
    if not isinstance(body, dict) or set(body) != {
        "document",
        "auth_signature",
        "member_signature",
    }:
        raise CentralError(
            CentralCode.REG_MALFORMED, "body must be {document, auth_signature, member_signature}"
        )
    # One submission at a time: the duplicate check and the insert must be one step.
    with central.lock, Session(central.engine) as s:
        central.serialise(s)
        req = verify_auth_cert_request(
            body["document"], body["auth_signature"], body["member_signature"],
            central.instance, _roots(s), central.now(),
        )  # fmt: skip
        auth_cert_pem = pem_text(req.auth_cert)
        same = _same_request(
            s, "auth-cert", str(req.node_id), body, address=req.address, auth_cert_pem=auth_cert_pem
        )
        if same is not None:
            return request_json(same)
        row = RegistrationRequest(
            id=uuid.uuid4().hex,
            kind="auth-cert",
            created=format_time(central.now(), "seconds"),
            node_id=str(req.node_id),
            address=req.address,
            auth_cert_pem=auth_cert_pem,
            document=json.dumps(body, sort_keys=True),
        )
        s.add(row)
        s.commit()
        s.refresh(row)
        return request_json(row)


def submit_client(central: Central, body: Any) -> dict[str, Any]:
    """Verify and store a client registration; auto-approve it if the setting says so."""
    if not isinstance(body, dict) or set(body) != {"document", "member_signature"}:
        raise CentralError(CentralCode.REG_MALFORMED, "body must be {document, member_signature}")
    with central.lock, Session(central.engine) as s:
        central.serialise(s)
        req = verify_client_request(
            body["document"], body["member_signature"], central.instance, _roots(s), central.now()
        )
        same = _same_request(s, "client", str(req.node_id), body, client_id=str(req.client_id))
        if same is not None:
            return request_json(same)
        row = RegistrationRequest(
            id=uuid.uuid4().hex,
            kind="client",
            created=format_time(central.now(), "seconds"),
            node_id=str(req.node_id),
            client_id=str(req.client_id),
            document=json.dumps(body, sort_keys=True),
        )
        s.add(row)
        s.commit()
        auto = (
            central.setting("auto_approve_clients") == "true"
            and s.get(Member, str(req.client_id.member)) is not None
            and s.get(Node, str(req.node_id)) is not None
        )
        request_id = row.id
    if auto:
        return approve(central, "auto-approval", request_id)
    return get_request(central, request_id)


def get_request(central: Central, request_id: str) -> dict[str, Any]:
    with Session(central.engine) as s:
        row = s.get(RegistrationRequest, request_id)
        if row is None:
            raise CentralError(CentralCode.NOT_FOUND, f"no request {request_id}")
        return request_json(row)


def list_requests(central: Central, status: str | None = None) -> list[dict[str, Any]]:
    with Session(central.engine) as s:
        query = select(RegistrationRequest).order_by(col(RegistrationRequest.created))
        if status:
            query = query.where(RegistrationRequest.status == status)
        return [request_json(r) for r in s.exec(query)]


def approve(central: Central, actor: str, request_id: str) -> dict[str, Any]:
    """Add the node (or the client on its node) to the registry and republish."""
    with central.change(actor, "request.approve", request_id) as (s, record):
        row = _pending(s, request_id)
        if row.kind == "auth-cert":
            # As in X-Road, the owner is always a client of its own node.
            owner_id = row.node_id.rsplit("/", 1)[0]
            put_node(s, row.node_id, row.address, row.auth_cert_pem, (owner_id,))
        else:
            if s.get(Node, row.node_id) is None:
                raise CentralError(
                    CentralCode.NOT_FOUND, f"node {row.node_id} is not registered (yet)"
                )
            owner = row.client_id.rsplit("/", 1)[0]
            if row.client_id.count("/") == 3 and s.get(Subsystem, row.client_id) is None:
                if s.get(Member, owner) is None:
                    raise CentralError(CentralCode.NOT_FOUND, f"no member {owner}")
                s.add(Subsystem(id=row.client_id, member_id=owner))
                s.flush()
            add_node_client(s, row.node_id, row.client_id)
        before = request_json(row)
        row.status = "approved"
        row.decided_at = format_time(central.now(), "seconds")
        s.add(row)
        record(before, request_json(row))
    return get_request(central, request_id)


def reject(central: Central, actor: str, request_id: str, reason: str) -> dict[str, Any]:
    """Refuse a request; the requester sees the reason. Publishes nothing new."""
    if not reason.strip():
        raise CentralError(CentralCode.INVALID, "a rejection needs a reason")
    with central.change(actor, "request.reject", request_id, publish=False) as (s, record):
        row = _pending(s, request_id)
        before = request_json(row)
        row.status = "rejected"
        row.reason = reason
        row.decided_at = format_time(central.now(), "seconds")
        s.add(row)
        record(before, request_json(row))
    return get_request(central, request_id)


def _pending(s: Session, request_id: str) -> RegistrationRequest:
    row = s.get(RegistrationRequest, request_id)
    if row is None:
        raise CentralError(CentralCode.NOT_FOUND, f"no request {request_id}")
    if row.status != "pending":
        raise CentralError(CentralCode.REG_STATE, f"request {request_id} is already {row.status}")
    return row
