"""The central authority's TUF keys in PKCS#11 tokens, as securesystemslib signers.

python-tuf signs metadata through securesystemslib's ``Signer``. securesystemslib's own
``HSMSigner`` is built on PyKCS11, a second PKCS#11 binding beside the python-pkcs11 the
node's signing keys already use (``gateway.keys.pkcs11``); this module wraps those keys
instead, so one binding, one PIN rule and one set of error messages serve every key in a
token (docs/adr/0053-tuf-keys-and-data-key-in-tokens.md).

- :class:`TokenTufSigner`: one P-256 token key as a ``Signer`` (scheme
  ``ecdsa-sha2-nistp256``, the scheme ``CryptoSigner.generate_ecdsa`` gives file keys,
  so a node's TUF client verifies both alike).
- :class:`TokenKeyring`: the central's online keys (targets, snapshot, timestamp): one
  logged-in session per token for the process's life, since PKCS#11 logs a whole
  process in and out at once (a second login fails, any session's logout ends all).
- :func:`public_key_document` / :func:`load_public_key_document`: a root key holder's
  public key, carried to the operator for ``gateway central root prepare``.
"""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Any, Final

import pkcs11
from securesystemslib.signer import SecretsHandler, Signature, Signer, SSlibKey
from securesystemslib.signer._utils import compute_default_keyid

from gateway.keys.pkcs11 import (
    TokenError,
    TokenKeyRef,
    TokenSigningKey,
    generate_in_session,
    open_session,
    token_keys,
)

__all__ = [
    "ONLINE_KEY_PREFIX",
    "TokenKeyring",
    "TokenTufSigner",
    "load_public_key_document",
    "public_key_document",
]

ONLINE_KEY_PREFIX: Final = "tuf-online-"
"""The label prefix of the central's online keys in its token; other keys on the same
token (a member's signing key, say) are never taken for TUF keys."""
SCHEME: Final = "ecdsa-sha2-nistp256"


class TokenTufSigner(Signer):
    """A TUF signer whose private key never leaves its token."""

    def __init__(self, key: TokenSigningKey) -> None:
        self._key = key
        self._public = SSlibKey.from_crypto(key.public_key(), scheme=SCHEME)

    @property
    def public_key(self) -> SSlibKey:
        return self._public

    @property
    def label(self) -> str:
        return self._key.ref.key_label

    def sign(self, payload: bytes) -> Signature:
        """A DER ECDSA signature over SHA-256 of ``payload``, made by the token: what
        ``SSlibKey.verify_signature`` checks for this scheme."""
        return Signature(self._public.keyid, self._key.sign(payload).hex())

    @classmethod
    def from_priv_key_uri(
        cls,
        priv_key_uri: str,
        public_key: Any,
        secrets_handler: SecretsHandler | None = None,
    ) -> TokenTufSigner:
        """Not offered: token keys are opened with a ``TokenKeyRef`` and the PIN rules of
        ``gateway.keys.passphrase``, never from a URI carrying its own PIN."""
        raise ValueError("token TUF keys are opened through gateway.keys.tuftoken")

    def close(self) -> None:
        self._key.close()


class TokenKeyring:
    """The online TUF keys in one token, logged in once for the process's life.

    ``ref.key_label`` is not used: keys are found by the label prefix
    :data:`ONLINE_KEY_PREFIX` and told apart by their TUF key id.
    """

    def __init__(self, ref: TokenKeyRef, pin: str) -> None:
        self.ref = ref
        self._session: pkcs11.Session = open_session(ref, pin, rw=True)
        self._lock = threading.Lock()

    def signers(self) -> dict[str, TokenTufSigner]:
        """Every online key in the token by key id."""
        with self._lock:  # a search is a token operation too
            keys = token_keys(self._session, self.ref, ONLINE_KEY_PREFIX, self._lock)
        signers = (TokenTufSigner(k) for k in keys)
        return {s.public_key.keyid: s for s in signers}

    def generate(self) -> TokenTufSigner:
        """A new P-256 key pair on the token under a fresh online label."""
        label = f"{ONLINE_KEY_PREFIX}{secrets.token_hex(8)}"
        ref = TokenKeyRef(
            self.ref.module, self.ref.token, label, self.ref.pin_file, self.ref.pin_env
        )
        with self._lock:
            key = generate_in_session(self._session, ref, self._lock)
        return TokenTufSigner(key)

    def close(self) -> None:
        self._session.close()


def public_key_document(signer: Signer) -> dict[str, Any]:
    """The public half of a root key, as the holder hands it to the operator."""
    return {"keyid": signer.public_key.keyid, **signer.public_key.to_dict()}


def load_public_key_document(path: Path) -> SSlibKey:
    """A holder's public key file; its key id must be the one its key data gives, so a
    file edited on the way cannot put one key into the root under another's id."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        keyid = doc.pop("keyid")
        key = SSlibKey.from_dict(keyid, doc)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TokenError(f"{path} is not a TUF public key file: {exc}") from None
    expected = compute_default_keyid(key.keytype, key.scheme, key.keyval)
    if keyid != expected:
        raise TokenError(f"{path}: key id {keyid} does not match its key data ({expected})")
    return key
