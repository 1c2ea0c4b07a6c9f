"""The settings in force, as one immutable object an exchange reads once.

Everything the proxies derive from the settings (the access policy with its local
groups, the services by id, their registries' TLS contexts, the clients' connection
types) is built before a :class:`SettingsSnapshot` exists, and the node swaps the whole
object as one reference. An exchange takes the snapshot at admission and keeps it to the
end, so a revoke never breaks an exchange already admitted and a grant is in force
for the next one (docs/adr/0030-node-settings-in-the-log.md).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gateway.core.ids import ClientId, ServiceId
from gateway.core.policy import AccessPolicy
from gateway.node.clientauth import ConnectionType
from gateway.node.config import ServiceSection
from gateway.node.settings.errors import SettingsCode, SettingsError
from gateway.node.settings.model import NodeSettings
from gateway.node.tls import RegistryContext, registry_context


@dataclass(frozen=True, slots=True)
class SettingsSnapshot:
    """One version of the settings and everything derived from it."""

    settings: NodeSettings
    version: int
    """The version in the log (0: not persisted yet, before the first start-up's)."""
    policy: AccessPolicy
    services: Mapping[ServiceId, ServiceSection]
    registry_tls: Mapping[ServiceId, RegistryContext]
    """The TLS context of each service with TLS settings (an ``https://`` registry)."""
    connection_types: Mapping[str, ConnectionType]
    """Each client's connection type by its printed id, asked on every exchange."""

    def connection_type(self, client: ClientId) -> ConnectionType:
        """How ``client``'s information systems must connect (default ``https``), as
        ``NodeSettings.connection_type`` says, by one lookup."""
        return self.connection_types.get(str(client), ConnectionType.HTTPS)


def build_snapshot(
    settings: NodeSettings, version: int, previous: SettingsSnapshot | None = None
) -> SettingsSnapshot:
    """Derive everything up front, so a setting that cannot be used (a TLS file that
    does not load) refuses the change instead of failing its first exchange. A service
    whose section did not change keeps its TLS context (and so its pooled connections)."""
    reused: dict[ServiceId, RegistryContext] = {}
    fresh: list[ServiceSection] = []
    for section in settings.services:
        sid = section.service_id
        if previous is not None and previous.services.get(sid) == section:
            context = previous.registry_tls.get(sid)
            if context is not None:
                reused[sid] = context
            continue
        fresh.append(section)
    built = service_tls(fresh)
    return SettingsSnapshot(
        settings=settings,
        version=version,
        policy=settings.policy(),
        services=MappingProxyType({s.service_id: s for s in settings.services}),
        registry_tls=MappingProxyType({**reused, **built}),
        connection_types=MappingProxyType({c.id: c.connection_type for c in settings.clients}),
    )


def service_tls(services: Iterable[ServiceSection]) -> dict[ServiceId, RegistryContext]:
    """The TLS context of every service with TLS settings (an ``https://`` registry);
    an unreadable CA, certificate or key is refused with its service named."""
    contexts: dict[ServiceId, RegistryContext] = {}
    for section in services:
        if section.tls_ca is None and not section.tls_pin_sha256:
            continue
        try:
            contexts[section.service_id] = registry_context(
                ca=section.tls_ca,
                pins=section.tls_pin_sha256,
                client_cert=section.tls_client_cert,
                client_key=section.tls_client_key,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise SettingsError(
                SettingsCode.TLS, f"service {section.id}: cannot set up TLS: {exc}"
            ) from None
    return contexts
