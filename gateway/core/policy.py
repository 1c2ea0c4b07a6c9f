"""Access rights: deny by default, grants per client, global group or local group, per service.

A grant may narrow to REST methods and path patterns. Patterns are matched segment by
segment: ``*`` matches within one segment, ``**`` matches any number of segments. The
path matched here is the raw path that is forwarded to the registry; the consumer edge
refuses dot segments, so no other normalisation exists that could disagree with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ClientId, GroupId, ServiceId, SubsystemId


@dataclass(frozen=True, slots=True)
class LocalGroupId:
    """X-Road's local group: a set of clients a hosted subsystem keeps for its own
    access rights. It lives in the provider node's settings, not in the global
    configuration, so its members are looked up in the policy, at check time."""

    owner: SubsystemId
    code: str

    def __str__(self) -> str:
        return f"{self.owner}#{self.code}"


LocalGroups = Mapping[LocalGroupId, frozenset[ClientId]]
"""Each local group's members."""

_NO_LOCAL_GROUPS: LocalGroups = {}


@dataclass(frozen=True, slots=True)
class Grant:
    """One access right; ``methods``/``paths`` of ``None`` mean any."""

    service: ServiceId
    subject: ClientId | GroupId | LocalGroupId
    methods: frozenset[str] | None = None
    paths: tuple[str, ...] | None = None

    def applies_to(
        self,
        client: ClientId,
        groups: frozenset[GroupId],
        local_groups: LocalGroups = _NO_LOCAL_GROUPS,
    ) -> bool:
        subject = self.subject
        if isinstance(subject, GroupId):
            return subject in groups
        if isinstance(subject, LocalGroupId):
            return client in local_groups.get(subject, frozenset())
        return subject == client

    def allows(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.paths is None or any(path_matches(p, path) for p in self.paths)


def path_matches(pattern: str, path: str) -> bool:
    """Segment-wise match; an empty request path counts as ``/``."""
    return _match(pattern.split("/"), (path or "/").split("/"))


def _match(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match(rest, parts[1:])


class AccessPolicy:
    """The provider's access list, with the members of the local groups it names."""

    def __init__(self, grants: Iterable[Grant], local_groups: LocalGroups | None = None) -> None:
        self._by_service: dict[ServiceId, list[Grant]] = {}
        for grant in grants:
            self._by_service.setdefault(grant.service, []).append(grant)
        self._local_groups: LocalGroups = dict(local_groups or {})

    def grants_for(
        self, client: ClientId, groups: frozenset[GroupId], service: ServiceId
    ) -> list[Grant]:
        local = self._local_groups
        return [g for g in self._by_service.get(service, []) if g.applies_to(client, groups, local)]

    def check(
        self,
        client: ClientId,
        groups: frozenset[GroupId],
        service: ServiceId,
        method: str,
        path: str,
    ) -> None:
        """Raise ``access_denied`` unless some grant allows this call."""
        if not any(g.allows(method, path) for g in self.grants_for(client, groups, service)):
            raise GatewayError(
                Code.SP_ACCESS_DENIED,
                f"{client} has no access right to {method} {path or '/'} on {service}",
            )
