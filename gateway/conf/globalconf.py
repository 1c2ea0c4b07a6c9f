"""The global configuration document: what the central authority publishes for every node.

One JSON document (the TUF target ``globalconf.json``) carries the instance's members,
subsystems, nodes, global groups, approved CAs with their OCSP responders, approved TSAs
and instance-wide parameters. It converts to the in-memory :class:`StaticDirectory` the
node acts on, so the node's checks read one interface whatever published the facts.

Pure: bytes in, objects out. Signing, expiry and rollback protection are TUF's job (the
document travels as a target of a TUF repository); this module only guarantees that a
document is well formed, internally consistent and canonical, so two parties that hold
the same document hold the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.conf.anchor import ConfigurationAnchor, ConfigurationAnchorError
from gateway.conf.directory import (
    MemberInfo,
    NodeInfo,
    StaticDirectory,
    TrustParameters,
    TsaInfo,
)
from gateway.core.canonical import NotCanonicalError, canonical_json, parse_canonical
from gateway.core.ids import (
    ClientId,
    GroupId,
    InvalidIdentifierError,
    MemberId,
    NodeId,
    SubsystemId,
    check_part,
    parse_client,
)

FORMAT = "gateway-globalconf/v1"
TARGET_NAME = "globalconf.json"
"""The document's name as a TUF target."""


class GlobalConfError(ValueError):
    """The document is malformed or contradicts itself; the message says where."""


@dataclass(frozen=True)
class CaEntry:
    """An approved certification authority and the OCSP responders that answer for it."""

    cert: x509.Certificate
    ocsp_urls: tuple[str, ...]


@dataclass(frozen=True)
class TsaEntry:
    name: str
    url: str
    cert: x509.Certificate


@dataclass(frozen=True)
class NodeEntry:
    id: NodeId
    address: str
    auth_cert_sha256: tuple[str, ...]
    clients: tuple[ClientId, ...]


@dataclass(frozen=True)
class MemberEntry:
    id: MemberId
    name: str
    subsystems: tuple[SubsystemId, ...] = ()


@dataclass(frozen=True)
class GlobalConf:
    """One version of the instance's configuration.

    ``serial`` increases with every change the central authority publishes; TUF's own
    versions protect against rollback, ``serial`` lets operators and logs name a version.
    """

    instance: str
    serial: int
    generated: str
    members: tuple[MemberEntry, ...] = ()
    nodes: tuple[NodeEntry, ...] = ()
    groups: dict[GroupId, tuple[ClientId, ...]] = field(default_factory=dict)
    cas: tuple[CaEntry, ...] = ()
    tsas: tuple[TsaEntry, ...] = ()
    parameters: TrustParameters = field(default_factory=TrustParameters)
    federated: tuple[ConfigurationAnchor, ...] = ()
    """The anchors of the instances this one federates with (X-Road's federated
    instances): a node fetches and verifies each one's own signed configuration."""

    def to_bytes(self) -> bytes:
        """Canonical JSON; equal documents give equal bytes."""
        return canonical_json(self.to_json())

    def to_json(self) -> dict[str, Any]:
        doc = self._to_json()
        if self.federated:
            # Only when there is one: a document without federation keeps the bytes (and
            # so the digest) it had before the field existed.
            doc["federated"] = [a.to_json() for a in sorted(self.federated, key=_instance)]
        return doc

    def _to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "instance": self.instance,
            "serial": self.serial,
            "generated": self.generated,
            "members": [
                {
                    "id": str(m.id),
                    "name": m.name,
                    "subsystems": [s.subsystem_code for s in m.subsystems],
                }
                for m in sorted(self.members, key=lambda m: str(m.id))
            ],
            "nodes": [
                {
                    "id": str(n.id),
                    "address": n.address,
                    "auth_cert_sha256": sorted(n.auth_cert_sha256),
                    "clients": sorted(str(c) for c in n.clients),
                }
                for n in sorted(self.nodes, key=lambda n: str(n.id))
            ],
            "groups": [
                {"id": str(g), "members": sorted(str(c) for c in members)}
                for g, members in sorted(self.groups.items(), key=lambda kv: str(kv[0]))
            ],
            "cas": [
                {"cert": _pem(ca.cert), "ocsp_urls": list(ca.ocsp_urls)}
                for ca in sorted(self.cas, key=lambda c: _pem(c.cert))
            ],
            "tsas": [
                {"name": t.name, "url": t.url, "cert": _pem(t.cert)}
                for t in sorted(self.tsas, key=lambda t: t.name)
            ],
            "parameters": {
                "ocsp_freshness_seconds": self.parameters.ocsp_freshness_seconds,
                "timestamping_interval_seconds": self.parameters.timestamping_interval_seconds,
            },
        }

    @classmethod
    def from_bytes(cls, data: bytes) -> GlobalConf:
        """Parse and check a document; refuses anything a node should not act on."""
        try:
            doc = parse_canonical(data)
        except NotCanonicalError as exc:
            raise GlobalConfError(f"not a canonical JSON document: {exc}") from None
        conf = cls.from_json(doc)
        if conf.to_bytes() != data:
            raise GlobalConfError("the document is not in canonical order")
        return conf

    @classmethod
    def from_json(cls, doc: Any) -> GlobalConf:
        try:
            return _parse(doc)
        except (KeyError, TypeError, ValueError, InvalidIdentifierError) as exc:
            if isinstance(exc, GlobalConfError):
                raise
            raise GlobalConfError(f"invalid global configuration: {exc}") from None

    def directory(self) -> StaticDirectory:
        """The routing and trust facts a node acts on, from this document alone."""
        roots = [ca.cert for ca in self.cas]
        members = [MemberInfo(m.id, m.name, m.subsystems) for m in self.members]
        nodes = [
            NodeInfo(n.id, n.address, frozenset(n.auth_cert_sha256), frozenset(n.clients))
            for n in self.nodes
        ]
        groups = {g: frozenset(c) for g, c in self.groups.items()}
        ocsp = {ca.cert.public_bytes(Encoding.DER): ca.ocsp_urls for ca in self.cas}
        tsas = [TsaInfo(t.name, t.url, t.cert) for t in self.tsas]
        return StaticDirectory(
            self.instance,
            roots,
            members,
            nodes,
            groups,
            ocsp=ocsp,
            tsas=tsas,
            parameters=self.parameters,
        )


