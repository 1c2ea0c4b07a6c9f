"""Archive recipients' keys: the X25519 key pairs audit bundles are sealed to.

A member names its archive recipients (an archive officer, an auditor) by their public
keys; each keeps the private key and opens the bundles with it (``gateway audit verify
--decrypt-key``). The private key is written with ``O_EXCL`` at mode 0600 and never
overwritten, like the node's other keys (docs/adr/0048-personal-data-sealed-at-rest.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

__all__ = [
    "RecipientKeyError",
    "load_recipient_key",
    "load_recipient_public_key",
    "write_recipient_key",
]


class RecipientKeyError(Exception):
    """A recipient key file that is missing, not X25519, or locked by another passphrase."""


def write_recipient_key(private: Path, public: Path, passphrase: bytes | None = None) -> str:
    """Generate a recipient key pair: the private key (PKCS#8, encrypted under
    ``passphrase`` if given) to ``private``, the public key to ``public``; its PEM."""
    key = X25519PrivateKey.generate()
    encryption = NoEncryption() if not passphrase else BestAvailableEncryption(passphrase)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)
    try:
        fd = os.open(private, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise RecipientKeyError(f"{private} exists; a private key is never overwritten") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    public.write_bytes(public_pem)
    return public_pem.decode()


def load_recipient_public_key(path: Path) -> X25519PublicKey:
    """A recipient's public key (PEM)."""
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise RecipientKeyError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise RecipientKeyError(f"{path} is not a PEM public key ({exc})") from None
    if not isinstance(key, X25519PublicKey):
        raise RecipientKeyError(f"{path} is not an X25519 public key")
    return key


def load_recipient_key(path: Path, passphrase: bytes | None = None) -> X25519PrivateKey:
    """A recipient's private key (PEM, PKCS#8, encrypted or not)."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=passphrase or None)
    except OSError as exc:
        raise RecipientKeyError(f"cannot read {path}: {exc.strerror}") from None
    except (TypeError, ValueError) as exc:
        raise RecipientKeyError(
            f"{path} does not load as a private key: {exc} (wrong passphrase?)"
        ) from None
    if not isinstance(key, X25519PrivateKey):
        raise RecipientKeyError(f"{path} is not an X25519 private key")
    return key
