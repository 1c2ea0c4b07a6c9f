"""Replacing a node's key or certificate keeps the old one: backups never overwrite."""

from __future__ import annotations

import stat
from pathlib import Path

from gateway.keys.files import (
    keep_backup,
    load_private_key,
    pending_key_path,
    promote_pending_key,
    write_private_key,
)
from gateway.pki.keys import generate_key, public_key_der


def test_a_backup_never_overwrites_an_earlier_one(tmp_path: Path) -> None:
    cert = tmp_path / "sign.pem"
    cert.write_bytes(b"first")
    first = keep_backup(cert, "20260302T080000Z")
    cert.unlink()
    cert.write_bytes(b"second")
    second = keep_backup(cert, "20260302T080000Z")

    assert first.name == "sign.pem.20260302T080000Z.bak"
    assert second.name == "sign.pem.20260302T080000Z-1.bak"
    assert (first.read_bytes(), second.read_bytes()) == (b"first", b"second")


def test_a_waiting_key_takes_the_place_of_the_key_kept_as_backup(tmp_path: Path) -> None:
    key_path = tmp_path / "sign.key"
    old, new = generate_key(), generate_key()
    write_private_key(key_path, old)
    pending = pending_key_path(key_path)
    write_private_key(pending, new)

    backup = keep_backup(key_path, "20260302T080000Z")
    promote_pending_key(pending, key_path)

    assert pending.name == "sign.key.new" and not pending.exists()
    assert public_key_der(load_private_key(key_path)) == public_key_der(new)
    assert public_key_der(load_private_key(backup)) == public_key_der(old)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
