"""The JWS of a signed header: signing, the signer's chain, verification.

Every signed header (request, response, tree head) is the payload of a JWS (RFC 7515)
in compact serialisation with a detached payload (appendix F), signed ES256 by a
member's signing key with the signer's chain in ``x5c``. This module is that signature
and nothing of the header's content (``gateway.core.envelope``): a ``Signer`` makes it,
``parse_jws_chain`` reads its chain (the node and the offline audit verifier both start
there) and a ``SignatureVerifier`` validates the chain against the trusted roots at a
given time and checks the signature. Verification raises
:class:`~gateway.core.envelope.EnvelopeError`; it never returns a boolean.
"""

from __future__ import annotations

import base64
import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from gateway.core.canonical import NotCanonicalError, canonical_json, parse_canonical
from gateway.core.encoding import EncodingError, b64url, b64url_decode
from gateway.core.envelope import EnvelopeError, decode_segment
from gateway.core.ids import MemberId
from gateway.pki.profiles import CertificateError
from gateway.pki.validation import verify_signing_certificate

JWS_ALGORITHM = "ES256"
# ES256 (RFC 7518 section 3.4) on ``cryptography`` itself: ECDSA over P-256 with
# SHA-256, the signature as raw ``r || s``. One algorithm object for every call.
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def cert_ref(cert: x509.Certificate) -> str:
    """A certificate's reference in logs: lower-case hex SHA-256 of its DER."""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


class ExternalSigningKey(Protocol):
    """A P-256 key whose private half this process never holds: a key in a PKCS#11 token
    (``gateway.keys.pkcs11``). ``sign`` returns the DER ECDSA signature over the SHA-256
    of ``data``, as X.509 wants it (the same key signs its CSR); the JWS turns it into
    the raw ``r || s`` of RFC 7518.
    """

    def public_key(self) -> ec.EllipticCurvePublicKey: ...

    def sign(self, data: bytes) -> bytes: ...


def _raw_es256(der: bytes) -> bytes:
    """RFC 7518 section 3.4: the two 32-byte big-endian integers, not DER."""
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class Signer:
    """Signs headers with one member's key; the protected header is fixed per certificate.

    Everything per message lives in the payload, so the JWS protected header (algorithm
    and chain) is encoded once and the log can store it once per certificate. The key is
    a key file's ``cryptography`` key (signed in process, as always) or a key held in a
    token (:class:`ExternalSigningKey`, docs/adr/0038-member-signing-keys-in-pkcs11-tokens.md).
    """

    def __init__(
        self,
        member: MemberId,
        key: ec.EllipticCurvePrivateKey | ExternalSigningKey,
        chain: Sequence[x509.Certificate],
    ) -> None:
        if not isinstance(key.public_key().curve, ec.SECP256R1):
            raise ValueError("ES256 needs a P-256 key")
        self.member = member
        self._sign: Callable[[bytes], bytes]
        if isinstance(key, ec.EllipticCurvePrivateKey):
            file_key = key
            self._sign = lambda data: _raw_es256(file_key.sign(data, _ECDSA_SHA256))
        else:
            external = key
            self._sign = lambda data: _raw_es256(external.sign(data))
        self.certificate = chain[0]
        self.cert_ref = cert_ref(chain[0])
        self.cert_der = chain[0].public_bytes(Encoding.DER)
        x5c = [base64.b64encode(c.public_bytes(Encoding.DER)).decode("ascii") for c in chain]
        self.jws_header = b64url(canonical_json({"alg": JWS_ALGORITHM, "x5c": x5c}))

    def sign(self, payload: bytes) -> str:
        """Compact JWS with detached payload: ``header..signature``."""
        signing_input = f"{self.jws_header}.{b64url(payload)}".encode("ascii")
        return f"{self.jws_header}..{b64url(self._sign(signing_input))}"


