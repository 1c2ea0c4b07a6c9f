"""The signed, encrypted backup file of a node or of the central authority.

A backup holds everything needed to bring a node or the central back (its database,
configuration, API keys and key files), so it must be readable only by whoever holds
the backup key, and a restore must refuse a file that was altered or made by someone
else. The file is::

    GATEWAY-BACKUP 1\\n
    <header: canonical JSON>\\n
    <signature: base64url DER ECDSA P-256 over header, "\\n", SHA-256 of the ciphertext>\\n
    <ciphertext: HPKE (RFC 9180) X25519 / HKDF-SHA256 / AES-256-GCM to the recipient,
     with the header as its info>

The header names the signer's public key (the node's signing key, or the central's
backup key) and the recipient's. A restore checks the signature before it decrypts,
then that the key it was given is the recipient, and only then decrypts; HPKE's AEAD
refuses any other change. Pure: bytes in, bytes out, keys passed in
(docs/adr/0046-retention-that-runs-itself.md; docs/deployment.md, Backup and restore).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

__all__ = ["MAGIC", "BackupError", "OpenedBackup", "open_backup", "seal_backup", "spki_sha256"]

MAGIC: Final = b"GATEWAY-BACKUP 1\n"
SUITE_NAME: Final = "HPKE X25519 HKDF-SHA256 AES-256-GCM"
_SUITE: Final = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

SignFn = Callable[[bytes], bytes]
"""DER ECDSA P-256 signature over the SHA-256 of its argument (a key file's key or a
token's key, gateway.core.jws.ExternalSigningKey)."""


class BackupError(Exception):
    """The backup cannot be written or is refused; the message says why."""


class OpenedBackup:
    """A backup whose signature verified and whose content decrypted."""

    def __init__(self, header: dict[str, object], payload: bytes) -> None:
        self.header = header
        self.payload = payload


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _spki(key: ec.EllipticCurvePublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def spki_sha256(key: ec.EllipticCurvePublicKey | X25519PublicKey) -> str:
    """The hex SHA-256 of a public key's SubjectPublicKeyInfo: how a key is named."""
    return hashlib.sha256(_spki(key)).hexdigest()


def _signed(head: bytes, ciphertext: bytes) -> bytes:
    return head + b"\n" + hashlib.sha256(ciphertext).digest()


def seal_backup(
    payload: bytes,
    header: Mapping[str, object],
    recipient: X25519PublicKey,
    signer: ec.EllipticCurvePublicKey,
    sign: SignFn,
) -> bytes:
    """Encrypt ``payload`` to ``recipient`` and sign it with ``signer``'s ``sign``."""
    if not isinstance(signer.curve, ec.SECP256R1):
        raise BackupError("the backup's signing key must be a P-256 key")
    fields = {
        **header,
        "suite": SUITE_NAME,
        "signer": _b64(_spki(signer)),
        "recipient": _b64(_spki(recipient)),
    }
    head = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")
    ciphertext = _SUITE.encrypt(payload, recipient, info=head)
    signature = sign(_signed(head, ciphertext))
    try:
        signer.verify(signature, _signed(head, ciphertext), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BackupError("the signing key did not make a valid signature") from None
    return MAGIC + head + b"\n" + _b64(signature).encode("ascii") + b"\n" + ciphertext


def open_backup(
    data: bytes, key: X25519PrivateKey, *, signer_sha256: str | None = None
) -> OpenedBackup:
    """Check the signature (and, if given, that the signer is the expected key), that
    ``key`` is the recipient, then decrypt. Raises ``BackupError`` saying which failed."""
    if not data.startswith(MAGIC):
        raise BackupError("not a gateway backup (it does not start with GATEWAY-BACKUP 1)")
    parts = data[len(MAGIC) :].split(b"\n", 2)
    if len(parts) != 3:
        raise BackupError("the backup is truncated")
    head, signature_text, ciphertext = parts
    try:
        header = json.loads(head)
        signer = load_der_public_key(_unb64(str(header["signer"])))
        recipient = _unb64(str(header["recipient"]))
        signature = _unb64(signature_text.decode("ascii"))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BackupError("the backup's header does not parse") from None
    if not isinstance(header, dict) or not isinstance(signer, ec.EllipticCurvePublicKey):
        raise BackupError("the backup's header does not name a P-256 signing key")
    try:
        signer.verify(signature, _signed(head, ciphertext), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BackupError(
            "the backup's signature does not verify: it was altered after it was written"
        ) from None
    if signer_sha256 is not None and spki_sha256(signer) != signer_sha256.lower():
        raise BackupError(
            f"the backup is signed by key {spki_sha256(signer)}, not by the expected"
            f" {signer_sha256.lower()}"
        )
    if _spki(key.public_key()) != recipient:
        raise BackupError(
            "wrong decryption key: the backup is encrypted to key"
            f" {hashlib.sha256(recipient).hexdigest()}, the key given is"
            f" {spki_sha256(key.public_key())}"
        )
    try:
        payload = _SUITE.decrypt(ciphertext, key, info=head)
    except InvalidTag:
        raise BackupError("the backup does not decrypt with the key given") from None
    return OpenedBackup(header, payload)
