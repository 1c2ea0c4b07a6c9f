"""Keys and certificates as objects: generation, fingerprints, the digest for a curve.

Pure: nothing here reads or writes a file. Key, certificate and CSR files are
``gateway.keys.files``; the CA directory is ``gateway.trust.ca_store`` (docs/adr/0016).
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key: small, fast, and accepted by every TLS stack we talk to."""
    return ec.generate_private_key(ec.SECP256R1())


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the DER, the form operators compare and configs pin."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def public_key_der(obj: ec.EllipticCurvePrivateKey | x509.Certificate) -> bytes:
    """SubjectPublicKeyInfo DER of the public key: equal for a key and its certificate."""
    return obj.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signature_hash(
    key: ec.EllipticCurvePrivateKey,
) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    """Pair the digest with the curve's strength, as RFC 5480 recommends."""
    if key.curve.key_size <= 256:
        return hashes.SHA256()
    if key.curve.key_size <= 384:
        return hashes.SHA384()
    return hashes.SHA512()
