"""The signature work of the offline verifier: batched ES256 checks and issuers.

The verifier collects one :class:`SignatureTask` per entry and hands them in batches to
a :class:`SignatureChecker`; :class:`SerialChecker` checks them in this process,
``gateway.audit.parallel`` in worker processes, with the same first failing position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from gateway.pki.ocsp_cache import find_issuer
from gateway.pki.profiles import CertificateError

_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True, slots=True)
class SignatureTask:
    """One ES256 verification: ``position`` in the bundle's entries, the signer's P-256
    key as an uncompressed point, the JWS signing input and the raw (r || s) signature."""

    position: int
    public_key: bytes
    signing_input: bytes
    signature: bytes


class SignatureChecker(Protocol):
    """Verifies tasks and reports the first failing position (tasks arrive in order)."""

    def submit(self, tasks: list[SignatureTask]) -> None: ...

    def first_failure(self) -> int | None: ...


_KEYS: dict[bytes, ec.EllipticCurvePublicKey] = {}


def check_signatures_serial(tasks: Sequence[SignatureTask]) -> int | None:
    """The position of the first task whose signature does not verify, else None."""
    for task in tasks:
        key = _KEYS.get(task.public_key)
        if key is None:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), task.public_key)
            _KEYS[task.public_key] = key
        r = int.from_bytes(task.signature[:32], "big")
        s = int.from_bytes(task.signature[32:], "big")
        try:
            key.verify(encode_dss_signature(r, s), task.signing_input, _ECDSA_SHA256)
        except InvalidSignature:
            return task.position
    return None


class SerialChecker:
    """Checks each batch as it arrives, in this process; remembers the first failure."""

    def __init__(self) -> None:
        self._first: int | None = None

    def submit(self, tasks: list[SignatureTask]) -> None:
        if self._first is None:
            self._first = check_signatures_serial(tasks)

    def first_failure(self) -> int | None:
        return self._first


def issuer_of(cert: x509.Certificate, candidates: Sequence[x509.Certificate]) -> x509.Certificate:
    """The candidate whose key signed ``cert`` (two CAs may share a name in a rollover)."""
    issuer = find_issuer(cert, candidates)
    if issuer is None:
        raise CertificateError("the issuer of the signer certificate is not in the chain")
    return issuer
