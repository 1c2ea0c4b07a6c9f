"""Audit bundles sealed to their recipients: HPKE (RFC 9180) through ``cryptography``.

A bundle holds personal data (signed headers, bodies); an archive of it kept for years,
or handed to an auditor, should be readable by its recipients alone. The sealed form is
one JSON header line naming the suite and, per recipient, the bundle's content key
wrapped with HPKE (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) to that
recipient's X25519 public key; then the bundle itself under AES-256-GCM with the header
line as associated data, so no recipient entry or nonce can be swapped unnoticed.
Opening gives back the exact bytes exported, so a decrypted bundle verifies exactly as
an unsealed one (docs/message-log.md#at-rest,
docs/adr/0048-personal-data-sealed-at-rest.md).

Pure: bytes and keys in, bytes out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.core.encoding import b64url, b64url_decode

__all__ = [
    "SEALED_BUNDLE_FORMAT",
    "BundleSealError",
    "is_sealed_bundle",
    "open_bundle",
    "recipient_id",
    "seal_bundle",
]

SEALED_BUNDLE_FORMAT: Final = "gateway-sealed-bundle/v1"
_SUITE_NAME: Final = "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM"
_SUITE: Final = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_INFO: Final = SEALED_BUNDLE_FORMAT.encode()
_PREFIX: Final = b'{"format":"' + SEALED_BUNDLE_FORMAT.encode() + b'"'


class BundleSealError(ValueError):
    """A sealed bundle that cannot be opened with the key given, or is not well formed."""


def recipient_id(public_key: X25519PublicKey) -> str:
    """SHA-256 (hex) of the recipient's raw public key: names it in the header."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def is_sealed_bundle(data: bytes) -> bool:
    """Whether ``data`` is a sealed bundle (an unsealed one starts with its manifest)."""
    return data.startswith(_PREFIX)


def seal_bundle(bundle: bytes, recipients: Sequence[X25519PublicKey]) -> bytes:
    """``bundle`` sealed so that each of ``recipients`` (one at least) can open it."""
    if not recipients:
        raise BundleSealError("a sealed bundle needs at least one recipient")
    content_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    header: dict[str, Any] = {
        "format": SEALED_BUNDLE_FORMAT,
        "suite": _SUITE_NAME,
        "recipients": [
            {
                "recipient": recipient_id(r),
                "wrapped_key": b64url(_SUITE.encrypt(content_key, r, _INFO)),
            }
            for r in recipients
        ],
        "nonce": b64url(nonce),
    }
    line = json.dumps(header, separators=(",", ":")).encode() + b"\n"
    return line + AESGCM(content_key).encrypt(nonce, bundle, line)


def open_bundle(data: bytes, private_key: X25519PrivateKey) -> bytes:
    """The bundle ``seal_bundle`` sealed, opened with one recipient's private key."""
    end = data.find(b"\n")
    if not is_sealed_bundle(data) or end < 0:
        raise BundleSealError("not a sealed bundle")
    line = data[: end + 1]
    try:
        header = json.loads(line)
        if header["suite"] != _SUITE_NAME:
            raise BundleSealError(f"unknown sealing suite {header['suite']!r}")
        nonce = b64url_decode(header["nonce"])
        wrapped = {
            str(r["recipient"]): b64url_decode(r["wrapped_key"]) for r in header["recipients"]
        }
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BundleSealError):
            raise
        raise BundleSealError(f"the sealed bundle's header is malformed ({exc})") from None
    me = recipient_id(private_key.public_key())
    if me not in wrapped:
        raise BundleSealError(
            f"the bundle is sealed to {', '.join(sorted(wrapped))}; the decryption key "
            f"given is {me}, not one of its recipients"
        )
    try:
        content_key = _SUITE.decrypt(wrapped[me], private_key, _INFO)
        return AESGCM(content_key).decrypt(nonce, data[end + 1 :], line)
    except (InvalidTag, ValueError):
        raise BundleSealError(
            "the sealed bundle does not open with this key: it was altered after sealing"
        ) from None
