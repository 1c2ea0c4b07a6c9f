"""The one interface through which a node learns routing and trust.

The signed global configuration fills it (``GlobalConf.directory()`` builds a
:class:`StaticDirectory`); tests may hand a node one directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.core.ids import ClientId, GroupId, MemberId, NodeId, SubsystemId


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node as the instance knows it."""

    id: NodeId
    address: str
    auth_cert_sha256: frozenset[str]
    clients: frozenset[ClientId]


@dataclass(frozen=True, slots=True)
class TsaInfo:
    """A timestamping authority the instance approves, pinned by its certificate.

    Tokens are checked against this certificate only, never against certificates a
    token carries, as X-Road trusts the TSAs its global configuration lists.
    """

    name: str
    url: str
    cert: x509.Certificate


@dataclass(frozen=True, slots=True)
class TrustParameters:
    """Instance-wide settings every node must apply alike (X-Road's global settings).

    ``ocsp_freshness_seconds`` is how old an OCSP response may be when a message relying
    on it is checked; ``timestamping_interval_seconds`` is the longest a log entry waits
    for its batch to be timestamped while the TSA is reachable.
    """

    ocsp_freshness_seconds: int = 3600
    timestamping_interval_seconds: int = 60


@dataclass(frozen=True, slots=True)
class MemberInfo:
    id: MemberId
    name: str
    subsystems: tuple[SubsystemId, ...] = field(default=())


class Directory(Protocol):
    """Routing and trust facts a node acts on."""

    @property
    def instance(self) -> str: ...

    def trust_roots(self) -> Sequence[x509.Certificate]: ...

    def trust_roots_for(self, instance: str) -> Sequence[x509.Certificate]:
        """The CAs trusted for owners in ``instance``: an instance's CAs certify its own
        members and nodes only, never a federated instance's."""
        ...

    def node(self, node_id: NodeId) -> NodeInfo | None: ...

    def node_by_auth_cert(self, sha256_hex: str) -> NodeInfo | None: ...

    def nodes_hosting(self, client: ClientId) -> Sequence[NodeInfo]: ...

    def is_known_client(self, client: ClientId) -> bool: ...

    def groups_of(self, client: ClientId) -> frozenset[GroupId]: ...

    def members(self) -> Sequence[MemberInfo]: ...

    def ocsp_responders(self, issuer: x509.Certificate) -> Sequence[str]:
        """URLs of the OCSP responders that answer for certificates ``issuer`` issued."""
        ...

    def timestamping_services(self) -> Sequence[TsaInfo]: ...

    def parameters(self) -> TrustParameters: ...


class StaticDirectory:
    """One immutable snapshot of routing and trust, built from a verified global configuration.

    The node swaps in a new snapshot atomically when a newer configuration is applied;
    tests may build one directly.
    """

    def __init__(
        self,
        instance: str,
        roots: Sequence[x509.Certificate],
        members: Iterable[MemberInfo],
        nodes: Iterable[NodeInfo],
        groups: dict[GroupId, frozenset[ClientId]],
        *,
        ocsp: Mapping[bytes, Sequence[str]] | None = None,
        tsas: Sequence[TsaInfo] = (),
        parameters: TrustParameters | None = None,
    ) -> None:
        """``ocsp`` maps a CA certificate's DER to its responders' URLs."""
        self._instance = instance
        self._ocsp = {der: tuple(urls) for der, urls in (ocsp or {}).items()}
        self._tsas = tuple(tsas)
        self._parameters = parameters or TrustParameters()
        self._roots = list(roots)
        self._members = list(members)
        self._nodes = list(nodes)
        self._by_cert = {fp: n for n in self._nodes for fp in n.auth_cert_sha256}
        self._by_id = {n.id: n for n in self._nodes}
        self._hosting: dict[ClientId, list[NodeInfo]] = {}
        for node in self._nodes:
            for client in node.clients:
                self._hosting.setdefault(client, []).append(node)
        self._known: set[ClientId] = set()
        for member in self._members:
            self._known.add(member.id)
            self._known.update(member.subsystems)
        self._groups: dict[ClientId, set[GroupId]] = {}
        for group, clients in groups.items():
            for client in clients:
                self._groups.setdefault(client, set()).add(group)

    @property
    def instance(self) -> str:
        return self._instance

    def trust_roots(self) -> Sequence[x509.Certificate]:
        return self._roots

    def trust_roots_for(self, instance: str) -> Sequence[x509.Certificate]:
        return self._roots if instance == self._instance else ()

    def node(self, node_id: NodeId) -> NodeInfo | None:
        return self._by_id.get(node_id)

    def node_by_auth_cert(self, sha256_hex: str) -> NodeInfo | None:
        return self._by_cert.get(sha256_hex)

    def nodes_hosting(self, client: ClientId) -> Sequence[NodeInfo]:
        return self._hosting.get(client, [])

    def is_known_client(self, client: ClientId) -> bool:
        return client in self._known

    def groups_of(self, client: ClientId) -> frozenset[GroupId]:
        return frozenset(self._groups.get(client, ()))

    def members(self) -> Sequence[MemberInfo]:
        return self._members

    def ocsp_responders(self, issuer: x509.Certificate) -> Sequence[str]:
        return self._ocsp.get(issuer.public_bytes(serialization.Encoding.DER), ())

    def timestamping_services(self) -> Sequence[TsaInfo]:
        return self._tsas

    def parameters(self) -> TrustParameters:
        return self._parameters
