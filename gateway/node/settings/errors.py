"""The refusals of a settings change, each with a stable code (docs/deployment.md).

A change comes from an operator (import, the management API), never from a peer, so
these are not X-Road's wire codes (``gateway.core.errors``): the management API maps
them to its own answers and the CLI prints them. Values never change: callers match
on them.
"""

from __future__ import annotations

from enum import StrEnum


class SettingsCode(StrEnum):
    """Why a settings document or a change of it is refused."""

    INVALID = "settings.invalid"
    """The document (or a field of a change) does not validate."""
    DUPLICATE = "settings.duplicate"
    """A subsystem, service, local group, member or access right is already there."""
    UNKNOWN_CLIENT = "settings.unknown_client"
    """The change names a subsystem the settings do not list."""
    UNKNOWN_SERVICE = "settings.unknown_service"
    """The change names a service the settings do not list."""
    UNKNOWN_LOCAL_GROUP = "settings.unknown_local_group"
    """An access right or change names a local group its subsystem does not have."""
    UNKNOWN_ACCESS = "settings.unknown_access"
    """A revoke names an access right that is not granted."""
    UNKNOWN_MEMBER = "settings.unknown_member"
    """A local group change removes a client that is not a member."""
    IN_USE = "settings.in_use"
    """A local group that an access right names cannot be removed."""
    TLS = "settings.tls"
    """A service's TLS settings name files that cannot be used."""
    PERSIST_FAILED = "settings.persist_failed"
    """The change could not be made durable, so it is not in force."""
    CONFLICT = "settings.conflict"
    """Other processes of the node's cluster kept recording newer versions while this
    change was applied again on top of each; nothing changed (docs/adr/0050)."""


class SettingsError(ValueError):
    """A refused settings document or change; ``code`` is stable, the message says why."""

    def __init__(self, code: SettingsCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.detail = message
