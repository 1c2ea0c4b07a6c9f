"""The node's data key kept under a key-encryption key in a PKCS#11 token.

The alternative to the passphrase-wrapped data key file (``gateway.keys.datakey``): the
32-byte data key is encrypted by an AES-256 key generated in the token (sensitive, never
extractable) with ``CKM_AES_GCM``, and only that ciphertext is written to the data key
file. At start the node asks the token to decrypt it; the data key is then in the
node's memory only, as a passphrase-wrapped one is, since every row is sealed and opened
in the process. A copy of the state directory or a backup alone opens nothing: the token
and its PIN are needed (docs/adr/0053-tuf-keys-and-data-key-in-tokens.md).

Decrypting rather than ``C_UnwrapKey`` is deliberate: an unwrapped key would be a token
object the node must then read back, which needs it extractable and not sensitive, the
opposite of what a token is for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import MultipleObjectsReturned, NoSuchKey, PKCS11Error
from pkcs11.mechanisms import GCMParams
from pkcs11.types import DecryptMixin, EncryptMixin

from gateway.core.atrest import DATA_KEY_BYTES, DataKey
from gateway.core.encoding import b64url, b64url_decode
from gateway.keys.datakey import DataKeyError, write_key_document
from gateway.keys.pkcs11 import TokenError, TokenKeyRef, open_session

__all__ = [
    "DATA_KEY_TOKEN_FORMAT",
    "create_token_data_key",
    "load_token_data_key",
    "token_of_file",
]

DATA_KEY_TOKEN_FORMAT: Final = "gateway-node-data-key/token-v1"  # noqa: S105 (a format name)
_NONCE_BYTES: Final = 12


def _aad(key_id: str) -> bytes:
    """Binds the ciphertext to the format and the key id the file names."""
    return f"{DATA_KEY_TOKEN_FORMAT}:{key_id}".encode()


def _one_buffer(result: bytes | object) -> bytes:
    """python-pkcs11 answers one buffer for one buffer given (an iterator only for a
    stream of them)."""
    if not isinstance(result, bytes):
        raise DataKeyError("the token did not answer one buffer")
    return result


def _kek(session: pkcs11.Session, ref: TokenKeyRef) -> DecryptMixin:
    try:
        key = session.get_key(
            object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=ref.key_label
        )
    except NoSuchKey:
        raise DataKeyError(
            f"no AES key labelled {ref.key_label!r} in token {ref.token!r}"
        ) from None
    except MultipleObjectsReturned:
        raise DataKeyError(
            f"token {ref.token!r} holds several AES keys labelled {ref.key_label!r}"
        ) from None
    if not isinstance(key, DecryptMixin):
        raise DataKeyError(f"{ref.describe()} cannot decrypt")
    return key


def create_token_data_key(path: Path, ref: TokenKeyRef, pin: str) -> DataKey:
    """A new data key, encrypted by a new AES-256 key labelled ``ref.key_label`` in the
    token, written to a new ``path`` (0600, never overwritten)."""
    if path.exists():
        raise DataKeyError(f"{path} exists; a data key file is never overwritten")
    try:
        session = open_session(ref, pin, rw=True)
    except TokenError as exc:
        raise DataKeyError(str(exc)) from None
    try:
        if any(True for _ in session.get_objects({Attribute.LABEL: ref.key_label})):
            raise DataKeyError(
                f"token {ref.token!r} already holds a key labelled {ref.key_label!r}; "
                "choose another label"
            )
        kek = session.generate_key(
            KeyType.AES,
            256,
            label=ref.key_label,
            store=True,
            template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
            },
        )
        if not isinstance(kek, EncryptMixin):
            raise DataKeyError(f"{ref.describe()} cannot encrypt")
        raw = os.urandom(DATA_KEY_BYTES)
        data_key = DataKey(raw)
        nonce = os.urandom(_NONCE_BYTES)
        wrapped = kek.encrypt(
            raw,
            mechanism=Mechanism.AES_GCM,
            mechanism_param=GCMParams(nonce, _aad(data_key.key_id)),
        )
    except PKCS11Error as exc:
        raise DataKeyError(
            f"cannot make the data key's AES key as {ref.describe()}: {type(exc).__name__}"
        ) from None
    finally:
        session.close()
    document = {
        "format": DATA_KEY_TOKEN_FORMAT,
        "key_id": data_key.key_id,
        "token": ref.token,
        "key_label": ref.key_label,
        "mechanism": "CKM_AES_GCM",
        "nonce": b64url(nonce),
        "wrapped_key": b64url(_one_buffer(wrapped)),
    }
    write_key_document(path, document)
    return data_key


def is_token_data_key(document: Any) -> bool:
    return isinstance(document, dict) and document.get("format") == DATA_KEY_TOKEN_FORMAT


def token_of_file(path: Path) -> tuple[str, str] | None:
    """The token label and key label a data key file names, or None for a file under a
    passphrase (or one that cannot be read: its loader says why)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not is_token_data_key(document):
        return None
    return str(document.get("token")), str(document.get("key_label"))


def load_token_data_key(path: Path, ref: TokenKeyRef, pin: str) -> DataKey:
    """The data key in ``path``, decrypted by the token's AES key; ``DataKeyError`` with
    the reason (file, token, label, PIN) if it cannot be had. The file must name the
    token and key label the configuration gives, so a node never decrypts with a key it
    was not told to use."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataKeyError(f"cannot read the data key file {path}: {exc.strerror}") from None
    except ValueError:
        raise DataKeyError(f"{path} is not a data key file (not JSON)") from None
    if not is_token_data_key(document):
        raise DataKeyError(f"{path} is not a data key file kept in a token")
    try:
        key_id = str(document["key_id"])
        named = (str(document["token"]), str(document["key_label"]))
        nonce = b64url_decode(document["nonce"])
        wrapped = b64url_decode(document["wrapped_key"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataKeyError(f"{path} is not a data key file ({exc})") from None
    if named != (ref.token, ref.key_label):
        raise DataKeyError(
            f"{path} is kept by key {named[1]!r} in token {named[0]!r}, not by "
            f"{ref.describe()} as configured"
        )
    try:
        session = open_session(ref, pin, rw=False)
    except TokenError as exc:
        raise DataKeyError(str(exc)) from None
    try:
        raw = _kek(session, ref).decrypt(
            wrapped, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, _aad(key_id))
        )
    except PKCS11Error as exc:
        raise DataKeyError(
            f"{ref.describe()} does not decrypt the data key in {path} "
            f"(another token's file, or altered): {type(exc).__name__}"
        ) from None
    finally:
        session.close()
    data_key = DataKey(_one_buffer(raw))
    if data_key.key_id != key_id:
        raise DataKeyError(f"{path}: the decrypted key is not data key {key_id}")
    return data_key
