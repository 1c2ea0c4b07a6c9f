"""A node's management API keys: one JSON file beside ``node.toml``, stored hashed.

The roles, key format and checks are :mod:`gateway.core.roles`, shared with the central
authority (ADR 0021); here they meet the node's files. Only a key's SHA-256 is stored.
The file, not the message log, holds them (ADR 0031): ``gateway node keys`` works on it
while the node runs or is stopped, and the node rereads it on change (one ``stat`` per
call), so a revocation holds from the next call without a restart.

On first use (the node's start, or any ``gateway node keys`` command) a store that does
not exist yet is created with one system administrator key, its secret written 0600 to
``admin.key`` beside it; an ``admin.key`` already there is adopted instead.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.core.encoding import format_time
from gateway.core.errors import AdminCode, AdminError
from gateway.core.roles import (
    NODE_ROLE_PERMISSIONS,
    ApiRole,
    NodePermission,
    key_actor,
    key_digest,
    key_refusal,
    new_key,
    new_key_id,
    new_key_problem,
    permits,
)
from gateway.fsutil import replace_atomically

BOOTSTRAP_NAME = "admin"
"""The name of the first system administrator key (the one in ``admin.key``)."""


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key as the file holds it: never the secret, only its digest."""

    id: str
    name: str
    role: str
    digest: str
    created: str
    created_by: str
    expires: str = ""
    revoked: str = ""

    def refusal(self, now: datetime) -> str | None:
        return key_refusal(_time(self.expires), _time(self.revoked), now)

    def listed(self, now: datetime) -> dict[str, Any]:
        """As lists show it: everything but the digest, and whether it works now."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created": self.created,
            "created_by": self.created_by,
            "expires": self.expires or None,
            "revoked": self.revoked or None,
            "active": self.refusal(now) is None,
        }


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """Who makes a management call: the key's id, name and role, and the audit actor."""

    key_id: str
    name: str
    role: str

    @property
    def actor(self) -> str:
        return key_actor(self.key_id, self.name)


