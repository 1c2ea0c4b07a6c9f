"""The backup file (``gateway.backupfile``) and the central's backup and restore.

A backup opens only with the backup key it was encrypted to, only if nobody changed a
byte of it, and, when the restorer pins it, only if the expected key signed it; the
central comes back from it with the same registry, TUF keys and repository.
"""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.backupfile import BackupError, open_backup, seal_backup, spki_sha256
from gateway.central.apikeys import init_central
from gateway.central.backup import backup_central, restore_central
from gateway.central.service import Central, InitOptions
from gateway.keys.backupkeys import generate_backup_key
from gateway.trust.ca_store import init_ca

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _sealed(payload: bytes) -> tuple[bytes, X25519PrivateKey, ec.EllipticCurvePrivateKey]:
    recipient = X25519PrivateKey.generate()
    signer = ec.generate_private_key(ec.SECP256R1())
    sealed = seal_backup(
        payload,
        {"kind": "node"},
        recipient.public_key(),
        signer.public_key(),
        lambda data: signer.sign(data, ec.ECDSA(hashes.SHA256())),
    )
    return sealed, recipient, signer


def test_a_backup_opens_with_its_key_and_the_expected_signer() -> None:
    sealed, key, signer = _sealed(b"the node's directory")
    assert b"the node's directory" not in sealed
    opened = open_backup(sealed, key, signer_sha256=spki_sha256(signer.public_key()))
    assert opened.payload == b"the node's directory"
    assert opened.header["kind"] == "node"


@pytest.mark.parametrize("where", [-5, 40], ids=["ciphertext", "header"])
def test_a_changed_byte_is_refused_for_the_signature(where: int) -> None:
    sealed, key, _ = _sealed(b"x" * 100)
    changed = bytearray(sealed)
    changed[where] ^= 1
    with pytest.raises(BackupError, match=r"signature does not verify|header does not parse"):
        open_backup(bytes(changed), key)


def test_another_key_or_signer_is_refused_by_name() -> None:
    sealed, _, _ = _sealed(b"x")
    with pytest.raises(BackupError, match="wrong decryption key"):
        open_backup(sealed, X25519PrivateKey.generate())
    _, key, _ = _sealed(b"y")
    other, other_key, _ = _sealed(b"y")
    with pytest.raises(BackupError, match=r"signed by key .* not by the expected"):
        open_backup(other, other_key, signer_sha256="00" * 32)
    with pytest.raises(BackupError, match="not a gateway backup"):
        open_backup(b"PK\x03\x04", key)


def test_the_central_comes_back_from_its_backup(tmp_path: Path) -> None:
    ca = init_ca(tmp_path / "ca", "Test CA", NOW)
    options = InitOptions(
        instance="DE-NRW",
        ca_cert=ca,
        ocsp_urls=(),
        public_url="http://127.0.0.1:8070",
        development=True,
    )
    directory = tmp_path / "central"
    init_central(directory, options)
    generate_backup_key(tmp_path / "backup.key", tmp_path / "backup.pub")
    out = tmp_path / "central.backup"
    done = backup_central(directory, out, tmp_path / "backup.pub", now=NOW)
    assert done.files >= 5 and stat.S_IMODE(out.stat().st_mode) == 0o600
    with pytest.raises(BackupError, match="never overwritten"):
        backup_central(directory, out, tmp_path / "backup.pub", now=NOW)
    restored = tmp_path / "restored"
    header, files = restore_central(
        out, restored, tmp_path / "backup.key", signer_sha256=done.signer_sha256
    )
    assert header["kind"] == "central" and files == done.files
    assert Central(restored).anchor().root == Central(directory).anchor().root
    for key in (directory / "keys").iterdir():
        copy = restored / "keys" / key.name
        assert copy.read_bytes() == key.read_bytes()
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert (restored / "admin.key").read_bytes() == (directory / "admin.key").read_bytes()
    with pytest.raises(BackupError, match="not empty"):
        restore_central(out, restored, tmp_path / "backup.key")