def _instance(anchor: ConfigurationAnchor) -> str:
    return anchor.instance


def _federated(value: Any, own: str) -> tuple[ConfigurationAnchor, ...]:
    anchors: list[ConfigurationAnchor] = []
    for i, doc in enumerate(_list(value, "federated")):
        try:
            anchor = ConfigurationAnchor.from_json(doc)
        except ConfigurationAnchorError as exc:
            raise GlobalConfError(f"federated[{i}]: {exc}") from None
        check_part(anchor.instance, "instance")
        if anchor.instance == own:
            raise GlobalConfError(f"federated[{i}]: an instance cannot federate with itself")
        anchors.append(anchor)
    if len({a.instance for a in anchors}) != len(anchors):
        raise GlobalConfError("a federated instance is listed twice")
    return tuple(anchors)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def _cert(text: Any, where: str) -> x509.Certificate:
    if not isinstance(text, str):
        raise GlobalConfError(f"{where}: certificate must be a PEM string")
    try:
        return x509.load_pem_x509_certificate(text.encode("ascii"))
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion: not v1 or v3
        raise GlobalConfError(f"{where}: not a PEM certificate: {exc}") from None


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise GlobalConfError(f"{where} must be a non-empty string")
    return value


def _url(value: Any, where: str) -> str:
    url = _str(value, where)
    if not url.startswith(("http://", "https://")):
        raise GlobalConfError(f"{where} must be an http:// or https:// URL")
    return url


def _list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise GlobalConfError(f"{where} must be a list")
    return value


