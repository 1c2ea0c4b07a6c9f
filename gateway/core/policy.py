"""Access rights: deny by default, grants per client or group, per service.

A grant may narrow to REST methods and path patterns. Patterns are matched segment by
segment: ``*`` matches within one segment, ``**`` matches any number of segments. The
path matched here is the raw path that is forwarded to the registry; the consumer edge
refuses dot segments, so no other normalisation exists that could disagree with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ClientId, GroupId, ServiceId


@dataclass(frozen=True, slots=True)
class Grant:
    """One access right; ``methods``/``paths`` of ``None`` mean any."""

    service: ServiceId
    subject: ClientId | GroupId
    methods: frozenset[str] | None = None
    paths: tuple[str, ...] | None = None

    def applies_to(self, client: ClientId, groups: frozenset[GroupId]) -> bool:
        return self.subject == client or (
            isinstance(self.subject, GroupId) and self.subject in groups
        )

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
    """The provider's access list."""

    def __init__(self, grants: Iterable[Grant]) -> None:
        self._by_service: dict[ServiceId, list[Grant]] = {}
        for grant in grants:
            self._by_service.setdefault(grant.service, []).append(grant)

    def grants_for(
        self, client: ClientId, groups: frozenset[GroupId], service: ServiceId
    ) -> list[Grant]:
        return [g for g in self._by_service.get(service, []) if g.applies_to(client, groups)]

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
