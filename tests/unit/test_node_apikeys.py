"""A node's API key store on disk, and the documented permission table."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.core.errors import AdminCode, AdminError
from gateway.core.roles import NODE_ROLE_PERMISSIONS, ApiRole, NodePermission, key_digest
from gateway.node.apikeys import NodeKeyStore

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DOC = Path(__file__).resolve().parents[2] / "docs" / "node-admin.md"


def _store(tmp_path: Path) -> NodeKeyStore:
    return NodeKeyStore(tmp_path / "api-keys.json", tmp_path / "admin.key")


def _refused(store: NodeKeyStore, key: str, needed: NodePermission, now: datetime) -> AdminCode:
    with pytest.raises(AdminError) as refused:
        store.authenticate(f"Bearer {key}", needed, now)
    return refused.value.code


def test_the_first_use_writes_one_system_administrator_key(tmp_path: Path) -> None:
    store = _store(tmp_path)
    made = store.ensure(NOW)
    assert made is not None and store.ensure(NOW) is None  # once only
    secret = (tmp_path / "admin.key").read_text().strip()
    assert (tmp_path / "admin.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "api-keys.json").stat().st_mode & 0o777 == 0o600
    assert secret not in (tmp_path / "api-keys.json").read_text()
    holder = store.authenticate(f"Bearer {secret}", NodePermission.KEYS_MANAGE, NOW)
    assert (holder.key_id, holder.role) == (made, "system_administrator")
    assert holder.actor == f"key:{made}:admin"


def test_an_existing_admin_key_is_adopted(tmp_path: Path) -> None:
    (tmp_path / "admin.key").write_text("gwk_operator-chose-this\n")
    store = _store(tmp_path)
    store.ensure(NOW)
    assert [k.digest for k in store.listed()] == [key_digest("gwk_operator-chose-this")]
    assert (tmp_path / "admin.key").read_text() == "gwk_operator-chose-this\n"


def test_expiry_revocation_and_roles(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.ensure(NOW)
    _, key = store.create("t", "obs", "observer", NOW + timedelta(hours=1), NOW)
    assert store.authenticate(f"bearer {key}", NodePermission.READ, NOW).role == "observer"
    assert _refused(store, key, NodePermission.ACCESS_WRITE, NOW) is AdminCode.FORBIDDEN
    later = NOW + timedelta(hours=1)
    assert _refused(store, key, NodePermission.READ, later) is AdminCode.UNAUTHORIZED
    second, other = store.create("t", "srv", "service_administrator", None, NOW)
    assert store.revoke(second.id, NOW).revoked
    assert _refused(store, other, NodePermission.READ, NOW) is AdminCode.UNAUTHORIZED
    with pytest.raises(AdminError) as twice:
        store.revoke(second.id, NOW)
    assert twice.value.code is AdminCode.CONFLICT
    for bad in ({"name": "a b", "role": "observer"}, {"name": "a", "role": "root"}):
        with pytest.raises(AdminError) as invalid:
            store.create("t", bad["name"], bad["role"], None, NOW)
        assert invalid.value.code is AdminCode.INVALID
    with pytest.raises(AdminError):
        store.create("t", "past", "observer", NOW - timedelta(seconds=1), NOW)


def test_a_store_that_cannot_be_read_lets_nobody_in(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.ensure(NOW)
    secret = (tmp_path / "admin.key").read_text().strip()
    (tmp_path / "api-keys.json").write_text("{not json")
    code = _refused(store, secret, NodePermission.READ, NOW)
    assert code is AdminCode.UNAUTHORIZED
    with pytest.raises(ValueError):  # and no write goes over it
        store.create("t", "x", "observer", None, NOW)


def test_the_documented_table_is_the_code_s() -> None:
    roles = [
        ApiRole.SYSTEM_ADMINISTRATOR,
        ApiRole.SECURITY_OFFICER,
        ApiRole.REGISTRATION_OFFICER,
        ApiRole.SERVICE_ADMINISTRATOR,
        ApiRole.OBSERVER,
    ]
    documented = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"`[a-z_.]+`", cells[0]):
            name = NodePermission(cells[0].strip("`"))
            documented[name] = frozenset(
                r for r, cell in zip(roles, cells[2:], strict=True) if cell == "yes"
            )
    held = {
        p: frozenset(r for r, ps in NODE_ROLE_PERMISSIONS.items() if p in ps)
        for p in NodePermission
    }
    assert documented == held