def parse_jws_chain(header_segment: str) -> list[x509.Certificate]:
    """The certificate chain (``x5c``) of a JWS protected header, leaf first.

    The header must be canonical JSON of exactly ``alg`` = ES256 and ``x5c`` (1 to 4
    certificates). Only parsed, not validated: the node's :class:`SignatureVerifier`
    and the offline audit verifier (``gateway.audit.verify``) both start here and then
    validate the chain against their own roots at their own time.
    """
    try:
        header = parse_canonical(decode_segment(header_segment))
    except NotCanonicalError as exc:
        raise EnvelopeError("malformed", f"JWS header is not canonical JSON: {exc}") from None
    if header.get("alg") != JWS_ALGORITHM or set(header) != {"alg", "x5c"}:
        raise EnvelopeError("signature", f"JWS header must be exactly alg={JWS_ALGORITHM} and x5c")
    x5c = header["x5c"]
    if not isinstance(x5c, list) or not 1 <= len(x5c) <= 4:
        raise EnvelopeError("malformed", "x5c must list 1 to 4 certificates")
    try:
        # Certificates cryptography only warns about (e.g. a non-positive serial)
        # are refused outright: they will not parse in a future release.
        with warnings.catch_warnings():
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            chain = [
                x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c
            ]
            # The fields read of any certificate in the chain, decoded now (cryptography
            # decodes them lazily), so a damaged one is refused here and nowhere later.
            for cert in chain:
                cert.serial_number  # noqa: B018 - parsing it is the check
                cert.issuer  # noqa: B018
                cert.subject  # noqa: B018
                cert.not_valid_before_utc  # noqa: B018
                cert.not_valid_after_utc  # noqa: B018
    except (
        ValueError,
        TypeError,
        x509.InvalidVersion,
        CryptographyDeprecationWarning,
    ) as exc:
        raise EnvelopeError("malformed", f"x5c certificate does not parse: {exc}") from None
    return chain


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature that verified, and who made it."""

    signer: MemberId
    certificate: x509.Certificate
    cert_ref: str
    cert_der: bytes
    jws_header: str
    jws: str  # the whole compact JWS, as logged: an auditor re-verifies it as is


@dataclass(frozen=True, slots=True)
class _Signer:
    member: MemberId
    certificate: x509.Certificate
    public_key: ec.EllipticCurvePublicKey
    cert_ref: str
    cert_der: bytes
    valid_from: datetime
    valid_until: datetime


class SignatureVerifier:
    """Verifies detached JWS signatures against trusted roots.

    Certificate checks are cached per protected header (that is, per chain); the
    validity window is re-checked against ``now`` on every use.
    """

    MAX_CACHE = 4096

    def __init__(self, roots: Sequence[x509.Certificate]) -> None:
        self._roots = list(roots)
        self._cache: dict[str, _Signer] = {}

    def _signer(self, header_segment: str, now: datetime) -> _Signer:
        cached = self._cache.get(header_segment)
        if cached is not None:
            if not cached.valid_from <= now <= cached.valid_until:
                raise EnvelopeError("certificate", "signing certificate chain not valid now")
            return cached
        chain = parse_jws_chain(header_segment)
        try:
            member = verify_signing_certificate(chain[0], chain[1:], self._roots, now)
        except (CertificateError, ValueError) as exc:
            raise EnvelopeError("certificate", str(exc)) from None
        public_key = chain[0].public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
            public_key.curve, ec.SECP256R1
        ):
            raise EnvelopeError("certificate", "ES256 needs a P-256 signing certificate")
        # The cache must not outlive any certificate on the path, roots included.
        path = [*chain, *(r for r in self._roots if r.subject == chain[-1].issuer)]
        entry = _Signer(
            member,
            chain[0],
            public_key,
            cert_ref(chain[0]),
            chain[0].public_bytes(Encoding.DER),
            max(c.not_valid_before_utc for c in path),
            min(c.not_valid_after_utc for c in path),
        )
        if len(self._cache) >= self.MAX_CACHE:
            self._cache.clear()
        self._cache[header_segment] = entry
        return entry

    def verify(self, jws: str, payload: bytes, now: datetime) -> VerifiedSignature:
        """Check ``jws`` over the detached ``payload``; return who signed it."""
        return self.verify_encoded(jws, b64url(payload), now)

    def verify_encoded(self, jws: str, encoded_payload: str, now: datetime) -> VerifiedSignature:
        """:meth:`verify` of the payload whose base64url is ``encoded_payload``.

        The signing input is that text: a node that received the payload as strict
        base64url (the envelope, ``decode_segment``) passes the text it decoded, which
        is exactly what encoding the bytes again would give, instead of encoding them.
        """
        parts = jws.split(".")
        if len(parts) != 3 or parts[1] != "":
            raise EnvelopeError("signature", "not a compact JWS with detached payload")
        header_segment, _, signature_segment = parts
        signer = self._signer(header_segment, now)
        try:
            signature = b64url_decode(signature_segment)
        except EncodingError:
            raise EnvelopeError("signature", "signature is not canonical base64url") from None
        if len(signature) != 64:
            raise EnvelopeError("signature", "signature does not verify")
        signing_input = f"{header_segment}.{encoded_payload}".encode("ascii")
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            signer.public_key.verify(der, signing_input, _ECDSA_SHA256)
        except InvalidSignature:
            raise EnvelopeError("signature", "signature does not verify") from None
        return VerifiedSignature(
            signer.member,
            signer.certificate,
            signer.cert_ref,
            signer.cert_der,
            header_segment,
            jws,
        )
