"""The pure role and API key model shared by the admin APIs (``gateway.core.roles``)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from gateway.core.roles import (
    CENTRAL_ROLE_PERMISSIONS,
    KEY_NAME,
    ApiRole,
    CentralPermission,
    key_actor,
    key_digest,
    key_refusal,
    new_key,
    permits,
)

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def test_roles_keep_x_roads_names() -> None:
    assert {r.value for r in ApiRole} == {
        "system_administrator", "security_officer", "registration_officer",
        "service_administrator", "observer",
    }  # fmt: skip
    # X-Road's central server has no service administrator.
    assert ApiRole.SERVICE_ADMINISTRATOR not in CENTRAL_ROLE_PERMISSIONS


def test_only_the_system_administrator_manages_keys_and_everyone_reads() -> None:
    for role in CENTRAL_ROLE_PERMISSIONS:
        assert permits(CENTRAL_ROLE_PERMISSIONS, role, CentralPermission.READ)
        assert permits(CENTRAL_ROLE_PERMISSIONS, role, CentralPermission.KEYS_MANAGE) is (
            role is ApiRole.SYSTEM_ADMINISTRATOR
        )


def test_an_unknown_or_unlisted_role_holds_nothing() -> None:
    for role in ("root", "", "SYSTEM_ADMINISTRATOR", ApiRole.SERVICE_ADMINISTRATOR.value):
        assert not permits(CENTRAL_ROLE_PERMISSIONS, role, CentralPermission.READ)


def test_a_revoked_key_is_refused_whatever_the_times() -> None:
    assert key_refusal(None, None, NOW) is None
    assert key_refusal(NOW + timedelta(seconds=1), None, NOW) is None
    assert key_refusal(NOW, None, NOW) == "the API key has expired"
    assert key_refusal(None, NOW + timedelta(days=1), NOW) == "the API key was revoked"
    assert key_refusal(NOW + timedelta(days=1), NOW, NOW) == "the API key was revoked"


def test_keys_are_256_bit_secrets_stored_as_sha256() -> None:
    key = new_key()
    assert key.startswith("gwk_") and len(key) == 4 + 43
    assert new_key() != key
    assert key_digest(key) == hashlib.sha256(key.encode()).hexdigest()
    assert key_digest(f" {key}\n") == key_digest(key)  # as read from a key file
    assert key not in key_digest(key)


def test_the_actor_is_the_key() -> None:
    assert key_actor("3f9a0c1d2e4b", "anna") == "key:3f9a0c1d2e4b:anna"
    assert KEY_NAME.fullmatch("anna.schmidt@soest")
    assert not KEY_NAME.fullmatch("anna:admin")
    assert not KEY_NAME.fullmatch("")