def _time(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def parse_role(role: str) -> ApiRole:
    """``role`` as one of the node's roles, or ``admin.invalid`` naming them."""
    try:
        parsed = ApiRole(role)
    except ValueError:
        parsed = None
    if parsed is None or parsed not in NODE_ROLE_PERMISSIONS:
        roles = ", ".join(r.value for r in NODE_ROLE_PERMISSIONS)
        raise AdminError(AdminCode.INVALID, f"role {role!r} is not one of {roles}")
    return parsed


class NodeKeyStore:
    """The API keys of one node (``api-keys.json``) and its bootstrap key file.

    Readers call :meth:`refresh` (one ``stat``) to see another process's change; writers
    take an exclusive lock on a sidecar ``.lock`` file, reread, change and replace the
    file atomically, so the node and ``gateway node keys`` never lose each other's
    writes. A file that cannot be read refuses every key (fail closed).
    """

    def __init__(self, path: Path, admin_key: Path) -> None:
        self.path = path
        self.admin_key = admin_key
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, StoredKey] = {}
        self._error: str | None = None

    # ------------------------------------------------------------------ reading

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def refresh(self) -> None:
        """Reread the file if it changed since the last read."""
        stamp = self._file_stamp()
        if stamp == self._stamp and self._error is None:
            return
        try:
            self._keys = self._read() if stamp is not None else {}
            self._error = None
        except ValueError as exc:
            self._keys, self._error = {}, str(exc)
        self._stamp = stamp

    def _read(self) -> dict[str, StoredKey]:
        try:
            doc = json.loads(self.path.read_text("utf-8"))
            rows = doc["keys"]
            keys = [StoredKey(**row) for row in rows]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read the API keys in {self.path}: {exc}") from None
        return {k.id: k for k in keys}

    def listed(self) -> list[StoredKey]:
        """Every key, revoked and expired ones too, oldest first."""
        self.refresh()
        if self._error is not None:
            raise AdminError(AdminCode.UNAVAILABLE, self._error)
        return sorted(self._keys.values(), key=lambda k: (k.created, k.id))

    # ------------------------------------------------------------------ writing

    @contextmanager
    def _locked(self) -> Iterator[dict[str, StoredKey]]:
        """The keys to change, under the store's lock; written back when the block ends."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            keys = self._read() if self.path.exists() else {}
            yield keys
            doc = {"keys": [asdict(k) for k in sorted(keys.values(), key=lambda k: k.created)]}
            replace_atomically(self.path, (json.dumps(doc, indent=2) + "\n").encode(), 0o600)
            self._stamp = None  # reread on the next call
        finally:
            os.close(fd)

    def ensure(self, now: datetime) -> str | None:
        """Create the store with its system administrator key if it does not exist; the
        key's id if one was made. An existing ``admin.key`` is adopted as that key."""
        if self.path.exists():
            return None
        with self._locked() as keys:
            if keys:  # another process made it meanwhile
                return None
            adopted = self.admin_key.exists()
            secret = self.admin_key.read_text("ascii").strip() if adopted else new_key()
            if not secret:
                raise ValueError(f"{self.admin_key} is empty")
            row = StoredKey(
                id=new_key_id(),
                name=BOOTSTRAP_NAME,
                role=ApiRole.SYSTEM_ADMINISTRATOR.value,
                digest=key_digest(secret),
                created=format_time(now, "seconds"),
                created_by="adopted admin.key" if adopted else "bootstrap",
            )
            if not adopted:
                fd = os.open(self.admin_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="ascii") as out:
                    out.write(secret + "\n")
            keys[row.id] = row
            return row.id

    def create(
        self, actor: str, name: str, role: str, expires: datetime | None, now: datetime
    ) -> tuple[StoredKey, str]:
        """A new key and its secret, the only time the secret exists outside the caller."""
        problem = new_key_problem(name, None, now)
        if problem is not None:
            raise AdminError(AdminCode.INVALID, problem)
        parsed = parse_role(role)
        problem = new_key_problem(name, expires, now)
        if problem is not None:
            raise AdminError(AdminCode.INVALID, problem)
        secret = new_key()
        row = StoredKey(
            id=new_key_id(),
            name=name,
            role=parsed.value,
            digest=key_digest(secret),
            created=format_time(now, "seconds"),
            created_by=actor,
            expires=format_time(expires, "seconds") if expires is not None else "",
        )
        with self._locked() as keys:
            keys[row.id] = row
        return row, secret

    def revoke(self, key_id: str, now: datetime) -> StoredKey:
        """Mark a key revoked from ``now``; it stays listed. Revoking twice is a conflict."""
        with self._locked() as keys:
            row = keys.get(key_id)
            if row is None:
                raise AdminError(AdminCode.NOT_FOUND, f"no API key {key_id}")
            if row.revoked:
                raise AdminError(AdminCode.CONFLICT, f"API key {key_id} is already revoked")
            row = replace(row, revoked=format_time(now, "seconds"))
            keys[key_id] = row
        return row

    # ------------------------------------------------------------------ checking

    def authenticate(
        self, authorization: str | None, needed: NodePermission, now: datetime
    ) -> KeyHolder:
        """Who calls with ``Authorization: Bearer <key>``, if the key may do ``needed``:
        401 ``admin.unauthorized`` without a usable key (none, unknown, expired,
        revoked, or a store that cannot be read), 403 ``admin.forbidden`` when the key's
        role lacks ``needed``."""
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise AdminError(AdminCode.UNAUTHORIZED, "an API key is required (Bearer)")
        self.refresh()
        if self._error is not None:
            raise AdminError(AdminCode.UNAUTHORIZED, f"no key can be checked: {self._error}")
        digest = key_digest(given)
        row = next((k for k in self._keys.values() if k.digest == digest), None)
        if row is None:
            raise AdminError(AdminCode.UNAUTHORIZED, "unknown API key")
        refusal = row.refusal(now)
        if refusal is not None:
            raise AdminError(AdminCode.UNAUTHORIZED, f"{refusal} (key {row.id})")
        if not permits(NODE_ROLE_PERMISSIONS, row.role, needed):
            raise AdminError(
                AdminCode.FORBIDDEN, f"role {row.role} of key {row.id} may not {needed.value}"
            )
        return KeyHolder(row.id, row.name, row.role)
