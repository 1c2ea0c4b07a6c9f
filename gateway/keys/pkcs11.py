"""Member signing keys in a PKCS#11 token (an HSM, a smart card, SoftHSM2).

The private key is generated on the token and never leaves it: the node signs each
header by asking the token for an ECDSA signature (``CKM_ECDSA`` over the SHA-256 digest
this process computes, the one mechanism every token with EC keys offers), and the CSR
for the key's certificate is signed the same way (``gateway.pki.csr``). Member signing
keys (docs/adr/0038-member-signing-keys-in-pkcs11-tokens.md) and the central's TUF keys
(``gateway.keys.tuftoken``, docs/adr/0053-tuf-keys-and-data-key-in-tokens.md) live here.

The PIN comes from a file, an environment variable or a prompt. It is held only for the
login, never logged and never part of an error message: a message names where the PIN
came from, so the operator knows which one to fix.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import secrets
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (
    MultipleObjectsReturned,
    NoSuchKey,
    NoSuchToken,
    PinIncorrect,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    UserAlreadyLoggedIn,
)
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from gateway.core.ids import MemberId
from gateway.keys.files import write_csr
from gateway.pki.csr import make_csr_signed_by
from gateway.pki.profiles import CertKind

__all__ = [
    "TokenError",
    "TokenKeyRef",
    "TokenSigningKey",
    "generate_in_session",
    "generate_token_key",
    "load_token_key",
    "new_token_key_and_csr",
    "open_session",
    "read_pin",
    "token_keys",
]

P256_OID = "1.2.840.10045.3.1.7"
"""secp256r1 (prime256v1): ES256's curve."""


class TokenError(ValueError):
    """The token, its PIN or its key cannot be used; the message says which and why,
    and never contains the PIN."""


@dataclass(frozen=True, slots=True)
class TokenKeyRef:
    """Where a key is: the PKCS#11 module, the token's label, the key's label, and where
    its PIN comes from (``pin_file``, else the variable ``pin_env``, else a prompt)."""

    module: Path
    token: str
    key_label: str
    pin_file: Path | None = None
    pin_env: str | None = None

    def describe(self) -> str:
        return f"key {self.key_label!r} in token {self.token!r} ({self.module})"


def read_pin(
    ref: TokenKeyRef,
    *,
    prompt: Callable[[str], str] | None = getpass.getpass,
    interactive: bool | None = None,
) -> str:
    """The token's PIN from ``ref``'s file or variable, or asked for on a terminal.

    A node started by a service manager has no terminal: there an absent file or
    variable is an error, not a prompt that would wait for ever.
    """
    if ref.pin_file is not None:
        try:
            pin = ref.pin_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise TokenError(
                f"cannot read the PIN file {ref.pin_file} of token {ref.token!r}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        source = f"the PIN file {ref.pin_file}"
    elif ref.pin_env is not None:
        pin = os.environ.get(ref.pin_env, "")
        source = f"the environment variable {ref.pin_env}"
    else:
        if interactive is None:
            interactive = sys.stdin.isatty()
        if prompt is None or not interactive:
            raise TokenError(
                f"no PIN for token {ref.token!r}: set pin_file or pin_env, or start on a "
                "terminal to be asked for it"
            )
        pin = prompt(f"PIN of token {ref.token!r}: ")
        source = "the prompt"
    if not pin:
        raise TokenError(f"the PIN of token {ref.token!r} from {source} is empty")
    return pin


def _pin_source(ref: TokenKeyRef) -> str:
    if ref.pin_file is not None:
        return f" (from {ref.pin_file})"
    if ref.pin_env is not None:
        return f" (from ${ref.pin_env})"
    return ""


def _open(ref: TokenKeyRef, pin: str, *, rw: bool) -> pkcs11.Session:
    """A logged-in session on ``ref``'s token; every failure becomes a TokenError that
    names the token and the PIN's source, never the PIN."""
    try:
        library = pkcs11.lib(str(ref.module))
    except (OSError, RuntimeError, PKCS11Error) as exc:
        raise TokenError(f"cannot load the PKCS#11 module {ref.module}: {exc}") from None
    try:
        token = library.get_token(token_label=ref.token)
    except NoSuchToken:
        raise TokenError(f"no token labelled {ref.token!r} in {ref.module}") from None
    except PKCS11Error as exc:
        raise TokenError(f"cannot find token {ref.token!r}: {type(exc).__name__}") from None
    try:
        return token.open(user_pin=pin, rw=rw)
    except UserAlreadyLoggedIn:
        # PKCS#11 logs a whole process in: a second key of this process in the same
        # token (the data key's AES key beside a signing key) shares the login, and a
        # session without a login of its own never logs the others out when it closes.
        try:
            return token.open(rw=rw)
        except PKCS11Error as exc:
            raise TokenError(f"cannot open token {ref.token!r}: {type(exc).__name__}") from None
    except (PinIncorrect, PinLenRange):
        raise TokenError(
            f"the PIN of token {ref.token!r}{_pin_source(ref)} is wrong; the token may lock "
            "after a few wrong PINs"
        ) from None
    except PinLocked:
        raise TokenError(f"token {ref.token!r} is locked: too many wrong PINs") from None
    except PKCS11Error as exc:
        raise TokenError(f"cannot log in to token {ref.token!r}: {type(exc).__name__}") from None


def _public_key(key: pkcs11.Key, ref: TokenKeyRef) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, pkcs11.PublicKey):
        raise TokenError(f"{ref.describe()} has no public key object")
    public = serialization.load_der_public_key(encode_ec_public_key(key))
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
        public.curve, ec.SECP256R1
    ):
        raise TokenError(f"{ref.describe()} is not an EC P-256 key")
    return public


