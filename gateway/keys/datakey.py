"""The node's data key file: the key that seals personal data in the message log.

Envelope encryption: the data key is 32 random bytes that never touch the disk in the
clear; its file holds it wrapped (AES-256-GCM) under a key-encryption key derived from
the operator's passphrase with scrypt, as a passphrase protects the node's other keys.
Changing the passphrase rewraps 32 bytes and leaves the log as it is; losing both the
file and its passphrase loses the sealed data, which is why the file belongs in the
node's backup (docs/message-log.md#at-rest, docs/adr/0048-personal-data-sealed-at-rest.md).

The file is created with ``O_EXCL`` at mode 0600 and never overwritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gateway.core.atrest import DATA_KEY_BYTES, DataKey
from gateway.core.encoding import b64url, b64url_decode
from gateway.keys.passphrase import PassphraseError, resolve_passphrase

__all__ = ["DATA_KEY_FORMAT", "DataKeyError", "create_data_key", "load_data_key", "read_passphrase"]

DATA_KEY_FORMAT: Final = "gateway-node-data-key/v1"
_SCRYPT_N: Final = 2**15
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_FILE_MODE: Final = 0o600


class DataKeyError(Exception):
    """The data key file is missing, malformed, or its passphrase is wrong."""


def _kek(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> AESGCM:
    return AESGCM(Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase))


def write_key_document(path: Path, document: dict[str, Any]) -> None:
    """Write a wrapped data key's document to a new owner-only file, durably: the key
    exists only there, so a file is never overwritten and is on disk before it is used."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _FILE_MODE)
    except FileExistsError:
        raise DataKeyError(f"{path} exists; a data key file is never overwritten") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def create_data_key(path: Path, passphrase: bytes) -> DataKey:
    """Generate a data key and write it wrapped under ``passphrase`` to a new ``path``."""
    if not passphrase:
        raise DataKeyError("a data key file needs a passphrase")
    key = os.urandom(DATA_KEY_BYTES)
    salt, nonce = os.urandom(16), os.urandom(12)
    data_key = DataKey(key)
    wrapped = _kek(passphrase, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P).encrypt(
        nonce, key, DATA_KEY_FORMAT.encode()
    )
    document = {
        "format": DATA_KEY_FORMAT,
        "key_id": data_key.key_id,
        "kdf": {"name": "scrypt", "n": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P},
        "salt": b64url(salt),
        "nonce": b64url(nonce),
        "wrapped_key": b64url(wrapped),
    }
    write_key_document(path, document)
    return data_key


def load_data_key(path: Path, passphrase: bytes) -> DataKey:
    """The data key in ``path``; ``DataKeyError`` with the reason if it cannot be had."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataKeyError(f"cannot read the data key file {path}: {exc.strerror}") from None
    except ValueError:
        raise DataKeyError(f"{path} is not a data key file (not JSON)") from None
    try:
        if document["format"] != DATA_KEY_FORMAT:
            raise DataKeyError(f"{path}: unknown format {document['format']!r}")
        kdf = document["kdf"]
        if kdf["name"] != "scrypt":
            raise DataKeyError(f"{path}: unknown key derivation {kdf['name']!r}")
        aead = _kek(
            passphrase,
            b64url_decode(document["salt"]),
            int(kdf["n"]),
            int(kdf["r"]),
            int(kdf["p"]),
        )
        nonce = b64url_decode(document["nonce"])
        wrapped = b64url_decode(document["wrapped_key"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataKeyError(f"{path} is not a data key file ({exc})") from None
    try:
        key = aead.decrypt(nonce, wrapped, DATA_KEY_FORMAT.encode())
    except InvalidTag:
        raise DataKeyError(
            f"the passphrase does not unwrap the data key in {path} (wrong passphrase?)"
        ) from None
    return DataKey(key)


def read_passphrase(path: Path | None, env: str = "GATEWAY_DATA_KEY_PASSPHRASE") -> bytes:
    """The data key's passphrase: the first line of ``path`` (readable by its owner
    only, as every passphrase file), else the environment variable ``env``;
    ``DataKeyError`` if neither gives one. Never logged, never prompted for: the data
    key is opened by services and commands that may have no terminal."""
    try:
        return resolve_passphrase(
            path,
            prompt=None,
            what="the data key",
            file_option="a passphrase file ([logging] data_key_passphrase_file)",
            env_name=env,
        )
    except PassphraseError as exc:
        raise DataKeyError(str(exc)) from None
