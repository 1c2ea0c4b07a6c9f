"""Administrative roles, their permissions, and API keys: the one model for every admin API.

Pure (no I/O, time passed in), so the central authority's admin API uses it today and a
node's management API can use the same roles, key format and checks. The role names are
X-Road's (``XROAD_SYSTEM_ADMINISTRATOR`` and so on, without the prefix): operators who
know X-Road find the same division of duties.

An API key is a 256-bit random secret shown once; only its SHA-256 is stored. A fast
hash is right here (ADR 0021): the secret is not a password a person chose, so there is
no dictionary to try and nothing a slow hash would protect, while every admin call must
look its key up.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import TypeVar


class ApiRole(StrEnum):
    """X-Road's administrative roles; stable values, stored with each key."""

    SYSTEM_ADMINISTRATOR = "system_administrator"
    SECURITY_OFFICER = "security_officer"
    REGISTRATION_OFFICER = "registration_officer"
    SERVICE_ADMINISTRATOR = "service_administrator"
    OBSERVER = "observer"


class CentralPermission(StrEnum):
    """What an admin call of the central authority needs; each endpoint names one."""

    READ = "read"
    """See the registry, settings, published configuration, requests and audit trail."""
    REGISTRY_WRITE = "registry.write"
    """Member classes, members, subsystems, nodes and global groups."""
    REQUESTS_DECIDE = "requests.decide"
    """Approve or reject registration requests."""
    TRUST_WRITE = "trust.write"
    """Approved CAs and TSAs: what every node trusts."""
    SETTINGS_WRITE = "settings.write"
    """Trust parameters and TUF expiry settings."""
    KEYS_MANAGE = "keys.manage"
    """Create, list and revoke API keys."""


CENTRAL_ROLE_PERMISSIONS: Mapping[ApiRole, frozenset[CentralPermission]] = {
    ApiRole.SYSTEM_ADMINISTRATOR: frozenset(CentralPermission),
    ApiRole.SECURITY_OFFICER: frozenset(
        {CentralPermission.READ, CentralPermission.TRUST_WRITE, CentralPermission.SETTINGS_WRITE}
    ),
    ApiRole.REGISTRATION_OFFICER: frozenset(
        {
            CentralPermission.READ,
            CentralPermission.REGISTRY_WRITE,
            CentralPermission.REQUESTS_DECIDE,
        }
    ),
    ApiRole.OBSERVER: frozenset({CentralPermission.READ}),
}
"""The central authority's roles (X-Road's central server has no service administrator)
and what each may do; the one source of truth, documented in docs/global-configuration.md."""


class NodePermission(StrEnum):
    """What a call of a node's management API (``/api/v1``) needs; each route names one.

    Cut along the duties X-Road's security server gives its roles, so an operator who
    knows X-Road finds the same division (docs/node-admin.md has the table)."""

    READ = "read"
    """Subsystems, services, access rights, local groups, certificates, diagnostics,
    operational data and the admin audit records: every role (X-Road's observer)."""
    CERTIFICATES_WRITE = "certificates.write"
    """CSRs for the node's keys and importing the certificates issued (X-Road: the
    security officer's)."""
    CLIENTS_WRITE = "clients.write"
    """Add and remove hosted subsystems (X-Road: the registration officer's)."""
    CONNECTION_WRITE = "clients.connection"
    """A subsystem's connection type and the information-system certificates it accepts
    (X-Road: the service administrator's)."""
    SERVICES_WRITE = "services.write"
    """Add, remove, change, enable and disable services and their endpoints."""
    ACCESS_WRITE = "access.write"
    """Grant and revoke access rights."""
    GROUPS_WRITE = "groups.write"
    """Local groups and their members."""
    MAINTENANCE = "maintenance"
    """Enter and leave maintenance mode (X-Road: the system administrator's)."""
    KEYS_MANAGE = "keys.manage"
    """Create, list and revoke the node's API keys (X-Road: the system administrator's)."""
    LOG_BODIES = "log.bodies"
    """The message bodies of the log (personal data): X-Road keeps its message log to
    the system administrator and the security officer."""


NODE_ROLE_PERMISSIONS: Mapping[ApiRole, frozenset[NodePermission]] = {
    ApiRole.SYSTEM_ADMINISTRATOR: frozenset(NodePermission),
    ApiRole.SECURITY_OFFICER: frozenset(
        {NodePermission.READ, NodePermission.CERTIFICATES_WRITE, NodePermission.LOG_BODIES}
    ),
    ApiRole.REGISTRATION_OFFICER: frozenset({NodePermission.READ, NodePermission.CLIENTS_WRITE}),
    ApiRole.SERVICE_ADMINISTRATOR: frozenset(
        {
            NodePermission.READ,
            NodePermission.CONNECTION_WRITE,
            NodePermission.SERVICES_WRITE,
            NodePermission.ACCESS_WRITE,
            NodePermission.GROUPS_WRITE,
        }
    ),
    ApiRole.OBSERVER: frozenset({NodePermission.READ}),
}
"""A node's roles and what each may do on its management API; the one source of truth,
documented in docs/node-admin.md (a test holds the document to it)."""


P = TypeVar("P", bound=StrEnum)


def permits(table: Mapping[ApiRole, frozenset[P]], role: str, needed: P) -> bool:
    """Whether ``role`` holds ``needed`` in ``table`` (the central's, or another API's
    own permissions over the same roles); an unknown role, or one the table does not
    list, holds nothing."""
    try:
        return needed in table.get(ApiRole(role), frozenset())
    except ValueError:
        return False


KEY_PREFIX = "gwk_"
"""Marks a string as one of our API keys, so secret scanners and people recognise it."""

KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
"""A key's name: what the audit trail shows beside its id, so no spaces or separators."""


def new_key() -> str:
    """A fresh API key: the prefix and 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    """The stored form of a key: SHA-256 of its text, hex. The key itself is never kept."""
    return hashlib.sha256(key.strip().encode("utf-8")).hexdigest()


def new_key_id() -> str:
    """A short public handle for a key, for lists, revocation and the audit trail."""
    return secrets.token_hex(6)


def new_key_problem(name: str, expires: datetime | None, now: datetime) -> str | None:
    """Why a key named ``name`` expiring at ``expires`` may not be created at ``now``,
    or None: the one rule of the central's and the nodes' key stores. ``expires`` is
    judged to the second, as it is stored, so a key is never born expired."""
    if not KEY_NAME.fullmatch(name):
        return f"key name {name!r} must be 1-64 letters, digits, '.', '_', '@' or '-'"
    if expires is not None and (expires.tzinfo is None or expires.replace(microsecond=0) <= now):
        return "expires must be a time with a zone offset, in the future"
    return None


def key_refusal(expires: datetime | None, revoked: datetime | None, now: datetime) -> str | None:
    """Why a known key may not be used at ``now`` (revoked, expired), or None if it may."""
    if revoked is not None:  # whatever the clocks say: fail closed
        return "the API key was revoked"
    if expires is not None and expires <= now:
        return "the API key has expired"
    return None


def key_actor(key_id: str, name: str) -> str:
    """How the audit trail names the holder of a key: never a header the caller sent."""
    return f"key:{key_id}:{name}"