def _signing(key: pkcs11.Key, ref: TokenKeyRef) -> pkcs11.SignMixin:
    if not isinstance(key, pkcs11.SignMixin):
        raise TokenError(f"{ref.describe()} cannot sign")
    return key


class TokenSigningKey:
    """A P-256 key in a token, kept logged in for the node's life: it signs through
    the token and gives the public key it reported (``gateway.core.jws.ExternalSigningKey``).

    One PKCS#11 session runs one operation at a time, so signatures are serialised here;
    the node signs from its event loop and its timestamper's thread.
    """

    def __init__(
        self,
        ref: TokenKeyRef,
        session: pkcs11.Session,
        private: pkcs11.SignMixin,
        public: ec.EllipticCurvePublicKey,
        lock: threading.Lock | None = None,
    ) -> None:
        self.ref = ref
        self._session = session
        self._private = private
        self._public = public
        self._lock = lock or threading.Lock()
        """Keys that share one session share its lock (``token_keys``)."""

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        """DER ECDSA over SHA-256 of ``data``; the token signs the digest (CKM_ECDSA)
        and answers raw ``r || s``."""
        digest = hashlib.sha256(data).digest()
        try:
            with self._lock:
                raw = self._private.sign(digest, mechanism=Mechanism.ECDSA)
        except PKCS11Error as exc:
            raise TokenError(f"{self.ref.describe()} did not sign: {type(exc).__name__}") from None
        if len(raw) != 64:
            raise TokenError(f"{self.ref.describe()} gave a {len(raw)}-byte P-256 signature")
        return encode_dss_signature(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        )

    def close(self) -> None:
        self._session.close()


def load_token_key(ref: TokenKeyRef, pin: str) -> TokenSigningKey:
    """The key labelled ``ref.key_label`` on the token, logged in with ``pin``."""
    session = _open(ref, pin, rw=False)
    try:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=ref.key_label)
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=ref.key_label)
        return TokenSigningKey(ref, session, _signing(private, ref), _public_key(public, ref))
    except NoSuchKey:
        session.close()
        raise TokenError(
            f"no private and public key labelled {ref.key_label!r} in token {ref.token!r}"
        ) from None
    except MultipleObjectsReturned:
        session.close()
        raise TokenError(
            f"token {ref.token!r} holds several keys labelled {ref.key_label!r}"
        ) from None
    except BaseException:
        session.close()
        raise


def generate_token_key(ref: TokenKeyRef, pin: str) -> TokenSigningKey:
    """A new P-256 key pair on the token, private half sensitive and never extractable.

    Refuses a label already in use, as a key file is never overwritten: the old key
    may still sign under a valid certificate.
    """
    session = _open(ref, pin, rw=True)
    try:
        return generate_in_session(session, ref)
    except BaseException:
        session.close()
        raise


def generate_in_session(
    session: pkcs11.Session, ref: TokenKeyRef, lock: threading.Lock | None = None
) -> TokenSigningKey:
    """``generate_token_key`` in a session already open read-write; the session stays
    open (a key ring keeps one per token: a second login of the same process fails)."""
    try:
        if any(True for _ in session.get_objects({Attribute.LABEL: ref.key_label})):
            raise TokenError(
                f"token {ref.token!r} already holds a key labelled {ref.key_label!r}; "
                "choose another label"
            )
        parameters = session.create_domain_parameters(
            KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters(P256_OID)},
            local=True,
        )
        public, private = parameters.generate_keypair(
            store=True,
            label=ref.key_label,
            id=secrets.token_bytes(16),
            private_template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
            },
        )
        return TokenSigningKey(ref, session, _signing(private, ref), _public_key(public, ref), lock)
    except PKCS11Error as exc:
        raise TokenError(f"cannot generate {ref.describe()}: {type(exc).__name__}") from None


def open_session(ref: TokenKeyRef, pin: str, *, rw: bool) -> pkcs11.Session:
    """A logged-in session on ``ref``'s token (``ref.key_label`` is not used); errors
    name the token and the PIN's source, never the PIN."""
    return _open(ref, pin, rw=rw)


def token_keys(
    session: pkcs11.Session, ref: TokenKeyRef, prefix: str, lock: threading.Lock
) -> list[TokenSigningKey]:
    """Every key pair in the session's token whose label starts with ``prefix``, each
    signing through ``session`` under the one ``lock``; sorted by label."""
    found: list[TokenSigningKey] = []
    try:
        privates = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        for private in privates:
            label = str(private[Attribute.LABEL])
            if not label.startswith(prefix) or not isinstance(private, pkcs11.PrivateKey):
                continue
            key_ref = TokenKeyRef(ref.module, ref.token, label, ref.pin_file, ref.pin_env)
            try:
                public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
            except (NoSuchKey, MultipleObjectsReturned):
                raise TokenError(
                    f"token {ref.token!r}: key {label!r} needs exactly one public key object"
                ) from None
            found.append(
                TokenSigningKey(
                    key_ref, session, _signing(private, key_ref), _public_key(public, key_ref), lock
                )
            )
    except PKCS11Error as exc:
        raise TokenError(
            f"cannot list the keys of token {ref.token!r}: {type(exc).__name__}"
        ) from None
    return sorted(found, key=lambda k: k.ref.key_label)


def new_token_key_and_csr(
    ref: TokenKeyRef,
    pin: str,
    member: MemberId,
    csr_out: Path,
    organisation: str | None = None,
    *,
    country: str | None = None,
) -> x509.CertificateSigningRequest:
    """Generate a member signing key on the token and write its CSR, signed by the token."""
    key = generate_token_key(ref, pin)
    try:
        csr = make_csr_signed_by(
            key.public_key(), key.sign, CertKind.SIGN, member, organisation, country=country
        )
    finally:
        key.close()
    write_csr(csr_out, csr)
    return csr
