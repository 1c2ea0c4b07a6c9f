"""Personal data at rest in the message log: the node's data key and what it seals.

Bodies, signed headers (they carry the end user's id, the case number and a path or
query that often names the person) and data-subject identifiers are personal data; a
stolen database file or backup should not give them away. Each value is sealed with
AES-256-GCM under the node's random data key (envelope encryption: the key itself is
kept wrapped, ``gateway.keys.datakey``). The Merkle leaf is computed from the plaintext
before sealing, so proofs, tree heads and witnessing are the same with or without it.

A data subject must still be found by equality, so beside its sealed value the log
keeps a keyed hash (HMAC-SHA256 under a key derived from the data key): without the
key it neither reveals the identifier nor lets anyone test a guess. The tag starts with
``#``, which no identifier may contain (``gateway.core.datasubject``), so a tag and an
older plaintext row can never be mistaken for each other.

Pure: no files, no database; the randomness of the nonces comes from ``os.urandom``.
See docs/message-log.md (#at-rest) and docs/adr/0048-personal-data-sealed-at-rest.md.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "DATA_KEY_BYTES",
    "PLAIN",
    "SEALED_V1",
    "AtRestError",
    "DataKey",
    "is_subject_tag",
]

DATA_KEY_BYTES: Final = 32
"""AES-256."""

PLAIN: Final = 0
"""``message_log.sealed`` of an entry stored as it is (older logs, admin records)."""

SEALED_V1: Final = 1
"""``message_log.sealed`` of an entry whose header and body are ``DataKey.seal``ed."""

_NONCE_BYTES: Final = 12
_TAG_PREFIX: Final = "#"


class AtRestError(ValueError):
    """A sealed value that does not open under this key: the wrong data key, or a
    value altered on disk. Never a partial or guessed plaintext."""


def is_subject_tag(value: str) -> bool:
    """Whether a stored ``data_subject.subject`` is a lookup tag, not an identifier."""
    return value.startswith(_TAG_PREFIX)


def _derive(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


class DataKey:
    """The node's data key: seals and opens values, and tags data subjects.

    ``purpose`` names the column a value belongs to and is bound as the associated
    data, so a sealed body cannot be passed off as a header or a subject.
    """

    __slots__ = ("_aead", "_lookup", "key_id")

    def __init__(self, key: bytes) -> None:
        if len(key) != DATA_KEY_BYTES:
            raise AtRestError(f"a data key is {DATA_KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self._lookup = _derive(key, b"gateway data-subject lookup v1")
        self.key_id: str = _derive(key, b"gateway data key id v1")[:8].hex()
        """Names the key in messages and in its file without revealing it."""

    def seal(self, plaintext: bytes, purpose: str) -> bytes:
        """``nonce || AES-256-GCM(plaintext)``, with ``purpose`` as associated data."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, purpose.encode())

    def open(self, sealed: bytes, purpose: str) -> bytes:
        """The plaintext of ``seal(plaintext, purpose)``; ``AtRestError`` otherwise."""
        if len(sealed) < _NONCE_BYTES + 16:
            raise AtRestError(f"the sealed {purpose} is too short to be one")
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, purpose.encode())
        except InvalidTag:
            raise AtRestError(
                f"the sealed {purpose} does not open under data key {self.key_id}:"
                " the wrong data key, or the stored value was altered"
            ) from None

    def subject_tag(self, subject: str) -> str:
        """The lookup column of a data subject: ``#`` and HMAC-SHA256 in hex."""
        digest = hmac.new(self._lookup, subject.encode(), hashlib.sha256).hexdigest()
        return _TAG_PREFIX + digest
