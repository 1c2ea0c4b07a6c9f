"""The union view of an instance and the instances it federates with.

X-Road federates instances by exchanging configuration anchors: each instance keeps its
own central authority, CA, OCSP responders and TSAs, and a security server reads the
federated instance's signed configuration beside its own. :class:`FederatedDirectory`
is what the node then acts on: routing and clients of every instance, but trust scoped
per instance. A foreign CA certifies members and nodes of its own instance only
(:meth:`FederatedDirectory.trust_roots_for`), and this node's log is timestamped by its
own instance's TSAs only, with its own instance's parameters.

Pure: directories in, a directory out. Fetching and verifying each foreign configuration
is the node's TUF client (``gateway.conf.tufclient``), one state directory per instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

from cryptography import x509

from gateway.conf.directory import Directory, MemberInfo, NodeInfo, TrustParameters, TsaInfo
from gateway.core.ids import ClientId, GroupId, NodeId


class Reach(StrEnum):
    """Whether this node may exchange with owners of an instance, and if not, why."""

    OWN = "own"
    FEDERATED = "federated"
    NOT_FEDERATED = "not_federated"
    """The instance's own configuration does not list the instance's anchor."""
    UNAVAILABLE = "unavailable"
    """Federated, but no valid signed configuration of it is held (never obtained,
    expired, or only a rolled-back or otherwise refused version was offered)."""


class FederatedDirectory:
    """The own instance's directory with the valid configurations of federated ones.

    ``foreign`` maps an instance code to its directory; ``federated`` names every instance
    the own configuration federates with, including those with no valid configuration
    now (they are refused as :attr:`Reach.UNAVAILABLE`, not as unknown).
    """

    def __init__(
        self,
        own: Directory,
        foreign: Mapping[str, Directory],
        federated: frozenset[str],
    ) -> None:
        if own.instance in foreign or not set(foreign) <= federated:
            raise ValueError("foreign directories must be of federated, other instances")
        self._own = own
        self._foreign = dict(foreign)
        self._federated = federated
        self._all: tuple[Directory, ...] = (own, *self._foreign.values())
        self._roots = [r for d in self._all for r in d.trust_roots()]
        self._members = [m for d in self._all for m in d.members()]

    @property
    def own(self) -> Directory:
        return self._own

    @property
    def instance(self) -> str:
        return self._own.instance

    def reach(self, instance: str) -> Reach:
        if instance == self._own.instance:
            return Reach.OWN
        if instance not in self._federated:
            return Reach.NOT_FEDERATED
        return Reach.FEDERATED if instance in self._foreign else Reach.UNAVAILABLE

    def _of(self, instance: str) -> Directory | None:
        if instance == self._own.instance:
            return self._own
        return self._foreign.get(instance)

    def trust_roots(self) -> Sequence[x509.Certificate]:
        """Every instance's CAs: what TLS and the signature check chain against first;
        :meth:`trust_roots_for` then decides whether the CA may certify that owner."""
        return self._roots

    def trust_roots_for(self, instance: str) -> Sequence[x509.Certificate]:
        directory = self._of(instance)
        return directory.trust_roots_for(instance) if directory is not None else ()

    def node(self, node_id: NodeId) -> NodeInfo | None:
        directory = self._of(node_id.instance)
        return directory.node(node_id) if directory is not None else None

    def node_by_auth_cert(self, sha256_hex: str) -> NodeInfo | None:
        for directory in self._all:
            node = directory.node_by_auth_cert(sha256_hex)
            # A node is believed only from its own instance's configuration.
            if node is not None and node.id.instance == directory.instance:
                return node
        return None

    def nodes_hosting(self, client: ClientId) -> Sequence[NodeInfo]:
        directory = self._of(client.instance)
        return directory.nodes_hosting(client) if directory is not None else ()

    def is_known_client(self, client: ClientId) -> bool:
        directory = self._of(client.instance)
        return directory is not None and directory.is_known_client(client)

    def groups_of(self, client: ClientId) -> frozenset[GroupId]:
        """Global groups of every instance: a provider may grant a federated instance's
        group, whose members that instance's configuration names."""
        groups: set[GroupId] = set()
        for directory in self._all:
            groups.update(
                g for g in directory.groups_of(client) if g.instance == directory.instance
            )
        return frozenset(groups)

    def members(self) -> Sequence[MemberInfo]:
        return self._members

    def ocsp_responders(self, issuer: x509.Certificate) -> Sequence[str]:
        for directory in self._all:
            urls = directory.ocsp_responders(issuer)
            if urls:
                return urls
        return ()

    def timestamping_services(self) -> Sequence[TsaInfo]:
        """The own instance's TSAs only: this node's log is stamped where its auditors
        trust the stamps."""
        return self._own.timestamping_services()

    def parameters(self) -> TrustParameters:
        return self._own.parameters()
