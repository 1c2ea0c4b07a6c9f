"""The backup key: an X25519 key pair a backup is encrypted to (``gateway.backupfile``).

Kept apart from the node's and the central's own keys on purpose: the private half
belongs off the machine being backed up (the operator's safe, another site), since a
backup that the machine's own keys open is lost with the machine. The public half
(``.pub``) is all the machine needs to write backups.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from gateway.keys.files import CERT_FILE_MODE, KEY_FILE_MODE

__all__ = ["generate_backup_key", "load_backup_key", "load_backup_recipient"]


def generate_backup_key(private: Path, public: Path) -> X25519PublicKey:
    """Write a new key pair: ``private`` PKCS#8 PEM (0600, never overwritten), ``public``
    SubjectPublicKeyInfo PEM."""
    if public.exists():
        raise FileExistsError(f"refusing to overwrite {public}")
    key = X25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(private, os.O_CREAT | os.O_EXCL | os.O_WRONLY, KEY_FILE_MODE)
    except FileExistsError:
        raise FileExistsError(
            f"refusing to overwrite existing private key file {private}"
        ) from None
    try:
        os.fchmod(fd, KEY_FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        private.unlink(missing_ok=True)
        raise
    recipient = key.public_key()
    public.write_bytes(
        recipient.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    public.chmod(CERT_FILE_MODE)
    return recipient


def load_backup_recipient(path: Path) -> X25519PublicKey:
    """The public backup key a backup is encrypted to."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, X25519PublicKey):
        raise ValueError(f"{path} is not an X25519 backup key (gateway node backup-key)")
    return key


def load_backup_key(path: Path) -> X25519PrivateKey:
    """The private backup key that opens backups."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, X25519PrivateKey):
        raise ValueError(f"{path} is not an X25519 backup key (gateway node backup-key)")
    return key
