"""The central authority's admin API keys: create, list, revoke, and authenticate a call.

The roles and the permission table are :mod:`gateway.core.roles`; here they meet the
registry database. Only a key's SHA-256 is stored, looked up by that digest. Every
creation and revocation is written to the audit trail (without the secret) and publishes
nothing: keys are not part of the configuration document.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, SQLModel, col, select

from gateway.central import db
from gateway.central.errors import CentralCode, CentralError
from gateway.central.models import ApiKey
from gateway.central.service import TOKEN_NAME, Central, InitOptions, write_secret
from gateway.core.encoding import format_time
from gateway.core.roles import (
    CENTRAL_ROLE_PERMISSIONS,
    ApiRole,
    CentralPermission,
    key_actor,
    key_digest,
    key_refusal,
    new_key,
    new_key_id,
    new_key_problem,
    permits,
)

KEY_FILE_NAME = "admin.key"
"""The first system administrator's key, written 0600 by ``gateway central init``."""

BOOTSTRAP_NAME = "admin"


def ensure_table(central: Central) -> None:
    """Create the key table in a central directory made before keys existed, and adopt
    its old shared ``admin.token`` as a system administrator key (named ``admin``), so
    an upgraded central keeps its operator's access and nothing else."""
    if not db.is_postgres(central.location):  # PostgreSQL's schema: migrations only
        SQLModel.metadata.create_all(central.engine, tables=[ApiKey.__table__])  # type: ignore[attr-defined]
    legacy = central.directory / TOKEN_NAME
    with central.lock, Session(central.engine) as s:
        if s.exec(select(ApiKey).limit(1)).first() is not None or not legacy.exists():
            return
        token = legacy.read_text("utf-8").strip()
        if not token:
            return
        now = format_time(central.now(), "seconds")
        row = ApiKey(
            id=new_key_id(),
            name=BOOTSTRAP_NAME,
            role=ApiRole.SYSTEM_ADMINISTRATOR.value,
            digest=key_digest(token),
            created=now,
            created_by="upgrade from admin.token",
        )
        s.add(row)
        s.commit()


def _role(role: str) -> ApiRole:
    try:
        parsed = ApiRole(role)
    except ValueError:
        parsed = None
    if parsed is None or parsed not in CENTRAL_ROLE_PERMISSIONS:
        roles = ", ".join(r.value for r in CENTRAL_ROLE_PERMISSIONS)
        raise CentralError(CentralCode.INVALID, f"role {role!r} is not one of {roles}")
    return parsed


def key_json(row: ApiKey, now: datetime) -> dict[str, Any]:
    """A key as listed: everything but its digest, and whether it may be used now."""
    state = key_refusal(_time(row.expires), _time(row.revoked), now)
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "created": row.created,
        "created_by": row.created_by,
        "expires": row.expires or None,
        "revoked": row.revoked or None,
        "active": state is None,
    }


def _time(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def create_key(
    central: Central, actor: str, name: str, role: str, expires: datetime | None
) -> dict[str, Any]:
    """A new key; the answer carries the secret under ``key``, the only time it is shown."""
    now = central.now()
    problem = new_key_problem(name, None, now)
    if problem is not None:
        raise CentralError(CentralCode.INVALID, problem)
    parsed = _role(role)
    problem = new_key_problem(name, expires, now)
    if problem is not None:
        raise CentralError(CentralCode.INVALID, problem)
    secret = new_key()
    row = ApiKey(
        id=new_key_id(),
        name=name,
        role=parsed.value,
        digest=key_digest(secret),
        created=format_time(now, "seconds"),
        created_by=actor,
        expires=format_time(expires, "seconds") if expires is not None else "",
    )
    with central.change(actor, "api_key.create", row.id, publish=False) as (s, record):
        s.add(row)
        after = key_json(row, now)
        record(None, after)
    return {**after, "key": secret}


def list_keys(central: Central) -> list[dict[str, Any]]:
    now = central.now()
    with Session(central.engine) as s:
        return [key_json(k, now) for k in s.exec(select(ApiKey).order_by(col(ApiKey.created)))]


def whoami(central: Central, actor: str) -> dict[str, Any]:
    """The key behind ``actor`` (as :func:`authenticate` names it), listed as
    :func:`list_keys` lists it, with the permissions its role holds."""
    key_id = actor.split(":", 2)[1]
    with Session(central.engine) as s:
        row = s.get(ApiKey, key_id)
    if row is None:
        raise CentralError(CentralCode.UNAUTHORIZED, "unknown API key")
    held = sorted(
        p.value for p in CentralPermission if permits(CENTRAL_ROLE_PERMISSIONS, row.role, p)
    )
    return {**key_json(row, central.now()), "permissions": held}


def revoke_key(central: Central, actor: str, key_id: str) -> dict[str, Any]:
    """Mark a key revoked from now on; it stays listed. Revoking twice is a conflict."""
    now = central.now()
    with central.change(actor, "api_key.revoke", key_id, publish=False) as (s, record):
        row = s.get(ApiKey, key_id)
        if row is None:
            raise CentralError(CentralCode.NOT_FOUND, f"no API key {key_id}")
        if row.revoked:
            raise CentralError(CentralCode.CONFLICT, f"API key {key_id} is already revoked")
        before = key_json(row, now)
        row.revoked = format_time(now, "seconds")
        s.add(row)
        after = key_json(row, now)
        record(before, after)
    return after


def init_central(directory: Path, options: InitOptions, database_url: str | None = None) -> Central:
    """``gateway central init``: the directory with its first configuration, and the first
    system administrator key in ``admin.key``. Kept here, not in ``Central.init``, so the
    service does not depend on the key model built on top of it."""
    central = Central.init(directory, options, database_url)
    bootstrap_key(central, directory / KEY_FILE_NAME)
    return central


def bootstrap_key(central: Central, path: Path) -> str:
    """At init: the first system administrator key, its secret written 0600 to ``path``."""
    made = create_key(central, "init", BOOTSTRAP_NAME, ApiRole.SYSTEM_ADMINISTRATOR.value, None)
    write_secret(path, made["key"].encode("ascii") + b"\n")
    return str(made["id"])


def authenticate(central: Central, authorization: str | None, needed: CentralPermission) -> str:
    """The audit actor for a call carrying ``Authorization: Bearer <key>`` that needs
    ``needed``: 401 ``central.unauthorized`` without a usable key (none, unknown,
    expired, revoked), 403 ``central.forbidden`` when the key's role lacks ``needed``."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise CentralError(CentralCode.UNAUTHORIZED, "an admin API key is required (Bearer)")
    with Session(central.engine) as s:
        row = s.exec(select(ApiKey).where(ApiKey.digest == key_digest(given))).first()
    if row is None:
        raise CentralError(CentralCode.UNAUTHORIZED, "unknown API key")
    refusal = key_refusal(_time(row.expires), _time(row.revoked), central.now())
    if refusal is not None:
        raise CentralError(CentralCode.UNAUTHORIZED, f"{refusal} (key {row.id})")
    if not permits(CENTRAL_ROLE_PERMISSIONS, row.role, needed):
        raise CentralError(
            CentralCode.FORBIDDEN,
            f"role {row.role} of key {row.id} may not {needed.value}",
        )
    return key_actor(row.id, row.name)
