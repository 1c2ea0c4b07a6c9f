"""Administrative operations on the registry: each one audited and republished.

Functions here take plain values (ids as text, PEM strings) so the admin API, the CLI
and the registration approval share them; identifiers are parsed with the one parser
(``gateway.core.ids``) and every refusal is a :class:`CentralError` with a stable code.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, select

from gateway.central.errors import CentralCode, CentralError
from gateway.central.models import (
    ApprovedCa,
    ApprovedTsa,
    GlobalGroup,
    GroupMember,
    Member,
    MemberClass,
    Node,
    NodeCert,
    NodeClient,
    Setting,
    Subsystem,
)
from gateway.central.service import (
    DEFAULT_SETTINGS,
    INT_SETTINGS,
    Central,
    load_pem,
    parse_id,
    pem_text,
)
from gateway.core.ids import GroupId, MemberId, NodeId, SubsystemId, parse_client
from gateway.pki.keys import fingerprint_sha256


def _check_instance(central: Central, s: Session, instance: str) -> None:
    row = s.get(Setting, "instance")
    if row is None or row.value != instance:
        raise CentralError(CentralCode.INVALID, f"identifier is not in instance {central.instance}")


def _missing(what: str, key: str) -> CentralError:
    return CentralError(CentralCode.NOT_FOUND, f"no {what} {key}")


# --- member classes ------------------------------------------------------------------------


def list_member_classes(central: Central) -> list[dict[str, str]]:
    with Session(central.engine) as s:
        return [{"code": c.code, "description": c.description} for c in s.exec(select(MemberClass))]


def add_member_class(central: Central, actor: str, code: str, description: str) -> dict[str, str]:
    """A class members may be registered under (X-Road's GOV, COM, ...); not in the document."""
    parse_id(MemberId.parse, f"{central.instance}/{code}/x")  # the one identifier syntax
    with central.change(actor, "member_class.add", code, publish=False) as (s, record):
        if s.get(MemberClass, code) is not None:
            raise CentralError(CentralCode.CONFLICT, f"member class {code} exists")
        s.add(MemberClass(code=code, description=description))
        record(None, {"code": code, "description": description})
    return {"code": code, "description": description}


# --- members and subsystems ------------------------------------------------------------------


def member_json(s: Session, m: Member) -> dict[str, Any]:
    subs = s.exec(select(Subsystem).where(Subsystem.member_id == m.id))
    return {"id": m.id, "name": m.name, "subsystems": sorted(x.id for x in subs)}


def list_members(central: Central) -> list[dict[str, Any]]:
    with Session(central.engine) as s:
        return [member_json(s, m) for m in s.exec(select(Member))]


def add_member(central: Central, actor: str, member_id: str, name: str) -> dict[str, Any]:
    member: MemberId = parse_id(MemberId.parse, member_id)
    with central.change(actor, "member.add", str(member)) as (s, record):
        _check_instance(central, s, member.instance)
        if s.get(MemberClass, member.member_class) is None:
            raise CentralError(CentralCode.INVALID, f"unknown member class {member.member_class}")
        if s.get(Member, str(member)) is not None:
            raise CentralError(CentralCode.CONFLICT, f"member {member} exists")
        row = Member(id=str(member), name=name)
        s.add(row)
        after = {"id": row.id, "name": name}
        record(None, after)
    return after


def delete_member(central: Central, actor: str, member_id: str) -> None:
    with central.change(actor, "member.delete", member_id) as (s, record):
        row = s.get(Member, member_id)
        if row is None:
            raise _missing("member", member_id)
        before = member_json(s, row)
        for sub in s.exec(select(Subsystem).where(Subsystem.member_id == member_id)):
            s.delete(sub)
        s.delete(row)
        record(before, None)


def add_subsystem(central: Central, actor: str, subsystem_id: str) -> dict[str, Any]:
    sub: SubsystemId = parse_id(SubsystemId.parse, subsystem_id)
    with central.change(actor, "subsystem.add", str(sub)) as (s, record):
        if s.get(Member, str(sub.member)) is None:
            raise _missing("member", str(sub.member))
        if s.get(Subsystem, str(sub)) is not None:
            raise CentralError(CentralCode.CONFLICT, f"subsystem {sub} exists")
        s.add(Subsystem(id=str(sub), member_id=str(sub.member)))
        record(None, {"id": str(sub)})
    return {"id": str(sub)}


def delete_subsystem(central: Central, actor: str, subsystem_id: str) -> None:
    with central.change(actor, "subsystem.delete", subsystem_id) as (s, record):
        row = s.get(Subsystem, subsystem_id)
        if row is None:
            raise _missing("subsystem", subsystem_id)
        for nc in s.exec(select(NodeClient).where(NodeClient.client_id == subsystem_id)):
            s.delete(nc)
        s.delete(row)
        record({"id": subsystem_id}, None)


# --- nodes -------------------------------------------------------------------------------------


def node_json(s: Session, n: Node) -> dict[str, Any]:
    certs = s.exec(select(NodeCert).where(NodeCert.node_id == n.id))
    clients = s.exec(select(NodeClient).where(NodeClient.node_id == n.id))
    return {
        "id": n.id,
        "address": n.address,
        "enabled": n.enabled,
        "auth_cert_sha256": sorted(c.fingerprint for c in certs),
        "clients": sorted(c.client_id for c in clients),
    }


def list_nodes(central: Central) -> list[dict[str, Any]]:
    with Session(central.engine) as s:
        return [node_json(s, n) for n in s.exec(select(Node))]


def put_node(
    s: Session,
    node_id: str,
    address: str,
    auth_cert_pem: str | None = None,
    clients: tuple[str, ...] = (),
) -> None:
    """Create or update a node in an open change (shared with registration approval)."""
    node: NodeId = parse_id(NodeId.parse, node_id)
    if s.get(Member, str(node.owner)) is None:
        raise _missing("member", str(node.owner))
    row = s.get(Node, str(node))
    if row is None:
        row = Node(id=str(node), address=address.rstrip("/"))
    else:
        row.address = address.rstrip("/")
    s.add(row)
    if auth_cert_pem:
        cert = load_pem(auth_cert_pem, "auth_cert")
        fp = fingerprint_sha256(cert)
        existing = s.get(NodeCert, fp)
        if existing is not None and existing.node_id != str(node):
            raise CentralError(CentralCode.CONFLICT, f"certificate {fp} belongs to another node")
        if existing is None:
            s.add(NodeCert(fingerprint=fp, node_id=str(node), pem=pem_text(cert)))
    for client in clients:
        add_node_client(s, str(node), client)


def add_node_client(s: Session, node_id: str, client_id: str) -> None:
    client = parse_id(parse_client, client_id)
    known = s.get(Subsystem, str(client)) or s.get(Member, str(client))
    if known is None:
        raise _missing("member or subsystem", str(client))
    if s.get(NodeClient, (node_id, str(client))) is None:
        s.add(NodeClient(node_id=node_id, client_id=str(client)))


def add_node(
    central: Central,
    actor: str,
    node_id: str,
    address: str,
    auth_cert_pem: str | None,
    clients: tuple[str, ...],
) -> dict[str, Any]:
    with central.change(actor, "node.add", node_id) as (s, record):
        if s.get(Node, node_id) is not None:
            raise CentralError(CentralCode.CONFLICT, f"node {node_id} exists")
        put_node(s, node_id, address, auth_cert_pem, clients)
        s.flush()
        row = s.get(Node, node_id)
        assert row is not None
        after = node_json(s, row)
        record(None, after)
    return after


def update_node(
    central: Central,
    actor: str,
    node_id: str,
    address: str | None,
    enabled: bool | None,
    add_clients: tuple[str, ...] = (),
    remove_clients: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Change address, enable/disable (a disabled node leaves the document), clients."""
    with central.change(actor, "node.update", node_id) as (s, record):
        row = s.get(Node, node_id)
        if row is None:
            raise _missing("node", node_id)
        before = node_json(s, row)
        if address is not None:
            row.address = address.rstrip("/")
        if enabled is not None:
            row.enabled = enabled
        s.add(row)
        for client in add_clients:
            add_node_client(s, node_id, client)
        for client in remove_clients:
            nc = s.get(NodeClient, (node_id, client))
            if nc is None:
                raise _missing("client on this node", client)
            s.delete(nc)
        s.flush()
        after = node_json(s, row)
        record(before, after)
    return after


def delete_node(central: Central, actor: str, node_id: str) -> None:
    with central.change(actor, "node.delete", node_id) as (s, record):
        row = s.get(Node, node_id)
        if row is None:
            raise _missing("node", node_id)
        before = node_json(s, row)
        for c in s.exec(select(NodeCert).where(NodeCert.node_id == node_id)):
            s.delete(c)
        for nc in s.exec(select(NodeClient).where(NodeClient.node_id == node_id)):
            s.delete(nc)
        s.delete(row)
        record(before, None)


# --- global groups -------------------------------------------------------------------------


def list_groups(central: Central) -> list[dict[str, Any]]:
    with Session(central.engine) as s:
        return [
            {
                "id": g.id,
                "description": g.description,
                "members": sorted(
                    m.client_id
                    for m in s.exec(select(GroupMember).where(GroupMember.group_id == g.id))
                ),
            }
            for g in s.exec(select(GlobalGroup))
        ]


def put_group(
    central: Central, actor: str, group_id: str, description: str, members: tuple[str, ...]
) -> dict[str, Any]:
    """Create or replace a global group with exactly ``members``."""
    group: GroupId = parse_id(GroupId.parse, group_id)
    clients = [str(parse_id(parse_client, m)) for m in members]
    with central.change(actor, "group.put", str(group)) as (s, record):
        row = s.get(GlobalGroup, str(group))
        old = s.exec(select(GroupMember).where(GroupMember.group_id == str(group))).all()
        before = (
            None
            if row is None
            else {"id": row.id, "description": row.description,
                  "members": sorted(m.client_id for m in old)}
        )  # fmt: skip
        for m in old:
            s.delete(m)
        row = row or GlobalGroup(id=str(group))
        row.description = description
        s.add(row)
        for c in sorted(set(clients)):
            s.add(GroupMember(group_id=str(group), client_id=c))
        after = {"id": str(group), "description": description, "members": sorted(set(clients))}
        record(before, after)
    return after


def delete_group(central: Central, actor: str, group_id: str) -> None:
    with central.change(actor, "group.delete", group_id) as (s, record):
        row = s.get(GlobalGroup, group_id)
        if row is None:
            raise _missing("group", group_id)
        for m in s.exec(select(GroupMember).where(GroupMember.group_id == group_id)):
            s.delete(m)
        s.delete(row)
        record({"id": group_id}, None)


# --- CAs, TSAs, settings -------------------------------------------------------------------


def list_cas(central: Central) -> list[dict[str, Any]]:
    with Session(central.engine) as s:
        return [
            {"sha256": c.fingerprint, "cert": c.cert_pem, "ocsp_urls": json.loads(c.ocsp_urls)}
            for c in s.exec(select(ApprovedCa))
        ]


def add_ca(
    central: Central, actor: str, cert_pem: str, ocsp_urls: tuple[str, ...]
) -> dict[str, Any]:
    cert = load_pem(cert_pem, "cert")
    fp = fingerprint_sha256(cert)
    with central.change(actor, "ca.add", fp) as (s, record):
        if s.get(ApprovedCa, fp) is not None:
            raise CentralError(CentralCode.CONFLICT, f"CA {fp} is already approved")
        s.add(ApprovedCa(fingerprint=fp, cert_pem=pem_text(cert), ocsp_urls=json.dumps(ocsp_urls)))
        after = {"sha256": fp, "ocsp_urls": list(ocsp_urls)}
        record(None, after)
    return after


def delete_ca(central: Central, actor: str, fingerprint: str) -> None:
    with central.change(actor, "ca.delete", fingerprint) as (s, record):
        row = s.get(ApprovedCa, fingerprint)
        if row is None:
            raise _missing("CA", fingerprint)
        s.delete(row)
        record({"sha256": fingerprint, "ocsp_urls": json.loads(row.ocsp_urls)}, None)


def list_tsas(central: Central) -> list[dict[str, Any]]:
    with Session(central.engine) as s:
        return [
            {"name": t.name, "url": t.url, "cert": t.cert_pem} for t in s.exec(select(ApprovedTsa))
        ]


def add_tsa(central: Central, actor: str, name: str, url: str, cert_pem: str) -> dict[str, Any]:
    cert = load_pem(cert_pem, "cert")
    with central.change(actor, "tsa.add", name) as (s, record):
        if s.get(ApprovedTsa, name) is not None:
            raise CentralError(CentralCode.CONFLICT, f"TSA {name} exists")
        s.add(ApprovedTsa(name=name, url=url, cert_pem=pem_text(cert)))
        record(None, {"name": name, "url": url})
    return {"name": name, "url": url}


def delete_tsa(central: Central, actor: str, name: str) -> None:
    with central.change(actor, "tsa.delete", name) as (s, record):
        row = s.get(ApprovedTsa, name)
        if row is None:
            raise _missing("TSA", name)
        s.delete(row)
        record({"name": name, "url": row.url}, None)


def get_settings(central: Central) -> dict[str, str]:
    with Session(central.engine) as s:
        return {r.key: r.value for r in s.exec(select(Setting))}


def put_settings(central: Central, actor: str, values: dict[str, str]) -> dict[str, str]:
    for key, value in values.items():
        if key not in DEFAULT_SETTINGS:
            raise CentralError(CentralCode.INVALID, f"{key!r} is not an editable setting")
        if key in INT_SETTINGS and (not value.isdigit() or int(value) <= 0):
            raise CentralError(CentralCode.INVALID, f"{key} must be a positive integer")
        if key == "auto_approve_clients" and value not in ("true", "false"):
            raise CentralError(CentralCode.INVALID, f"{key} must be true or false")
    with central.change(actor, "settings.update", "settings") as (s, record):
        before: dict[str, str] = {}
        for key, value in values.items():
            row = s.get(Setting, key)
            if row is None:  # a setting newer than this central directory
                row = Setting(key=key, value=DEFAULT_SETTINGS[key])
            before[key] = row.value
            row.value = value
            s.add(row)
        record(before, dict(values))
    return get_settings(central)