def _parse(doc: Any) -> GlobalConf:
    if not isinstance(doc, dict):
        raise GlobalConfError("the document must be a JSON object")
    if doc.get("format") != FORMAT:
        raise GlobalConfError(f"format must be {FORMAT!r}, got {doc.get('format')!r}")
    expected = {
        "format", "instance", "serial", "generated", "members", "nodes", "groups", "cas",
        "tsas", "parameters",
    }  # fmt: skip
    if set(doc) - {"federated"} != expected:
        raise GlobalConfError(f"fields must be exactly {sorted(expected)} (and federated)")
    instance = _str(doc["instance"], "instance")
    check_part(instance, "instance")
    serial = doc["serial"]
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 1:
        raise GlobalConfError("serial must be a positive integer")

    members: list[MemberEntry] = []
    for i, m in enumerate(_list(doc["members"], "members")):
        member = MemberId.parse(_str(m["id"], f"members[{i}].id"))
        subsystems = tuple(
            member.subsystem(_str(s, f"members[{i}].subsystems"))
            for s in _list(m["subsystems"], f"members[{i}].subsystems")
        )
        members.append(MemberEntry(member, _str(m["name"], f"members[{i}].name"), subsystems))
    known: set[ClientId] = {m.id for m in members} | {s for m in members for s in m.subsystems}
    if len({m.id for m in members}) != len(members):
        raise GlobalConfError("a member is listed twice")

    nodes: list[NodeEntry] = []
    fingerprints: set[str] = set()
    for i, n in enumerate(_list(doc["nodes"], "nodes")):
        node_id = NodeId.parse(_str(n["id"], f"nodes[{i}].id"))
        if node_id.owner not in known:
            raise GlobalConfError(f"nodes[{i}]: owner {node_id.owner} is not a member")
        fps = tuple(
            _str(f, f"nodes[{i}].auth_cert_sha256").lower()
            for f in _list(n["auth_cert_sha256"], f"nodes[{i}].auth_cert_sha256")
        )
        for fp in fps:
            if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
                raise GlobalConfError(f"nodes[{i}]: {fp!r} is not a SHA-256 hex fingerprint")
            if fp in fingerprints:
                raise GlobalConfError(f"nodes[{i}]: certificate {fp} is registered twice")
            fingerprints.add(fp)
        clients = tuple(
            parse_client(_str(c, f"nodes[{i}].clients"))
            for c in _list(n["clients"], f"nodes[{i}].clients")
        )
        for client in clients:
            if client not in known:
                raise GlobalConfError(f"nodes[{i}]: client {client} is not registered")
        address = _url(n["address"], f"nodes[{i}].address")
        nodes.append(NodeEntry(node_id, address.rstrip("/"), fps, clients))
    if len({n.id for n in nodes}) != len(nodes):
        raise GlobalConfError("a node is listed twice")

    groups: dict[GroupId, tuple[ClientId, ...]] = {}
    for i, g in enumerate(_list(doc["groups"], "groups")):
        group = GroupId.parse(_str(g["id"], f"groups[{i}].id"))
        if group in groups:
            raise GlobalConfError(f"group {group} is listed twice")
        groups[group] = tuple(
            parse_client(_str(c, f"groups[{i}].members"))
            for c in _list(g["members"], f"groups[{i}].members")
        )

    cas = tuple(
        CaEntry(
            _cert(c["cert"], f"cas[{i}].cert"),
            tuple(_url(u, f"cas[{i}].ocsp_urls") for u in _list(c["ocsp_urls"], "ocsp_urls")),
        )
        for i, c in enumerate(_list(doc["cas"], "cas"))
    )
    if not cas:
        raise GlobalConfError("at least one approved CA is required")
    tsas = tuple(
        TsaEntry(
            _str(t["name"], f"tsas[{i}].name"),
            _url(t["url"], f"tsas[{i}].url"),
            _cert(t["cert"], f"tsas[{i}].cert"),
        )
        for i, t in enumerate(_list(doc["tsas"], "tsas"))
    )
    p = doc["parameters"]
    if not isinstance(p, dict) or set(p) != {
        "ocsp_freshness_seconds",
        "timestamping_interval_seconds",
    }:
        raise GlobalConfError("parameters must hold exactly the known settings")
    freshness, interval = p["ocsp_freshness_seconds"], p["timestamping_interval_seconds"]
    for name, value in (("ocsp_freshness_seconds", freshness), ("interval", interval)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise GlobalConfError(f"parameters.{name} must be a positive integer")
    return GlobalConf(
        instance=instance,
        serial=serial,
        generated=_str(doc["generated"], "generated"),
        members=tuple(members),
        nodes=tuple(nodes),
        groups=groups,
        cas=cas,
        tsas=tsas,
        parameters=TrustParameters(freshness, interval),
        federated=_federated(doc.get("federated", []), instance),
    )
